"""The detector interface, safe checkpoint loading, and (with the geneval extra) the real mmdet Mask2Former path."""

from __future__ import annotations

import importlib.util
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from unitoken_eval.tasks.common.detection.checkpoint import Placeholder, load_checkpoint_safely, state_dict_of
from unitoken_eval.tasks.common.detection import CLASS_NAMES, DetectorError, sort_by_class
from unitoken_eval.tasks.common.detection.loading import load_detector

HAS_MMDET = importlib.util.find_spec("mmdet") is not None and importlib.util.find_spec("mmengine") is not None
needs_mmdet = pytest.mark.skipif(not HAS_MMDET, reason="mmdet/mmengine not installed (pip install '.[geneval]')")


def test_flat_instances_regrouped_per_class_sorted_like_upstream():
    labels = np.array([2, 0, 2, 79, 2])
    scores = np.array([0.4, 0.9, 0.8, 0.1, 0.8])
    boxes = np.arange(20, dtype=float).reshape(5, 4)
    masks = np.zeros((5, 3, 3), dtype=np.uint8)
    masks[4, 1, 1] = 1
    out = sort_by_class(labels, scores, boxes, masks, min_score=0.2)
    assert list(out) == ["person", "car"]  # "toothbrush" (0.1) dropped by min_score
    # np.argsort(...)[::-1] as evaluate_image: equal scores come out in reverse index order
    assert [d.score for d in out["car"]] == [0.8, 0.8, 0.4]
    assert out["car"][0].box == [16.0, 17.0, 18.0, 19.0] and out["car"][0].mask[1, 1]
    assert out["car"][0].mask.dtype == bool and out["car"][0].row() == [16.0, 17.0, 18.0, 19.0, 0.8]
    assert sort_by_class(labels, scores, boxes, masks, with_masks=False)["car"][0].mask is None
    assert len(CLASS_NAMES) == 80


def test_load_detector_without_checkpoint_says_how_to_get_it(monkeypatch):
    monkeypatch.delenv("UNITOKEN_GENEVAL_DETECTOR", raising=False)
    with pytest.raises(DetectorError, match="mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco_20220504_001756-c9d0c4f2"):
        load_detector("mmdet")
    with pytest.raises(DetectorError, match="unknown detector spec"):
        load_detector("yolo")


def test_smoke_detector_via_factory_is_labelled():
    det = load_detector("smoke")
    assert "numbers meaningless" in det.describe()["caveat"]
    out = det.detect([Image.new("RGB", (32, 24), (10, 200, 30))])
    assert len(out) == 1
    for cls, items in out[0].items():
        assert cls in CLASS_NAMES
        assert [d.score for d in items] == sorted((d.score for d in items), reverse=True)
        assert items[0].mask.shape == (24, 32)


class Gadget:
    """A class the loader must never import or call."""

    def __init__(self, x):
        self.x = x


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-checkpoint",))


def test_checkpoint_loaded_weights_only_with_numpy_meta_and_foreign_objects(tmp_path):
    sd = {"module.backbone.w": torch.arange(6.0).reshape(2, 3), "head.b": torch.ones(2)}
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": sd, "meta": {"epoch": np.int64(50), "lr": np.float64(1e-4), "gadget": Gadget(3),
                                          "dataset_meta": {"classes": list(CLASS_NAMES)}}}, path)
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)  # what a plain safe load does with such a file
    ckpt = load_checkpoint_safely(path)
    assert ckpt["meta"]["epoch"] == 50 and isinstance(ckpt["meta"]["gadget"], Placeholder)
    weights = state_dict_of(ckpt)
    assert set(weights) == {"backbone.w", "head.b"} and torch.equal(weights["backbone.w"], sd["module.backbone.w"])


def test_checkpoint_payload_is_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "meta": {"x": Exploit()}}, path)
    # torch's weights-only unpickler blocks os/posix outright: refused, never run
    with pytest.raises(pickle.UnpicklingError, match="posix.system"):
        load_checkpoint_safely(path)
    assert not (tmp_path / "pwned-by-checkpoint").exists()
    with pytest.raises(FileNotFoundError):
        load_checkpoint_safely(tmp_path / "absent.pth")


# ---------------------------------------------------------------- the geneval extra (mmdet 3.3 + mmcv-lite)
@pytest.mark.extra
@needs_mmdet
def test_mmcv_standin_provides_deformable_attention_and_names_missing_ops():
    from unitoken_eval.tasks.common.detection.mmcv_compat import MissingOpError, ensure_mmcv_ops

    mode = ensure_mmcv_ops()
    import mmcv._ext as ext

    if mode == "compiled":
        pytest.skip("a full mmcv with compiled ops is installed: the stand-in is not used")
    from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction, multi_scale_deformable_attn_pytorch

    g = torch.Generator().manual_seed(0)
    shapes = torch.tensor([[8, 8], [4, 4]])
    start = torch.tensor([0, 64])
    value = torch.randn(2, 80, 4, 8, generator=g)
    loc = torch.rand(2, 10, 4, 2, 3, 2, generator=g)
    w = torch.rand(2, 10, 4, 2, 3, generator=g)
    want = multi_scale_deformable_attn_pytorch(value, shapes, loc, w)
    # the CUDA code path (autograd Function -> _ext.ms_deform_attn_forward), exercised here on CPU tensors
    got = MultiScaleDeformableAttnFunction.apply(value, shapes, start, loc, w, 64)
    assert torch.allclose(got, want)
    with pytest.raises(MissingOpError, match="roi_align_forward"):
        ext.roi_align_forward()


@pytest.mark.extra
@needs_mmdet
def test_mmdet3_instances_converted_to_per_class_lists():
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    from unitoken_eval.tasks.common.detection.mask2former import MMDetMask2Former

    res = DetDataSample()
    inst = InstanceData()
    inst.labels = torch.tensor([15, 16, 15])
    inst.scores = torch.tensor([0.5, 0.2, 0.7])
    inst.bboxes = torch.tensor([[0, 0, 4, 4], [1, 1, 2, 2], [2, 2, 6, 6]], dtype=torch.float32)
    inst.masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    res.pred_instances = inst
    out = MMDetMask2Former._convert(res, min_score=0.3, with_masks=True)
    assert list(out) == ["cat"] and [d.score for d in out["cat"]] == pytest.approx([0.7, 0.5])
    assert out["cat"][0].box == [2, 2, 6, 6] and out["cat"][0].mask.shape == (8, 8)


@pytest.mark.extra
@pytest.mark.slow
@needs_mmdet
def test_random_weight_mask2former_swin_s_detects_one_image_on_cpu(tmp_path):
    from unitoken_eval.tasks.common.detection.mask2former import MMDetMask2Former

    det = MMDetMask2Former(random_weights=True, device="cpu")
    assert det.device == "cpu"
    img = Image.fromarray(np.random.RandomState(0).randint(0, 256, (96, 128, 3)).astype(np.uint8))
    (out,) = det.detect([img], min_score=0.0)
    n = sum(len(v) for v in out.values())
    assert n == 100  # Mask2Former keeps its top-100 (query, class) pairs
    for cls, items in out.items():
        assert cls in CLASS_NAMES
        for d in items:
            assert d.mask.shape == (96, 128) and 0 <= d.score <= 1
            assert 0 <= d.box[0] <= d.box[2] <= 128 and 0 <= d.box[1] <= d.box[3] <= 96

    # the weights-only checkpoint path: save these random weights as an mmdet 3 checkpoint and load them back
    path = tmp_path / "m2f.pth"
    torch.save({"state_dict": det.model.state_dict(),
                "meta": {"epoch": np.int64(50), "dataset_meta": {"classes": tuple(CLASS_NAMES)}}}, path)
    det2 = MMDetMask2Former(checkpoint=str(path), device="cpu")
    k = "backbone.stages.0.blocks.0.attn.w_msa.qkv.weight"
    assert torch.equal(det2.model.state_dict()[k], det.model.state_dict()[k])
    bad = tmp_path / "partial.pth"
    torch.save({"state_dict": {k: det.model.state_dict()[k]}}, bad)
    with pytest.raises(DetectorError, match="weights of the mmdet 3.x Mask2Former Swin-S are missing"):
        MMDetMask2Former(checkpoint=str(bad), device="cpu")


class _Inst(dict):
    __getattr__ = dict.__getitem__


class _FakeModel:
    """Records the batches mmdet's test_step would get; returns one 'cat' per image scored by its id."""

    def __init__(self):
        self.batches = []

    def test_step(self, data):
        self.batches.append([(s, shape) for s, shape in zip(data["data_samples"], data["inputs"])])
        out = []
        for img_id, (h, w, _) in zip(data["data_samples"], data["inputs"]):
            inst = _Inst(labels=torch.tensor([15]), scores=torch.tensor([0.5 + img_id / 100]),
                         bboxes=torch.tensor([[0.0, 0.0, w, h]]), masks=torch.ones(1, h, w, dtype=torch.bool))
            out.append(type("Res", (), {"pred_instances": inst})())
        return out


def test_detect_batches_same_size_images_and_keeps_input_order():
    from unitoken_eval.tasks.common.detection.mask2former import MMDetMask2Former

    det = MMDetMask2Former.__new__(MMDetMask2Former)
    det.batch_size, det._torch, det.model = 2, torch, _FakeModel()
    seen_pixels = []

    def pipeline(d):
        seen_pixels.append(d["img"][0, 0].tolist())
        return {"inputs": d["img"].shape, "data_samples": d["img_id"]}

    det.pipeline = pipeline
    big, small = Image.new("RGB", (8, 6), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))
    out = det.detect([big, small, big, big, small])
    # same-size groups, at most batch_size per forward, never mixing sizes (padding would differ)
    assert [[i for i, _ in b] for b in det.model.batches] == [[0, 2], [3], [1, 4]]
    assert [o["cat"][0].score for o in out] == pytest.approx([0.5, 0.51, 0.52, 0.53, 0.54])
    assert out[1]["cat"][0].mask.shape == (4, 4) and out[0]["cat"][0].box == [0.0, 0.0, 8.0, 6.0]
    assert seen_pixels[0] == [0, 0, 255]  # red fed as BGR, as mmcv.imread reads files
