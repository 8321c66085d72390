"""mmmu_val through score_files.

official: MMMU-Benchmark/MMMU bb0b95a9 mmmu/utils/eval_utils.py (parse_multi_choice_response,
parse_open_response, eval_open) as main_parse_and_eval.py runs it (random.seed(42) at import, subjects in
CAT_SHORT2LONG order).  vlmevalkit: VLMEvalKit e8e78f05 mcq_vanilla_eval + MMMU_preproc + can_infer.
"""

import csv
import random

import pytest

from unitoken_eval_testkit.understanding_helpers import SMOKE, score

COLS = ["index", "question", "A", "B", "C", "D", "answer", "split", "category", "l2-category", "id",
        "question_type", "image"]
OPTS = {"A": "circle", "B": "square", "C": "triangle", "D": "hexagon"}


def _image_cell():
    csv.field_size_limit(10 ** 9)
    with open(SMOKE / "MMMU_DEV_VAL.tsv", encoding="utf-8") as f:
        return next(csv.DictReader(f, delimiter="\t"))["image"]


def write_tsv(tmp_path, rows):
    img = _image_cell()
    path = tmp_path / "MMMU_DEV_VAL.tsv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, COLS, delimiter="\t")
        w.writeheader()
        for i, r in enumerate(rows):
            subj, num = r["id"].rsplit("_", 1)[0].split("_", 1)[1], r["id"]
            row = {"index": r["index"], "question": "<image 1> q?", "answer": r["answer"], "split": r.get("split", "validation"),
                   "category": subj, "l2-category": subj, "id": num,
                   "question_type": r.get("question_type") or ("open" if r.get("open") else "multiple-choice"),
                   "image": img if i == 0 else str(rows[0]["index"])}
            if not r.get("open"):
                row.update(r.get("options", OPTS))
            w.writerow(row)
    return str(path)


# (index, id, gold, open?, prediction) ; TSV order deliberately differs from upstream's visiting order
ROWS = [
    (10, "validation_Math_1", "C", False, "no idea"),                # unparsable -> 3rd draw (Math after Art)
    (11, "validation_Art_2", "B", False, "hmm"),                     # unparsable -> 2nd draw
    (12, "validation_Art_1", "A", False, "I cannot answer this question."),  # 5 words: no text match -> 1st draw
    (13, "validation_Art_3", "C", False, "I think the answer is (B) square, not (C)."),
    (14, "validation_Art_4", "C", False, "A triangle is drawn"),      # ' A ' (an article) parses as A
    (15, "validation_Art_5", "C", False, "The shape drawn here is a triangle"),  # >5 words: option text
    (16, "validation_Art_6", "B", False, "B"),
    (20, "validation_Math_2", "1000", True, "The answer is 1,000."),
    (21, "validation_Math_3", "0", True, "The answer is 1,000."),    # '000' is also extracted: 0.0 matches
    (22, "validation_Math_4", "3.5", True, "3.50"),
    (23, "validation_Math_5", "3", True, "There are three bars"),
    (24, "validation_Math_6", "blue", True, "The color is Blue."),
    (25, "validation_Math_7", "1000", True, "so it is 1e3"),
    (26, "dev_Math_1", "A", False, "A"),                             # dev row: not in the validation split
]


@pytest.fixture
def data(tmp_path):
    return write_tsv(tmp_path, [{"index": i, "id": d, "answer": g, "open": o,
                                 "split": d.split("_")[0]} for i, d, g, o, _ in ROWS])


def preds():
    return {str(i): p for i, d, g, o, p in ROWS if not d.startswith("dev")}


def test_official_profile(tmp_path, data):
    out = score(tmp_path, "mmmu_val", preds(), profile="official", data=data)
    # Draws of CPython's random after seed(42) for 4 choices: A, A, C (the generator upstream uses);
    # visiting order Art_1, Art_2, Math_1 gives Art_1 'A' (gold A), Art_2 'A' (gold B), Math_1 'C' (gold C).
    r = random.Random(42)
    assert [r.choice("ABCD") for _ in range(3)] == ["A", "A", "C"]
    expected = {"12": 1, "11": 0, "10": 1,
                "13": 1,   # '(B)' and '(C)' both found: the last one, C
                "14": 0,   # parsed A
                "15": 1,   # option text 'triangle'
                "16": 1,
                "20": 1, "21": 1, "22": 1,
                "23": 0,   # 'three' is not 3
                "24": 1, "25": 1}
    assert out["per_sample"] == expected
    assert out["n"] == 13
    assert out["headline"] == {"name": "accuracy", "value": pytest.approx(100 * 10 / 13), "scale": "percent"}
    assert out["metrics"]["per_subject"]["Art"] == pytest.approx(100 * 4 / 6)
    assert out["metrics"]["split"] == "validation" and len(out["metrics"]["data_sha256"]) == 64
    assert "eval_utils" in out["reference"] and "bb0b95a9" in out["reference"]


def test_official_draw_order_ignores_file_order(tmp_path, data):
    # Scoring only the three unparsable ones gives the same draws: the order is upstream's, not the file's.
    p = {k: v for k, v in preds().items() if k in ("10", "11", "12")}
    out = score(tmp_path, "mmmu_val", p, profile="official", data=data)
    assert out["per_sample"] == {"10": 1, "11": 0, "12": 1}


def test_vlmevalkit_profile(tmp_path, data):
    out = score(tmp_path, "mmmu_val", preds(), profile="vlmevalkit", data=data)
    ps = out["per_sample"]
    assert ps["10"] == 0 and ps["11"] == 0 and ps["12"] == 0   # no draw: 'Z'
    assert ps["13"] == 0   # two letters -> no option; text 'square' -> B (official said C)
    assert ps["14"] == 0   # can_infer_option takes the article 'A'
    assert ps["15"] == 1 and ps["16"] == 1
    # open -> A=gold/B='Other Answers', gold 'A', matched by can_infer_text (substring of the option text)
    assert ps["20"] == 0   # '1,000.' does not contain '1000'
    assert ps["21"] == 1   # ... but contains '0'
    assert ps["22"] == 1   # '3.50' contains '3.5'
    assert ps["23"] == 0 and ps["24"] == 1 and ps["25"] == 0
    assert "MMMU_preproc" in out["reference"]


def test_smoke_data_prompt_and_multi_image():
    from unitoken_eval.harness import registry
    t = registry.make_task("mmmu_val", {})
    s = t.load(t.smoke_source())
    assert [x.id for x in s] == ["1", "2", "3"]  # the dev row is left out
    req = t.request(s[1])
    assert len(req.images) == 1 and "<image 2>" in req.prompt
    assert req.prompt.endswith("Please select the correct answer from the options above. \n")
    assert t.request(s[2]).prompt == "Question: <image 1> How many bars are there?\n"


def test_vlmevalkit_judge_only_when_rules_fail(tmp_path, data, monkeypatch):
    # VK extract_answer_from_item: can_infer first, the judge for the rest; a usable judge letter is taken.
    import json

    from unitoken_eval.harness.scoring import score_files
    from unitoken_eval_testkit.fake_judge import FakeJudgeServer, free_port_url

    monkeypatch.setenv("UNITOKEN_EVAL_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"index": k, "prediction": v}) + "\n" for k, v in preds().items()))
    with FakeJudgeServer(lambda p, t: "C" if "Answer: no idea" in p else "Z") as srv:
        out = score_files("mmmu_val", data, predictions=str(path), profile="vlmevalkit", judge=srv.url + "#model=m")
        judged_answers = sorted(r["messages"][0]["content"].split("Answer: ")[1].split("\n")[0] for r in srv.requests)
    assert judged_answers == sorted(["no idea", "hmm", "I cannot answer this question.", "The answer is 1,000.",
                                     "There are three bars", "so it is 1e3"])
    assert out["per_sample"]["10"] == 1 and out["per_sample"]["11"] == 0 and out["metrics"]["judged"] == 6
    down = score_files("mmmu_val", data, predictions=str(path), profile="vlmevalkit",
                       judge=free_port_url() + "#model=other&retries=0")  # another model: no cache hits
    assert down["status"] == "not_scored" and down["headline"]["value"] is None
    assert down["metrics"]["pending_judge"] == 6 and down["per_sample"]["16"] == 1


def test_hf_schema_lmms_lab_mmmu(tmp_path):
    # lmms-lab/MMMU (validation) columns as lmms-eval 75571cf mmmu/utils.py reads them: options is a list literal
    # string, the image is image_1, subject from the id.
    from unitoken_eval_testkit.understanding_helpers import hf_parquet
    folder = hf_parquet(tmp_path, {
        "id": ["validation_Art_1", "validation_Math_1"], "question": ["<image 1> Shape?", "<image 1> How many?"],
        "options": ["['circle', 'square']", "[]"], "answer": ["B", "3"],
        "question_type": ["multiple-choice", "open"], "image_1": [(0, 0, 0), (9, 9, 9)]},
        image_column="image_1", split="validation")
    out = score(tmp_path, "mmmu_val", {"validation_Art_1": "(B)", "validation_Math_1": "so 3"}, profile="official",
                data=str(folder))
    assert out["per_sample"] == {"validation_Art_1": 1, "validation_Math_1": 1}
    assert out["metrics"]["per_subject"] == {"Art": 100.0, "Math": 100.0}
    from unitoken_eval.harness import registry
    t = registry.make_task("mmmu_val", {})
    s = t.load(str(folder))
    assert t.request(s[0]).prompt == ("Question: <image 1> Shape?\nOptions:\nA. circle\nB. square\n"
                                      "Please select the correct answer from the options above. \n")


def test_open_gold_list_and_short_answer_type(tmp_path):
    # MMMU stores several accepted answers as a list (validation_Math_15: ['24/7', '3.429']); eval_open accepts
    # any of them.  MMMU's own files call open questions 'short-answer'.
    path = write_tsv(tmp_path, [
        {"index": 1, "id": "validation_Math_15", "answer": "['24/7', '3.429']", "open": True},
        {"index": 2, "id": "validation_Chemistry_30", "answer": "['$MgS$', 'MgS']", "open": True,
         "question_type": "short-answer"},
        {"index": 3, "id": "validation_Math_16", "answer": "['24/7', '3.429']", "open": True},
        {"index": 4, "id": "validation_Math_17", "answer": "12", "open": True, "question_type": "short-answer"},
    ])
    out = score(tmp_path, "mmmu_val", {"1": "The answer is 3.429", "2": "It forms MgS.", "3": "about 3.5",
                                       "4": "so 12"}, profile="official", data=path)
    assert out["per_sample"] == {"1": 1, "2": 1, "3": 0, "4": 1}


def test_option_text_none_is_kept_by_official_dropped_by_vlmevalkit(tmp_path):
    # validation_Geography_15: option D reads 'None' and is the gold.  pandas' default read (VK's) makes it
    # missing, so VK cannot match 'D'; the authors' scorer has the option.
    opts = {"A": "Siltstone", "B": "Shale", "C": "Chert", "D": "None"}
    path = write_tsv(tmp_path, [
        {"index": 1, "id": "validation_Geography_15", "answer": "D", "options": opts},
        {"index": 2, "id": "validation_Geography_16", "answer": "D", "options": dict(opts, D="NA")},
        {"index": 3, "id": "validation_Geography_17", "answer": "A", "options": dict(opts, D="null")},
    ])
    preds = {"1": "D", "2": "(D)", "3": "A"}
    off = score(tmp_path, "mmmu_val", preds, profile="official", data=path)
    assert off["per_sample"] == {"1": 1, "2": 1, "3": 1}
    vk = score(tmp_path, "mmmu_val", preds, profile="vlmevalkit", data=path)
    assert vk["per_sample"] == {"1": 0, "2": 0, "3": 1}
    from unitoken_eval.harness import registry
    t = registry.make_task("mmmu_val", {})
    s = t.load(path)
    assert s[0].fields["D"] == "None" and "D. None" in t.request(s[0]).prompt


def test_dev_rows_in_predictions_are_left_out_not_an_error(tmp_path, data):
    # VK's MMMU_DEV_VAL prediction files hold the dev rows too: validation is scored, dev is reported left out.
    p = dict(preds(), **{"26": "A"})
    out = score(tmp_path, "mmmu_val", p, profile="official", data=data)
    assert out["n"] == 13 and out["n_left_out"] == 1 and "26" not in out["per_sample"]
    assert any("1 predictions left out" in w and "split dev" in w for w in out["warnings"])
    with pytest.raises(Exception, match="not in the data"):
        score(tmp_path, "mmmu_val", dict(preds(), **{"999": "A"}), profile="official", data=data)
