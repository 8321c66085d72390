"""The forward's compiled elementwise pieces and its KV-cache write, each way we could run them (diagnostic, GPU).

    python bench/diagnostics/pieces_ab.py            # JSON to $OUT (or /tmp)

Per piece of model_adapters/chameleon_family/forward.py, at an understanding prefill's rows (16 prompts of
3,991 tokens) and an image decode step's (208 rows): compiled with every dimension dynamic, and compiled with
only the row dimension dynamic (the head count and head size then are constants in the kernel's index
arithmetic); rotary also without its concatenation.  The KV-cache write of a prefill: index_copy_ over the
columns, against a copy into the column slice.  Each result's largest difference from the first variant is
reported beside its time.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from unitoken_eval.model_adapters.chameleon_family import forward as fw  # noqa: E402

H, D, HID, INTER = 32, 128, 4096, 11008


def rope_nocat(proj, weight, bias, cos, sin):
    D_ = weight.shape[-1]
    half = D_ // 2
    x = F.layer_norm(proj.unflatten(-1, (-1, D_)), (D_,), None, None, 1e-5) * weight + bias
    x1, x2 = x[..., :half], x[..., half:]
    c, s = cos.unsqueeze(1), sin.unsqueeze(1)
    return torch.cat((x1 * c[..., :half] - x2 * s[..., :half], x2 * c[..., half:] + x1 * s[..., half:]), -1)


def marked(fn, rows_args):
    inner = torch.compile(fn)

    def call(*a):
        for i in rows_args:
            torch._dynamo.maybe_mark_dynamic(a[i], 0)
        return inner(*a)

    return call


def ms(fn, reps=10):
    fn()
    fn()
    if not torch.cuda.is_available():  # CPU: checks the script only
        t = time.perf_counter()
        fn()
        return round(1000 * (time.perf_counter() - t), 4)
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps):
        fn()
    b.record()
    torch.cuda.synchronize()
    return round(a.elapsed_time(b) / reps, 4)


def diff(x, y):
    if isinstance(x, tuple):
        return max(diff(a, b) for a, b in zip(x, y))
    return float((x.float() - y.float()).abs().max())


def main():
    cuda = torch.cuda.is_available()
    dev, dt = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    g = torch.Generator(device=dev).manual_seed(0)

    def rnd(*s):
        return torch.randn(*s, device=dev, dtype=dt, generator=g)

    pieces = {
        "rope": (fw._head_norm_rope, (0, 3, 4), lambda N: (rnd(N, H * D), rnd(H, D), rnd(H, D), rnd(N, D), rnd(N, D))),
        "rms": (fw._rms_norm, (0,), lambda N: (rnd(N, HID), rnd(HID), 1e-5)),
        "add_rms": (fw._add_rms_norm, (0, 1), lambda N: (rnd(N, HID), rnd(N, HID), rnd(HID), 1e-5)),
        "swiglu_pair": (fw._swiglu_pair, (0, 1), lambda N: (rnd(N, INTER), rnd(N, INTER))),
    }
    rec: dict = {"device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__, "pieces": {}}
    for name, (fn, rows, make) in pieces.items():
        variants = {"all_dynamic": torch.compile(fn, dynamic=True), "rows_dynamic": marked(fn, rows)}
        if name == "rope":
            variants["rows_dynamic_nocat"] = marked(rope_nocat, rows)
        res = {}
        for N in ((16 * 3991, 208, 16 * 40) if cuda else (96, 8)):
            args = make(N)
            ref = None
            for vname, v in variants.items():
                out = v(*args)
                ref = out if ref is None else ref
                res.setdefault(vname, {})[N] = {"ms": ms(lambda: v(*args)), "max_diff": diff(out, ref)}
        rec["pieces"][name] = res
        print(name, json.dumps(res), flush=True)
    # KV write of a prefill: k as the forward hands it ([R, T, H, D] memory viewed as [R, H, T, D]).
    R, T, L = (16, 3991, 4096) if cuda else (2, 30, 64)
    cache = torch.zeros(R, H, L, D, device=dev, dtype=dt)
    k = rnd(R, T, H, D).transpose(1, 2)
    cols = torch.arange(0, T, device=dev)
    rec["kv_write_prefill_ms"] = {"index_copy": ms(lambda: cache.index_copy_(2, cols, k)),
                                  "slice_copy": ms(lambda: cache[:, :, :T].copy_(k))}
    a = cache.clone()
    cache.zero_()
    cache[:, :, :T].copy_(k)
    rec["kv_write_prefill_ms"]["same"] = bool(torch.equal(a, cache))
    print(json.dumps(rec["kv_write_prefill_ms"]))
    out = Path(os.environ.get("OUT", "/tmp")) / "pieces-ab.json"
    out.write_text(json.dumps(rec, indent=1))


if __name__ == "__main__":
    main()
