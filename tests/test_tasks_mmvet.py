"""mmvet through score_files with a local fake grader.

official: yuweihao/MM-Vet 7d717c2f mm-vet_evaluator.py (runs(): max_tokens=3, content.split(" ")[0], re-ask
with "Predict the correctness of the answer (digit): ", temperature += 0.5 after each re-ask, 0.0 once
try_time > 5; export_result(): capability sets).
vlmevalkit: VLMEvalKit e8e78f05 vlmeval/dataset/utils/mmvet.py MMVet_auxeval (5 tries at temperature 0.5*i, float
in [0, 1], else 0.0 after all tries; ground truth '<AND>'/'<OR>' spaced out) and MMVet_acc (capability by
substring of the category, combination = category with ',' -> '_', mean x 100).
"""

import pytest

from unitoken_eval.harness.scoring import score_files
from unitoken_eval_testkit.fake_judge import FakeJudgeServer, free_port_url
from unitoken_eval_testkit.understanding_helpers import SMOKE, score

PREDS = {"0": "The sum is 7", "1": "It is crimson, sort of", "2": "???"}


def grader(prompt, temperature):
    last = prompt.rsplit("\n", 1)[-1]
    q, gt, pred, _ = [x.strip() for x in last.split(" | ")]
    if pred == "The sum is 7":
        return "1.0"
    if pred.startswith("It is crimson"):
        return "Score: 0.8" if temperature == 0.0 else "0.8"   # unparsable first, fine on the retry
    return "1.7"                                              # out of range every time -> fallback 0.0


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNITOKEN_EVAL_CACHE", str(tmp_path / "cache"))


def _preds_file(tmp_path):
    import json
    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps({"index": k, "prediction": v}) + "\n" for k, v in PREDS.items()))
    return str(p)


def test_grades_retries_and_fallback(tmp_path):
    with FakeJudgeServer(grader) as srv:
        out = score_files("mmvet", str(SMOKE / "MMVet.tsv"), predictions=_preds_file(tmp_path),
                          judge=srv.url + "#model=g", profile="vlmevalkit")
        temps = [r["temperature"] for r in srv.requests]
        assert sorted(temps) == [0.0, 0.0, 0.0, 0.5, 0.5, 1.0, 1.5, 2.0]   # 3 + 2 + 1 + 1 + 1 tries
        assert any(" left <AND> right | ??? | " in r["messages"][0]["content"] for r in srv.requests)
        assert any("| red <OR> dark red | It is crimson" in r["messages"][0]["content"] for r in srv.requests)
        assert out["per_sample"] == {"0": 1.0, "1": 0.8, "2": 0.0}
        assert out["status"] == "scored"
        assert out["headline"] == {"name": "score", "value": pytest.approx(60.0), "scale": "percent"}
        m = out["metrics"]
        assert m["per_capability"] == {"ocr": 100.0, "math": 100.0, "rec": pytest.approx(40.0), "spat": 0.0}
        assert m["per_capability_combination"] == {"ocr_math": 100.0, "rec": pytest.approx(80.0), "rec_spat": 0.0}
        assert m["fallback_zero"] == 1 and m["judge"].endswith("#model=g")
        n = len(srv.requests)
        again = score_files("mmvet", str(SMOKE / "MMVet.tsv"), predictions=_preds_file(tmp_path),
                            judge=srv.url + "#model=g", profile="vlmevalkit")
        assert len(srv.requests) == n and again["per_sample"] == out["per_sample"]   # all from the cache


def test_without_judge_not_scored_never_zero(tmp_path):
    out = score(tmp_path, "mmvet", PREDS)
    assert out["status"] == "not_scored" and out["reason"] == "needs a judge"
    assert out["headline"] == {"name": "score", "value": None, "scale": "percent"}
    assert out["per_sample"] == {"0": None, "1": None, "2": None}
    assert any("needs a judge" in w for w in out["warnings"])


def test_judge_down_pending(tmp_path):
    out = score_files("mmvet", str(SMOKE / "MMVet.tsv"), predictions=_preds_file(tmp_path),
                      judge=free_port_url() + "#model=g&retries=1&backoff=0.01")
    assert out["status"] == "not_scored" and "pending judge" in out["reason"]
    assert out["headline"]["value"] is None and out["metrics"]["pending_judge"] == 3


def test_request_is_the_question():
    from unitoken_eval.harness import registry
    t = registry.make_task("mmvet", {})
    s = t.load(t.smoke_source())
    assert t.request(s[0]).prompt == "What is the answer to the sum?" and len(s) == 3


def official_grader(prompt, temperature):
    if "| The sum is 7 |" in prompt:
        return "1.0 fully right"          # first word read upstream (VK would reject the whole reply)
    return grader(prompt.replace("\nPredict the correctness of the answer (digit): ", ""), temperature)


def test_official_reask_sequence_and_capability_sets(tmp_path):
    with FakeJudgeServer(official_grader) as srv:
        out = score_files("mmvet", str(SMOKE / "MMVet.tsv"), predictions=_preds_file(tmp_path),
                          judge=srv.url + "#model=g", profile="official")
        temps = sorted(r["temperature"] for r in srv.requests)
        # sample 0: 1 reply; sample 1: T0, re-ask T0, re-ask T0.5; sample 2: T0 + re-asks at 0, .5, 1, 1.5, 2 -> 0.0
        assert temps == [0.0] * 5 + [0.5, 0.5, 1.0, 1.5, 2.0]
        assert all(r["max_tokens"] == 3 for r in srv.requests)
        assert sum(r["messages"][0]["content"].endswith("(digit): ") for r in srv.requests) == 7   # 2 + 5 re-asks
    assert out["per_sample"] == {"0": 1.0, "1": 0.8, "2": 0.0}
    assert out["headline"]["value"] == pytest.approx(60.0)
    m = out["metrics"]
    assert m["per_capability"] == {"math": 100.0, "ocr": 100.0, "rec": pytest.approx(40.0), "spat": 0.0}
    assert m["per_capability_combination"] == {"math_ocr": 100.0, "rec": pytest.approx(80.0), "rec_spat": 0.0}
    assert "mm-vet_evaluator.py" in out["reference"]


# ---------------------------------------------------------------- official vs the authors' grader, sample by sample
# tests/data/mmvet_authors_subset.json: 40 answers MM-Vet's authors published (results/llava_llama2_13b_chat.json)
# with stand-in questions, graded by their mm-vet_evaluator.py run unmodified (tests/parity/mmvet_parity.py) with
# the stand-in grader replies this fake judge also sends.
def test_official_equals_the_authors_grader_sample_by_sample(tmp_path):
    import base64
    import io
    import json
    from pathlib import Path

    from PIL import Image

    from parity.mmvet_parity import grader_reply

    fx = json.loads((Path(__file__).parent / "data" / "mmvet_authors_subset.json").read_text())
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    png = base64.b64encode(buf.getvalue()).decode()
    lines = ["index\timage\tquestion\tanswer\tcategory"]
    for k, m in fx["metadata"].items():   # VLMEvalKit's MMVet.tsv schema: index = the number in 'v1_N'
        lines.append("\t".join([k[3:], png, m["question"], m["answer"], ",".join(m["capability"])]))
    data = tmp_path / "MMVet.tsv"
    data.write_text("\n".join(lines) + "\n")
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"index": k[3:], "prediction": v}) + "\n" for k, v in fx["predictions"].items()))
    with FakeJudgeServer(grader_reply) as srv:
        out = score_files("mmvet", str(data), predictions=str(preds), profile="official", judge=srv.url + "#model=g")
    theirs = fx["official"]
    assert out["per_sample"] == {k[3:]: v for k, v in theirs["per_sample"].items()}
    assert 0.0 in out["per_sample"].values() and out["metrics"]["fallback_zero"] >= 1   # the 0.0 fallback was hit
    m = out["metrics"]
    assert {c: round(v, 1) for c, v in m["per_capability"].items()} == \
        {c: v for c, v in theirs["capability"].items() if c != "total"}
    assert {c: round(v, 1) for c, v in m["per_capability_combination"].items()} == \
        {c: v for c, v in theirs["combination"].items() if c != "total"}
    assert round(out["headline"]["value"], 1) == theirs["capability"]["total"]
