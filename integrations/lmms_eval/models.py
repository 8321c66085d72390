"""Our ModelAdapters as lmms-eval models (the classes ``plugin.manifests`` points lmms-eval at).

lmms-eval hands a simple model every ``generate_until`` request of a task at once; each request's ``args``
are ``(context, generation_kwargs, doc_to_visual, doc_id, task, split)`` and the document itself sits in
``self.task_dict[task][split][doc_id]`` (filled by lmms-eval's evaluator).  We turn each into an
:class:`~unitoken_eval.harness.types.UnderstandRequest` (the context is the prompt lmms-eval's task built, post-prompt
included; the images are what its ``doc_to_visual`` returns), hand them to the adapter in batches and cut
each answer at the first ``until`` string, as lmms-eval's own models do.  The adapter keeps its prompt
template, batching and prefix sharing, so a model answers here exactly as it does in ``unitoken-eval run``.

Model args are ours (``path=...,vqgan=...``; ``adapter=ID`` picks the adapter for ``unitoken_eval``).
lmms-eval's ``--batch_size N`` is how many requests one adapter call gets; ``auto`` lets the adapter choose
(its own default, as in our runs).  ``--device`` reaches the adapter as its ``device`` argument.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any, ClassVar, Optional

from unitoken_eval.integrations.lmms_eval import require_lmms_eval

require_lmms_eval("unitoken_eval.integrations.lmms_eval.models")

from lmms_eval.api.model import lmms  # noqa: E402
from PIL import Image  # noqa: E402

from unitoken_eval.harness import registry  # noqa: E402
from unitoken_eval.harness.plugin import AdapterError, UnderstandRequest  # noqa: E402

log = logging.getLogger("unitoken_eval.lmms_eval")

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _adapter_arg(value: Any) -> str:
    """Back to the string form our adapters parse (lmms-eval turned ``true``/``16`` into bool/int)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def image_key(img: Image.Image) -> str:
    """Same pixels => same key, so the adapter can prefill a shared image once (MME asks two questions per image)."""
    h = hashlib.sha1(f"{img.mode}:{img.size}".encode())
    h.update(img.tobytes())
    return h.hexdigest()


def cut_at_stop(text: str, until: Optional[list[str]]) -> str:
    """Truncate at the earliest stop string, as lmms-eval's models do with ``until``."""
    cut = len(text)
    for stop in until or []:
        if stop:
            i = text.find(stop)
            if 0 <= i < cut:
                cut = i
    return text[:cut]


class UnitokenEval(lmms):
    """Any registered unitoken-eval adapter (``adapter=ID`` model arg) as an lmms-eval simple model."""

    is_simple = True
    adapter_id: ClassVar[Optional[str]] = None

    def __init__(self, adapter: Optional[str] = None, batch_size: Any = 1, device: Optional[str] = None,
                 max_batch_size: Any = None, **model_args: Any) -> None:
        super().__init__()
        aid = self.adapter_id or adapter
        if not aid:
            raise AdapterError("lmms-eval model unitoken_eval needs adapter=ID in --model_args "
                               f"(registered adapters: {', '.join(registry.adapter_ids())})")
        if self.adapter_id and adapter and adapter != self.adapter_id:
            raise AdapterError(f"lmms-eval model {self.adapter_id} runs adapter {self.adapter_id}, not {adapter!r}")
        args = {k: _adapter_arg(v) for k, v in model_args.items() if v is not None}
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if device is None and world > 1:
            import torch

            if torch.cuda.is_available():  # one process per GPU under accelerate/torchrun
                device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        if device is not None and "device" not in args:
            args["device"] = str(device)
        self.adapter_name = aid
        self.adapter = registry.adapter_class(aid)(**args)
        if "understand" not in self.adapter.capabilities:
            raise AdapterError(f"adapter {aid} cannot answer questions about images, which is all lmms-eval asks")
        text = str(batch_size).strip().lower()
        if text.startswith("auto"):
            self.requests_per_call = self.adapter.batch_size("understand")
        else:
            try:
                self.requests_per_call = max(1, int(text))
            except ValueError:
                raise AdapterError(f"--batch_size {batch_size!r}: expected an integer or auto") from None
        self._device = device
        self._warned_sampling = False

    # lmms-eval reads .device when gathering across ranks.
    @property
    def device(self):
        return self._device or "cpu"

    # ------------------------------------------------------------------ requests
    def _visuals(self, doc_to_visual: Any, task: str, split: str, doc_id: int) -> list[Image.Image]:
        if doc_to_visual is None:
            return []
        raw = doc_to_visual(self.task_dict[task][split][doc_id])
        if raw is None:
            return []
        if not isinstance(raw, (list, tuple)):
            raw = [raw]
        out: list[Image.Image] = []
        for v in raw:
            if isinstance(v, Image.Image):
                out.append(v if v.mode == "RGB" else v.convert("RGB"))
            elif isinstance(v, str) and v.lower().endswith(_IMAGE_SUFFIXES) and os.path.isfile(v):
                with Image.open(v) as im:
                    out.append(im.convert("RGB"))
            else:
                raise AdapterError(f"lmms-eval task {task} doc {doc_id}: visual of type {type(v).__name__} "
                                   f"({str(v)[:80]!r}); {self.adapter_name} takes images only")
        return out

    def _request(self, instance: Any, position: int) -> tuple[UnderstandRequest, list[str]]:
        context, gen_kwargs, doc_to_visual, doc_id, task, split = instance.args[:6]
        gen = dict(gen_kwargs or {})
        until = gen.pop("until", None)
        if isinstance(until, str):
            until = [until]
        if (gen.get("do_sample") or float(gen.get("temperature") or 0) > 0) and not self._warned_sampling:
            log.warning("lmms-eval asked for sampling (%s); adapter %s decodes greedily", gen, self.adapter_name)
            self._warned_sampling = True
        images = self._visuals(doc_to_visual, task, split, doc_id)
        req = UnderstandRequest(
            sample_id=f"{task}:{split}:{doc_id}:{position}",
            prompt=str(context),
            images=images,
            image_key=image_key(images[0]) if len(images) == 1 else None,
            max_new_tokens=int(gen.get("max_new_tokens", 512)),
            options={"generation_kwargs": gen},
        )
        return req, list(until or [])

    def generate_until(self, requests: list) -> list[str]:
        """Answers in request order; the adapter sees batches of ``requests_per_call``.

        Images are decoded one batch at a time: lmms-eval hands over the whole task (2374 MME questions), and
        holding every decoded image at once would cost gigabytes.
        """
        try:
            from tqdm import tqdm
        except ImportError:  # pragma: no cover - tqdm is a core dependency
            tqdm = None
        answers: list[str] = []
        bar = tqdm(total=len(requests), disable=(self.rank != 0), desc=f"{self.adapter_name} answering") if tqdm else None
        step = self.requests_per_call
        for start in range(0, len(requests), step):
            chunk = [self._request(inst, start + i) for i, inst in enumerate(requests[start:start + step])]
            texts = self.adapter.understand([r for r, _ in chunk])
            if len(texts) != len(chunk):
                raise AdapterError(f"adapter {self.adapter_name} returned {len(texts)} answers for {len(chunk)} requests")
            answers.extend(cut_at_stop(str(t), until) for t, (_, until) in zip(texts, chunk))
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
        return answers

    def loglikelihood(self, requests: list) -> list:
        raise NotImplementedError(f"unitoken-eval adapters generate answers; {self.adapter_name} has no "
                                  "log-likelihood interface, so lmms-eval's multiple_choice/loglikelihood tasks "
                                  "cannot run through it (use a generate_until task)")

    def generate_until_multi_round(self, requests: list) -> list[str]:
        raise NotImplementedError(f"{self.adapter_name}: multi-round generation is not supported through unitoken-eval")

    def clean(self) -> None:
        self.adapter.close()
        super().clean()


class UniToken(UnitokenEval):
    """``lmms-eval --model unitoken --model_args path=...,vqgan=...``: our UniToken adapter."""

    adapter_id = "unitoken"
