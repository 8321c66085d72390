"""Chameleon's VQ-GAN image tokenizer (Meta's release files), shared by UniToken, Chameleon and Lumina-mGPT."""

from .config import VQGANConfig, VQGANLoadError
from .processing import crop_like_release, crop_sizes_for, preprocess, whiten_transparency
from .tokenizer import VQImageTokenizer, write_tiny_vqgan
from .vocab import ImageVocabulary, VocabularyError, build_vocabulary_map, code_name, size_token_name

__all__ = [
    "ImageVocabulary",
    "VQGANConfig",
    "VQGANLoadError",
    "VQImageTokenizer",
    "VocabularyError",
    "build_vocabulary_map",
    "code_name",
    "crop_like_release",
    "crop_sizes_for",
    "preprocess",
    "size_token_name",
    "whiten_transparency",
    "write_tiny_vqgan",
]
