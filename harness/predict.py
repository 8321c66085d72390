"""``unitoken-eval predict``: one question or one image from a checkpoint, before committing to a full run.

Adapters that implement ``understand_with_tokens`` / ``generate_with_tokens`` (returning the generated token ids
as well) get them reported; the others raise ``TokenIdsUnsupported`` there and the ids are left out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from PIL import Image

from unitoken_eval.harness import registry
from unitoken_eval.harness.exit_codes import ExitCode
from unitoken_eval.harness.types import GenerateRequest, UnderstandRequest
from unitoken_eval.harness.plugin import AdapterError, TokenIdsUnsupported, parse_model_args



def _open_image(path: str) -> Image.Image:
    p = Path(path)
    if not p.is_file():
        raise AdapterError(f"--image {path}: no such file")
    try:
        with Image.open(p) as im:
            im.load()
            return im.copy()
    except OSError as exc:
        raise AdapterError(f"--image {path}: not a readable image ({exc})") from exc


def run_predict(args: argparse.Namespace) -> dict[str, Any]:
    """Build the adapter, answer or draw, and return the JSON-able record."""
    cls = registry.adapter_class(args.model)
    adapter = cls(**parse_model_args(args.model_args))
    try:
        if args.generate:
            if not args.out:
                raise AdapterError("predict --generate needs --out PNG")
            options: dict[str, Any] = {}
            if args.cfg is not None:
                options["cfg"] = args.cfg
            if args.image_top_k is not None:
                options["image_top_k"] = args.image_top_k
            req = GenerateRequest(sample_id="predict", prompt=args.prompt, n_images=1, seed=args.seed, options=options)
            try:
                res = adapter.generate_with_tokens([req])[0]
                image, ids = res["images"][0], res["token_ids"][0]
            except TokenIdsUnsupported:
                image, ids = adapter.generate([req])[0][0], None
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            image.save(out, format="PNG")
            return {"model": args.model, "prompt": args.prompt, "seed": args.seed, "options": options,
                    "image": str(out), "size": list(image.size), "image_token_ids": ids}
        images = [_open_image(args.image)] if args.image else []
        req = UnderstandRequest(sample_id="predict", prompt=args.prompt, images=images,
                                image_key=args.image, max_new_tokens=args.max_new_tokens)
        try:
            res = adapter.understand_with_tokens([req])[0]
            text, ids = res["text"], res["token_ids"]
        except TokenIdsUnsupported:
            text, ids = adapter.understand([req])[0], None
        return {"model": args.model, "prompt": args.prompt, "image": args.image, "text": text,
                "generated_token_ids": ids}
    finally:
        adapter.close()


def predict_command(args: argparse.Namespace) -> int:
    record = run_predict(args)
    if args.format == "json":
        print(record_json(record))
    elif args.generate:
        print(record["image"])
    else:
        print(record["text"])
    return ExitCode.OK


def record_json(record: dict[str, Any]) -> str:
    """Indented JSON whose token-id lists stay on one line each (a generated image is ~1,000 ids)."""
    lists = {k: v for k, v in record.items() if isinstance(v, list) and k.endswith("token_ids")}
    text = json.dumps({k: (f"@{k}@" if k in lists else v) for k, v in record.items()}, ensure_ascii=False, indent=2)
    for k, v in lists.items():
        text = text.replace(json.dumps(f"@{k}@"), json.dumps(v))
    return text
