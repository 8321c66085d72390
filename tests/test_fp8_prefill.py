"""``prefill=fp8``: float8 codes within e4m3's rounding of their inputs, wide forwards near the model's own
precision and visibly through float8, narrow forwards (decode steps) untouched, and the adapter option."""

from __future__ import annotations

import pytest
import torch

from unitoken_eval.model_adapters.chameleon_family.forward import SEPARATE_PROJECTIONS_FROM, LeanChameleon
from unitoken_eval.model_adapters.chameleon_family.weights import fp8_rows, fp8_unsupported
from test_chameleon_fast import _tiny

# float8 GEMMs on CPU need a torch whose CPU _scaled_mm takes per-row scales (2.13 does, 2.11 does not)
needs_cpu_fp8 = pytest.mark.skipif(fp8_unsupported("cpu") is not None, reason=str(fp8_unsupported("cpu")))


def test_fp8_rows_round_each_value_to_e4m3_under_its_rows_scale():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 256, generator=g) * torch.logspace(-3, 2, 64)[:, None]
    codes, scale = fp8_rows(x)
    assert codes.dtype == torch.float8_e4m3fn and scale.shape == (64, 1)
    back = codes.float() * scale
    # 3 mantissa bits: relative error <= 2^-4 for normal values; below 2^-6 (subnormal) a step of 2^-9
    err = (back - x).abs()
    bound = torch.maximum(x.abs() * 2.0 ** -4, scale * 2.0 ** -10)
    assert bool((err <= bound * 1.0001).all())
    assert float(codes.float().abs().amax()) == 448.0  # each row's absmax lands on e4m3's largest value


def _forward(lean, R, T):
    torch.manual_seed(1)
    ids = torch.randint(4, 8000, (R, T))
    lean.valid[:] = True
    return lean.forward(torch.arange(T)[None].expand(R, T), 0, T, ids=ids, dense_causal=True)


@needs_cpu_fp8
def test_fp8_prefill_is_near_the_models_precision_on_wide_forwards_and_off_on_narrow_ones():
    model, head = _tiny()
    R, T = 2, SEPARATE_PROJECTIONS_FROM // 2  # R x T reaches the wide (prefill) path
    exact = _forward(LeanChameleon(model, head, R, T, fused=False), R, T)
    fp8 = LeanChameleon(model, head, R, T, fused=False, prefill="fp8")
    approx = _forward(fp8, R, T)
    rel = float((approx - exact).abs().mean() / exact.std())
    assert 0 < rel < 0.1, rel  # through float8 (not identical), and close
    assert bool((approx.argmax(-1) == exact.argmax(-1)).all())
    # a decode-sized forward keeps the model's dtype: bit-identical to the exact path
    small = _forward(LeanChameleon(model, head, 1, 8, fused=False), 1, 8)
    assert torch.equal(_forward(LeanChameleon(model, head, 1, 8, fused=False, prefill="fp8"), 1, 8), small)
    with pytest.raises(ValueError, match="prefill"):
        LeanChameleon(model, head, 1, 8, prefill="int4")
    # the float8 copies can be freed (before image generation) and come back on the next fp8 prefill
    assert model.layers[0].mlp.down_proj in fp8.weights.fp8 and len(fp8.weights.fp8) == 7 * len(model.layers)
    fp8.weights.release_fp8()
    assert fp8.weights.fp8 is None
    again = LeanChameleon(model, head, R, T, fused=False, prefill="fp8", weights=fp8.weights)
    assert torch.equal(_forward(again, R, T), approx)


@needs_cpu_fp8
def test_image_generation_frees_the_float8_weights_an_fp8_prefill_made():
    from unitoken_eval.model_adapters.chameleon_family.decoding import ChameleonDecoders
    from test_chameleon_fast import GRID

    model, head = _tiny()
    decoders = ChameleonDecoders(model, head, use_graphs=False)
    _forward(LeanChameleon(model, head, 2, SEPARATE_PROJECTIONS_FROM // 2, fused=False, prefill="fp8",
                           weights=decoders.weights), 2, SEPARATE_PROJECTIONS_FROM // 2)
    assert model.layers[1].self_attn.o_proj in decoders.weights.fp8
    decoders.image_tokens([[5, 9, 8197]], [0], cfg=3.0, image_top_k=10, temperature=1.0, grid=GRID)
    assert decoders.weights.fp8 is None


def test_fp8_is_refused_with_the_reason_on_gpus_without_float8_tensor_cores(monkeypatch):
    from unitoken_eval.model_adapters.chameleon_family import weights as cf

    monkeypatch.setattr(cf, "_cpu_scaled_mm_takes_row_scales", lambda: True)
    assert cf.fp8_unsupported("cpu") is None
    monkeypatch.setattr(cf, "_cpu_scaled_mm_takes_row_scales", lambda: False)
    why = cf.fp8_unsupported("cpu")
    assert "per-row scales" in why and torch.__version__ in why
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100-SXM4-80GB")
    why = cf.fp8_unsupported("cuda:0")
    assert "8.9" in why and "A100" in why and "sm_80" in why
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert cf.fp8_unsupported("cuda:0") is None


def test_the_cpu_probe_matches_what_a_per_row_scaled_mm_does():
    """The probe answers what the real call does on this torch: per-row scales run, or are refused."""
    from unitoken_eval.model_adapters.chameleon_family import weights as cf

    x8, xs = fp8_rows(torch.randn(32, 64))
    w8, ws = fp8_rows(torch.randn(16, 64))
    try:
        torch._scaled_mm(x8, w8.t(), scale_a=xs, scale_b=ws.reshape(1, -1), out_dtype=torch.float32)
        runs = True
    except Exception:  # noqa: BLE001 - the refusal is what is being compared
        runs = False
    assert cf._cpu_scaled_mm_takes_row_scales() is runs
