"""``tiny``: a random UniToken of the release layout, for the offline smoke suite and tests.

The checkpoint is written once by :mod:`unitoken_eval.model_adapters.unitoken.tiny_checkpoint` under
``~/.cache/unitoken-eval/tiny/<hash>`` (``UNITOKEN_EVAL_CACHE`` overrides the root) and then loaded through
the same code as a downloaded release, so the smoke suite exercises the real loading path.  Answers are capped
at ``max_new_tokens`` (model arg, default 16) because a random model rarely emits the end-of-turn token.
Model args: ``seed`` (checkpoint seed, default 0), ``max_new_tokens``, ``batch_size``, ``gen_batch_size``,
``anyres``, plus anything :class:`UniTokenAdapter` takes except ``path``/``vqgan``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from unitoken_eval.harness.plugin import AdapterError
from unitoken_eval.model_adapters.unitoken.adapter import UniTokenAdapter

WRITER_VERSION = 3  # 3: tokenizer fills all 65536 ids


def cache_root() -> Path:
    root = os.environ.get("UNITOKEN_EVAL_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "unitoken-eval"


def tiny_checkpoint(seed: int = 0, vision: bool = True) -> Path:
    """The cached tiny checkpoint for ``seed``, written on first use."""
    from unitoken_eval.model_adapters.unitoken import tiny_checkpoint as tc

    spec = json.dumps({"v": WRITER_VERSION, "seed": seed, "vision": vision, "llm": tc.TINY, "vit": tc.TINY_VISION},
                      sort_keys=True)
    out = cache_root() / "tiny" / hashlib.sha256(spec.encode()).hexdigest()[:16]
    if not (out / "model.safetensors.index.json").is_file():
        tc.write_tiny_release(out, seed=seed, vision=vision, overwrite=False)
    return out


class TinyUniTokenAdapter(UniTokenAdapter):
    id = "tiny"
    stand_in = "random weights (a smoke stand-in)"
    extra_args = ("seed", "max_new_tokens")

    def __init__(self, **model_args: Any):
        args = dict(model_args)
        if "path" in args or "vqgan" in args:
            raise AdapterError("model tiny writes its own checkpoint: use --model unitoken for path=/vqgan=")
        try:
            seed = int(args.pop("seed", 0))
            self.max_new = int(args.pop("max_new_tokens", 16))
        except ValueError as exc:
            raise AdapterError(f"model tiny: seed and max_new_tokens must be integers ({exc})") from exc
        args.setdefault("batch_size", "16")
        args.setdefault("gen_batch_size", "8")
        args.setdefault("device", "cpu")
        ckpt = tiny_checkpoint(seed)
        super().__init__(path=str(ckpt), vqgan=str(ckpt / "vqgan"), **args)
        self.model_args = dict(model_args)
        self.seed = seed

    def understand_with_tokens(self, requests):
        capped = [dataclasses.replace(r, max_new_tokens=min(r.max_new_tokens, self.max_new)) for r in requests]
        return super().understand_with_tokens(capped)

    def fingerprint(self) -> dict[str, Any]:
        fp = super().fingerprint()
        fp.update(adapter=self.id, seed=self.seed, max_new_tokens=self.max_new, path="<tiny cache>")
        return fp
