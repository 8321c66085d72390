import base64
import re
import shutil
import subprocess

import pytest
from PIL import Image

from unitoken_eval.harness.cli import main
from unitoken_eval.harness.report import MAX_IMAGES_PER_TASK, build_report
from unitoken_eval.harness.store import JsonlAppender
from unitoken_eval_testkit.run_builder import add_task, full_understanding_run

MAGENTA = (255, 0, 255)
GREEN = (0, 200, 0)


def _geneval_run(root, n_prompts=20):
    run = full_understanding_run(root, fingerprint="sha256:feedbeef")
    add_task(run, "mmbench_dev_en", 70.3, metrics={"per_category": {"ocr": 0.81, "attribute": 0.62, "scene": 0.9},
                                                   "n_per_category": {"ocr": 100, "attribute": 80, "scene": 50}},
             warnings=["3 answers matched no option"])
    add_task(run, "mmvet", None, status="not_scored", reason="no judge configured")
    preds, scores = [], {}
    for i in range(n_prompts):
        sid = f"{i:05d}"
        folder = run.task_dir("geneval") / "images" / sid
        (folder / "samples").mkdir(parents=True)
        (folder / "metadata.jsonl").write_text(f'{{"tag": "single_object", "prompt": "a photo of thing {i}"}}\n')
        for k in range(4):
            Image.new("RGB", (256, 256), MAGENTA if i % 2 == 0 else GREEN).save(folder / "samples" / f"{k:04d}.png")
        preds.append({"id": sid, "images": [f"images/{sid}/samples/{k:04d}.png" for k in range(4)]})
        scores[sid] = {"score": float(i % 2 == 0), "prompt": f"a photo of thing {i}"}
    with JsonlAppender(run.task_dir("geneval") / "predictions-main.jsonl") as w:
        w.write(preds)
    add_task(run, "geneval", 0.58, scale="fraction", name="overall", scores=scores,
             metrics={"single_object": 0.98, "two_object": 0.75, "counting": 0.39, "colors": 0.81,
                      "position": 0.26, "color_attr": 0.32, "detector": "mask2former_swin-s-p4-w7-224_lsj_8x2_50e"})
    return run


def test_report_is_self_contained_with_tables_charts_images_manifest(tmp_path, capsys):
    run = _geneval_run(tmp_path / "run")
    assert main(["report", str(run.root)]) == 0
    path = run.root / "report.html"
    assert capsys.readouterr().out.strip() == str(path)
    text = path.read_text()
    # self-contained: no script, no external resource
    assert "<script" not in text.lower() and "<link" not in text.lower()
    assert not re.search(r'(src|href)\s*=\s*"(?!data:)', text)
    # tables beside the paper rows, charts, breakdowns
    assert 'data-layout="table3"' in text and 'data-layout="table4"' in text and 'data-layout="table6"' in text
    assert "Lumina-mGPT" in text and "UniToken (Ours)" in text
    assert text.count('<svg class="chart"') >= 9 + 7 + 2
    assert "mmbench_dev_en: per_category" in text
    # images: bounded, embedded, captioned with prompt and verdict
    imgs = re.findall(r'<img alt="([^"]*)" src="data:image/jpeg;base64,([^"]+)"', text)
    assert len(imgs) == MAX_IMAGES_PER_TASK
    assert "a photo of thing 0" in imgs[0][0] and "score 1" in imgs[0][0]
    base64.b64decode(imgs[0][1], validate=True)
    assert f"({MAX_IMAGES_PER_TASK} of 80 images)" in text
    # manifest and warnings
    for needle in ("sha256:feedbeef", "mask2former_swin-s-p4-w7-224_lsj_8x2_50e", "2.13.0",
                   "mmvet: not scored (no judge configured)", "3 answers matched no option",
                   "TextRead incomplete"):
        assert needle in text, needle


def test_report_of_a_run_without_generation_or_layout_tasks(tmp_path):
    from unitoken_eval_testkit.run_builder import make_run

    run = make_run(tmp_path / "run")
    add_task(run, "some_plugin_task", 12.5)
    text = build_report(run.root)
    assert "some_plugin_task" in text and "Generated samples" not in text


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no headless Chromium on PATH (Debian: apt-get install -y chromium)")
    run = _geneval_run(tmp_path / "run")
    main(["report", str(run.root), "--out", str(tmp_path / "report.html")])
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,9000", f"--screenshot={shot}",
         (tmp_path / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    assert shot.exists(), proc.stderr[-2000:]
    with Image.open(shot) as im:
        im = im.convert("RGB")
        colors = im.getcolors(maxcolors=1 << 20)
    counts = {c: n for n, c in colors}
    # the embedded thumbnails were decoded and drawn (JPEG keeps these flat colours close to exact)
    assert sum(n for c, n in counts.items() if c[0] > 240 and c[1] < 20 and c[2] > 240) > 5000
    # this run's bars (#1f6feb) were drawn by the SVG charts
    assert sum(n for c, n in counts.items() if abs(c[0] - 0x1F) < 6 and abs(c[1] - 0x6F) < 6
               and abs(c[2] - 0xEB) < 6) > 500
    shutil.copy(shot, tmp_path.parent / "last_report_screenshot.png")


def test_geneval_images_are_captioned_with_prompt_and_verdict(tmp_path):
    """GenEval scores each image (records keyed <index>/samples/<n>.png, as tasks/geneval writes them)."""
    from unitoken_eval_testkit.run_builder import make_run

    run = make_run(tmp_path / "run")
    preds, scores = [], {}
    for i in range(2):
        sid = f"{i:05d}"
        folder = run.task_dir("geneval") / "images" / sid / "samples"
        folder.mkdir(parents=True)
        Image.new("RGB", (32, 32), GREEN).save(folder / "0000.png")
        preds.append({"id": sid, "images": [f"images/{sid}/samples/0000.png"]})
        scores[f"{sid}/samples/0000.png"] = {"score": float(i), "correct": bool(i), "prompt": f"a photo of {i} cats",
                                             "tag": "counting"}
    with JsonlAppender(run.task_dir("geneval") / "predictions-main.jsonl") as w:
        w.write(preds)
    add_task(run, "geneval", 0.5, scale="fraction", name="overall", scores=scores)
    caps = re.findall(r"<figcaption>([^<]*)</figcaption>", build_report(run.root))
    assert caps == ["00000 · a photo of 0 cats · wrong", "00001 · a photo of 1 cats · correct"]
