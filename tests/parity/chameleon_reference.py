"""Reference outputs of Meta's own Chameleon inference code on a tiny random checkpoint in Meta's release layout,
and the official transformers conversion of that checkpoint.

Not a pytest test: it writes tests/data/chameleon_reference.json, which tests/test_chameleon_reference.py holds
our ``chameleon`` adapter against (run on the converted checkpoint, as users load facebook/chameleon-7b).

Stages (three Python environments):

1. (the project's) ``write_meta_checkpoint(DIR, seed=SEED)`` (tests/unitoken_eval_testkit/chameleon_meta.py):
   models/7b/{params.json, consolidate_params.json, consolidated.pth}, tokenizer/{text_tokenizer.json,
   vqgan.yaml, vqgan.ckpt}.
2. (``--meta-python``: transformers 4.4x, which Meta's code imports logits processors from) Meta's code from a
   checkout of github.com/facebookresearch/chameleon (``--upstream``), copied to a temporary directory and patched
   there by the string replacements in :data:`PATCHES`; ``xformers`` (CUDA/Triton kernels) is replaced by
   tests/parity/xformers_cpu_shim.py.  ``ChameleonInferenceModel`` itself is not used: it starts NCCL worker
   processes on CUDA; the reference runs what its worker does for one request, in process:
   ``loader.load_model(models/7b)``, ``TokenManager(..., device="cpu")``, ``tokens_from_ui(...)`` and
   ``Generator(model, vocab, Options(...), [ids])``.  Understanding: ``Options(txt=Options.Text(greedy=True))``
   (Meta's argmax selector; its default repetition penalty 1.2, temperature and top-p stay).  Image generation:
   ``Options(txt=False, img=Options.Image(greedy=True))`` (argmax; Meta's default instruct-CFG, text 3.0 and
   image 1.2), then ``TokenManager.decode_image``.
3. (``--convert-python``: transformers 4.46.3, the last release whose wheel ships a working
   ``convert_chameleon_weights_to_hf.py``; 4.44/4.45's import a class that does not exist) the official
   conversion, unmodified: ``python -m transformers.models.chameleon.convert_chameleon_weights_to_hf
   --input_dir DIR --model_size 7B --output_dir HF``.  The fixture keeps per-tensor hashes of its
   model.safetensors, its config.json (the vocabulary map as a hash) and the converted tokenizer's ids for
   every prompt text.

  PYTHONPATH=.. python tests/parity/chameleon_reference.py --upstream /tmp/chameleon \\
      --meta-python /work/venvs/lumina-upstream/bin/python --convert-python /work/venvs/chameleon-convert/bin/python
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 5
PIXEL_STRIDE = 8

PATCHES = [  # (file under the checkout, old, new, occurrences): dtype, device, CUDA graphs
    ("chameleon/inference/loader.py", "torch.set_default_dtype(torch.bfloat16)",
     "torch.set_default_dtype(torch.float32)", 1),
    ("chameleon/inference/transformer.py", "dtype=torch.bfloat16,", "dtype=torch.float32,", 2),
    ("chameleon/inference/model_adapter.py", 'device="cuda"', 'device="cpu"', 1),
    ("chameleon/inference/model_adapter.py", "self._forward = cudagraph_wrap(self._model.forward_with_attn_bias)",
     "self._forward = self._model.forward_with_attn_bias", 1),
]

# Understanding: (name, image (w, h) or None, prompt_ui pattern, max_gen_len); "IMG" marks the image's place
UNDERSTAND = [
    ("image_then_question", (512, 512), ["IMG", "What do you see?", "<END-OF-TURN>"], 12),
    ("wide_image_640x400", (640, 400), ["IMG", "Describe this picture.", "<END-OF-TURN>"], 12),
    ("text_image_text", (400, 600), ["Look at this:", "IMG", "What colour is it?", "<END-OF-TURN>"], 12),
    ("text_only", None, ["Write a haiku about rain.", "<END-OF-TURN>"], 12),
]
GENERATE = [("red_bus", "A red bus.")]


def sample_image(w: int, h: int, seed: int):
    import numpy as np
    from PIL import Image

    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    base = np.stack([np.sin(6 * xx + seed), np.cos(5 * yy - seed), np.sin(4 * (xx + yy))], -1) * 0.5 + 0.5
    return Image.fromarray(np.clip(base * 200 + rng.rand(h, w, 3) * 55, 0, 255).astype("uint8"), "RGB")


def strided_b64(px) -> str:
    import numpy as np

    return base64.b64encode(np.ascontiguousarray(px[::PIXEL_STRIDE, ::PIXEL_STRIDE]).tobytes()).decode()


def texts_of(case) -> list[str]:
    return [p for p in case[2] if p not in ("IMG", "<END-OF-TURN>")]


# ----------------------------------------------------------------------------- stage 2 (Meta's code)
def run_meta(upstream: Path, root: Path, out: Path) -> None:
    import numpy as np
    import torch

    work = Path(tempfile.mkdtemp(prefix="chameleon-upstream-"))
    shutil.copytree(upstream / "chameleon", work / "chameleon")
    for rel, old, new, count in PATCHES:
        f = work / rel
        text = f.read_text(encoding="utf-8")
        if text.count(old) != count:
            raise SystemExit(f"patch {rel}: {old!r} occurs {text.count(old)} times, expected {count}")
        f.write_text(text.replace(old, new), encoding="utf-8")
    sys.path[:0] = [str(HERE), str(work)]
    import xformers_cpu_shim

    xformers_cpu_shim.install()
    from chameleon.inference import loader
    from chameleon.inference.chameleon import Generator, Options, TokenManager

    model = loader.load_model(str(root / "models" / "7b"))
    tm = TokenManager(tokenizer_path=str(root / "tokenizer" / "text_tokenizer.json"),
                      vqgan_cfg_path=str(root / "tokenizer" / "vqgan.yaml"),
                      vqgan_ckpt_path=str(root / "tokenizer" / "vqgan.ckpt"), device="cpu")
    result = {"understand": [], "generate": []}
    for i, (name, size, pattern, max_len) in enumerate(UNDERSTAND):
        ui = []
        for part in pattern:
            if part == "IMG":
                ui.append({"type": "image", "value": sample_image(*size, seed=i)})
            elif part == "<END-OF-TURN>":
                ui.append({"type": "sentinel", "value": part})
            else:
                ui.append({"type": "text", "value": part})
        ids = tm.tokens_from_ui(ui)
        opts = Options(txt=Options.Text(greedy=True), max_gen_len=max_len)
        toks = [int(t.id[0]) for t in Generator(model=model, vocab=tm.vocab, options=opts, input_ids=[list(ids)])]
        if toks and toks[-1] == tm.vocab.eos_id:
            toks = toks[:-1]
        result["understand"].append({"name": name, "image_size": size, "pattern": pattern,
                                     "max_new_tokens": max_len, "prompt_ids": ids, "token_ids": toks})
        print(name, toks, flush=True)
    for name, prompt in GENERATE:
        ids = tm.tokens_from_ui([{"type": "text", "value": prompt}])
        opts = Options(txt=False, img=Options.Image(greedy=True))
        toks = [int(t.id[0]) for t in Generator(model=model, vocab=tm.vocab, options=opts, input_ids=[list(ids)])]
        img = tm.decode_image(torch.tensor([toks]))[0]
        px = np.asarray(img.convert("RGB"))
        result["generate"].append({"name": name, "prompt": prompt, "prompt_ids": ids, "token_ids": toks,
                                   "cfg_text": opts.img.cfg.guidance_scale_text,
                                   "cfg_image": opts.img.cfg.guidance_scale_image,
                                   "image_size": list(img.size),
                                   "pixels_sha256": hashlib.sha256(px.tobytes()).hexdigest(),
                                   "pixels_strided_b64": strided_b64(px)})
        print(name, len(toks), toks[:8], flush=True)
    import transformers

    result["environment_meta"] = {"torch": torch.__version__, "transformers": transformers.__version__}
    out.write_text(json.dumps(result))


# ----------------------------------------------------------------------------- stage 1
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", required=True, type=Path, help="checkout of facebookresearch/chameleon")
    ap.add_argument("--meta-python", default=sys.executable)
    ap.add_argument("--convert-python", default=sys.executable)
    ap.add_argument("--commit", default="")
    ap.add_argument("--out", type=Path, default=HERE.parent / "data" / "chameleon_reference.json")
    ap.add_argument("--stage2", nargs=2, metavar=("ROOT", "RAW"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.stage2:
        run_meta(a.upstream.resolve(), Path(a.stage2[0]), Path(a.stage2[1]))
        return
    sys.path.insert(0, str(HERE.parent))
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    from unitoken_eval_testkit.chameleon_meta import meta_state, tensor_hashes, write_meta_checkpoint

    tmp = Path(tempfile.mkdtemp(prefix="chameleon-ref-"))
    root = write_meta_checkpoint(tmp / "data", seed=SEED)
    raw = tmp / "raw.json"
    env = dict(os.environ, PYTHONPATH="")
    subprocess.run([a.meta_python, str(Path(__file__).resolve()), "--upstream", str(a.upstream.resolve()),
                    "--stage2", str(root), str(raw)], check=True, env=env)
    hf = tmp / "hf"
    conv_root = tmp / "conv"  # the converter writes text_tokenizer_modified.json into its input: a copy
    shutil.copytree(root, conv_root)
    conv = subprocess.run([a.convert_python, "-m", "transformers.models.chameleon.convert_chameleon_weights_to_hf",
                           "--input_dir", str(conv_root), "--model_size", "7B", "--output_dir", str(hf)],
                          env=env, capture_output=True, text=True)
    # After writing the checkpoint the script loads it back and runs a smoke generation on an image it
    # downloads from uploads4.wikiart.org; without network that last step raises.  Accepted only in that case.
    if conv.returncode != 0:
        offline = "uploads4.wikiart.org" in conv.stderr and "ConnectionError" in conv.stderr
        if not (offline and (hf / "config.json").is_file() and list(hf.glob("*.safetensors"))):
            sys.stderr.write(conv.stdout + conv.stderr)
            raise SystemExit("the official conversion failed")
        print("conversion written; its trailing online smoke test could not download its image (no network)")
    state = {}
    for f in sorted(hf.glob("*.safetensors")):
        state.update(load_file(str(f)))
    config = json.loads((hf / "config.json").read_text())
    vocab = config.pop("vocabulary_map")
    tok = Tokenizer.from_file(str(hf / "tokenizer.json"))
    doc = json.loads(raw.read_text())
    encodings = {t: tok.encode(t, add_special_tokens=False).ids
                 for case in UNDERSTAND + [(n, None, [p]) for n, p in GENERATE] for t in texts_of(case)}
    vconv = subprocess.run([a.convert_python, "-c", "import transformers; print(transformers.__version__)"],
                           check=True, capture_output=True, text=True, env=env).stdout.strip()
    doc = {"upstream": "github.com/facebookresearch/chameleon", "commit": a.commit, "seed": SEED,
           "meta_checkpoint_tensors_sha256": tensor_hashes(meta_state(SEED)),
           "patches": [{"file": f, "old": o, "new": n, "count": c} for f, o, n, c in PATCHES],
           "pixel_stride": PIXEL_STRIDE,
           "converted": {"transformers": vconv, "files": sorted(p.name for p in hf.iterdir()),
                         "tensors_sha256": tensor_hashes(state), "config": config,
                         "vocabulary_map_sha256":
                             hashlib.sha256(json.dumps(vocab, sort_keys=True).encode()).hexdigest(),
                         "encodings": encodings,
                         "image_token_id": vocab.get("<image>")},
           **doc}
    a.out.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(a.out, a.out.stat().st_size, "bytes")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
