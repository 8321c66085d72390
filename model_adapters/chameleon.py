"""Chameleon-7B (``facebook/chameleon-7b``, transformers' converted layout) on the Chameleon-family code path.

Understanding only: Meta's release withholds image generation (its image-output logits are masked in
transformers' ``ChameleonForConditionalGeneration.forward`` too).  Inputs follow transformers'
ChameleonProcessor as VLMEvalKit's wrapper uses it: ``"<image>\\n"`` before the question, the image expanded
to ``<racm3:break>`` + 1024 image tokens + ``<eoss>`` (no size or newline tokens), ``<reserved08706>`` appended
(the processor's sep token), BOS first; pixels: shortest edge 512 LANCZOS, centre crop 512, RGBA flattened on
white, ``x * 0.0078 - 1``; the image tokens come from the checkpoint's own ``model.vqmodel`` encoder.
Greedy; stops at ``</s>`` (and 8710); special tokens are dropped from the decoded text.

Model args: ``path=HUB_ID_OR_DIR[,dtype=...][,device=...][,batch_size=N|auto]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from unitoken_eval.harness.types import UnderstandRequest
from unitoken_eval.harness.plugin import AdapterError
from unitoken_eval.model_adapters.chameleon_family.adapter import ChameleonFamilyAdapter
from unitoken_eval.model_adapters.unitoken import configuration as C
from unitoken_eval.model_adapters.unitoken.modeling import UniTokenModel

IMAGE = "<image>"
SIZE = 512
RESCALE = 0.0078  # the processor's rescale_factor (not 1/127.5), mean 1 std 1


def chameleon_pixels(img: Image.Image) -> torch.Tensor:
    """[3, 512, 512] float32, as transformers' PIL Chameleon processor computes them (``ChameleonImageProcessorPil``
    in transformers 5; the torchvision-backed ``ChameleonImageProcessor`` it prefers when torchvision is
    installed resizes differently, by up to 0.016 per value).  PIL's Lanczos is also what Meta's release uses."""
    if img.mode in ("RGBA", "LA", "P"):
        img = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    img = img.convert("RGB")
    w, h = img.size
    if w <= h:
        nw, nh = SIZE, int(SIZE * h / w)
    else:
        nw, nh = int(SIZE * w / h), SIZE
    img = img.resize((nw, nh), resample=Image.LANCZOS)
    top, left = (nh - SIZE) // 2, (nw - SIZE) // 2
    img = img.crop((left, top, left + SIZE, top + SIZE))
    a = np.asarray(img, dtype=np.float32) * np.float32(RESCALE) - np.float32(1.0)
    return torch.from_numpy(a).permute(2, 0, 1).contiguous()


class ChameleonAdapter(ChameleonFamilyAdapter):
    id = "chameleon"
    capabilities = frozenset({"understand"})
    vision = False

    def _check_args(self) -> None:
        if self.args.vqgan or self.args.vision_config:
            raise AdapterError("model chameleon: vqgan= / vision_config= do not apply (its VQ encoder is in the checkpoint)")

    def _resolve_anyres(self) -> bool:
        return False

    def _load_model(self) -> UniTokenModel:
        model = UniTokenModel(self.ckpt, self.device, self.dtype, vision=False, keep_vq=True)
        vm = model.release_config["vocabulary_map"]
        for name in (IMAGE, "<racm3:break>", "<eoss>", "</s>"):
            if name not in vm:
                raise AdapterError(f"{self.ckpt / 'config.json'}: vocabulary_map has no {name!r}")
        self.image_id, self.boi, self.eoi, self.eos = vm[IMAGE], vm["<racm3:break>"], vm["<eoss>"], vm["</s>"]
        return model

    def _load_vq(self):
        return None  # the checkpoint's own ``model.vqmodel`` encodes images (:meth:`image_ids`)

    def generate(self, requests):
        raise AdapterError(f"model {self.id} cannot generate images (Meta's Chameleon release withholds image output)")

    generate_with_tokens = generate

    def fingerprint(self) -> dict[str, Any]:
        idx = self.ckpt / C.INDEX_FILE
        import hashlib

        src = idx if idx.is_file() else self.ckpt / "config.json"
        return {"adapter": self.id, "path": self.args.path, "dtype": str(self.dtype).replace("torch.", ""),
                "weights_index_sha256": hashlib.sha256(src.read_bytes()).hexdigest()[:16]}

    @torch.no_grad()
    def image_ids(self, images: list[Image.Image]) -> list[list[int]]:
        llm = self.model.llm
        px = torch.stack([chameleon_pixels(im) for im in images]).to(self.device, self.dtype)
        codes = llm.vqmodel.encode(px, return_dict=True).image_tokens
        bpe = llm.vocabulary_mapping.convert_img2bpe(codes).view(len(images), -1)
        return bpe.tolist()

    def prompt_parts(self, req: UnderstandRequest):
        if len(req.images) > 1:
            raise AdapterError(f"sample {req.sample_id}: {len(req.images)} images; this adapter takes one per prompt")
        tok = self.model.tokenizer
        text = req.prompt
        if req.images and IMAGE not in text:
            text = IMAGE + "\n" + text
        ids = [tok.bos] + tok.encode(text + "<reserved08706>")
        if not req.images:
            return ids[:1], ids[1:]
        at = [i for i, t in enumerate(ids) if t == self.image_id]
        if len(at) != 1:
            raise AdapterError(f"sample {req.sample_id}: prompt has {len(at)} {IMAGE} symbols, expected one")
        return ids[: at[0]], ids[at[0] + 1:]

    def build_prefixes(self, requests):
        pending, group, suffixes = self.group_prompts(requests)
        imgs = [img for _, img in pending if img is not None]
        blocks = iter(self.image_ids(imgs) if imgs else [])
        prefixes = []
        for before, img in pending:
            ids = before if img is None else before + [self.boi] + next(blocks) + [self.eoi]
            prefixes.append(self.model.embed_ids(ids))
        return prefixes, group, suffixes

    def answer_stop_ids(self) -> list[int]:
        return [self.eos, 8710]

    def decode_answer(self, ids: list[int]) -> str:
        return self.model.tokenizer.tok.decode(ids, skip_special_tokens=True)
