"""UniToken (Chameleon LLM + VQ-GAN tokens + SigLIP features) on current transformers.

configuration: finding/reading release checkpoints; processing: prompts and SigLIP AnyRes views;
modeling: the modules and the embedding of image prefixes; adapter: the ``unitoken`` ModelAdapter (a thin
variant of :mod:`unitoken_eval.model_adapters.chameleon_family`, which holds the decoders, KV caches and VQ-GAN);
tiny_checkpoint: a random release-layout checkpoint for tests and the smoke suite.
"""

__all__ = ["UniTokenAdapter"]


def __getattr__(name: str):
    # Imported on first use: the family's adapter imports this package's configuration and modeling.
    if name == "UniTokenAdapter":
        from .adapter import UniTokenAdapter

        return UniTokenAdapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
