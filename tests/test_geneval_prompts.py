"""GenEval prompts: checksum verification, download into the cache, schema checks, output layout."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from unitoken_eval.harness.plugin import TaskError
from unitoken_eval_testkit.paths import SHARED_DATA

from unitoken_eval.tasks.geneval import prompts
from unitoken_eval.tasks.common.detection import CLASS_NAMES
from unitoken_eval.tasks.geneval.task import GenEval

SHARED = SHARED_DATA / "geneval"
OFFICIAL = SHARED / "evaluation_metadata.jsonl"

needs_shared = pytest.mark.shared_data


@needs_shared
def test_official_file_verifies_and_loads_553_prompts_with_upstream_tag_counts():
    samples = GenEval().load(str(OFFICIAL))
    assert len(samples) == 553
    assert samples[0].id == "00000" and samples[552].id == "00552"
    assert Counter(s.fields["tag"] for s in samples) == {
        "single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100, "color_attr": 100}
    # a folder holding the file is accepted too
    assert len(GenEval().load(str(SHARED))) == 553


@needs_shared
def test_tampered_file_fails_with_the_checksum_named(tmp_path):
    bad = tmp_path / "evaluation_metadata.jsonl"
    bad.write_bytes(OFFICIAL.read_bytes().replace(b"a photo of a bench", b"a photo of a bank", 1))
    with pytest.raises(TaskError, match=r"sha256 .* does not match .*af4902f"):
        GenEval().load(str(bad))
    # knowingly scoring another prompt set
    assert len(GenEval({"verify_prompts": "false"}).load(str(bad))) == 553


@needs_shared
def test_class_names_are_geneval_object_names():
    assert list(CLASS_NAMES) == SHARED.joinpath("object_names.txt").read_text().split("\n")[:80]


@needs_shared
def test_first_use_downloads_into_the_cache_and_verifies(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(prompts, "METADATA_URL", OFFICIAL.resolve().as_uri())
    path = prompts.resolve_source(None)
    assert path == tmp_path / "cache" / "unitoken-eval" / "geneval" / "evaluation_metadata.jsonl"
    assert path.read_bytes() == OFFICIAL.read_bytes()
    assert len(GenEval().load(None)) == 553


@needs_shared
def test_corrupted_download_is_refused_and_not_cached(tmp_path):
    bad = tmp_path / "served.jsonl"
    bad.write_bytes(OFFICIAL.read_bytes()[:-10])
    dest = tmp_path / "cache" / "evaluation_metadata.jsonl"
    with pytest.raises(TaskError, match="does not match"):
        prompts.fetch_metadata(dest, url=bad.as_uri())
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_unreachable_download_says_how_to_pass_the_file(tmp_path):
    with pytest.raises(TaskError, match="--data geneval=PATH"):
        prompts.fetch_metadata(tmp_path / "m.jsonl", url=(tmp_path / "nowhere.jsonl").as_uri())


@pytest.mark.parametrize("line, message", [
    ('{"tag": "colors", "include": [{"class": "car", "count": 1, "color": "teal"}], "prompt": "p"}', "colour 'teal'"),
    ('{"tag": "colors", "include": [{"class": "automobile", "count": 1}], "prompt": "p"}', "not one of GenEval's 80"),
    ('{"tag": "position", "include": [{"class": "car", "count": 1, "position": ["left of", 0]}], "prompt": "p"}',
     "earlier clause"),
    ('{"tag": "painting", "include": [], "prompt": "p"}', "unknown tag"),
    ('{"tag": "colors", "prompt": "p"}', "missing 'include'"),
    ("{not json", "not valid JSON"),
])
def test_bad_metadata_lines_name_file_and_line(tmp_path, line, message):
    f = tmp_path / "m.jsonl"
    f.write_text('{"tag": "single_object", "include": [{"class": "cat", "count": 1}], "prompt": "a photo of a cat"}\n'
                 + line + "\n")
    with pytest.raises(TaskError, match=rf"m.jsonl:2: .*{message}"):
        GenEval({"verify_prompts": False}).load(str(f))


def test_smoke_prompts_have_one_prompt_per_tag_and_valid_schema():
    task = GenEval()
    samples = task.load(task.smoke_source())
    assert sorted(s.fields["tag"] for s in samples) == sorted(
        ["single_object", "two_object", "counting", "colors", "position", "color_attr"])


def test_layout_request_and_metadata_file_as_upstream(tmp_path):
    task = GenEval()
    s = task.load(task.smoke_source())[4]
    req = task.request(s)
    assert (req.prompt, req.n_images) == (s.fields["prompt"], 4)
    assert [task.image_path(s, k) for k in (0, 3)] == ["00004/samples/00000.png", "00004/samples/00003.png"]
    task.write_sample_files(tmp_path, s)
    with open(tmp_path / "00004" / "metadata.jsonl") as fh:
        assert json.load(fh) == s.fields["metadata"]  # GenEval's scripts read it with json.load


def _layout(root: Path, samples, n=4):
    task = GenEval()
    for s in samples:
        task.write_sample_files(root, s)
        for k in range(n):
            p = root / task.image_path(s, k)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"")


def test_predictions_from_images_and_missing_samples(tmp_path):
    task = GenEval()
    samples = task.load(task.smoke_source())
    _layout(tmp_path, samples)
    (tmp_path / "00001" / "samples" / "grid.png").write_bytes(b"")  # not \d+.png: ignored, as upstream
    preds = task.predictions_from_images(tmp_path, samples)
    assert [Path(p).name for p in preds["00001"].images] == ["00000.png", "00001.png", "00002.png", "00003.png"]
    for f in (tmp_path / "00003" / "samples").iterdir():
        f.unlink()
    with pytest.raises(TaskError, match=r"00003/samples: no <n>.png images for prompt 00003"):
        task.predictions_from_images(tmp_path, samples)
    (tmp_path / "00003" / "samples").rmdir()
    with pytest.raises(TaskError, match=r"00003: no samples/ folder for prompt 00003"):
        task.predictions_from_images(tmp_path, samples)


def test_folder_metadata_must_match_the_prompt_file(tmp_path):
    task = GenEval()
    samples = task.load(task.smoke_source())
    _layout(tmp_path, samples)
    (tmp_path / "00002" / "metadata.jsonl").write_text(json.dumps(samples[3].fields["metadata"]))
    with pytest.raises(TaskError, match=r"00002/metadata.jsonl: metadata differs from prompt 00002"):
        task.predictions_from_images(tmp_path, samples)
