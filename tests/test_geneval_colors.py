"""GenEval's colour classifier: crop rule, open_clip-equivalent preprocessing, zero-shot weights and templates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from unitoken_eval.tasks.geneval.colors import OPENAI_MEAN, OPENAI_STD, ColorClassifier, clip_pixels, object_crop
from unitoken_eval.tasks.common.detection import Detection
from unitoken_eval.tasks.geneval.loading import load_color_classifier
from unitoken_eval.tasks.geneval.rules import COLORS


def test_crop_composites_mask_on_grey_and_crops_to_box():
    img = Image.new("RGB", (100, 100), (255, 0, 0))
    mask = np.zeros((100, 100), dtype=bool)
    mask[:, :50] = True
    crop = object_crop(img, Detection(box=[0, 0, 80, 50], score=0.9, mask=mask))
    assert crop.size == (80, 50)
    px = np.asarray(crop)
    assert (px[:, :50] == [255, 0, 0]).all() and (px[:, 50:] == [153, 153, 153]).all()  # "#999"
    # without a mask the original pixels are cropped
    assert (np.asarray(object_crop(img, Detection(box=[0, 0, 80, 50], score=0.9))) == [255, 0, 0]).all()


def test_crop_rounds_float_boxes_like_pil_and_checks_mask_size():
    img = Image.new("RGB", (20, 20))
    assert object_crop(img, Detection(box=[0.4, 0.6, 10.5, 10.4], score=1.0)).size == (10, 9)
    with pytest.raises(ValueError, match="mask shape"):
        object_crop(img, Detection(box=[0, 0, 5, 5], score=1.0, mask=np.ones((10, 20), bool)))


def test_pixels_uniform_image_normalised_with_openai_stats():
    arr = clip_pixels(Image.new("RGB", (300, 100), (51, 102, 204)))
    assert arr.shape == (3, 224, 224)
    want = (np.array([51, 102, 204]) / 255.0 - np.array(OPENAI_MEAN)) / np.array(OPENAI_STD)
    assert np.allclose(arr.reshape(3, -1).T, want, atol=1e-5)


def test_pixels_short_side_224_centre_crop():
    # 448 x 224: no resize (short side already 224), centre crop keeps the middle half only
    a = np.zeros((224, 448, 3), np.uint8)
    a[:, :112] = (255, 0, 0)
    a[:, 112:336] = (0, 0, 255)
    a[:, 336:] = (255, 0, 0)
    arr = clip_pixels(Image.fromarray(a))
    blue = (np.array([0, 0, 1.0]) - np.array(OPENAI_MEAN)) / np.array(OPENAI_STD)
    assert np.allclose(arr.reshape(3, -1).T, blue, atol=1e-5)
    # a square image of the model's size passes through unresized (exact pixels)
    rng = np.random.RandomState(0).randint(0, 256, (224, 224, 3)).astype(np.uint8)
    out = clip_pixels(Image.fromarray(rng)).transpose(1, 2, 0) * np.array(OPENAI_STD) + np.array(OPENAI_MEAN)
    assert np.allclose(out * 255, rng, atol=1e-3)


class _Oracle(torch.nn.Module):
    """Text features = one-hot of the colour word in the text; image features = one-hot of the image's colour."""

    def __init__(self, texts):
        super().__init__()
        self.texts = texts

    def get_text_features(self, input_ids, attention_mask=None):
        rows = []
        for i in input_ids.tolist():
            text = self.texts[i[0]]
            rows.append(torch.nn.functional.one_hot(
                torch.tensor(next(k for k, c in enumerate(COLORS) if f" {c}" in text)), 10).float())
        return torch.stack(rows)

    def get_image_features(self, pixel_values):
        # the crops are uniform; recover the index stored in the red channel
        red = pixel_values[:, 0].mean(dim=(1, 2)) * OPENAI_STD[0] + OPENAI_MEAN[0]
        idx = torch.round(red * 255 / 20).long()
        return torch.nn.functional.one_hot(idx, 10).float() + 0.01


class _RecordingTokenizer:
    def __init__(self):
        self.texts = []

    def __call__(self, texts, padding=True, return_tensors="pt"):
        from transformers import BatchEncoding

        ids = []
        for t in texts:
            self.texts.append(t)
            ids.append([len(self.texts) - 1])
        return BatchEncoding({"input_ids": torch.tensor(ids), "attention_mask": torch.ones(len(ids), 1)})


def test_zero_shot_uses_the_three_templates_and_colour_order():
    tok = _RecordingTokenizer()
    clf = ColorClassifier(_Oracle(tok.texts), tok, "cpu", "oracle")
    img = Image.new("RGB", (40, 20))
    img.paste((20 * 7, 0, 0), (0, 0, 20, 20))  # left half: index 7 (brown)
    img.paste((20 * 2, 0, 0), (20, 0, 40, 20))  # right half: index 2 (yellow)
    dets = [Detection(box=[0, 0, 20, 20], score=0.9), Detection(box=[20, 0, 40, 20], score=0.8)]
    assert clf.classify(img, "tv remote", dets) == ["brown", "yellow"]
    assert len(tok.texts) == 30 and tok.texts[:3] == [
        "a photo of a red tv remote", "a photo of a red-colored tv remote", "a photo of a red object"]
    clf.classify(img, "tv remote", dets)
    assert len(tok.texts) == 30  # text weights computed once per class name


def test_smoke_classifier_weights_are_unit_norm_and_deterministic():
    a = load_color_classifier("smoke")
    b = load_color_classifier("smoke")
    w = a._class_weights("car")
    assert w.shape[1] == 10 and torch.allclose(w.norm(dim=0), torch.ones(10), atol=1e-5)
    img = Image.fromarray(np.random.RandomState(1).randint(0, 256, (64, 64, 3)).astype(np.uint8))
    dets = [Detection(box=[0, 0, 30, 30], score=0.9), Detection(box=[10, 10, 64, 50], score=0.8)]
    colors = a.classify(img, "car", dets)
    assert colors == b.classify(img, "car", dets) and all(c in COLORS for c in colors)
    assert "numbers meaningless" in a.describe()["color_caveat"]


def test_missing_clip_weights_are_reported_as_such(tmp_path):
    from unitoken_eval.tasks.common.scorer_models import ScorerUnavailable

    with pytest.raises(ScorerUnavailable, match="colour classifier.*color_model=PATH"):
        load_color_classifier(str(tmp_path / "no-clip-here"))
