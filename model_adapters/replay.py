"""``replay``: answer from a file of recorded predictions instead of a model.

It brings predictions made elsewhere (VLMEvalKit's ``{model}_{dataset}.xlsx``, an lmms-eval ``--log_samples``
log, our own predictions JSONL) into a run directory, so our scorers, tables, reports and ``compare`` treat
them like any run::

    unitoken-eval run --model replay --model-args source=outputs/M/T/M_MME.xlsx --tasks mme --profile vlmevalkit

Model args:
  ``source``  the file (required);
  ``format``  ``auto`` (default: sniffed), ``vlmevalkit``, ``lmms-eval`` or ``jsonl``;
  ``task``    the task id the file belongs to; default: from the request, else from the file name
              (VLMEvalKit's ``_<dataset>.xlsx``, lmms-eval's ``_samples_<task>.jsonl``);
  ``data``    the task's data, when the reader needs it (lmms-eval logs are joined by position to it) or
              to check that every row belongs to it (VLMEvalKit files are checked by question and answer).

The fingerprint holds the file's resolved path and SHA-256, so ``--resume`` refuses a run whose file changed.
A sample absent from the file is an error naming the file and sample; under ``--skip-bad`` it is recorded as
that sample's error and the run goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from unitoken_eval.harness.store import sha256_file
from unitoken_eval.harness.plugin import AdapterError, Kind, ModelAdapter, SampleErrors, UnderstandRequest

_ARGS = ("source", "format", "task", "data", "batch_size")


class ReplayAdapter(ModelAdapter):
    id = "replay"
    capabilities = frozenset({"understand"})

    def __init__(self, **model_args: Any):
        super().__init__(**model_args)
        from unitoken_eval.harness import interop

        unknown = sorted(set(model_args) - set(_ARGS))
        if unknown:
            raise AdapterError(f"model replay: unknown model argument(s) {unknown}; it takes {', '.join(_ARGS)}")
        source = str(model_args.get("source") or "").strip()
        if not source:
            raise AdapterError("model replay needs source=PATH: a VLMEvalKit prediction file (.xlsx/.tsv/.json), "
                               "an lmms-eval samples log (.jsonl) or our predictions JSONL")
        self.path = Path(source).expanduser().resolve()
        if not self.path.is_file():
            raise AdapterError(f"model replay: source {self.path} does not exist or is not a file")
        try:
            fmt = interop.normalise_format(model_args.get("format"))
            self.format = interop.detect_format(self.path) if fmt == "auto" else fmt
            interop.format_module(self.format)  # an unavailable reader fails now, not at the first batch
        except interop.InteropError as exc:
            raise AdapterError(f"model replay: {exc}") from None
        self.sha256 = sha256_file(self.path)
        self.task = (model_args.get("task") or "").strip() or None
        self.data = (model_args.get("data") or "").strip() or None
        try:
            self._batch = max(1, int(model_args.get("batch_size", 256)))
        except ValueError:
            raise AdapterError(f"model replay: batch_size must be an integer, got {model_args['batch_size']!r}") \
                from None
        self._answers: dict[str, dict[str, str]] = {}
        self._from_name: Optional[str] = None

    # ------------------------------------------------------------------ which task a request belongs to
    def _task_from_file_name(self) -> Optional[str]:
        """The task the file's name says it holds (VLMEvalKit ``{model}_{dataset}``, lmms-eval ``_samples_<task>``)."""
        from unitoken_eval.harness import registry

        if self.format == "vlmevalkit":
            from unitoken_eval.harness.interop.vlmeval_io import dataset_of

            by_tsv: dict[str, str] = {}
            for tid in registry.task_ids():
                try:
                    name = getattr(registry.task_class(tid), "tsv_name", None)
                except registry.RegistryError:
                    continue
                if name:
                    by_tsv.setdefault(name, tid)
            hit = dataset_of(self.path, by_tsv)
            return by_tsv[hit] if hit else None
        if self.format == "lmms-eval":
            import re

            m = re.search(r"_samples_(?P<task>[A-Za-z0-9_\-]+)\.jsonl$", self.path.name)
            if m and m.group("task") in registry.task_ids():
                return m.group("task")
        return None

    def _task_of(self, request: UnderstandRequest) -> str:
        asked = getattr(request, "task_id", None)
        if asked and self.task and asked != self.task:
            raise AdapterError(f"model replay: {self.path} holds answers for task {self.task}, not {asked}; "
                               "run one task per replayed file")
        if asked or self.task:
            return asked or self.task  # type: ignore[return-value]
        if self._from_name is None:
            self._from_name = self._task_from_file_name() or ""
        if not self._from_name:
            raise AdapterError(f"model replay: cannot tell which task {self.path.name} answers; pass task=ID")
        return self._from_name

    def _answers_for(self, task_id: str) -> dict[str, str]:
        if task_id not in self._answers:
            from unitoken_eval.harness import interop, registry
            from unitoken_eval.harness.plugin import TaskError

            task = registry.make_task(task_id, {})
            kwargs: dict[str, Any] = {}
            try:
                if self.data:
                    kwargs["samples"] = task.load(self.data, None)
                    kwargs["source"] = self.data
                self._answers[task_id] = interop.load_predictions(self.path, task, self.format, **kwargs)
            except (interop.InteropError, TaskError) as exc:
                raise AdapterError(f"model replay: {exc}") from None
        return self._answers[task_id]

    # ------------------------------------------------------------------ the adapter interface
    def understand(self, requests: list[UnderstandRequest]) -> list[str]:
        answers: list[Optional[str]] = []
        errors: dict[int, str] = {}
        for i, req in enumerate(requests):
            task_id = self._task_of(req)
            recorded = self._answers_for(task_id)
            text = recorded.get(str(req.sample_id))
            if text is None:
                errors[i] = f"{self.path}: no recorded answer for sample {req.sample_id!r} of task {task_id}"
            answers.append(text)
        if errors:
            first = next(iter(errors.values()))
            more = f" (and {len(errors) - 1} more in this batch)" if len(errors) > 1 else ""
            raise SampleErrors(f"model replay: {first}{more}; pass --skip-bad to record such samples as errors",
                               answers, errors)
        return answers  # type: ignore[return-value]

    def fingerprint(self) -> dict[str, Any]:
        return {"adapter": self.id, "source": str(self.path), "sha256": self.sha256, "format": self.format}

    def batch_size(self, kind: Kind) -> int:
        return self._batch
