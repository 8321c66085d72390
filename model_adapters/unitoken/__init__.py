"""UniToken (Chameleon LLM + VQ-GAN tokens + SigLIP features) on current transformers.

configuration: finding/reading release checkpoints; processing: prompts and SigLIP AnyRes views;
modeling: the modules and the embedding of image prefixes; decoding: answer and image loops;
adapter: the ModelAdapter; tiny_checkpoint: a random release-layout checkpoint for tests and the smoke suite.
"""

from .adapter import ChameleonFamilyAdapter, UniTokenAdapter

__all__ = ["ChameleonFamilyAdapter", "UniTokenAdapter"]
