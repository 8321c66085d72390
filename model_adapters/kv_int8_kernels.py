"""Triton kernels of :mod:`model_adapters.kv_cache`: one decode query per (row, head) against int8 K/V.

A module of its own so that Triton is imported only when a CUDA int8 cache first attends (and so that the
kernels are module globals, which is how Triton resolves one jitted function called from another).
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
def decode_attn(Q, K, KS, V, VS, MASK, O, length, sm_scale,
                sq_r, sq_h, sk_r, sk_h, sk_l, ss_r, ss_h, sm_r, so_r, so_h,
                H: tl.constexpr, D: tl.constexpr, BLOCK_N: tl.constexpr):
    # One program per (row, head): one query against `length` int8 columns, online softmax.  The
    # weighted V rows are summed into a [BLOCK_N, D] accumulator and reduced over columns once at the
    # end: a per-tile reduction across warps made the kernel latency-bound (bench/profile_int8_attention.py).
    # The K scale multiplies the scores, the V scale the softmax weights.
    pid = tl.program_id(0)
    r = pid // H
    h = pid % H
    d = tl.arange(0, D)
    q = tl.load(Q + r * sq_r + h * sq_h + d).to(tl.float32)
    k_base = K + r * sk_r + h * sk_h
    v_base = V + r * sk_r + h * sk_h
    s_off = r * ss_r + h * ss_h
    m_i = tl.full((), -1.0e30, tl.float32)
    l_i = tl.zeros((), tl.float32)
    acc = tl.zeros((BLOCK_N, D), tl.float32)
    for start in range(0, length, BLOCK_N):
        n, inb, ksc, vsc, ok = column_tile(KS, VS, MASK, s_off, r * sm_r, start, length, BLOCK_N)
        kc = tl.load(k_base + n[:, None] * sk_l + d[None, :], mask=inb[:, None], other=0)
        vc = tl.load(v_base + n[:, None] * sk_l + d[None, :], mask=inb[:, None], other=0)
        p, alpha, m_i, l_i = softmax_update(tl.sum(kc.to(tl.float32) * q[None, :], 1), ksc, ok, sm_scale, m_i, l_i)
        acc = acc * alpha + (p * vsc)[:, None] * vc.to(tl.float32)
    out = tl.sum(acc, 0) / l_i
    tl.store(O + r * so_r + h * so_h + d, out.to(O.dtype.element_ty))

@triton.jit
def byte_as_float(w, k: tl.constexpr, MAGIC: tl.constexpr):
    # Code k (0..3) of int32 words holding 4 int8 codes, as float32.  MAGIC: integer ops and one
    # subtraction ((code + 128) placed in the mantissa of 2^23), avoiding the int-to-float conversion
    # instruction, which runs at a quarter of the FP32 rate; else sign-extending shifts and a conversion.
    if MAGIC:
        u = (((w >> (8 * k)) & 0xFF) ^ 0x80) | 0x4B000000
        return u.to(tl.float32, bitcast=True) - 8388736.0
    else:
        return ((w << (24 - 8 * k)) >> 24).to(tl.float32)

@triton.jit
def decode_attn_words(Q, K, KS, V, VS, MASK, O, length, sm_scale,
                      sq_r, sq_h, sk_r, sk_h, sk_l, ss_r, ss_h, sm_r, so_r, so_h,
                      H: tl.constexpr, D: tl.constexpr, BLOCK_N: tl.constexpr, MAGIC_K: tl.constexpr,
                      MAGIC_V: tl.constexpr):
    # decode_attn over the same cache read as int32 words (K, V and their strides in words): code d of a
    # column is byte d % 4 of word d // 4, so q, the accumulators and the output are split four ways.
    # MAGIC_K / MAGIC_V pick the conversion per tensor: converting K on the conversion pipe and V with
    # integer ops balances the two pipes (bench/int8_kernel_sass.py).
    pid = tl.program_id(0)
    r = pid // H
    h = pid % H
    j = tl.arange(0, D // 4)
    qb = Q + r * sq_r + h * sq_h + 4 * j
    q0, q1 = tl.load(qb).to(tl.float32), tl.load(qb + 1).to(tl.float32)
    q2, q3 = tl.load(qb + 2).to(tl.float32), tl.load(qb + 3).to(tl.float32)
    k_base = K + r * sk_r + h * sk_h
    v_base = V + r * sk_r + h * sk_h
    s_off = r * ss_r + h * ss_h
    m_i = tl.full((), -1.0e30, tl.float32)
    l_i = tl.zeros((), tl.float32)
    a0 = tl.zeros((BLOCK_N, D // 4), tl.float32)
    a1 = tl.zeros((BLOCK_N, D // 4), tl.float32)
    a2 = tl.zeros((BLOCK_N, D // 4), tl.float32)
    a3 = tl.zeros((BLOCK_N, D // 4), tl.float32)
    for start in range(0, length, BLOCK_N):
        n, inb, ksc, vsc, ok = column_tile(KS, VS, MASK, s_off, r * sm_r, start, length, BLOCK_N)
        kw = tl.load(k_base + n[:, None] * sk_l + j[None, :], mask=inb[:, None], other=0)
        vw = tl.load(v_base + n[:, None] * sk_l + j[None, :], mask=inb[:, None], other=0)
        dots = (byte_as_float(kw, 0, MAGIC_K) * q0[None, :] + byte_as_float(kw, 1, MAGIC_K) * q1[None, :]
                + byte_as_float(kw, 2, MAGIC_K) * q2[None, :] + byte_as_float(kw, 3, MAGIC_K) * q3[None, :])
        p, alpha, m_i, l_i = softmax_update(tl.sum(dots, 1), ksc, ok, sm_scale, m_i, l_i)
        wgt = (p * vsc)[:, None]
        a0 = a0 * alpha + wgt * byte_as_float(vw, 0, MAGIC_V)
        a1 = a1 * alpha + wgt * byte_as_float(vw, 1, MAGIC_V)
        a2 = a2 * alpha + wgt * byte_as_float(vw, 2, MAGIC_V)
        a3 = a3 * alpha + wgt * byte_as_float(vw, 3, MAGIC_V)
    ob = O + r * so_r + h * so_h + 4 * j
    tl.store(ob, (tl.sum(a0, 0) / l_i).to(O.dtype.element_ty))
    tl.store(ob + 1, (tl.sum(a1, 0) / l_i).to(O.dtype.element_ty))
    tl.store(ob + 2, (tl.sum(a2, 0) / l_i).to(O.dtype.element_ty))
    tl.store(ob + 3, (tl.sum(a3, 0) / l_i).to(O.dtype.element_ty))


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
def decode_attn_imma(Q, K, KS, V, VS, MASK, O, length, sm_scale,
                     sq_r, sq_h, sk_r, sk_h, sk_l, ss_r, ss_h, sm_r, so_r, so_h,
                     H: tl.constexpr, D: tl.constexpr, BLOCK_N: tl.constexpr):
    # decode_attn with both products on int8 tensor cores, so no K or V code is ever converted to float
    # (conversions bound the other kernels below memory speed, bench/int8_kernel_sass.py).  The query, and
    # each tile's softmax weights times the V scales, are quantized (scale: max / 127) into two rows of a
    # 16-row operand (the MMA's smallest M); the other rows are zero and cost only idle tensor-core lanes.
    pid = tl.program_id(0)
    r = pid // H
    h = pid % H
    d = tl.arange(0, D)
    rows = tl.arange(0, 16)
    q = tl.load(Q + r * sq_r + h * sq_h + d).to(tl.float32)
    q_scale = tl.maximum(tl.max(tl.abs(q), 0), 1e-30) / 127.0
    q_op = two_row_operand(q / q_scale, rows)
    k_base = K + r * sk_r + h * sk_h
    v_base = V + r * sk_r + h * sk_h
    s_off = r * ss_r + h * ss_h
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
