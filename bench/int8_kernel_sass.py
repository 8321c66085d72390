"""Instruction mix of the int8 decode-attention kernels' column loop for an H100/H200 (sm_90), compiled here
without a GPU.

Triton compiles ahead of time with its bundled ptxas and nvdisasm, so kernel variants can be compared between
GPU sessions.  For the loop body (the instructions between the backward branch and its target) it counts
instructions per K/V element, int-to-float conversions (I2F: 16 lanes per SM per clock), shuffles and
barriers, and estimates elements per clock per SM as the tightest of issue (one instruction per clock per
sub-partition) and the pipes (FP32 128, integer 64, conversion 16, shuffle 32 lanes per clock).  At 1.98 GHz
on 132 SMs, 18 elements per clock per SM is the H200's 4.8 TB/s.  Pointers and large strides are declared
16-divisible, as Triton's launcher specialises them on the GPU.  A model, not a measurement: the figures
that count come from bench/profile_int8_attention.py.
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

# lanes per SM per clock on sm_90, by pipe
PIPE_LANES = {"conversion": 16, "shuffle": 32, "fp32": 128, "integer": 64}
PIPE_OF = {"I2F": "conversion", "I2FP": "conversion", "F2I": "conversion", "F2F": "conversion",
           "SHFL": "shuffle", "FADD": "fp32", "FMUL": "fp32", "FFMA": "fp32",
           **{op: "integer" for op in ("IADD3", "LOP3", "SHF", "PRMT", "IMAD", "MOV", "ISETP", "SEL", "LEA", "FMNMX",
                                       "FSETP", "FSEL")}}


def compile_variant(variant: str, block: int, warps: int, head_dim: int = 128) -> dict:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from model_adapters import kv_int8_kernels as kk

    fn = {"bytes": kk.decode_attn, "imma": kk.decode_attn_imma}[variant]
    ptrs = {"Q": "*bf16", "K": "*i8", "KS": "*fp32", "V": "*i8", "VS": "*fp32", "MASK": "*u8", "O": "*bf16"}
    consts = {"H": 32, "D": head_dim, "BLOCK_N": block}
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
    labels, instrs, pending = {}, [], []
    for line in sass.splitlines():
        m = re.match(r"\s*(\.L_x_\d+):", line)
        if m:
            pending.append(m.group(1))
            continue
        m = re.search(r"/\*([0-9a-f]{4})\*/\s+(.*)", line)
        if m:
            addr = int(m.group(1), 16)
            labels.update({name: addr for name in pending})
            pending = []
            instrs.append((addr, m.group(2).strip()))
    loop = None
    for addr, text in instrs:
        m = re.search(r"BRA\s+`?\(?(\.L_x_\d+)", text)
        if m and labels.get(m.group(1), 1 << 30) < addr:
            loop = (labels[m.group(1)], addr)
    if loop is None:
        return {"variant": variant, "block": block, "warps": warps, "error": "no loop found"}
    ops: collections.Counter = collections.Counter()
    for addr, text in instrs:
        m = re.match(r"(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]+)", text)
        if m and loop[0] <= addr <= loop[1]:
            ops[m.group(1)] += 1
    per_thread = block * head_dim * 2 / (32 * warps)  # K and V elements per thread per loop iteration
    cycles = collections.Counter({"issue": sum(ops.values())})  # per warp on one sub-partition
    for op, n in ops.items():
        if op in PIPE_OF:
            cycles[PIPE_OF[op]] += n * 128 / PIPE_LANES[PIPE_OF[op]]
    bound, worst = cycles.most_common(1)[0]
    loads = sorted(set(re.findall(r"ld\.global(?:\.[a-z0-9]+)*", kernel.asm["ptx"])))
    return {"variant": variant, "block": block, "warps": warps, "loop_instructions": sum(ops.values()),
            "instructions_per_element": round(sum(ops.values()) / per_thread, 2),
            "I2F": ops["I2F"] + ops["I2FP"], "SHFL": ops["SHFL"], "BAR": ops["BAR"],
            "est_elements_per_clock_per_sm": round(4 * 32 * per_thread / worst, 1), "bound": bound,
            "global_load_forms": loads}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", default="16,32,64")
    ap.add_argument("--warps", default="1,2,4")
    a = ap.parse_args(argv)
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    for variant in ("bytes", "imma"):
        for block in map(int, a.blocks.split(",")):
            if variant == "imma" and block < 32:
                continue
            for warps in map(int, a.warps.split(",")):
                print(json.dumps(compile_variant(variant, block, warps)), flush=True)


if __name__ == "__main__":
    main()
