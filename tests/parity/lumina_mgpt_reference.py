"""Reference outputs of Lumina-mGPT's own inference code on a tiny random checkpoint in its release layout.

Not a pytest test: it writes tests/data/lumina_mgpt_reference.json, which tests/test_lumina_mgpt_reference.py
holds our ``lumina_mgpt`` adapter against.

Two stages, two Python environments:

1. (this environment, the project's) the tiny checkpoint: ``write_tiny_release(DIR/Lumina-mGPT-7B-512, seed=SEED,
   vision=False)``, i.e. the release layout (config.json with ``vocabulary_map``, safetensors shards with an
   index, tokenizer.json) plus Meta's VQ-GAN (vqgan.yaml / vqgan.ckpt).  The test rewrites it from the same seed
   and checks the file hashes recorded here.
2. (``--upstream-python``, an environment with the transformers the release needs: its vendored
   ``model/chameleon/modeling_chameleon.py`` imports transformers 4.4x internals) the authors' code, from a
   checkout of github.com/Alpha-VLLM/Lumina-mGPT given as ``--upstream``, copied to a temporary directory,
   patched there by the exact string replacements in :data:`PATCHES` (each must match as often as stated) and
   run: ``FlexARInferenceSolver(model_path, precision="fp32", target_size=512)``, ``solver.generate(...)``
   with ``solver.create_logits_processor(cfg=..., image_top_k=1, text_top_k=1)`` (top-1 = argmax: the only
   finite logit is drawn with probability 1; no change to their sampling code).  The solver reads Meta's
   tokenizer files from ``./ckpts/chameleon/tokenizer/`` (a relative path): the run's working directory has
   that folder with the tiny checkpoint's ``tokenizer.json`` as ``text_tokenizer.json`` and its VQ-GAN files.

Image generation: the release lets the model emit BOI and the two size tokens after the prompt (a trained model
does); a random one emits arbitrary text instead.  The reference run puts one logits processor of ours first in
the authors' list, forcing the first three generated tokens to BOI, ``<reserved08816>``, ``<reserved08816>``
(512x512) -- what our adapter forces.  The authors' CFG, candidate and top-k processors run unchanged after it
(they start guiding at the first image token, as in the release).

One more case runs the authors' code with nothing forced, on a second checkpoint that emits BOI and the size
tokens by itself after its prompt, as a trained model does (:func:`write_emitting_checkpoint`: the random
checkpoint of seed FREE_SEED with the ``lm_head`` rows of BOI and ``<reserved08816>`` replaced, so that their
logits are far above every other at exactly those three positions; image-token logits, which CFG and sampling
use, are untouched): our adapter, forcing them, must give the same stream and pixels.  The authors' solver
for it reads the same ./ckpts/chameleon/tokenizer folder (the first checkpoint's VQ-GAN and tokenizer; the text
tokenizer is the same file in both), so the test gives our adapter ``vqgan=`` the first checkpoint's VQ-GAN.

  mkdir /tmp/lm && git --git-dir=MIRROR/Alpha-VLLM+Lumina-mGPT archive HEAD | tar -x -C /tmp/lm
  python -m venv ... ; pip install transformers==4.44.2 tokenizers==0.19.1 huggingface_hub==0.24.7 (+ torch, pyyaml)
  PYTHONPATH=.. python tests/parity/lumina_mgpt_reference.py --upstream /tmp/lm \\
      --upstream-python /work/venvs/lumina-upstream/bin/python --out tests/data/lumina_mgpt_reference.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SEED = 11
RESOLUTION = 512
CKPT_NAME = f"Lumina-mGPT-7B-{RESOLUTION}"
PIXEL_STRIDE = 8  # the fixture keeps every 8th row and column of each decoded image (and the full image's hash)

# (file under the checkout, old, new, how many times old occurs): device and loading only.
PATCHES = [
    ("lumina_mgpt/inference_solver.py", 'device_map="cuda"', 'device_map="cpu"', 1),
    # the release's default tokenizer is the Hub id Alpha-VLLM/Lumina-mGPT-7B-768 (the checkpoints' own
    # tokenizer); no network here, so the checkpoint directory is passed
    ("lumina_mgpt/inference_solver.py", "FlexARItemProcessor(target_size=target_size)",
     "FlexARItemProcessor(tokenizer=model_path, target_size=target_size)", 1),
    ("lumina_mgpt/inference_solver.py", 'device="cuda"', 'device="cpu"', 4),  # MultiModalLogitsProcessor masks
    ("lumina_mgpt/data/item_processor.py", 'device="cuda"', 'device="cpu"', 2),  # VQ-GAN, vocabulary translation
    ("lumina_mgpt/data/item_processor.py", "torch.tensor(tokens, dtype=torch.int64).cuda()",
     "torch.tensor(tokens, dtype=torch.int64).cpu()", 1),
]

# Understanding cases: (name, image size or None, question, max_gen_len)
UNDERSTAND = [
    ("square_image_first", (512, 512), "Describe the image in detail.", 12),
    ("square_image_after_text", (512, 512), "Describe the image in detail. <|image|>", 12),
    ("wide_640x384", (640, 384), "What is in the picture?", 12),
    ("text_only", None, "Write a haiku about rain.", 12),
]
# Generation cases: (name, prompt, cfg)
GENERATE = [
    ("red_bus_cfg4", "A red double-decker bus on a rainy street.", 4.0),
    ("cat_cfg3", "a cat", 3.0),
]


def sample_image(w: int, h: int, seed: int):
    import numpy as np
    from PIL import Image

    rng = np.random.RandomState(seed)
    # smooth colour fields plus noise: a random VQ-GAN then gives varied codes
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    base = np.stack([np.sin(6 * xx + seed), np.cos(5 * yy - seed), np.sin(4 * (xx + yy))], -1) * 0.5 + 0.5
    arr = np.clip(base * 200 + rng.rand(h, w, 3) * 55, 0, 255).astype("uint8")
    return Image.fromarray(arr, "RGB")


def strided_b64(px) -> str:
    """Every PIXEL_STRIDE-th row and column of an [H, W, 3] uint8 image, as base64 of the raw bytes."""
    import base64

    import numpy as np

    return base64.b64encode(np.ascontiguousarray(px[::PIXEL_STRIDE, ::PIXEL_STRIDE]).tobytes()).decode()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def checkpoint_hashes(ckpt: Path) -> dict[str, str]:
    files = sorted(p for p in ckpt.rglob("*") if p.is_file())
    return {str(p.relative_to(ckpt)): sha(p) for p in files}


def write_checkpoint(parent: Path) -> Path:
    from unitoken_eval.model_adapters.unitoken.tiny_checkpoint import write_tiny_release

    return write_tiny_release(parent / CKPT_NAME, seed=SEED, vision=False)


FREE_SEED = 12
FREE_CASE = ("free_start_red_bus", "A red double-decker bus on a rainy street.", 4.0)


def write_emitting_checkpoint(parent: Path) -> Path:
    """The random checkpoint of FREE_SEED whose argmax after FREE_CASE's T2I prompt is BOI, then
    ``<reserved08816>`` twice (512x512): the ``lm_head`` rows of those two ids are set (least-norm solution) so
    that their logits are +/-T at the three positions, T ten times the largest logit there."""
    import torch
    from safetensors.torch import load_file, save_file

    from unitoken_eval.harness.types import GenerateRequest
    from unitoken_eval.model_adapters.lumina_mgpt import LuminaMGPTAdapter
    from unitoken_eval.model_adapters.unitoken.tiny_checkpoint import write_tiny_release

    ckpt = write_tiny_release(parent / CKPT_NAME, seed=FREE_SEED, vision=False)
    a = LuminaMGPTAdapter(path=str(ckpt), device="cpu", dtype="float32")
    try:
        prompt = a.t2i_prompt(GenerateRequest("f", FREE_CASE[1]))  # ends with BOI
        boi, size = prompt[-1], a.image_grid().size_token
        with torch.no_grad():
            hs = a.model.llm(input_ids=torch.tensor([prompt + [size]])).last_hidden_state[0].double()
            h = hs[len(prompt) - 2: len(prompt) + 1]  # the states that choose BOI, the first and second size
            t = 10 * float(a.model.lm_head(hs.float()).abs().max())
    finally:
        a.close()
    target = torch.tensor([[t, -t, -t], [-t, t, t]], dtype=torch.float64)  # rows: BOI, size
    rows = target @ torch.linalg.pinv(h.T)  # rows @ h.T = target
    shard = ckpt / "model-00002-of-00002.safetensors"
    state = load_file(str(shard))
    head = state["lm_head.weight"].clone()
    head[boi], head[size] = rows[0].float(), rows[1].float()
    state["lm_head.weight"] = head
    save_file(state, str(shard), metadata={"format": "pt"})
    return ckpt


# ----------------------------------------------------------------------------- stage 2 (upstream environment)
def patched_copy(upstream: Path, dest: Path) -> None:
    for sub in ("lumina_mgpt", "xllmx"):
        shutil.copytree(upstream / sub, dest / sub)
    for rel, old, new, count in PATCHES:
        f = dest / rel
        text = f.read_text(encoding="utf-8")
        if text.count(old) != count:
            raise SystemExit(f"patch {rel}: {old!r} occurs {text.count(old)} times, expected {count}")
        f.write_text(text.replace(old, new), encoding="utf-8")


def run_upstream(upstream: Path, ckpt: Path, out: Path, free_ckpt: Path | None = None) -> None:
    import numpy as np
    import torch

    work = Path(tempfile.mkdtemp(prefix="lumina-upstream-"))
    patched_copy(upstream, work)
    tok_dir = work / "lumina_mgpt" / "ckpts" / "chameleon" / "tokenizer"
    tok_dir.mkdir(parents=True)
    shutil.copy(ckpt / "tokenizer.json", tok_dir / "text_tokenizer.json")
    shutil.copy(ckpt / "vqgan" / "vqgan.yaml", tok_dir / "vqgan.yaml")
    shutil.copy(ckpt / "vqgan" / "vqgan.ckpt", tok_dir / "vqgan.ckpt")
    os.chdir(work / "lumina_mgpt")
    sys.path[:0] = [str(work / "lumina_mgpt"), str(work)]
    torch.manual_seed(0)

    from transformers.generation.logits_process import LogitsProcessor, LogitsProcessorList

    from inference_solver import FlexARInferenceSolver  # noqa: the authors' module

    solver = FlexARInferenceSolver(model_path=str(ckpt), precision="fp32", target_size=RESOLUTION)
    ip = solver.item_processor
    boi = ip.token2id(ip.image_start_token)
    size = ip.token2id(ip.get_n_grids_token(RESOLUTION // 32))

    # what the solver feeds the model: record the prompt ids by wrapping model.generate (observation only)
    seen = {}

    def record(model) -> None:
        inner = model.generate

        def recording_generate(prompt, *a, **kw):
            seen["prompt"] = prompt[0].tolist()
            out = inner(prompt, *a, **kw)
            seen["raw"] = out[0][prompt.shape[1]:].tolist()
            return out

        model.generate = recording_generate

    record(solver.model)
    result = {"understand": [], "generate": [], "boi": boi, "size_token": size}
    for name, size_wh, question, max_len in UNDERSTAND:
        images = [sample_image(*size_wh, seed=len(result["understand"]))] if size_wh else []
        text, new_images = solver.generate(images=images, qas=[[question, None]], max_gen_len=max_len,
                                           temperature=1.0,
                                           logits_processor=solver.create_logits_processor(cfg=4.0, image_top_k=1,
                                                                                           text_top_k=1))
        ids = seen["raw"][:-1] if seen["raw"] and seen["raw"][-1] == 8710 else seen["raw"]
        result["understand"].append({"name": name, "image_size": size_wh, "question": question,
                                     "max_new_tokens": max_len, "prompt_ids": seen["prompt"], "token_ids": ids,
                                     "text": text, "n_new_images": len(new_images)})
        print(name, ids, repr(text), flush=True)

    class ForceImageStart(LogitsProcessor):
        """Ours, first in the list: the first three generated tokens are BOI and the two size tokens."""

        def __init__(self, start: int):
            self.start, self.forced = start, [boi, size, size]

        def __call__(self, input_ids, scores):
            k = input_ids.shape[1] - self.start
            if k < len(self.forced):
                scores = torch.full_like(scores, -float("inf"))
                scores[:, self.forced[k]] = 0.0
            return scores

    n_gen = 3 + (RESOLUTION // 16) * (RESOLUTION // 16 + 1) + 1  # BOI, h, w, rows with newlines, EOI
    for name, prompt, cfg in GENERATE:
        q = f"Generate an image of {RESOLUTION}x{RESOLUTION} according to the following prompt:\n{prompt}"
        prompt_len = len(ip.process_item({"image": [], "conversations": [{"from": "human", "value": q},
                                                                          {"from": "gpt", "value": None}]}))
        procs = LogitsProcessorList([ForceImageStart(prompt_len)])
        procs.extend(solver.create_logits_processor(cfg=cfg, image_top_k=1, text_top_k=1))
        text, images = solver.generate(images=[], qas=[[q, None]], max_gen_len=n_gen, temperature=1.0,
                                       logits_processor=procs)
        assert seen["prompt"].__len__() == prompt_len and len(images) == 1, (len(seen["prompt"]), prompt_len, images)
        px = np.asarray(images[0].convert("RGB"))
        result["generate"].append({"name": name, "prompt": prompt, "cfg": cfg, "prompt_ids": seen["prompt"],
                                   "token_ids": seen["raw"], "image_size": list(images[0].size),
                                   "pixels_sha256": hashlib.sha256(px.tobytes()).hexdigest(),
                                   "pixels_strided_b64": strided_b64(px)})
        print(name, len(seen["raw"]), seen["raw"][:8], flush=True)
    if free_ckpt is not None:
        name, prompt, cfg = FREE_CASE
        solver = FlexARInferenceSolver(model_path=str(free_ckpt), precision="fp32", target_size=RESOLUTION)
        record(solver.model)
        q = f"Generate an image of {RESOLUTION}x{RESOLUTION} according to the following prompt:\n{prompt}"
        text, images = solver.generate(images=[], qas=[[q, None]], max_gen_len=n_gen, temperature=1.0,
                                       logits_processor=solver.create_logits_processor(cfg=cfg, image_top_k=1,
                                                                                        text_top_k=1))
        px = np.asarray(images[0].convert("RGB")) if images else np.zeros((1, 1, 3), dtype=np.uint8)
        result["generate_free"] = [{"name": name, "prompt": prompt, "cfg": cfg, "prompt_ids": seen["prompt"],
                                    "token_ids": seen["raw"], "n_images": len(images),
                                    "image_size": list(images[0].size) if images else None,
                                    "pixels_sha256": hashlib.sha256(px.tobytes()).hexdigest(),
                                    "pixels_strided_b64": strided_b64(px)}]
        print(name, len(seen["raw"]), seen["raw"][:8], flush=True)
    import transformers

    result["environment"] = {"torch": torch.__version__, "transformers": transformers.__version__}
    out.write_text(json.dumps(result))


# ----------------------------------------------------------------------------- stage 1 (this environment)
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", required=True, type=Path, help="checkout of Alpha-VLLM/Lumina-mGPT")
    ap.add_argument("--upstream-python", default=sys.executable)
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).resolve().parents[1] / "data" / "lumina_mgpt_reference.json")
    ap.add_argument("--commit", default="", help="the checkout's commit, recorded in the fixture")
    ap.add_argument("--stage2", nargs=3, metavar=("CKPT", "FREE_CKPT", "RAW"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.stage2:
        run_upstream(a.upstream.resolve(), Path(a.stage2[0]), Path(a.stage2[2]), free_ckpt=Path(a.stage2[1]))
        return
    tmp = Path(tempfile.mkdtemp(prefix="lumina-ref-"))
    ckpt = write_checkpoint(tmp)
    free = write_emitting_checkpoint(tmp / "free")
    raw = tmp / "raw.json"
    subprocess.run([a.upstream_python, str(Path(__file__).resolve()), "--upstream", str(a.upstream.resolve()),
                    "--stage2", str(ckpt), str(free), str(raw)], check=True, env=dict(os.environ, PYTHONPATH=""))
    doc = json.loads(raw.read_text())
    doc = {"upstream": "github.com/Alpha-VLLM/Lumina-mGPT", "commit": a.commit, "seed": SEED,
           "checkpoint_name": CKPT_NAME, "checkpoint_sha256": checkpoint_hashes(ckpt),
           "free_seed": FREE_SEED, "free_checkpoint_sha256": checkpoint_hashes(free),
           "patches": [{"file": f, "old": o, "new": n, "count": c} for f, o, n, c in PATCHES],
           "pixel_stride": PIXEL_STRIDE, **doc}
    a.out.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(a.out, a.out.stat().st_size, "bytes")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
