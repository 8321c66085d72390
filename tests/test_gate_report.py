"""compare --out: the flipped-samples page (real task data and stored answers) and the JUnit report."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from PIL import Image

from unitoken_eval.harness.cli import main
from unitoken_eval_testkit.run_builder import add_task, binary_scores, make_run


def _answers(store, task, texts: dict[str, str]) -> None:
    with store.prediction_writer(task) as w:
        w.write({"id": k, "prediction": v} for k, v in texts.items())


def test_compare_out_writes_flips_page_and_junit(tmp_path, capsys):
    base, cand = make_run(tmp_path / "base", smoke=True), make_run(tmp_path / "cand", smoke=True)
    # mmstar on its embedded smoke data (ids 0-3): sample 1 goes from right to wrong
    add_task(base, "mmstar", 100.0, scores={str(i): {"score": 1, "answer": "A", "extracted": "A"} for i in range(4)})
    add_task(cand, "mmstar", 75.0, scores={**{str(i): {"score": 1, "answer": "A", "extracted": "A"} for i in (0, 2, 3)},
                                           "1": {"score": 0, "answer": "A", "extracted": "B"}})
    _answers(base, "mmstar", {str(i): "A" for i in range(4)})
    _answers(cand, "mmstar", {"0": "A", "1": "B. red <b>", "2": "A", "3": "A"})
    # a generation task: per-prompt scores, the two runs' images side by side
    bs = {str(i): {"score": 0.9, "prompt": f"a red cube {i}"} for i in range(30)}
    cs = {k: dict(v) for k, v in bs.items()}
    cs["7"] = {"score": 0.1, "prompt": "a red cube 7", "error": "no cube found"}
    add_task(base, "t2i_compbench_color", 0.9, scale="fraction", scores=bs)
    add_task(cand, "t2i_compbench_color", 0.87, scale="fraction", scores=cs)
    for store, colour in ((base, "red"), (cand, "blue")):
        rel = "images/samples/a red cube 7_000000.png"
        (store.task_dir("t2i_compbench_color") / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32), colour).save(store.task_dir("t2i_compbench_color") / rel)
        with store.prediction_writer("t2i_compbench_color") as w:
            w.write([{"id": "7", "images": [rel]}])
    out = tmp_path / "gate"
    code = main(["compare", "--baseline", str(base.root), "--candidate", str(cand.root), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0  # 4 and 30 samples: no test can call this a regression
    summary = (out / "summary.md").read_text()
    assert summary.strip() == printed.strip()
    assert "[flips.html](flips.html)" in summary and "- **mmstar**: 1 worse, 0 better; e.g. `1` 1→0" in summary

    page = (out / "flips.html").read_text()
    assert page.index('id="mmstar"') < page.index('id="t2i_compbench_color"')  # worst (mean change) first
    assert "data:image/jpeg;base64," in page  # the MMStar smoke image and the generated ones
    assert "B. red &lt;b&gt;" in page and "B. red <b>" not in page  # answers are escaped
    assert "Which" in page or "What" in page  # the question from the real smoke data
    assert "no cube found" in page and page.count('class="pair"') == 1
    pair = page.split('class="pair">')[1].split("</div>")[0]
    assert pair.count("<figure>") == 2 and "baseline" in pair and "candidate: no cube found" in pair

    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {"mmstar", "t2i_compbench_color"}
    assert cases["mmstar"].find("skipped").get("message").startswith("not enough evidence")
    assert cases["t2i_compbench_color"].find("skipped") is None  # 30 prompts: tested, not significant
    assert suite.get("skipped") == "1" and suite.get("failures") == "0"


def test_junit_marks_a_regression_as_a_failure(tmp_path):
    base, cand = make_run(tmp_path / "base"), make_run(tmp_path / "cand")
    add_task(base, "mmstar", 80.0, scores=binary_scores(200, 160))
    add_task(cand, "mmstar", 60.0, scores=binary_scores(200, 120))
    assert main(["compare", "--baseline", str(base.root), "--candidate", str(cand.root), "--out",
                 str(tmp_path / "o")]) == 1
    suite = ET.parse(tmp_path / "o" / "junit.xml").getroot().find("testsuite")
    fail = suite.find("testcase").find("failure")
    assert suite.get("failures") == "1" and fail.get("type") == "regression" and "McNemar" in fail.get("message")
