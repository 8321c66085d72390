from __future__ import annotations

import json

import pytest

from unitoken_eval_testkit import fake_plugins
from unitoken_eval.harness.config import ConfigError, load_config
from unitoken_eval.harness.manifest import start_run
from unitoken_eval.harness.runner import Runner, derive_seed
from unitoken_eval.harness.store import RunStore, StoreError


def _config(**kw):
    base = {"model": "fake_echo_model", "tasks": ["fake_echo", "fake_draw"], "options": {"fake_echo": {"n": 10}}}
    base.update(kw)
    return load_config(base)


def test_run_stores_predictions_images_scores_and_metrics(plugins, tmp_path):
    cfg = _config()
    store = start_run(cfg, tmp_path / "run", resume=False, runs_root=tmp_path)
    outcome = Runner(cfg, store, progress=False).run()
    assert outcome.inferred == 13 and not outcome.failed
    assert outcome.results["fake_echo"].headline.value == 100.0
    preds = store.read_predictions("fake_draw")
    assert preds["2"].images == ["images/00002/samples/00000.png", "images/00002/samples/00001.png"]
    assert (store.images_dir("fake_draw") / "00002" / "metadata.jsonl").exists()
    # Image k of a sample carries seed + k, and the seed does not depend on batching.
    assert preds["2"].meta["seed"] == derive_seed(0, "fake_draw", "2")
    assert store.read_scores("fake_echo")["q3"] == {"score": 1}
    manifest = store.read_manifest()
    assert manifest["model_fingerprint"]["adapter"] == "fake_echo_model"
    assert manifest["versions"]["python"] and "torch" in manifest["versions"]


def test_resume_after_a_crash_finishes_without_duplicates(plugins, tmp_path):
    cfg = _config(tasks=["fake_echo"])
    store = start_run(cfg, tmp_path / "run", resume=False, runs_root=tmp_path)
    fake_plugins.EchoModel.fail_after = 2  # batches of 3: 6 answers stored, then the process "dies"
    with pytest.raises(RuntimeError, match="simulated crash"):
        Runner(cfg, store, progress=False).run()
    store.unlock()
    lines = (store.task_dir("fake_echo") / "predictions-main.jsonl").read_text().splitlines()
    assert len(lines) == 6

    fake_plugins.EchoModel.fail_after = None
    store = start_run(cfg, tmp_path / "run", resume=True, runs_root=tmp_path)
    outcome = Runner(cfg, store, progress=False).run()
    assert outcome.inferred == 4
    ids = [json.loads(x)["id"] for x in (store.task_dir("fake_echo") / "predictions-main.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(f"q{i}" for i in range(10)) and len(ids) == len(set(ids))
    assert outcome.results["fake_echo"].headline.value == 100.0 and outcome.results["fake_echo"].n == 10


def test_resume_of_a_finished_run_does_no_inference_and_loads_no_model(plugins, tmp_path):
    cfg = _config()
    store = start_run(cfg, tmp_path / "run", resume=False, runs_root=tmp_path)
    Runner(cfg, store, progress=False).run()
    store.unlock()
    before = fake_plugins.EchoModel.instances
    store = start_run(cfg, tmp_path / "run", resume=True, runs_root=tmp_path)
    outcome = Runner(cfg, store, progress=False).run()
    assert outcome.inferred == 0 and fake_plugins.EchoModel.instances == before
    assert outcome.results["fake_echo"].headline.value == 100.0


def test_resume_refuses_a_different_model_or_options(plugins, tmp_path):
    cfg = _config()
    store = start_run(cfg, tmp_path / "run", resume=False, runs_root=tmp_path)
    Runner(cfg, store, progress=False).run()
    store.unlock()
    with pytest.raises(StoreError, match="different options.*choose another --out"):
        start_run(_config(options={"fake_echo": {"n": 5}}), tmp_path / "run", resume=True, runs_root=tmp_path)
    with pytest.raises(StoreError, match="already holds a run; pass --resume"):
        start_run(cfg, tmp_path / "run", resume=False, runs_root=tmp_path)


def test_a_run_that_failed_before_inferring_does_not_block_its_retry(plugins, tmp_path):
    """A model-args typo fails when the adapter loads, after the run directory exists: the corrected command,
    with or without --resume, starts the run afresh instead of being refused."""
    bad = _config(model_args="batch=x")
    store = start_run(bad, tmp_path / "run", resume=False, runs_root=tmp_path)
    with pytest.raises(Exception):
        Runner(bad, store, progress=False).run()
    store.unlock()
    good = _config(model_args="batch=2")
    store = start_run(good, tmp_path / "run", resume=False, runs_root=tmp_path)
    assert store.read_manifest()["identity"]["model_args"] == {"batch": "2"}
    store.unlock()
    store = start_run(_config(model_args="batch=3"), tmp_path / "run", resume=True, runs_root=tmp_path)
    assert Runner(_config(model_args="batch=3"), store, progress=False).run().inferred > 0


def test_a_second_process_on_the_same_run_is_refused(plugins, tmp_path):
    cfg = _config()
    first = start_run(cfg, tmp_path / "run", resume=False, runs_root=tmp_path)
    with pytest.raises(StoreError, match="in use"):
        start_run(cfg, tmp_path / "run", resume=True, runs_root=tmp_path)
    first.unlock()


def test_batch_size_comes_from_the_adapter(plugins, tmp_path):
    cfg = _config(tasks=["fake_echo"], model_args="batch=4")
    store = start_run(cfg, tmp_path / "run", resume=False, runs_root=tmp_path)
    Runner(cfg, store, progress=False).run()
    assert fake_plugins.EchoModel.calls == 3  # 10 samples in batches of 4


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match="field 'limit'"):
        load_config({"model": "m", "tasks": ["t"], "limit": 0})
    with pytest.raises(ConfigError, match="field 'tasks'"):
        load_config({"model": "m", "tasks": []})
    with pytest.raises(ConfigError, match="field 'colour'"):
        load_config({"model": "m", "tasks": ["t"], "colour": 1})
    bad = tmp_path / "c.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="c.yaml: not valid YAML"):
        load_config(bad)
    assert load_config({"model": "m", "tasks": ["t"], "model_args": "a=1,b=x"}).model_args == {"a": "1", "b": "x"}


def test_images_are_written_while_the_next_batch_draws_and_records_follow_their_images(plugins, tmp_path,
                                                                                      monkeypatch):
    """Writing batch 1's images waits for batch 2's generate() to begin: written in line (before batch 2 is
    drawn) it never begins, the wait times out and the test fails."""
    import threading

    drawing = threading.Event()
    overlapped = []
    real_save, real_generate = RunStore.save_image, fake_plugins.EchoModel.generate

    def waiting_save(self, task_id, rel, image):
        if rel.startswith("00000/"):
            overlapped.append(drawing.wait(timeout=5))
        return real_save(self, task_id, rel, image)

    def generate(self, requests):
        if requests[0].sample_id == "1":
            drawing.set()
        return real_generate(self, requests)

    monkeypatch.setattr(RunStore, "save_image", waiting_save)
    monkeypatch.setattr(fake_plugins.EchoModel, "generate", generate)
    cfg = _config(tasks=["fake_draw"], model_args="batch=1")
    store = start_run(cfg, tmp_path / "run", resume=False, runs_root=tmp_path)
    outcome = Runner(cfg, store, progress=False).run()
    assert overlapped == [True, True] and outcome.inferred == 3
    preds = store.read_predictions("fake_draw")
    assert sorted(preds) == ["0", "1", "2"]
    assert all((store.task_dir("fake_draw") / p).is_file() for r in preds.values() for p in r.images)


def test_a_batchs_pngs_are_written_by_several_threads_at_once(plugins, tmp_path, monkeypatch):
    """The first two image writes of one batch meet at a barrier: written one at a time, the barrier times out."""
    import threading

    from unitoken_eval.harness import runner as runner_module

    monkeypatch.setattr(runner_module, "IMAGE_WRITERS", 4)
    meet, lock = threading.Barrier(2, timeout=10), threading.Lock()
    met, threads, calls = [], set(), []
    real_save = RunStore.save_image

    def save(self, task_id, rel, image):
        with lock:
            threads.add(threading.current_thread().name)
            calls.append(rel)
            first_two = len(calls) <= 2
        if first_two:
            try:
                met.append(meet.wait() >= 0)
            except threading.BrokenBarrierError:
                met.append(False)
        return real_save(self, task_id, rel, image)

    monkeypatch.setattr(RunStore, "save_image", save)
    cfg = _config(tasks=["fake_draw"], model_args="batch=3")
    store = start_run(cfg, tmp_path / "run", resume=False, runs_root=tmp_path)
    assert Runner(cfg, store, progress=False).run().inferred == 3
    assert met[:2] == [True, True] and len(threads) >= 2 and all(t.startswith("png") for t in threads)
    preds = store.read_predictions("fake_draw")
    assert sorted(preds) == ["0", "1", "2"]
    assert all((store.task_dir("fake_draw") / p).is_file() for r in preds.values() for p in r.images)


def test_a_failing_generation_batch_keeps_the_batch_whose_images_were_being_written(plugins, tmp_path,
                                                                                   monkeypatch):
    real_generate = fake_plugins.EchoModel.generate

    def generate(self, requests):
        if requests[0].sample_id == "1":
            raise RuntimeError("simulated crash while drawing batch 2")
        return real_generate(self, requests)

    monkeypatch.setattr(fake_plugins.EchoModel, "generate", generate)
    cfg = _config(tasks=["fake_draw"], model_args="batch=1")
    store = start_run(cfg, tmp_path / "run", resume=False, runs_root=tmp_path)
    with pytest.raises(RuntimeError, match="batch 2"):
        Runner(cfg, store, progress=False).run()
    store.unlock()
    preds = store.read_predictions("fake_draw")
    assert list(preds) == ["0"] and all((store.task_dir("fake_draw") / p).is_file() for p in preds["0"].images)


def test_the_next_batch_is_built_while_the_model_answers_and_a_bad_sample_waits_its_turn(plugins, tmp_path,
                                                                                        monkeypatch):
    """Batch 1's answers wait for batch 2's requests to have been built (images decoded): built in line, after
    batch 1, that never happens and the wait times out.  A sample that cannot be built stops the run only
    when its batch comes up, with every earlier batch stored."""
    import threading

    from unitoken_eval.harness.plugin import TaskError

    built = threading.Event()
    overlapped = []
    real_request, real_understand = fake_plugins.EchoQA.request, fake_plugins.EchoModel.understand

    count = []

    def request(self, sample):
        count.append(sample.id)
        if len(count) > 3:  # a request of the second batch
            built.set()
        if sample.id == "q7":
            raise TaskError("q7: image cell is not a decodable base64 image")
        return real_request(self, sample)

    def understand(self, requests):
        if not overlapped:  # the first batch
            overlapped.append(built.wait(timeout=5))
        return real_understand(self, requests)

    prepared_in = []
    monkeypatch.setattr(fake_plugins.EchoQA, "request", request)
    monkeypatch.setattr(fake_plugins.EchoModel, "understand", understand)
    monkeypatch.setattr(fake_plugins.EchoModel, "preprocess",
                        lambda self, reqs: prepared_in.append((threading.current_thread().name, len(reqs))))
    cfg = _config(tasks=["fake_echo"])  # batches of 3
    store = start_run(cfg, tmp_path / "run", resume=False, runs_root=tmp_path)
    runner = Runner(cfg, store, progress=False)
    with pytest.raises(TaskError, match="q7"):
        runner.run()
    store.unlock()
    assert overlapped == [True]
    # the adapter's own CPU preparation runs there too, once per built batch
    assert prepared_in and all(name.startswith("requests") and n == 3 for name, n in prepared_in)
    order = [s.id for s in runner.samples["fake_echo"]]  # plan order; batches of 3 cut from it
    bad_batch = order.index("q7") // 3
    assert bad_batch >= 1 and sorted(store.read_predictions("fake_echo")) == sorted(order[: 3 * bad_batch])
