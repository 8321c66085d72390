import math

import numpy as np
import pytest

from unitoken_eval.harness.cli import main
from unitoken_eval.harness.compare import (CompareError, Policy, TaskPolicy, binom_two_sided_half, compare_runs, load_policy,
                             paired_bootstrap_ci, summary_markdown)
from unitoken_eval_testkit.run_builder import add_task, binary_scores, make_run


def _pair(tmp_path, base_right=160, cand_right=160, n=200, **cand_kw):
    base = make_run(tmp_path / "base", data={"mmstar": "/data/MMStar.tsv"})
    cand = make_run(tmp_path / "cand", data=cand_kw.pop("data", {"mmstar": "/data/MMStar.tsv"}), **cand_kw)
    add_task(base, "mmstar", 100 * base_right / n, scores=binary_scores(n, base_right))
    return base, cand


def test_identical_rerun_passes_through_the_cli(tmp_path, capsys):
    base, cand = _pair(tmp_path)
    add_task(cand, "mmstar", 80.0, scores=binary_scores(200, 160))
    summary = tmp_path / "summary.md"
    code = main(["compare", "--baseline", str(base.root), "--candidate", str(cand.root), "--summary", str(summary)])
    out = capsys.readouterr().out
    assert code == 0
    assert "compare: PASS" in out and summary.read_text().strip() == out.strip()
    assert "| mmstar |" in out and "McNemar exact (b=0, c=0)" in out


def test_a_real_drop_fails(tmp_path, capsys):
    base, cand = _pair(tmp_path)
    add_task(cand, "mmstar", 60.0, scores=binary_scores(200, 120))
    assert main(["compare", "--baseline", str(base.root), "--candidate", str(cand.root)]) == 1
    out = capsys.readouterr().out
    assert "compare: REGRESSION" in out and "**REGRESSION**" in out
    comp = compare_runs(base.root, cand.root)
    t = comp.tasks[0]
    assert (t.b, t.c) == (40, 0) and t.p_value < 1e-9 and t.delta == pytest.approx(-20.0)
    assert t.ci[1] < 0


def test_small_noisy_drop_is_not_significant_and_passes(tmp_path):
    base = make_run(tmp_path / "base")
    cand = make_run(tmp_path / "cand")
    b = binary_scores(200, 160)
    c = dict(b)
    # two samples flip to wrong, one flips to right: a net drop of 0.5 points that no test can call real
    c["0"], c["1"], c["170"] = 0, 0, 1
    add_task(base, "mmstar", 80.0, scores=b)
    add_task(cand, "mmstar", 79.5, scores=c)
    comp = compare_runs(base.root, cand.root)
    assert comp.exit_code == 0 and comp.tasks[0].verdict == "pass"
    assert "not significant" in comp.tasks[0].reasons[-1]
    strict = Policy(default=TaskPolicy(max_drop=0.0, significance=False))
    assert compare_runs(base.root, cand.root, strict).exit_code == 1


def test_continuous_scores_use_the_permutation_test(tmp_path):
    rng = np.random.default_rng(1)
    base = make_run(tmp_path / "base")
    cand = make_run(tmp_path / "cand")
    bs = {str(i): float(v) for i, v in enumerate(rng.uniform(0.3, 0.9, 300))}
    cs = {k: v - 0.1 for k, v in bs.items()}
    add_task(base, "t2i_compbench_color", float(np.mean(list(bs.values()))), scale="fraction", scores=bs)
    add_task(cand, "t2i_compbench_color", float(np.mean(list(cs.values()))), scale="fraction", scores=cs)
    comp = compare_runs(base.root, cand.root)
    t = comp.tasks[0]
    assert t.test == "sign-flip permutation" and t.verdict == "regression" and t.ci[1] < 0
    assert t.p_value == pytest.approx(1 / 2001)  # every one of 300 units moved down: no resample is as extreme
    assert t.mean_diff == pytest.approx(-0.1)


@pytest.mark.parametrize("change, expect", [
    ({"data": {"mmstar": "/data/MMStar_other.tsv"}}, "data source differs"),
    ({"limit": 100}, "limit differs"),
    ({"smoke": True}, "smoke data differs"),
])
def test_different_data_is_incomparable(tmp_path, capsys, change, expect):
    base, cand = _pair(tmp_path, **change)
    add_task(cand, "mmstar", 80.0, scores=binary_scores(200, 160))
    assert main(["compare", "--baseline", str(base.root), "--candidate", str(cand.root)]) == 2
    out = capsys.readouterr().out
    assert "compare: INCOMPARABLE" in out and expect in out


def test_different_split_or_sample_set_or_profile_is_incomparable(tmp_path):
    base, cand = _pair(tmp_path)
    add_task(base, "mmstar", 80.0, scores=binary_scores(200, 160), metrics={"split": "val"})
    add_task(cand, "mmstar", 80.0, scores=binary_scores(200, 160), metrics={"split": "test"})
    comp = compare_runs(base.root, cand.root)
    assert comp.exit_code == 2 and "split differs: 'val' vs 'test'" in comp.tasks[0].reasons

    add_task(cand, "mmstar", 80.0, scores=binary_scores(200, 160, prefix="x"))
    add_task(base, "mmstar", 80.0, scores=binary_scores(200, 160))
    comp = compare_runs(base.root, cand.root)
    assert comp.exit_code == 2 and any("sample sets differ" in r for r in comp.tasks[0].reasons)

    add_task(cand, "mmstar", 80.0, scores=binary_scores(200, 160), profile="vlmevalkit")
    comp = compare_runs(base.root, cand.root)
    assert comp.exit_code == 2 and "scoring profile differs: official vs vlmevalkit" in comp.tasks[0].reasons


def test_different_task_sets_are_incomparable_and_say_which(tmp_path):
    base, cand = _pair(tmp_path)
    add_task(cand, "mmstar", 80.0, scores=binary_scores(200, 160))
    add_task(cand, "ai2d_test", 60.0, scores=binary_scores(10, 6))
    comp = compare_runs(base.root, cand.root)
    assert comp.exit_code == 2
    assert comp.run_problems == ["task sets differ: only in the candidate: ai2d_test"]
    # a policy may leave a task out of the gate
    pol = Policy(tasks={"ai2d_test": TaskPolicy(skip=True)})
    assert compare_runs(base.root, cand.root, pol).exit_code == 0


def test_scored_in_one_run_only_is_incomparable(tmp_path):
    base = make_run(tmp_path / "base")
    cand = make_run(tmp_path / "cand")
    add_task(base, "mmvet", 30.0, scores={"a": 0.5})
    add_task(cand, "mmvet", None, status="not_scored", reason="no judge")
    comp = compare_runs(base.root, cand.root)
    assert comp.exit_code == 2 and "candidate: not scored: no judge" in comp.tasks[0].reasons[0]


def test_policy_file(tmp_path, capsys):
    base, cand = _pair(tmp_path)
    add_task(cand, "mmstar", 60.0, scores=binary_scores(200, 120))
    pol = tmp_path / "policy.yaml"
    pol.write_text("default: {max_drop: 0, alpha: 0.01}\ntasks:\n  mmstar: {max_drop: 25}\n"
                   "bootstrap: {resamples: 500, seed: 3}\n")
    assert main(["compare", "--baseline", str(base.root), "--candidate", str(cand.root), "--policy", str(pol)]) == 0
    assert "500 resamples, seed 3" in capsys.readouterr().out
    p = load_policy(pol)
    assert p.for_task("mmstar").max_drop == 25 and p.for_task("other").alpha == 0.01
    pol.write_text("tasks:\n  mmstar: {max_dorp: 1}\n")
    assert main(["compare", "--baseline", str(base.root), "--candidate", str(cand.root), "--policy", str(pol)]) == 2
    err = capsys.readouterr().err
    assert f"{pol}:2: tasks.mmstar: unknown key 'max_dorp'" in err
    with pytest.raises(CompareError, match=r":1: default.max_drop must be a number >= 0 \(headline units\), got -1"):
        pol.write_text("default: {max_drop: -1}\n")
        load_policy(pol)


def test_exact_binomial_matches_closed_forms():
    assert binom_two_sided_half(0, 0) == 1.0
    assert binom_two_sided_half(0, 10) == pytest.approx(2 / 1024)
    assert binom_two_sided_half(2, 10) == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert binom_two_sided_half(5, 10) == 1.0
    assert binom_two_sided_half(7, 10) == binom_two_sided_half(3, 10)


def test_bootstrap_is_deterministic_and_covers_the_mean():
    rng = np.random.default_rng(0)
    b = rng.uniform(size=400)
    c = b + rng.normal(0.05, 0.1, size=400)
    ci1 = paired_bootstrap_ci(b, c, 1000, 7, 0.95)
    assert ci1 == paired_bootstrap_ci(b, c, 1000, 7, 0.95)
    assert ci1[0] < float(np.mean(c - b)) < ci1[1]
    assert math.isnan(paired_bootstrap_ci(b[:0], c[:0], 1000, 0, 0.95)[0])


def test_same_path_but_different_data_fingerprint_is_incomparable(tmp_path):
    base, cand = _pair(tmp_path)
    add_task(base, "mmstar", 80.0, scores=binary_scores(200, 160), metrics={"data_sha256": "aa"})
    add_task(cand, "mmstar", 80.0, scores=binary_scores(200, 160), metrics={"data_sha256": "bb"})
    comp = compare_runs(base.root, cand.root)
    assert comp.exit_code == 2 and "data_sha256 differs: 'aa' vs 'bb'" in comp.tasks[0].reasons


# ---------------------------------------------------------------- policy validation
@pytest.mark.parametrize("text, message", [
    ("tasks:\n  mmstar: {max_drop: 1}\n  mmbench:\n    max_drop: 2\n",
     ":3: tasks: unknown task id 'mmbench'; did you mean "),
    ("default:\n  max_drop: 1\n  alpha: high\n", ":3: default.alpha must be a number in (0, 1), got 'high'"),
    ("default:\n  significance: 'yes'\n", ":2: default.significance must be true or false, got 'yes'"),
    ("default: {min_n: 2.5}\n", ":1: default.min_n must be an integer >= 1, got 2.5"),
    ("\n\nthreshold: 3\n", ":3: unknown top-level key 'threshold'"),
    ("tasks:\n  mmstar: {max_drop: 1}\n  mmstar: {max_drop: 2}\n", ":3: tasks: 'mmstar' given twice (first on line 2)"),
    ("tasks: [mmstar]\n", ":1: tasks must be a mapping"),
    ("bootstrap:\n  resamples: 10\n", ":2: bootstrap.resamples must be an integer >= 100, got 10"),
    ("default: {max_drop: 1\n", ": not valid YAML"),
    ("insufficient_evidence: maybe\n", ":1: insufficient_evidence must be pass or fail, got 'maybe'"),
])
def test_policy_errors_name_the_file_and_line(tmp_path, text, message):
    pol = tmp_path / "policy.yaml"
    pol.write_text(text)
    with pytest.raises(CompareError) as err:
        load_policy(pol)
    assert str(err.value).startswith(str(pol)) and message in str(err.value)


def test_shipped_example_policy_is_valid():
    from pathlib import Path

    pol = load_policy(Path(__file__).resolve().parents[1] / "ci" / "policy.yaml")
    assert pol.for_task("mmvet").skip and pol.power == 0.8


# ---------------------------------------------------------------- statistics that do not cry wolf
def test_one_sample_task_is_not_enough_evidence_in_both_directions(tmp_path):
    """The issue's smoke A/B pair: a task with n = 1 made B->A a REGRESSION through a one-point interval."""
    a, b = make_run(tmp_path / "a"), make_run(tmp_path / "b")
    add_task(a, "ocrbench", 1.0, scale="points_0_1000", name="total", scores={"1": 1})
    add_task(b, "ocrbench", 0.0, scale="points_0_1000", name="total", scores={"1": 0})
    for base, cand in ((a, b), (b, a)):
        comp = compare_runs(base.root, cand.root)
        t = comp.tasks[0]
        assert comp.exit_code == 0 and t.verdict == "insufficient"
        assert comp.verdict == "PASS (not enough evidence for ocrbench)"
        assert "not enough evidence: 1 paired units < min_n 20" in t.reasons[-1]
        assert "| > 100 | not enough evidence |" in summary_markdown(comp)
    strict = Policy(insufficient_evidence="fail")
    assert compare_runs(b.root, a.root, strict).exit_code == 1


def test_zero_variance_continuous_difference_is_never_significant(tmp_path):
    base, cand = make_run(tmp_path / "base"), make_run(tmp_path / "cand")
    add_task(base, "mmvet", 50.0, scores={str(i): 0.5 for i in range(5)})
    add_task(cand, "mmvet", 40.0, scores={str(i): 0.4 for i in range(5)})
    t = compare_runs(base.root, cand.root, Policy(default=TaskPolicy(min_n=1))).tasks[0]
    # five units all down by 0.1: the exact permutation p is 2/32, which cannot pass alpha 0.05
    assert t.p_value == pytest.approx(2 / 32) and t.verdict == "insufficient"
    assert "smallest p this test can give is 0.0625 >= alpha" in t.reasons[-1]


def _planted(tmp_path, drop_points: float, n: int = 400, seed: int = 0):
    """Baseline and candidate over three tasks; the candidate loses ``drop_points`` on mmstar only, with noise
    (flips both ways) on every task, as two checkpoints of one training run show."""
    rng = np.random.default_rng(seed)
    base, cand = make_run(tmp_path / "base"), make_run(tmp_path / "cand")
    for task in ("mmstar", "ai2d_test", "seedbench_img"):
        b = (rng.random(n) < 0.6).astype(int)
        c = b.copy()
        # 5% of samples change verdict, as many each way (no net change), as two checkpoints of one run show
        right, wrong = np.flatnonzero(b == 1), np.flatnonzero(b == 0)
        c[rng.choice(right, size=n // 40, replace=False)] = 0
        c[rng.choice(wrong, size=n // 40, replace=False)] = 1
        if task == "mmstar":
            still_right = np.flatnonzero((b == 1) & (c == 1))
            c[rng.choice(still_right, size=int(round(drop_points / 100 * n)), replace=False)] = 0
        bs = {str(i): int(v) for i, v in enumerate(b)}
        cs = {str(i): int(v) for i, v in enumerate(c)}
        add_task(base, task, 100 * b.mean(), scores=bs)
        add_task(cand, task, 100 * c.mean(), scores=cs)
    return base, cand


def test_planted_five_point_drop_fails_naming_the_task(tmp_path, capsys):
    base, cand = _planted(tmp_path, 5.0)
    assert main(["compare", "--baseline", str(base.root), "--candidate", str(cand.root)]) == 1
    out = capsys.readouterr().out
    comp = compare_runs(base.root, cand.root)
    verdicts = {t.task: t.verdict for t in comp.tasks}
    assert verdicts == {"ai2d_test": "pass", "mmstar": "regression", "seedbench_img": "pass"}
    assert "| mmstar |" in out and "**REGRESSION**" in out and "Holm correction across the 3 tested task(s)" in out
    mm = next(t for t in comp.tasks if t.task == "mmstar")
    assert mm.delta == pytest.approx(-5.0) and (mm.b, mm.c) == (30, 10)
    assert mm.p_adjusted <= 3 * mm.p_value and mm.p_adjusted < 0.05
    # every task states what it could have detected: at n = 400 and ~5-10% churn, a few points
    for t in comp.tasks:
        assert 0.02 < t.detectable_drop < 0.08


def test_holm_correction_can_turn_a_lone_significance_into_a_pass(tmp_path):
    base, cand = make_run(tmp_path / "base"), make_run(tmp_path / "cand")
    # b = 8, c = 1 of 200: McNemar p = 0.039 alone; over two tested tasks Holm doubles it
    b = binary_scores(200, 100)
    c = dict(b)
    for i in range(8):
        c[str(i)] = 0
    c["150"] = 1
    add_task(base, "mmstar", 50.0, scores=b)
    add_task(cand, "mmstar", 46.5, scores=c)
    alone = compare_runs(base.root, cand.root).tasks[0]
    assert alone.p_value == pytest.approx(0.0390625) and alone.verdict == "regression"
    add_task(base, "ai2d_test", 50.0, scores=binary_scores(200, 100))
    add_task(cand, "ai2d_test", 50.0, scores=binary_scores(200, 100))
    comp = compare_runs(base.root, cand.root)
    mm = next(t for t in comp.tasks if t.task == "mmstar")
    assert mm.p_adjusted == pytest.approx(2 * 0.0390625) and mm.verdict == "pass" and comp.exit_code == 0
    assert "not significant" in mm.reasons[-1] and "Holm-adjusted over 2 task(s)" in mm.reasons[-1]


def test_mme_pairs_are_one_unit_of_the_test(tmp_path):
    """Both questions of an image flipping together are one piece of evidence, not two."""
    base, cand = make_run(tmp_path / "base"), make_run(tmp_path / "cand")
    def recs(wrong: set[int]):
        return {f"{i}": {"score": int(i not in wrong), "category": "color", "image": f"img{i // 2}"}
                for i in range(60)}
    add_task(base, "mme", 1400.0, scale="points_0_2800", name="total", scores=recs(set()))
    add_task(cand, "mme", 1300.0, scale="points_0_2800", name="total", scores=recs({0, 1, 2, 3, 4, 5, 6, 7}))
    t = compare_runs(base.root, cand.root).tasks[0]
    assert t.test == "sign-flip permutation over groups" and t.n_paired == 60 and t.n_units == 30
    # 4 image pairs down by 2: exact p = 2 / 2**4, where per-question McNemar would say 2 / 2**8
    assert t.p_value == pytest.approx(2 / 16) and t.verdict == "pass"


def test_hallusionbench_pairs_a_question_across_its_figures():
    from unitoken_eval.tasks.hallusionbench import HallusionBench

    recs = {"VD_chart_1_0_1_0": {"l2-category": "chart", "set_id": "0", "question_id": "0"},
            "VD_chart_1_0_2_0": {"l2-category": "chart", "set_id": "0", "question_id": "0"},
            "VD_chart_1_0_1_1": {"l2-category": "chart", "set_id": "0", "question_id": "1"}}
    groups = HallusionBench().pairing_groups(recs)
    assert groups["VD_chart_1_0_1_0"] == groups["VD_chart_1_0_2_0"] != groups["VD_chart_1_0_1_1"]


def test_sign_flip_and_holm_match_hand_computations():
    from unitoken_eval.harness.paired_stats import holm_adjust, sign_flip_p

    assert sign_flip_p(np.array([1.0, 1.0, 1.0, -1.0]), 1000, 0) == pytest.approx(10 / 16)
    assert sign_flip_p(np.array([0.0, 0.0]), 1000, 0) == 1.0
    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    # Monte Carlo agrees with exact enumeration where both apply
    d = np.random.default_rng(3).normal(0.3, 1, 16)
    from unitoken_eval.harness import paired_stats
    exact = sign_flip_p(d, 1000, 0)
    old = paired_stats.EXACT_UNITS
    try:
        paired_stats.EXACT_UNITS = 0
        assert sign_flip_p(d, 20000, 1) == pytest.approx(exact, abs=0.02)
    finally:
        paired_stats.EXACT_UNITS = old


def test_detectable_drop_and_design_size_agree():
    from unitoken_eval.harness.paired_stats import design_drop, design_n

    n = design_n(0.05, 0.10, 0.05 / 13, 0.8)
    assert design_drop(n, 0.10, 0.05 / 13, 0.8) == pytest.approx(0.05, rel=0.05)


def test_geneval_pairs_a_prompts_images():
    from unitoken_eval.tasks.geneval import GenEval

    recs = {"00001/samples/0000.png": {"prompt_id": "00001"}, "00001/samples/0001.png": {"prompt_id": "00001"},
            "00002/samples/0000.png": {"prompt_id": "00002"}}
    groups = GenEval().pairing_groups(recs)
    assert groups["00001/samples/0000.png"] == groups["00001/samples/0001.png"] != groups["00002/samples/0000.png"]


def test_a_task_without_per_sample_scores_says_nothing_was_tested(tmp_path):
    base, cand = make_run(tmp_path / "base"), make_run(tmp_path / "cand")
    add_task(base, "t2i_compbench", 0.5, scale="fraction")
    add_task(cand, "t2i_compbench", 0.5, scale="fraction")
    t = compare_runs(base.root, cand.root).tasks[0]
    assert t.verdict == "pass" and t.detectable_drop is None and "nothing tested" in t.reasons[-1]
    add_task(cand, "t2i_compbench", 0.4, scale="fraction")
    t = compare_runs(base.root, cand.root).tasks[0]
    assert t.verdict == "insufficient" and "no per-sample scores to test" in t.reasons[-1]
