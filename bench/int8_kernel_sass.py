"""Instruction mix of the int8 decode-attention kernels for an H100/H200 (sm_90), compiled here without a GPU.

Triton compiles ahead of time with its bundled ptxas and nvdisasm, so kernel variants can be compared between
GPU sessions: how many int-to-float conversions (I2F, a quarter-rate instruction), shuffles and barriers
(reductions) and global loads (vector width) each compiles to.  Pointers and the large strides are declared
16-divisible, as Triton's launcher specialises them on the GPU.  Counts are for the whole kernel; the column
loop dominates them.  Diagnostic only: the figures that count come from bench/profile_int8_attention.py.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PIPES = {"I2F": "conversion", "I2FP": "conversion", "F2I": "conversion", "SHFL": "shuffle", "BAR": "barrier",
         "LDG": "global load", "LDS": "shared load", "STS": "shared store"}


def compile_variant(variant: str, block: int, warps: int, head_dim: int = 128) -> dict:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from model_adapters import kv_int8_kernels as kk

    fn = kk.decode_attn if variant == "bytes" else kk.decode_attn_words
    cache = "*i8" if variant == "bytes" else "*i32"
    ptrs = {"Q": "*bf16", "K": cache, "KS": "*fp32", "V": cache, "VS": "*fp32", "MASK": "*u8", "O": "*bf16"}
    consts = {"H": 32, "D": head_dim, "BLOCK_N": block}
    if variant != "bytes":
        consts["MAGIC"] = variant == "magic"
    signature = {}
    for name in fn.arg_names:
        signature[name] = (ptrs.get(name) or ("constexpr" if name in consts else "fp32" if name == "sm_scale"
                                               else "i32"))
    aligned = [n for n in fn.arg_names if n in ptrs or n in ("sq_r", "sq_h", "sk_r", "sk_h", "sk_l", "so_r", "so_h")]
    src = ASTSource(fn=fn, signature=signature,
                    constexprs={(fn.arg_names.index(k),): v for k, v in consts.items()},
                    attrs={(fn.arg_names.index(n),): [["tt.divisibility", 16]] for n in aligned})
    kernel = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps, "num_stages": 1})
    nvdisasm = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "nvdisasm"
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as fh:
        fh.write(kernel.asm["cubin"])
    try:
        sass = subprocess.run([str(nvdisasm), "-c", fh.name], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(fh.name)
    ops: collections.Counter = collections.Counter()
    for line in sass.splitlines():
        body = line.split("*/")[-1] if "*/" in line else line
        m = re.match(r"\s*(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]+)(\.[A-Z0-9_.]+)?\s", body)
        if m:
            ops[m.group(1)] += 1
    loads = sorted(set(re.findall(r"ld\.global(?:\.[a-z0-9]+)*", kernel.asm["ptx"])))
    return {"variant": variant, "block": block, "warps": warps, "instructions": sum(ops.values()),
            **{k: ops.get(k, 0) for k in PIPES}, "global_load_forms": loads}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", default="16,32")
    ap.add_argument("--warps", default="1,2,4")
    a = ap.parse_args(argv)
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    for variant in ("bytes", "words", "magic"):
        for block in map(int, a.blocks.split(",")):
            for warps in map(int, a.warps.split(",")):
                print(json.dumps(compile_variant(variant, block, warps)), flush=True)


if __name__ == "__main__":
    main()
