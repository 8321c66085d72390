"""T2I-CompBench++ prompt files (checksums, both colour-file versions, complex sub-kinds, fetch and cache),
the official image naming and prompt recovery (GORS_finetune/inference_eval.py and the scorers'
``file_name.split('_')[0]`` at Karine-Huang/T2I-CompBench@1b70949)."""

import hashlib
import io
import shutil
from pathlib import Path

import pytest
from PIL import Image

from unitoken_eval.harness.plugin import TaskError
from unitoken_eval.tasks.t2i_compbench import naming, prompts
from unitoken_eval.tasks.t2i_compbench.task import T2IColor, T2IComplex, T2INumeracy, T2IShape

from unitoken_eval_testkit.paths import SHARED_DATA

DATA = SHARED_DATA / "t2i_compbench"
needs_data = pytest.mark.shared_data


@needs_data
def test_recorded_checksums_match_the_upstream_copies():
    for (name, version), digest in prompts.SHA256.items():
        path = DATA / prompts.cache_name(name, version)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path


@needs_data
@pytest.mark.parametrize("category", prompts.CATEGORIES)
def test_each_val_file_has_300_prompts(category):
    ps = prompts.load_prompts(category, str(DATA))
    assert len(ps.prompts) == 300
    assert ps.version == "current"
    assert not any(p.endswith("\r") for p in ps.prompts)  # the CRLF files are read as upstream's splitlines()


@needs_data
def test_two_colour_versions_differ_and_are_recorded():
    now = prompts.load_prompts("color", str(DATA), "current")
    before = prompts.load_prompts("color", str(DATA), "before-3310c2f")
    assert before.version == "before-3310c2f" and now.version == "current"
    diff = [i for i, (a, b) in enumerate(zip(now.prompts, before.prompts)) if a != b]
    assert diff == [227, 228, 271, 287, 299]
    assert len(set(before.prompts)) == 295 and len(set(now.prompts)) == 300  # the duplicates upstream removed
    assert before.describe()["official_commit"] == prompts.COLOR_BEFORE_COMMIT
    with pytest.raises(TaskError, match="color_file_version"):
        prompts.load_prompts("color", str(DATA), "2024")
    # duplicated prompts still get distinct sample ids and distinct image names
    t = T2IColor({"color_file_version": "before-3310c2f"})
    samples = t.load(str(DATA))
    names = {t.image_path(s, k) for s in samples for k in range(10)}
    assert len(names) == 3000


@needs_data
def test_complex_kinds_from_the_side_files():
    ps = prompts.load_prompts("complex", str(DATA))
    kinds = [prompts.complex_kind(p, ps.complex_spatial, ps.complex_action) for p in ps.prompts]
    assert (kinds.count("action"), kinds.count("spatial"), kinds.count("spatial_action")) == (212, 58, 30)
    extra = {prompts.complex_key(p) for p in prompts.read_prompt_file(DATA / "complex_val_spatialaction.txt")}
    assert {prompts.complex_key(p) for p, k in zip(ps.prompts, kinds) if k == "spatial_action"} == extra


def test_complex_key_and_precedence():
    assert prompts.complex_key("The Red hat was on top. Extra") == "the red hat was on top"
    assert prompts.complex_kind("A b.", {"a b"}, {"a b"}) == "spatial"
    assert prompts.complex_kind("A b.", set(), {"a b"}) == "action"
    assert prompts.complex_kind("A b.", set(), set()) == "spatial_action"


@needs_data
def test_official_file_uses_verified_cache_and_fetches_once(tmp_path, monkeypatch):
    monkeypatch.setenv("UNITOKEN_EVAL_CACHE", str(tmp_path))
    cache = tmp_path / "t2i_compbench"
    cache.mkdir()
    shutil.copy(DATA / "shape_val.txt", cache / "shape_val.txt")
    assert prompts.official_file("shape_val.txt") == cache / "shape_val.txt"

    fetched = []

    def fake_urlopen(url, timeout=None):
        fetched.append(url)
        name = url.rsplit("/", 1)[1]
        version = "before-3310c2f" if prompts.COLOR_BEFORE_COMMIT in url else "current"
        return io.BytesIO((DATA / prompts.cache_name(name, version)).read_bytes())

    monkeypatch.setattr(prompts.urllib.request, "urlopen", fake_urlopen)
    path = prompts.official_file("color_val.txt", "before-3310c2f")
    assert path.name == "color_val.before-3310c2f.txt"
    assert fetched == [f"https://raw.githubusercontent.com/Karine-Huang/T2I-CompBench/{prompts.COLOR_BEFORE_COMMIT}"
                       "/examples/dataset/color_val.txt"]
    prompts.official_file("color_val.txt", "before-3310c2f")
    assert len(fetched) == 1  # cached
    ps = prompts.load_prompts("numeracy", None)  # official: prompts + new_objects.txt, both fetched at 1b70949
    assert ps.version == "current" and len(ps.object_pairs) == 101
    assert all(prompts.COMMIT in u for u in fetched[1:])


def test_corrupt_cache_and_bad_download_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("UNITOKEN_EVAL_CACHE", str(tmp_path))
    (tmp_path / "t2i_compbench").mkdir()
    (tmp_path / "t2i_compbench" / "texture_val.txt").write_text("tampered\n")
    with pytest.raises(TaskError, match="does not match"):
        prompts.official_file("texture_val.txt")
    monkeypatch.setattr(prompts.urllib.request, "urlopen", lambda url, timeout=None: io.BytesIO(b"nope\n"))
    with pytest.raises(TaskError, match="refusing"):
        prompts.official_file("shape_val.txt")
    assert not (tmp_path / "t2i_compbench" / "shape_val.txt").exists()

    def offline(url, timeout=None):
        raise prompts.urllib.error.URLError("no network")

    monkeypatch.setattr(prompts.urllib.request, "urlopen", offline)
    with pytest.raises(TaskError, match="--data"):
        prompts.official_file("spatial_val.txt")


def test_user_prompt_file_is_recorded_as_such(tmp_path):
    f = tmp_path / "mine.txt"
    f.write_text("a red cube and a blue ball\r\n\r\na green cone\tignored column\n")
    ps = prompts.load_prompts("shape", str(f))
    assert ps.prompts == ["a red cube and a blue ball", "a green cone"]
    assert ps.version is None and ps.describe()["prompt_file_sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    bad = tmp_path / "bad.txt"
    bad.write_text("ok prompt\na_prompt with underscore\n")
    with pytest.raises(TaskError, match=r"bad.txt:2"):
        prompts.load_prompts("shape", str(bad))
    with pytest.raises(TaskError, match="does not exist"):
        prompts.load_prompts("shape", str(tmp_path / "missing.txt"))


# ------------------------------------------------------------------ naming
def test_names_counter_and_recovery():
    assert naming.image_name("a red dog", 7) == "a red dog_000007.png"
    assert naming.counter_for(3, 4, 10) == 34
    name = naming.image_name("The red hat was on top of the brown coat rack.", 1234567)
    assert naming.prompt_from_name(name) == "The red hat was on top of the brown coat rack."
    assert naming.counter_from_name(name) == 1234567
    with pytest.raises(TaskError):
        naming.counter_from_name("grid.png")


def _write(folder: Path, rel: str):
    p = folder / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(p)


def _task_with(tmp_path, prompts_text, n):
    f = tmp_path / "shape_val.txt"
    f.write_text(prompts_text)
    t = T2IShape({"images_per_prompt": n})
    return t, t.load(str(f))


def test_image_paths_follow_the_running_counter(tmp_path):
    t, samples = _task_with(tmp_path, "a b\nc d\n", 3)
    assert [t.image_path(s, k) for s in samples for k in range(3)] == [
        "samples/a b_000000.png", "samples/a b_000001.png", "samples/a b_000002.png",
        "samples/c d_000003.png", "samples/c d_000004.png", "samples/c d_000005.png"]
    assert t.request(samples[1]).n_images == 3 and t.request(samples[1]).prompt == "c d"


def test_predictions_from_images(tmp_path):
    t, samples = _task_with(tmp_path, "a b\nc d\n", 2)
    out = tmp_path / "out"
    for s in samples:
        for k in range(2):
            _write(out, t.image_path(s, k))
    _write(out, "a b-grid-00000.png")  # upstream's grid files are ignored
    preds = t.predictions_from_images(out, samples)
    assert [Path(p).name for p in preds["1"].images] == ["c d_000002.png", "c d_000003.png"]
    assert preds.keys() == t.predictions_from_images(out / "samples", samples).keys()  # samples/ itself
    # another counter origin: files are taken per prompt in counter order
    other = tmp_path / "other"
    for c in (10, 11):
        _write(other, f"samples/a b_{c:06}.png")
    for c in (12, 13):
        _write(other, f"samples/c d_{c:06}.png")
    preds = t.predictions_from_images(other, samples)
    assert [Path(p).name for p in preds["0"].images] == ["a b_000010.png", "a b_000011.png"]
    # missing images: a clear error naming the folder and the first prompt short of images
    (other / "samples" / "c d_000013.png").unlink()
    with pytest.raises(TaskError, match=r"images missing for 1 of 2 prompts.*'c d': 1 of 2 images \(e\.g\. c d_000002\.png\)"):
        t.predictions_from_images(other, samples)
    with pytest.raises(TaskError, match="does not exist"):
        t.predictions_from_images(tmp_path / "nowhere", samples)


def test_options_are_validated():
    with pytest.raises(TaskError):
        T2IShape({"images_per_prompt": 0})
    with pytest.raises(TaskError):
        T2IShape({"images_per_prompt": "ten"})
