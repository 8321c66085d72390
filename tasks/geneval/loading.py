"""Build GenEval's scorer models from task options: the shared detector and the CLIP colour classifier.

The factories live here, apart from the interfaces they build (unitoken_eval.tasks.common.detection, colors), so the
smoke stand-ins and backends that implement those interfaces never import back into them.
"""

from __future__ import annotations

from typing import Optional

from unitoken_eval.tasks.geneval.colors import DEFAULT_MODEL, ColorClassifier


def load_color_classifier(name_or_path: Optional[str] = None, device: Optional[str] = None) -> ColorClassifier:
    """CLIP ViT-L/14 from the hub or a local copy (task option ``color_model``), or ``smoke`` (random weights)."""
    import torch

    name_or_path = name_or_path or DEFAULT_MODEL
    if name_or_path == "smoke":
        from unitoken_eval.tasks.geneval.smoke_models import smoke_color_classifier

        return smoke_color_classifier(device or "cpu")
    from transformers import AutoTokenizer, CLIPModel

    from unitoken_eval.tasks.common.scorer_models import load_pretrained

    model, tokenizer = load_pretrained("GenEval colour classifier (CLIP ViT-L/14, OpenAI weights)", name_or_path,
                                       "color_model", DEFAULT_MODEL, CLIPModel.from_pretrained,
                                       AutoTokenizer.from_pretrained)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return ColorClassifier(model, tokenizer, device, name_or_path, int(model.config.vision_config.image_size))
