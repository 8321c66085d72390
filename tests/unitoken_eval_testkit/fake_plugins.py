"""A third-party plugin as a test would write one: a task and an adapter living outside our packages.

Registered through a dist-info directory created by the ``plugins`` fixture (conftest.py), exactly as an
installed distribution declares entry points.
"""

from __future__ import annotations

from PIL import Image

from unitoken_eval.harness.plugin import GenerateRequest, Headline, ModelAdapter, Sample, Task, TaskResult, UnderstandRequest


class EchoQA(Task):
    """Ten questions whose right answer is the sample's own id; the score is exact match."""

    id = "fake_echo"
    kind = "understand"
    headline = ("accuracy", "percent")
    references = {"official": "exact match (test plugin)"}

    def load(self, source=None, limit=None):
        n = int(self.options.get("n", 10))
        # three questions about each picture (the last one alone): groups the plan keeps in one batch
        out = [Sample(id=f"q{i}", fields={"answer": f"q{i}"}, image_key=f"img{i // 3}",
                      image=Image.new("RGB", (8, 8), (i // 3, 0, 0))) for i in range(n)]
        return out[:limit] if limit else out

    def request(self, sample):
        return UnderstandRequest(sample_id=sample.id, prompt=f"say {sample.id}", images=[sample.load_image()],
                                 image_key=sample.image_key, max_new_tokens=4)

    def score(self, samples, predictions, ctx):
        return {s.id: {"score": int(predictions[s.id].text == s.fields["answer"])} for s in samples}

    def aggregate(self, records, ctx):
        n = len(records)
        value = 100.0 * sum(r["score"] for r in records.values()) / n if n else None
        return TaskResult(task=self.id, profile=ctx.profile, headline=Headline("accuracy", value, "percent"), n=n)


class TwoPictures(Task):
    """Generation: three prompts, two images each, in a two-level layout like GenEval's."""

    id = "fake_draw"
    kind = "generate"
    headline = ("fraction_red", "fraction")
    references = {"official": "mean red channel (test plugin)"}

    def load(self, source=None, limit=None):
        out = [Sample(id=str(i), fields={"prompt": f"picture {i}"}) for i in range(3)]
        return out[:limit] if limit else out

    def images_per_sample(self):
        return 2

    def request(self, sample):
        return GenerateRequest(sample_id=sample.id, prompt=sample.fields["prompt"], n_images=self.images_per_sample())

    def image_path(self, sample, k):
        return f"{int(sample.id):05d}/samples/{k:05d}.png"

    def write_sample_files(self, out_dir, sample):
        d = out_dir / f"{int(sample.id):05d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "metadata.jsonl").write_text('{"prompt": "%s"}\n' % sample.fields["prompt"])

    def score(self, samples, predictions, ctx):
        out = {}
        for s in samples:
            imgs = [Image.open(ctx.work_dir / p) for p in predictions[s.id].images]
            out[s.id] = {"score": sum(im.getpixel((0, 0))[0] for im in imgs) / (255.0 * len(imgs))}
        return out

    def aggregate(self, records, ctx):
        n = len(records)
        value = sum(r["score"] for r in records.values()) / n if n else None
        return TaskResult(task=self.id, profile=ctx.profile, headline=Headline("fraction_red", value, "fraction"), n=n)


class EchoModel(ModelAdapter):
    """Answers with the id the prompt asks for; draws images whose red level comes from the seed.

    ``fail_after`` (class attribute) makes it raise after that many calls, standing in for a crash mid-run.
    Model arg ``batch_echo`` appends the ids of the whole batch to each answer.
    """

    id = "fake_echo_model"
    capabilities = frozenset({"understand", "generate"})
    calls = 0
    fail_after = None
    instances = 0

    def __init__(self, **kw):
        super().__init__(**kw)
        type(self).instances += 1

    def _trace(self, requests):
        # In pool tests: record which device each worker was bound to, and die once on a chosen sample.
        trace = self.model_args.get("trace_dir")
        if not trace:
            return
        import os
        from pathlib import Path

        dev = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        with open(Path(trace) / f"worker-{os.getpid()}.txt", "a") as fh:
            fh.write("".join(f"{dev} {r.sample_id}\n" for r in requests))
        die_on = self.model_args.get("die_on")
        marker = Path(trace) / "died-once"
        if die_on and any(r.sample_id == die_on for r in requests) and not marker.exists():
            marker.write_text(dev)
            os._exit(9)  # like a SIGKILL: no cleanup, no exception

    def understand(self, requests):
        self._trace(requests)
        if self.model_args.get("sleep"):
            import time

            time.sleep(float(self.model_args["sleep"]))
        type(self).calls += 1
        if self.fail_after is not None and type(self).calls > self.fail_after:
            raise RuntimeError("simulated crash")
        if self.model_args.get("batch_echo"):
            # a model whose answers depend on what else is in its batch: the worst case for a resumed run
            batch = "+".join(r.sample_id for r in requests)
            return [f"{r.prompt.split()[-1]} in [{batch}]" for r in requests]
        return [r.prompt.split()[-1] for r in requests]

    def generate(self, requests):
        return [[Image.new("RGB", (4, 4), ((r.seed + k) % 256, 0, 0)) for k in range(r.n_images)] for r in requests]

    def batch_size(self, kind):
        return int(self.model_args.get("batch", 3))
