"""Janus-Pro reference outputs from DeepSeek's own inference code, for ``tests/test_janus_deepseek_parity.py``.

Writes ``tests/data/janus_pro_deepseek_reference.json`` (token ids, image codes, a pixel digest) and
``tests/data/janus_pro_tiny_deepseek_keys.json.gz`` (the tensor names/shapes of DeepSeek's model).  Nothing of
DeepSeek's or transformers' code is copied here: their files are run from checkouts outside this repository.

Run from the repository root with the project's venv (stages that need other environments are subprocesses)::

    python tests/parity/janus_reference.py \\
        --janus-repo /path/to/deepseek-ai/Janus            # a checkout (commit recorded in the fixture)
        --converter /path/to/convert_janus_weights_to_hf.py  # transformers' official conversion script
        --converter-origin "huggingface/transformers@<commit>:src/transformers/models/janus/..."
        --deepseek-python /venvs/deepseek/bin/python      # torch + torchvision + transformers 4.48 + attrdict3, einops, timm
        --convert-python /venvs/hfconv/bin/python         # torch + the project's transformers + accelerate
        [--work /tmp/janus-ref]

Stages:

1. ``keys`` (DeepSeek env): instantiate DeepSeek's ``MultiModalityCausalLM`` from the tiny original config and
   list its state dict (names, shapes).
2. (project env) write the tiny checkpoint in DeepSeek's layout (``unitoken_eval_testkit.janus_deepseek_tiny``)
   and the reference images.
3. ``deepseek`` (DeepSeek env): run the Janus-Pro "Multimodal Understanding" and "Text-to-Image Generation"
   code of DeepSeek's README (the Janus-Pro versions of ``inference.py`` / ``generation_inference.py``) with
   only the textual patches in ``UNDERSTANDING_PATCHES`` / ``GENERATION_PATCHES`` (each must match exactly as
   many times as stated), plus two observation hooks that record what their code computes without changing it.
4. (convert env) run transformers' ``convert_janus_weights_to_hf.py`` unmodified on the original checkpoint.
5. (project env) fingerprint the converted checkpoint and check that ``write_converted`` (what the tests rebuild)
   writes the same tensors and config; record everything in the fixture.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]

README_PRO_SECTION = "<summary><h3>Janus-Pro</h3></summary>"
README_PROMPT = "A stunning princess from kabul in red, white traditional clothing, blue eyes, brown hair"

# (old, new, count, why): applied to the README's Janus-Pro understanding code
UNDERSTANDING_PATCHES = [
    ('model_path = "deepseek-ai/Janus-Pro-7B"', "model_path = JANUS_TINY_CHECKPOINT", 1,
     "checkpoint: the tiny random checkpoint instead of the hub id"),
    ("vl_gpt = vl_gpt.to(torch.bfloat16).cuda().eval()", "vl_gpt = vl_gpt.to(torch.float32).eval()", 1,
     "device and dtype: CPU, float32"),
    (").to(vl_gpt.device)", ").to(vl_gpt.device, dtype=torch.float32)", 1,
     "dtype: BatchedVLChatProcessorOutput.to() casts pixel values to bfloat16 unless told otherwise"),
]
# applied to the README's Janus-Pro text-to-image code
GENERATION_PATCHES = [
    ('model_path = "deepseek-ai/Janus-Pro-7B"', "model_path = JANUS_TINY_CHECKPOINT", 1,
     "checkpoint: the tiny random checkpoint instead of the hub id"),
    ("vl_gpt = vl_gpt.to(torch.bfloat16).cuda().eval()", "vl_gpt = vl_gpt.to(torch.float32).eval()", 1,
     "device and dtype: CPU, float32"),
    ("dtype=torch.int).cuda()", "dtype=torch.int)", 2, "device: CPU"),
    ("next_token = torch.multinomial(probs, num_samples=1)",
     "next_token = torch.argmax(probs, dim=-1, keepdim=True)", 1, "sampling: argmax instead of multinomial"),
    ("parallel_size: int = 16,", "parallel_size: int = 1,", 1,
     "size: one image per prompt (argmax makes the 16 parallel samples identical)"),
    (f'"{README_PROMPT}"', "JANUS_PROMPT", 1, "input: the case's prompt (the README's own prompt is case 0)"),
]
# applied to transformers' convert_janus_weights_to_hf.py for the second conversion only
CONVERTER_PATCHES = [
    ('image_token_id=tokenizer.vocab.get("<image_placeholder>"),\n    )',
     'image_token_id=tokenizer.vocab.get("<image_placeholder>"),\n        tie_word_embeddings=False,\n    )', 1,
     "keep DeepSeek's separate lm_head: unpatched, JanusConfig ties the output layer to the input embeddings "
     "and the saved model has no lm_head"),
]
OBSERVATION_HOOKS = [
    "janus.models.vq_model.VQModel.decode_code wrapped to record the image codes it receives",
    "PIL.Image.fromarray wrapped to record the uint8 image the script saves (the JPEG itself is lossy)",
]


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def readme_block(readme: str, heading: str) -> str:
    """The first ```python block after ``heading`` within the README's Janus-Pro section."""
    section = readme[readme.index(README_PRO_SECTION):]
    after = section[section.index(heading):]
    m = re.search(r"```python\n(.*?)```", after, re.S)
    return m.group(1)


def patched(code: str, patches) -> str:
    for old, new, count, _ in patches:
        n = code.count(old)
        if n != count:
            raise SystemExit(f"patch {old!r}: expected {count} occurrence(s), found {n}")
        code = code.replace(old, new)
    return code


# ------------------------------------------------------------------ stage 1 (DeepSeek env)
def stage_keys(args):
    import gzip

    sys.path.insert(0, args.janus_repo)
    from janus.models import MultiModalityCausalLM
    from janus.models.modeling_vlm import MultiModalityConfig

    model = MultiModalityCausalLM(MultiModalityConfig(**json.loads(Path(args.config).read_text())))
    spec = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    Path(args.out).write_bytes(gzip.compress(json.dumps(spec, separators=(",", ":")).encode(), mtime=0))
    print(f"{len(spec)} tensors")


# ------------------------------------------------------------------ stage 3 (DeepSeek env)
def stage_deepseek(args):
    import numpy as np
    import PIL.Image

    sys.path.insert(0, args.janus_repo)
    import janus.models.vq_model as vq_model

    cases = json.loads(Path(args.cases).read_text())
    readme = (Path(args.janus_repo) / "README.md").read_text()
    und_code = patched(readme_block(readme, "#### Multimodal Understanding"), UNDERSTANDING_PATCHES)
    gen_code = patched(readme_block(readme, "#### Text-to-Image Generation"), GENERATION_PATCHES)

    seen = {"codes": [], "images": []}
    decode_code, fromarray = vq_model.VQModel.decode_code, PIL.Image.fromarray

    def recording_decode_code(self, code_b, *a, **k):
        seen["codes"].append(code_b.tolist())
        return decode_code(self, code_b, *a, **k)

    def recording_fromarray(obj, *a, **k):
        seen["images"].append(np.array(obj, copy=True))
        return fromarray(obj, *a, **k)

    vq_model.VQModel.decode_code = recording_decode_code
    PIL.Image.fromarray = recording_fromarray

    out = {"understanding": [], "generation": []}
    for case in cases["understanding"]:
        ns = {"__name__": "__main__", "JANUS_TINY_CHECKPOINT": args.ckpt,
              "question": case["question"], "image": case["image_path"]}
        exec(compile(und_code, "README.md:Janus-Pro:understanding", "exec"), ns)
        out["understanding"].append({
            "sft_format": ns["prepare_inputs"]["sft_format"][0],
            "input_ids": ns["prepare_inputs"].input_ids[0].tolist(),
            "output_ids": ns["outputs"][0].tolist(),
            "answer": ns["answer"],
        })
    cwd = os.getcwd()
    for i, prompt in enumerate(cases["generation"]):
        work = Path(args.work) / f"deepseek_gen_{i}"
        work.mkdir(parents=True, exist_ok=True)
        os.chdir(work)
        seen["codes"].clear(), seen["images"].clear()
        ns = {"__name__": "__main__", "JANUS_TINY_CHECKPOINT": args.ckpt, "JANUS_PROMPT": prompt}
        try:
            exec(compile(gen_code, "README.md:Janus-Pro:generation", "exec"), ns)
        finally:
            os.chdir(cwd)
        (codes,), (img,) = seen["codes"], seen["images"]
        np.save(work / "image.npy", img)
        out["generation"].append({"prompt": prompt, "prompt_text": ns["prompt"],
                                  "prompt_ids": ns["vl_chat_processor"].tokenizer.encode(ns["prompt"]),
                                  "image_tokens": codes[0], "image_npy": str(work / "image.npy")})
    Path(args.out).write_text(json.dumps(out))


# ------------------------------------------------------------------ driver (project env)
def dump_json(obj) -> str:
    """Indented JSON with lists of numbers kept on one line."""
    text = json.dumps(obj, indent=1, ensure_ascii=False)
    return re.sub(r"\[[-\d,\s]+\]", lambda m: re.sub(r"\s+", "", m.group(0)), text) + "\n"


def git_head(repo: str) -> str:
    return subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def pip_versions(python: str, names) -> dict:
    code = ("import importlib.metadata as m, json, sys; "
            f"print(json.dumps({{n: m.version(n) for n in {list(names)!r}}}))")
    return json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout)


def main_driver(args):
    sys.path.insert(0, str(REPO / "tests"))
    import numpy as np

    from unitoken_eval_testkit import janus_deepseek_tiny as tiny

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

    cfg = work / "original_config.json"
    cfg.write_text(json.dumps(tiny.original_config()))
    subprocess.run([args.deepseek_python, str(HERE), "keys", "--janus-repo", args.janus_repo,
                    "--config", str(cfg), "--out", str(tiny.KEYS_FILE)], check=True, env=env)

    original = tiny.write_original(work / "original", seed=tiny.SEED)
    cases = tiny.reference_cases(work / "images")
    cases["generation"] = [README_PROMPT, "a red apple on a wooden table"]
    (work / "cases.json").write_text(json.dumps(cases))
    subprocess.run([args.deepseek_python, str(HERE), "deepseek", "--janus-repo", args.janus_repo,
                    "--ckpt", str(original), "--cases", str(work / "cases.json"), "--work", str(work),
                    "--out", str(work / "deepseek.json")], check=True, env=env)
    ref = json.loads((work / "deepseek.json").read_text())

    # transformers' conversion script, unmodified; then with the one patch that keeps DeepSeek's lm_head
    converter_src = Path(args.converter).read_text()
    patched_converter = work / "convert_janus_weights_to_hf_keep_lm_head.py"
    patched_converter.write_text(patched(converter_src, CONVERTER_PATCHES))
    fingerprints = {}
    for label, script, keep in (("official", args.converter, False), ("keep_lm_head", str(patched_converter), True)):
        out = work / f"converted_{label}"
        subprocess.run([args.convert_python, script, "--repo_id", "deepseek-ai/Janus-Pro-1B", "--local_dir",
                        str(original), "--output_dir", str(out), "--safe_serialization"], check=True, env=env)
        if label == "official":
            tiny.CONVERTED_FILES_DIR.mkdir(parents=True, exist_ok=True)
            for name in tiny.CONVERTED_FILES:
                shutil.copyfile(out / name, tiny.CONVERTED_FILES_DIR / name)
        theirs = tiny.converted_fingerprint(out)
        shutil.rmtree(out)
        ours_dir = tiny.write_converted(work / f"ours_{label}", seed=tiny.SEED, keep_lm_head=keep)
        mine = tiny.converted_fingerprint(ours_dir)
        shutil.rmtree(ours_dir)
        if theirs != mine:
            raise SystemExit(f"write_converted(keep_lm_head={keep}) differs from the conversion script's output:\n"
                             f"{json.dumps(theirs)[:3000]}\n{json.dumps(mine)[:3000]}")
        fingerprints[label] = theirs

    generation = []
    for g in ref["generation"]:
        img = np.load(g.pop("image_npy"))
        generation.append({**g, "pixels": tiny.pixel_digest(img)})
    fixture = {
        "about": "Janus-Pro tiny random checkpoint (tests/unitoken_eval_testkit/janus_deepseek_tiny.py, seed "
                 f"{tiny.SEED}) run through DeepSeek's README Janus-Pro code; written by tests/parity/janus_reference.py",
        "deepseek_janus_commit": git_head(args.janus_repo),
        "converter": {"origin": args.converter_origin, "sha256": sha256_bytes(Path(args.converter).read_bytes())},
        "deepseek_env": pip_versions(args.deepseek_python, ["torch", "torchvision", "transformers", "timm"]),
        "convert_env": pip_versions(args.convert_python, ["torch", "transformers", "accelerate"]),
        "patches": {
            "understanding": [{"old": o, "new": n, "count": c, "why": w} for o, n, c, w in UNDERSTANDING_PATCHES],
            "generation": [{"old": o, "new": n, "count": c, "why": w} for o, n, c, w in GENERATION_PATCHES],
            "observation_hooks": OBSERVATION_HOOKS,
            "converter_keep_lm_head": [{"old": o, "new": n, "count": c, "why": w} for o, n, c, w in CONVERTER_PATCHES],
        },
        "original_state_dict_sha256": tiny.state_dict_digest(tiny.original_state_dict(tiny.SEED)),
        "converted": fingerprints,
        "understanding": [{**{k: v for k, v in c.items() if k != "image_path"}, **r}
                          for c, r in zip(cases["understanding"], ref["understanding"])],
        "generation": generation,
    }
    tiny.REFERENCE_FILE.write_text(dump_json(fixture))
    print(f"wrote {tiny.REFERENCE_FILE} ({tiny.REFERENCE_FILE.stat().st_size} bytes)")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="stage")
    k = sub.add_parser("keys")
    k.add_argument("--janus-repo", required=True)
    k.add_argument("--config", required=True)
    k.add_argument("--out", required=True)
    d = sub.add_parser("deepseek")
    for a in ("--janus-repo", "--ckpt", "--cases", "--work", "--out"):
        d.add_argument(a, required=True)
    for a in ("--janus-repo", "--converter", "--deepseek-python", "--convert-python"):
        ap.add_argument(a)
    ap.add_argument("--converter-origin", default="",
                    help="where --converter came from (repository, commit, path), recorded in the fixture")
    ap.add_argument("--work", default="/tmp/janus-ref")
    args = ap.parse_args()
    if args.stage == "keys":
        stage_keys(args)
    elif args.stage == "deepseek":
        stage_deepseek(args)
    else:
        main_driver(args)


if __name__ == "__main__":
    main()
