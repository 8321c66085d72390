"""The Triton kernel of :mod:`.kv_cache`: one decode query per (row, head) against int8 K/V.

A module of its own so that Triton is imported only when a CUDA int8 cache first attends (and so that the
helpers are module globals, which is how Triton resolves one jitted function called from another).
Checked against dequantize-then-SDPA under Triton's CPU interpreter (tests/test_kv_cache.py).
"""

import triton
import triton.language as tl


@triton.jit
def column_tile(KS, VS, MASK, s_off, m_off, start, length, BLOCK_N: tl.constexpr):
    """Columns start..start+BLOCK_N-1: in range, their K and V scales, and visible (in range and unmasked)."""
    n = start + tl.arange(0, BLOCK_N)
    inb = n < length
    ksc = tl.load(KS + s_off + n, mask=inb, other=0.0)
    vsc = tl.load(VS + s_off + n, mask=inb, other=0.0)
    ok = inb & (tl.load(MASK + m_off + n, mask=inb, other=0) != 0)
    return n, inb, ksc, vsc, ok


@triton.jit
def softmax_update(raw, ksc, ok, sm_scale, m_i, l_i):
    """Online softmax over one tile: ``raw`` = q . codes per column.  Returns the columns' weights, the factor
    that rescales what was accumulated so far, and the new running max and sum."""
    s = tl.where(ok, raw * (ksc * sm_scale), float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 0))
    alpha = tl.exp(m_i - m_new)
    p = tl.exp(s - m_new)
    return p, alpha, m_new, l_i * alpha + tl.sum(p, 0)


@triton.jit
def program_bases(K, V, sk_r, sk_h, ss_r, ss_h, H: tl.constexpr):
    """This program's (row, head), its K and V column bases, and its offset into the scale tensors."""
    pid = tl.program_id(0)
    r = pid // H
    h = pid % H
    return r, h, K + r * sk_r + h * sk_h, V + r * sk_r + h * sk_h, r * ss_r + h * ss_h


@triton.jit
def two_row_operand(x, rows):
    """Floats ``x`` in [-127, 127] as a 16-row int8 MMA operand: row 0 their nearest integers, row 1 the
    remainders in 254ths, the rest zero.  Row 0 + row 1 / 254 carries ~15 bits, so quantizing the query and
    the softmax weights adds almost nothing to the cache's own int8 error (one row alone doubled it)."""
    hi = tl.floor(x + 0.5)
    lo = tl.floor((x - hi) * 254.0 + 0.5)
    return tl.where(rows[:, None] == 0, hi[None, :], tl.where(rows[:, None] == 1, lo[None, :], 0.0)).to(tl.int8)


@triton.jit
def two_row_result(acc, rows):
    """The product of a :func:`two_row_operand` (an int32 MMA result): row 0 + row 1 / 254, as float32."""
    weight = tl.where(rows == 0, 1.0, tl.where(rows == 1, 1.0 / 254.0, 0.0))
    return tl.sum(acc.to(tl.float32) * weight[:, None], 0)


@triton.jit
def decode_attn(Q, K, KS, V, VS, MASK, O, length, sm_scale,
                sq_r, sq_h, sk_r, sk_h, sk_l, ss_r, ss_h, sm_r, so_r, so_h,
                H: tl.constexpr, D: tl.constexpr, BLOCK_N: tl.constexpr):
    # One program per (row, head): one query against `length` int8 columns, online softmax, with both
    # products on int8 tensor cores, so no K or V code is ever converted to float (the conversions, not
    # memory, bound a kernel that does).  The K scale multiplies the scores, the V scale the softmax
    # weights.  The query, and each tile's softmax weights times the V scales, are quantized (scale:
    # max / 127) into two rows of a 16-row operand (the MMA's smallest M); the other rows are zero and cost
    # only idle tensor-core lanes.
    r, h, k_base, v_base, s_off = program_bases(K, V, sk_r, sk_h, ss_r, ss_h, H)
    d = tl.arange(0, D)
    rows = tl.arange(0, 16)
    q = tl.load(Q + r * sq_r + h * sq_h + d).to(tl.float32)
    q_scale = tl.maximum(tl.max(tl.abs(q), 0), 1e-30) / 127.0
    q_op = two_row_operand(q / q_scale, rows)
    m_i = tl.full((), -1.0e30, tl.float32)
    l_i = tl.zeros((), tl.float32)
    acc = tl.zeros((D,), tl.float32)
    for start in range(0, length, BLOCK_N):
        n, inb, ksc, vsc, ok = column_tile(KS, VS, MASK, s_off, r * sm_r, start, length, BLOCK_N)
        kc = tl.load(k_base + n[None, :] * sk_l + d[:, None], mask=inb[None, :], other=0)  # [D, BLOCK_N]
        vc = tl.load(v_base + n[:, None] * sk_l + d[None, :], mask=inb[:, None], other=0)  # [BLOCK_N, D]
        qk = two_row_result(tl.dot(q_op, kc, out_dtype=tl.int32), rows)
        p, alpha, m_i, l_i = softmax_update(qk * q_scale, ksc, ok, sm_scale, m_i, l_i)
        w = p * vsc
        w_scale = tl.maximum(tl.max(w, 0), 1e-30) / 127.0
        pv = two_row_result(tl.dot(two_row_operand(w / w_scale, rows), vc, out_dtype=tl.int32), rows)
        acc = acc * alpha + pv * w_scale
    tl.store(O + r * so_r + h * so_h + d, (acc / l_i).to(O.dtype.element_ty))
