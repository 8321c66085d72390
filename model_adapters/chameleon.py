"""Chameleon-7B (``facebook/chameleon-7b``, transformers' converted layout) on the Chameleon-family code path.

Understanding (image generation is opt-in, below): Meta's release withholds image generation (its image-output
logits are masked in transformers' ``ChameleonForConditionalGeneration.forward`` too).  The image tokens come
from the checkpoint's own ``model.vqmodel`` encoder; the image block is ``<racm3:break>`` + 1024 image tokens +
``<eoss>`` (no size or newline tokens).  Two prompt formats (model argument ``prompt_format``):

``meta`` (default): Meta's own inference code (github.com/facebookresearch/chameleon, ``chameleon/inference``)
  as its ``multimodal_input.py`` example calls it: ``[BOS]``, the image block, the question's tokens, the
  ``<END-OF-TURN>`` sentinel (``<reserved08706>``); a ``<image>`` in the prompt puts the image there (the text
  on each side tokenized alone, as its UI list does), else the image comes first.  Pixels as Meta's
  ``ImageTokenizer``: transparency blended onto white, shortest edge to 512 (rounded) LANCZOS, centre crop,
  ``x / 255 * 2 - 1`` in float64.  Greedy as Meta's ``Options.Text(greedy=True)``: only ``</s>`` and text tokens
  can be chosen (Meta's ``VocabInfo.text_tokens``: not an image token and not a name starting with ``<``), with
  its default repetition penalty 1.2 over the prompt and the answer; stops at ``</s>``.
``vlmevalkit``: transformers' ChameleonProcessor as VLMEvalKit's wrapper uses it: ``"<image>\\n"`` before the
  question, ``<reserved08706>`` appended (the processor's sep token), BOS first; pixels: shortest edge 512
  LANCZOS, centre crop 512, RGBA flattened on white, ``x * 0.0078 - 1``; plain greedy over every id; stops at
  ``</s>`` (and 8710).

Special tokens are dropped from the decoded text in both.  tests/test_chameleon_reference.py holds ``meta``
against Meta's code on a tiny checkpoint converted by transformers' official script.

Image generation is opt-in, with ``vqgan=DIR`` (Meta's ``vqgan.yaml`` + ``vqgan.ckpt``; the converted checkpoint
keeps only the VQ encoder): Meta's ``ImageDecoder`` for a text prompt -- ``[BOS]`` + the prompt's tokens +
``<racm3:break>``, 1024 image tokens with no size or newline tokens, then ``<eoss>``; guidance against the
unconditional context ``[BOS, <racm3:break>]`` with scale ``cfg`` (default 3.0, Meta's text guidance; for a
text-only prompt Meta's image-conditioned row is that same context, so its image guidance has no effect).
With ``image_top_k=1`` (argmax) this reproduces Meta's ``greedy`` images; Meta samples with temperature 0.7 and
top-p 0.9, which the engine's top-k sampler does not implement.  Meta's public release disabled image
generation in the weights; ``capabilities`` stays understanding-only, so suites never schedule it for
text-to-image.

Model args: ``path=HUB_ID_OR_DIR[,prompt_format=meta|vlmevalkit][,vqgan=DIR][,dtype=...][,device=...]
[,batch_size=N|auto][,gen_batch_size=N|auto]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from unitoken_eval.harness.types import GenerateRequest, UnderstandRequest
from unitoken_eval.harness.plugin import AdapterError
from unitoken_eval.model_adapters.chameleon_family.adapter import ChameleonFamilyAdapter
from unitoken_eval.model_adapters.unitoken import configuration as C
from unitoken_eval.model_adapters.unitoken.modeling import UniTokenModel

IMAGE = "<image>"
SIZE = 512
RESCALE = 0.0078  # the processor's rescale_factor (not 1/127.5), mean 1 std 1
END_OF_TURN = 8710  # <reserved08706>, Meta's <END-OF-TURN> sentinel
META_REPETITION_PENALTY = 1.2  # Meta's Options.Text default
PROMPT_FORMATS = ("meta", "vlmevalkit")


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


def meta_pixels(img: Image.Image) -> torch.Tensor:
    """[3, 512, 512] float32 as Meta's ``ImageTokenizer.img_tokens_from_pil`` prepares them: transparency onto
    white, shortest edge to 512 (sizes rounded), LANCZOS, centre crop, ``x / 255 * 2 - 1`` in float64."""
    from unitoken_eval.model_adapters.chameleon_family.vq.processing import whiten_transparency

    img = whiten_transparency(img)
    scale = SIZE / min(img.size)
    img = img.resize((round(scale * img.size[0]), round(scale * img.size[1])), Image.LANCZOS)
    x0, y0 = (img.width - SIZE) // 2, (img.height - SIZE) // 2
    img = img.crop((x0, y0, x0 + SIZE, y0 + SIZE))
    a = np.array(img) / 255.0 * 2 - 1
    return torch.from_numpy(a).permute(2, 0, 1).float().contiguous()


def meta_text_tokens(vocabulary_map: dict[str, int]) -> list[int]:
    """Meta's ``VocabInfo.text_tokens``: every id that is neither an image token (``IMGIMG...``) nor a name
    starting with ``<`` (other than ``<`` itself)."""
    return sorted(v for k, v in vocabulary_map.items()
                  if not k.startswith("IMGIMG") and not (k.startswith("<") and k != "<"))


class ChameleonAdapter(ChameleonFamilyAdapter):
    id = "chameleon"
    capabilities = frozenset({"understand"})
    vision = False
    extra_args = ("prompt_format",)
    default_cfg = 3.0  # Meta's Options.Image.CFG.guidance_scale_text

    def __init__(self, **model_args: Any):
        fmt = str(model_args.get("prompt_format", "meta")).lower()
        if fmt not in PROMPT_FORMATS:
            raise AdapterError(f"model argument prompt_format={fmt!r}: expected one of {', '.join(PROMPT_FORMATS)}")
        self.prompt_format = fmt
        self._rules = None
        super().__init__(**model_args)

    def _check_args(self) -> None:
        if self.args.vision_config:
            raise AdapterError("model chameleon: vision_config= does not apply (its VQ encoder is in the checkpoint)")

    def _resolve_anyres(self) -> bool:
        return False

    def _load_model(self) -> UniTokenModel:
        model = UniTokenModel(self.ckpt, self.device, self.dtype, vision=False, keep_vq=True)
        vm = model.release_config["vocabulary_map"]
        for name in (IMAGE, "<racm3:break>", "<eoss>", "</s>"):
            if name not in vm:
                raise AdapterError(f"{self.ckpt / 'config.json'}: vocabulary_map has no {name!r}")
        self.image_id, self.boi, self.eoi, self.eos = vm[IMAGE], vm["<racm3:break>"], vm["<eoss>"], vm["</s>"]
        if self.prompt_format == "meta":
            from unitoken_eval.model_adapters.chameleon_family.decoders import AnswerRules

            self._rules = AnswerRules(allowed=tuple([self.eos] + meta_text_tokens(vm)),
                                      repetition_penalty=META_REPETITION_PENALTY)
        return model

    def _load_vq(self):
        # the checkpoint's own ``model.vqmodel`` encodes images (:meth:`image_ids`); Meta's VQ-GAN only draws them
        return super()._load_vq() if self.args.vqgan else None

    def draws_images(self) -> bool:
        return bool(self.args.vqgan)

    def image_grid(self):
        from unitoken_eval.model_adapters.chameleon_family.grid import ImageGrid

        ids = sorted(v for k, v in self.model.release_config["vocabulary_map"].items() if k.startswith("IMGIMG"))
        return ImageGrid(rows=32, cols=32, size_token=None, newline=None, eoi=self.eoi, image_lo=ids[0],
                         image_hi=ids[-1])

    def t2i_prompt(self, req: GenerateRequest) -> list[int]:
        tok = self.model.tokenizer
        return [tok.bos] + tok.encode(req.prompt) + [self.boi]

    def uncond_context(self) -> list[int]:
        return [self.model.tokenizer.bos, self.boi]

    def generate_with_tokens(self, requests):
        if self.vq is None:
            raise AdapterError(f"model {self.id} cannot generate images without vqgan=DIR (Meta's vqgan.yaml and "
                               "vqgan.ckpt; Meta's public release disabled image generation)")
        return super().generate_with_tokens(requests)

    def fingerprint(self) -> dict[str, Any]:
        idx = self.ckpt / C.INDEX_FILE
        import hashlib

        src = idx if idx.is_file() else self.ckpt / "config.json"
        fp = {"adapter": self.id, "path": self.args.path, "dtype": str(self.dtype).replace("torch.", ""),
              "weights_index_sha256": hashlib.sha256(src.read_bytes()).hexdigest()[:16],
              "prompt_format": self.prompt_format}
        if self.vq is not None:
            fp["vq"] = self.vq.fingerprint()
        return fp

    @torch.no_grad()
    def image_ids(self, images: list[Image.Image]) -> list[list[int]]:
        llm = self.model.llm
        pixels = meta_pixels if self.prompt_format == "meta" else chameleon_pixels
        px = torch.stack([pixels(im) for im in images]).to(self.device, self.dtype)
        codes = llm.vqmodel.encode(px, return_dict=True).image_tokens
        bpe = llm.vocabulary_mapping.convert_img2bpe(codes).view(len(images), -1)
        return bpe.tolist()

    def prompt_parts(self, req: UnderstandRequest):
        if len(req.images) > 1:
            raise AdapterError(f"sample {req.sample_id}: {len(req.images)} images; this adapter takes one per prompt")
        if self.prompt_format == "meta":
            return self._meta_prompt_parts(req)
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

    def _meta_prompt_parts(self, req: UnderstandRequest):
        """[BOS] + text before the image + (image) + text after it + <END-OF-TURN>, each text piece tokenized
        alone as Meta's ``tokens_from_ui`` does; without ``<image>`` the image comes first."""
        tok = self.model.tokenizer
        pieces = req.prompt.split(IMAGE)
        if req.images and len(pieces) == 1:
            pieces = ["", req.prompt]
        if len(pieces) != (2 if req.images else 1):
            raise AdapterError(f"sample {req.sample_id}: prompt has {len(pieces) - 1} {IMAGE} symbols for "
                               f"{len(req.images)} image(s)")
        enc = [tok.encode(p) if p else [] for p in pieces]
        if not req.images:
            return [tok.bos], enc[0] + [END_OF_TURN]
        return [tok.bos] + enc[0], enc[1] + [END_OF_TURN]

    def build_prefixes(self, requests):
        pending, group, suffixes = self.group_prompts(requests)
        imgs = [img for _, img in pending if img is not None]
        blocks = iter(self.image_ids(imgs) if imgs else [])
        prefixes, self.prefix_ids = [], []
        for before, img in pending:
            ids = before if img is None else before + [self.boi] + next(blocks) + [self.eoi]
            prefixes.append(self.model.embed_ids(ids))
            self.prefix_ids.append(ids)
        return prefixes, group, suffixes

    def answer_rules(self):
        return self._rules

    def answer_stop_ids(self) -> list[int]:
        if self.prompt_format == "meta":
            return [self.eos, self.boi]  # Meta's TextDecoder: </s> and its extra end, <racm3:break>
        return [self.eos, END_OF_TURN]

    def decode_answer(self, ids: list[int]) -> str:
        return self.model.tokenizer.tok.decode(ids, skip_special_tokens=True)
