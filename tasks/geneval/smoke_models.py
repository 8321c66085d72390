"""A tiny random-weight stand-in for GenEval's colour classifier, for offline smoke runs only.

With the smoke detector (unitoken_eval.tasks.common.detection.smoke) it exercises every step of the real scoring path
(mask crops, CLIP zero-shot colour, rules, caches) in seconds without downloads; its numbers mean nothing and
results say so.  The colour model is transformers' CLIPModel built from a tiny config.
"""

from __future__ import annotations

from typing import Any


class CharTokenizer:
    """A vocabulary-free tokenizer for the tiny CLIP (characters -> ids), shaped like a transformers one."""

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size
        self.bos, self.eos = vocab_size - 2, vocab_size - 1

    def __call__(self, texts: list[str], padding: bool = True, return_tensors: str = "pt") -> Any:
        import torch
        from transformers import BatchEncoding

        rows = [[self.bos] + [ord(c) % (self.vocab_size - 2) for c in t] + [self.eos] for t in texts]
        n = max(len(r) for r in rows)
        ids = torch.tensor([r + [self.eos] * (n - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in rows])
        return BatchEncoding({"input_ids": ids, "attention_mask": mask})


def smoke_color_classifier(device: str = "cpu", seed: int = 0):
    import torch
    from transformers import CLIPConfig, CLIPModel

    from unitoken_eval.tasks.geneval.colors import ColorClassifier

    vocab = 160
    config = CLIPConfig(
        text_config=dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=vocab - 2,
                         eos_token_id=vocab - 1, pad_token_id=vocab - 1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=224, patch_size=32),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config)
    return ColorClassifier(model, CharTokenizer(vocab), device, "smoke CLIP (tiny, random weights)", 224,
                           caveat="smoke colour classifier: random weights, numbers meaningless")
