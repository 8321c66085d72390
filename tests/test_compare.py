import math

import numpy as np
import pytest

from harness.cli import main
from harness.compare import (CompareError, Policy, TaskPolicy, binom_two_sided_half, compare_runs, load_policy,
                             paired_bootstrap_ci)
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


def test_continuous_scores_use_the_bootstrap(tmp_path):
    rng = np.random.default_rng(1)
    base = make_run(tmp_path / "base")
    cand = make_run(tmp_path / "cand")
    bs = {str(i): float(v) for i, v in enumerate(rng.uniform(0.3, 0.9, 300))}
    cs = {k: v - 0.1 for k, v in bs.items()}
    add_task(base, "t2i_compbench_color", float(np.mean(list(bs.values()))), scale="fraction", scores=bs)
    add_task(cand, "t2i_compbench_color", float(np.mean(list(cs.values()))), scale="fraction", scores=cs)
    comp = compare_runs(base.root, cand.root)
    t = comp.tasks[0]
    assert t.test == "paired bootstrap" and t.verdict == "regression" and t.ci[1] < 0
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
    assert "unknown keys ['max_dorp']" in err and str(pol) in err
    with pytest.raises(CompareError, match="max_drop must be >= 0"):
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


def test_the_shipped_example_policy_loads():
    from pathlib import Path

    from harness.compare import load_policy

    pol = load_policy(Path(__file__).resolve().parents[1] / "docs" / "examples" / "compare-policy.yaml")
    assert pol.default.max_drop == 0.5 and pol.for_task("mme").max_drop == 10 and pol.for_task("mmvet").skip
    assert pol.for_task("mme").significance  # per-task entries inherit the default's other keys
