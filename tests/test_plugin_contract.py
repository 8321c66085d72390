"""The plugin contract in harness/plugin.py, checked with the real tasks and adapters (tiny, offline)."""

from __future__ import annotations

import argparse

import pytest

from unitoken_eval.harness import registry
from unitoken_eval.harness.plan import IMAGE_WORK, make_plan, sample_work
from unitoken_eval.harness.plugin import (
    GroupTask,
    Headline,
    ModelAdapter,
    ScoreContext,
    Task,
    TaskError,
    TaskResult,
    TokenIdsUnsupported,
    not_scored_reason,
    not_scored_record,
)


def test_tasks_declare_the_images_a_sample_draws_and_the_plan_weighs_them():
    geneval = registry.make_task("geneval")
    t2i = registry.make_task("t2i_compbench_color", {"images_per_prompt": 3})
    mmbench = registry.make_task("mmbench_dev_en")
    assert (geneval.images_per_sample(), t2i.images_per_sample(), mmbench.images_per_sample()) == (4, 3, 0)
    assert sample_work(0) == 1.0 and sample_work(4) == 4 * IMAGE_WORK
    plan = make_plan([("mmbench_dev_en", 10), ("t2i_compbench_color", 10)], 10,
                     {t.id: sample_work(t.images_per_sample()) for t in (mmbench, t2i)})
    assert [(s.task_id, s.work) for s in plan] == [("t2i_compbench_color", 30 * IMAGE_WORK), ("mmbench_dev_en", 10.0)]


def test_the_t2i_group_is_a_group_task_that_only_combines():
    group = registry.make_task("t2i_compbench")
    assert isinstance(group, GroupTask) and group.load() == []
    for name in ("request", "score", "aggregate"):
        assert name not in type(group).__dict__, f"the group stubs {name} again"
    with pytest.raises(TaskError, match="group task"):
        group.request(None)
    result = group.combine({}, ScoreContext(profile="official"))
    assert result.status == "not_scored" and result.headline.value is None
    assert "color, shape, texture" in result.reason and result.reference == group.references["official"]


def test_not_scored_is_one_signal():
    mmvet = registry.make_task("mmvet")
    r = mmvet.not_scored("official", "needs a judge", n=3)
    assert (r.task, r.status, r.reason, r.n, r.headline.name, r.headline.value, r.headline.scale) == (
        "mmvet", "not_scored", "needs a judge", 3, mmvet.headline[0], None, mmvet.headline[1])
    assert r.reference == mmvet.references["official"]
    records = {"a": {"score": 1.0}, "b": not_scored_record("no detector")}
    assert not_scored_reason(records) == "no detector" and not_scored_reason({"a": {"score": 0.0}}) is None


class _NoTokens(ModelAdapter):
    id = "no_tokens"
    capabilities = frozenset({"understand"})

    def understand(self, requests):
        return ["plain" for _ in requests]


def test_token_ids_are_declared_optional_and_predict_falls_back(monkeypatch):
    from unitoken_eval.harness import predict

    ad = _NoTokens()
    with pytest.raises(TokenIdsUnsupported, match="no_tokens"):
        ad.understand_with_tokens([])
    with pytest.raises(TokenIdsUnsupported):
        ad.generate_with_tokens([])
    monkeypatch.setattr(registry, "adapter_class", lambda _id: _NoTokens)
    args = argparse.Namespace(model="no_tokens", model_args=None, generate=False, prompt="hi", image=None,
                              max_new_tokens=4)
    assert predict.run_predict(args)["text"] == "plain"
    assert predict.run_predict(args)["generated_token_ids"] is None


def test_a_task_written_against_the_contract_runs_its_not_scored_path():
    class NeedsJudge(Task):
        id = "needs_judge"
        kind = "understand"
        headline = ("score", "percent")
        references = {"official": "x"}

        def load(self, source=None, limit=None):
            return []

        def request(self, sample):
            raise AssertionError

        def score(self, samples, predictions, ctx):
            return {}

        def aggregate(self, records, ctx):
            if ctx.judge is None:
                return self.not_scored(ctx.profile, "no judge")
            return TaskResult(self.id, ctx.profile, Headline("score", 1.0, "percent"))

    r = NeedsJudge().aggregate({}, ScoreContext(profile="official"))
    assert r.status == "not_scored" and r.headline == Headline("score", None, "percent")


def test_request_options_travel_through_the_task_constructor(plugins, tmp_path):
    from unitoken_eval.harness.config import load_config
    from unitoken_eval.harness.manifest import start_run
    from unitoken_eval.harness.runner import Runner

    cfg = load_config({"model": "fake_echo_model", "tasks": ["fake_draw"],
                       "options": {"fake_draw": {"request": {"cfg": 5.0}}}})
    store = start_run(cfg, tmp_path / "run", resume=False, runs_root=tmp_path)
    try:
        runner = Runner(cfg, store, progress=False)
        runner.load_plan()
        task = runner.tasks["fake_draw"]
        assert task.request_options == {"cfg": 5.0}
        assert runner._build_request(task, runner.samples["fake_draw"][0]).options == {"cfg": 5.0}
    finally:
        store.unlock()


def test_score_takes_task_options_and_the_task_validates_them(tmp_path, capsys):
    from unitoken_eval.harness.cli import main

    assert main(["score", "--task", "geneval", "--images", str(tmp_path), "--option", "detectr=smoke"]) == 2
    assert "unknown option 'detectr'" in capsys.readouterr().err
    assert main(["score", "--task", "geneval", "--images", str(tmp_path), "--option", "detector"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
