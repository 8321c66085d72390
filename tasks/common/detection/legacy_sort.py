"""``np.argsort(x)`` (default kind) as NumPy 1.23 computed it, for float scores.

GenEval orders each class's detections with ``np.argsort(scores)[::-1]`` under NumPy 1.23 (its pinned
environment).  Which of two exactly equal scores comes first decides which object is "the top one" for the
colour and position rules.  NumPy 1.23's default argsort is an introsort (median-of-3 quicksort, insertion
sort for ranges of up to 16 elements, heapsort past a depth limit); NumPy >= 1.25 sorts floats with SIMD
kernels that order ties differently.  This module re-implements the 1.23 algorithm so ties come out as
upstream's did; tests check it against NumPy 1.23.5 output recorded for that purpose.
"""

from __future__ import annotations

from typing import Sequence

_SMALL = 15  # ranges of more than _SMALL + 1 elements are partitioned, shorter ones insertion-sorted


def _less(a: float, b: float) -> bool:
    # NaNs sort last, as NumPy's float comparison for sorting does
    return a < b or (b != b and a == a)


def _heapsort(v: Sequence[float], idx: list[int], lo: int, n: int) -> None:
    """Index heapsort of idx[lo:lo+n] (1-based heap arithmetic over the slice, as NumPy's aheapsort)."""

    def get(k: int) -> int:
        return idx[lo + k - 1]

    def put(k: int, value: int) -> None:
        idx[lo + k - 1] = value

    def sift_down(i: int, tmp: int, size: int) -> None:
        """Move entry ``tmp`` down from heap slot ``i`` of a heap of ``size`` slots (1-based)."""
        j = i << 1
        while j <= size:
            if j < size and _less(v[get(j)], v[get(j + 1)]):
                j += 1
            if _less(v[tmp], v[get(j)]):
                put(i, get(j))
                i, j = j, j + j
            else:
                break
        put(i, tmp)

    for start in range(n >> 1, 0, -1):
        sift_down(start, get(start), n)
    while n > 1:
        tmp = get(n)
        put(n, get(1))
        n -= 1
        sift_down(1, tmp, n)


def argsort_numpy123(values: Sequence[float]) -> list[int]:
    """Indices that sort ``values`` ascending, tie order identical to NumPy 1.23's ``np.argsort``."""
    v = [float(x) for x in values]
    num = len(v)
    idx = list(range(num))
    if num < 2:
        return idx
    stack: list[tuple[int, int, int]] = []
    pl, pr = 0, num - 1
    cdepth = (num.bit_length() - 1) * 2  # twice the index of the highest set bit, as npy_get_msb
    while True:
        if cdepth < 0:
            _heapsort(v, idx, pl, pr - pl + 1)
        else:
            while pr - pl > _SMALL:
                pm = pl + ((pr - pl) >> 1)
                if _less(v[idx[pm]], v[idx[pl]]):
                    idx[pm], idx[pl] = idx[pl], idx[pm]
                if _less(v[idx[pr]], v[idx[pm]]):
                    idx[pr], idx[pm] = idx[pm], idx[pr]
                if _less(v[idx[pm]], v[idx[pl]]):
                    idx[pm], idx[pl] = idx[pl], idx[pm]
                vp = v[idx[pm]]
                pi, pj = pl, pr - 1
                idx[pm], idx[pj] = idx[pj], idx[pm]
                while True:
                    pi += 1
                    while _less(v[idx[pi]], vp):
                        pi += 1
                    pj -= 1
                    while _less(vp, v[idx[pj]]):
                        pj -= 1
                    if pi >= pj:
                        break
                    idx[pi], idx[pj] = idx[pj], idx[pi]
                pk = pr - 1
                idx[pi], idx[pk] = idx[pk], idx[pi]
                cdepth -= 1
                # the larger side waits on the stack, the smaller one is sorted next
                if pi - pl < pr - pi:
                    stack.append((pi + 1, pr, cdepth))
                    pr = pi - 1
                else:
                    stack.append((pl, pi - 1, cdepth))
                    pl = pi + 1
            for pi in range(pl + 1, pr + 1):
                vi = idx[pi]
                vp = v[vi]
                pj = pi
                while pj > pl and _less(vp, v[idx[pj - 1]]):
                    idx[pj] = idx[pj - 1]
                    pj -= 1
                idx[pj] = vi
        if not stack:
            break
        pl, pr, cdepth = stack.pop()
    return idx
