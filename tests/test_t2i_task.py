"""T2I-CompBench++ task classes: scoring through the real code paths (smoke scorers or stubs), provenance in
results, "not scored" instead of zero when a scorer is missing, the complex 3-in-1 per kind, the group task."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unitoken_eval.harness.types import Headline, Prediction, TaskResult
from unitoken_eval.harness.plugin import ScoreContext, TaskError
from unitoken_eval.tasks.t2i_compbench import nouns, rules, task as T


@pytest.fixture(autouse=True)
def _fresh_scorer_cache():
    """Scorers (and the noun parser) are cached per process; tests that swap them must not leak."""
    T._CACHE.clear()
    yield
    T._CACHE.clear()


def _generate(t, samples, root: Path, n: int):
    preds = {}
    for s in samples:
        rels = []
        for k in range(n):
            rel = t.image_path(s, k)
            p = root / "images" / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((np.random.RandomState(k).rand(48, 64, 3) * 255).astype("uint8")).save(p)
            rels.append(str(Path("images") / rel))
        preds[s.id] = Prediction(sample_id=s.id, images=rels)
    return preds


def _run(cls, tmp_path, options, source=None):
    t = cls(options)
    samples = t.load(source or t.smoke_source())
    preds = _generate(t, samples, tmp_path, t.images_per_prompt)
    ctx = ScoreContext(profile="official", work_dir=tmp_path)
    records = t.score(samples, preds, ctx)
    return t, records, t.aggregate(records, ctx)


@pytest.mark.parametrize("cls", T.CATEGORY_TASKS, ids=lambda c: c.category)
def test_every_category_scores_offline_with_smoke_scorers(cls, tmp_path):
    t, records, r = _run(cls, tmp_path, {"smoke_scorers": True, "images_per_prompt": 2})
    assert r.status == "scored", r.reason
    assert r.headline.scale == "fraction" and r.headline.value is not None
    assert r.metrics["images_per_prompt"] == 2 and r.metrics["n_images"] == 2 * len(records)
    assert r.metrics["smoke_scorer"] == "random weights, numbers meaningless"
    assert r.metrics["prompt_file_sha256"] and r.reference.startswith(
        ("BLIPvqa_eval", "CLIPScore_eval", "UniDet_eval", "3_in_1_eval"))
    for rec in records.values():
        assert len(rec["image_scores"]) == 2
        assert rec["score"] == pytest.approx(sum(rec["image_scores"]) / 2)
    if cls.category in ("spatial", "3d_spatial", "numeracy", "complex"):
        assert "random weights" in r.metrics["detector"]
    if cls.category != "non_spatial":
        assert r.metrics["noun_parser"]


def test_colour_file_version_recorded(tmp_path):
    _, _, r = _run(T.T2IColor, tmp_path, {"smoke_scorers": True, "images_per_prompt": 1})
    assert r.metrics["color_file_version"].startswith("user file")  # the smoke file is not an official one


def test_missing_spacy_model_is_not_scored_never_zero(tmp_path, monkeypatch):
    def unavailable(model=None):
        raise nouns.NLPUnavailable("spaCy model 'en_core_web_sm' cannot be loaded; install it with ...")

    monkeypatch.setattr(nouns, "load_nlp", unavailable)
    T._CACHE.clear()
    t, records, r = _run(T.T2IShape, tmp_path, {"images_per_prompt": 1})
    assert r.status == "not_scored" and r.headline.value is None
    assert "en_core_web_sm" in r.reason
    assert all(rec["score"] is None for rec in records.values())


def test_missing_detector_is_not_scored(tmp_path, monkeypatch):
    monkeypatch.setattr(nouns, "load_nlp", lambda model=None: nouns.SmokeParser())
    T._CACHE.clear()
    _, _, r = _run(T.T2ISpatial, tmp_path, {"images_per_prompt": 1, "detector": "unidet"})
    assert r.status == "not_scored" and "UniDet_eval" in r.reason
    _, _, r = _run(T.T2INumeracy, tmp_path, {"images_per_prompt": 1, "detector": "unidet:/nonexistent"})
    assert r.status == "not_scored" and "not T2I-CompBench's UniDet_eval" in r.reason


class _StubDetector:
    label = "stub"

    def __init__(self, dets):
        self.dets = dets

    def detect(self, images):
        return [list(self.dets) for _ in images]


class _StubClip:
    label = "stub clip"

    def __init__(self):
        self.texts = []

    def scores(self, images, texts):
        self.texts.extend(texts)
        return [0.3 for _ in images]


class _StubBlip:
    label = "stub blip"

    def yes_prob(self, images, questions):
        return [0.5 for _ in images]


def test_complex_three_in_one_per_kind(tmp_path, monkeypatch):
    parser = nouns.SmokeParser()
    clip = _StubClip()
    # cup left of book (the spatial prompt) -> 0.25*0.9 + 0.25*0.8 + 0.5
    dets = [rules.Det("cup", (0, 0, 100, 100), 0.9), rules.Det("book", (300, 0, 400, 100), 0.8)]
    monkeypatch.setattr(T.T2IComplex, "_parser", lambda self: parser)
    monkeypatch.setattr(T.T2IComplex, "_blip", lambda self: _StubBlip())
    monkeypatch.setattr(T.T2IComplex, "_clip", lambda self: clip)
    monkeypatch.setattr(T.T2IComplex, "_detector", lambda self, ckpt="RS200": _StubDetector(dets))
    t, records, r = _run(T.T2IComplex, tmp_path, {"images_per_prompt": 2})
    by_kind = {rec["complex_kind"]: rec for rec in records.values()}
    # BLIP: every chunk answers 0.5 -> 0.5 ** (number of questions) per image
    blip = {k: 0.5 ** len(rec["details"][0]["questions"]) for k, rec in by_kind.items()}
    assert blip["spatial"] == 0.25  # "The red cup", "the blue book"
    sp = rules.spatial_2d_score(dets, "cup", "book", "on the left of")["score"]
    assert sp == pytest.approx(0.925)
    assert by_kind["spatial"]["score"] == pytest.approx((blip["spatial"] + sp) / 2)
    assert by_kind["action"]["score"] == pytest.approx((blip["action"] + 0.3) / 2)
    # "The black cat sat next to the white bowl." finds neither cup nor book: 2D 0 -> (blip + 0 + 0.3) / 3
    assert by_kind["spatial_action"]["score"] == pytest.approx((blip["spatial_action"] + 0.0 + 0.3) / 3)
    assert by_kind["spatial_action"]["details"][0]["spatial_2d"] == 0.0
    assert by_kind["action"]["details"][0]["spatial_2d"] is None  # not needed, not computed
    assert r.metrics["complex_spatial"] == pytest.approx((0.25 + sp) / 2)
    assert r.metrics["n_prompts_action"] == 1
    # CLIP saw the prompts with adjectives removed
    assert "The dog was holding the apple ." in clip.texts


def _result(task, value, status="scored"):
    return TaskResult(task=task, profile="official", headline=Headline("x", value, "fraction"), n=10,
                      status=status, reason=None if status == "scored" else "why")


def test_group_headline_is_mean_of_colour_shape_texture():
    g = T.T2ICompBench()
    assert g.subtasks == tuple(c.id for c in T.CATEGORY_TASKS) and len(g.subtasks) == 8
    vals = {c.id: 0.1 * (i + 1) for i, c in enumerate(T.CATEGORY_TASKS)}
    members = {k: _result(k, v) for k, v in vals.items()}
    r = g.combine(members, ScoreContext(profile="official"))
    assert r.status == "scored" and r.headline.value == pytest.approx((0.1 + 0.2 + 0.3) / 3)
    assert r.metrics["numeracy"] == pytest.approx(0.8) and r.metrics["spatial"] == pytest.approx(0.4)
    members["t2i_compbench_shape"] = _result("t2i_compbench_shape", None, "not_scored")
    del members["t2i_compbench_numeracy"]
    r = g.combine(members, ScoreContext(profile="official"))
    assert r.status == "not_scored" and r.headline.value is None and "shape" in r.reason
    assert r.metrics["category_status"]["numeracy"] == "missing"
    assert r.metrics["color"] == pytest.approx(0.1)


def test_registered_entry_points_resolve():
    from unitoken_eval.harness import registry

    assert registry.task_class("t2i_compbench") is T.T2ICompBench
    for cls in T.CATEGORY_TASKS:
        assert registry.task_class(cls.id) is cls
    assert registry.expand_task_ids(["t2i_compbench"])[-1] == "t2i_compbench"


def test_score_command_on_an_images_folder_reports_missing_scorers(tmp_path, monkeypatch):
    """``unitoken-eval score --task t2i_compbench_shape --images DIR`` without the scorer models here: the
    result is "not scored" with the reason (spaCy's model, or the BLIP weights), never a zero."""
    import huggingface_hub.constants

    from unitoken_eval.harness.scoring import score_files

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    T._CACHE.clear()
    t = T.T2IShape()
    samples = t.load(str(T.SMOKE_DIR))
    _generate(t, samples, tmp_path, 10)
    out = score_files("t2i_compbench_shape", str(T.SMOKE_DIR), images=str(tmp_path / "images"))
    assert out["status"] == "not_scored" and out["headline"]["value"] is None
    assert "spaCy" in out["reason"] or "blip-vqa-capfilt-large" in out["reason"]
    assert out["per_sample"] == {"0": None, "1": None}


def test_default_detector_without_checkpoint_is_not_scored(tmp_path, monkeypatch):
    monkeypatch.setattr(nouns, "load_nlp", lambda model=None: nouns.SmokeParser())
    monkeypatch.delenv("UNITOKEN_GENEVAL_DETECTOR", raising=False)
    T._CACHE.clear()
    _, _, r = _run(T.T2ISpatial, tmp_path, {"images_per_prompt": 1})
    assert r.status == "not_scored" and r.headline.value is None
    assert "detector 'mmdet' cannot be loaded" in r.reason and "detector_checkpoint" in r.reason


def test_mmdet_label_and_comparability_warning(tmp_path, monkeypatch):
    from unitoken_eval.tasks.t2i_compbench import detectors

    class FakeInner:
        caveat = None
        sizes = []

        def detect(self, images, min_score=0.0, with_masks=True):
            from unitoken_eval.tasks.common.detection import Detection

            self.sizes.extend(im.size for im in images)
            return [{"computer mouse": [Detection(box=[0, 0, 50, 50], score=0.9)],
                     "dog": [Detection(box=[200, 0, 260, 50], score=0.8), Detection(box=[0, 0, 9, 9], score=0.5)]}
                    for _ in images]

    import unitoken_eval.tasks.common.detection.loading as gd

    monkeypatch.setattr(gd, "load_detector", lambda spec=None, **k: FakeInner())
    monkeypatch.setattr(nouns, "load_nlp", lambda model=None: nouns.SmokeParser())
    T._CACHE.clear()
    d = detectors.load("mmdet")
    out = d.detect([Image.new("RGB", (512, 512))])
    # GenEval's renamed class back to the COCO word; 0.5 is not above the threshold; score order
    assert [(x.label, x.score) for x in out[0]] == [("mouse", 0.9), ("dog", 0.8)]
    assert FakeInner.sizes == [(479, 479)]  # UniDet's input frame: Resize(479, max_size=480)
    T._CACHE.clear()
    _, _, r = _run(T.T2ISpatial, tmp_path, {"images_per_prompt": 1})
    assert r.status == "scored" and r.metrics["detector"] == "mmdet Mask2Former (not the official UniDet)"
    assert any("not comparable" in w for w in r.warnings)
    T._CACHE.clear()


def test_prompts_with_the_wrong_number_of_images_are_flagged(tmp_path):
    t = T.T2IShape({"smoke_scorers": True, "images_per_prompt": 2})
    samples = t.load(t.smoke_source())
    preds = _generate(t, samples, tmp_path, 2)
    preds["1"].images = preds["1"].images[:1]
    ctx = ScoreContext(profile="official", work_dir=tmp_path)
    r = t.aggregate(t.score(samples, preds, ctx), ctx)
    assert r.metrics["n_images"] == 3
    assert any("1 prompts do not have images_per_prompt=2" in w for w in r.warnings)
    preds["0"].images = ["images/samples/nothing_000000.png"]
    with pytest.raises(TaskError, match="nothing_000000.png is missing"):
        t.score(samples, preds, ctx)


def test_options_travel_only_through_the_constructor_and_are_validated(monkeypatch):
    monkeypatch.setenv("UNITOKEN_T2I_IMAGES_PER_PROMPT", "4")  # the environment is not a second road
    monkeypatch.setenv("UNITOKEN_T2I_BLIP_MODEL", "/models/blip")
    t = T.T2IColor()
    assert t.images_per_prompt == 10 and t.opt("blip_model") is None
    t = T.T2IColor({"images_per_prompt": 2, "blip_model": "/models/blip", "request": {"cfg": 5.0}})
    assert (t.images_per_prompt, t.opt("blip_model"), t.request_options) == (2, "/models/blip", {"cfg": 5.0})
    with pytest.raises(TaskError, match="unknown option 'blip_modle'"):
        T.T2IColor({"blip_modle": "/models/blip"})
    with pytest.raises(TaskError, match="images_per_prompt must be an integer"):
        T.T2IColor({"images_per_prompt": "ten"})
    with pytest.raises(TaskError, match="'request' must be a mapping"):
        T.T2IColor({"request": 5.0})


def test_unidet_adapter_with_a_user_checkout(tmp_path, monkeypatch):
    """The official-UniDet path, driven through a stand-in of upstream's UniDet_eval layout and detectron2
    (neither is installable here): lazy import, upstream's loader called from its own directory, label map
    from dataset/detection_features.pt, detectron2 Instances converted in their own (score) order."""
    import sys
    import types

    import torch

    from unitoken_eval.tasks.t2i_compbench import detectors

    root = tmp_path / "UniDet_eval"
    (root / "experts" / "expert_weights").mkdir(parents=True)
    (root / "dataset").mkdir()
    (root / "experts" / "expert_weights" / "Unified_learned_OCIM_RS200_6x+2x.pth").write_bytes(b"w")
    torch.save({"labels": ["person", "dog", "chair"]}, root / "dataset" / "detection_features.pt")
    (root / "experts" / "__init__.py").write_text("")
    (root / "experts" / "model_bank.py").write_text(
        "import os, sys, torch\n"
        "class _Boxes:\n    def __init__(self, t): self.tensor = t\n"
        "class _Inst:\n"
        "    def __init__(self, f): self.f = f\n"
        "    def get_fields(self): return self.f\n"
        "class _Model:\n"
        "    def eval(self): return self\n"
        "    def __call__(self, batch):\n"
        "        self.seen = [(b['height'], b['width']) for b in batch]\n"
        "        return [{'instances': _Inst({'pred_boxes': _Boxes(torch.tensor([[1., 2., 30., 40.], [50., 0., 90., 20.]])),\n"
        "                 'pred_classes': torch.tensor([1, 2]), 'scores': torch.tensor([0.9, 0.7])})} for _ in batch]\n"
        "def load_expert_model(task=None, ckpt=None):\n"
        "    assert os.path.exists('experts/expert_weights/Unified_learned_OCIM_%s_6x+2x.pth' % ckpt), os.getcwd()\n"
        "    assert sys.argv[1:] == []\n"
        "    return _Model(), None\n"
    )
    with pytest.raises(detectors.DetectorUnavailable, match="detectron2"):
        detectors.load(f"unidet:{root}")
    monkeypatch.setitem(sys.modules, "detectron2", types.ModuleType("detectron2"))
    monkeypatch.setattr(sys, "argv", ["unitoken-eval", "run", "--suite", "paper"])
    monkeypatch.syspath_prepend(str(root))
    with pytest.raises(detectors.DetectorUnavailable, match="R50_6x"):
        detectors.load(f"unidet:{root}", ckpt="R50")  # numeracy's checkpoint is missing
    d = detectors.load(f"unidet:{root}")
    assert sys.argv == ["unitoken-eval", "run", "--suite", "paper"]  # restored
    out = d.detect([Image.new("RGB", (512, 512))])
    assert d.model.seen == [(479, 479)]
    assert [(x.label, x.box, x.score) for x in out[0]] == [
        ("dog", (1.0, 2.0, 30.0, 40.0), pytest.approx(0.9)), ("chair", (50.0, 0.0, 90.0, 20.0), pytest.approx(0.7))]
    assert d.label == "UniDet RS200 (official)"
    for mod in [m for m in sys.modules if m == "experts" or m.startswith("experts.")]:
        sys.modules.pop(mod)  # upstream's package name must not leak into other tests
