"""UniToken = transformers' ChameleonModel + lm_head, a SigLIP vision tower and an MLP adapter.

We deliberately do not use ``ChameleonForConditionalGeneration.forward``: it masks image-token logits,
which would forbid image generation; the decoders in :mod:`unitoken_eval.model_adapters.chameleon_family` run the layers
of ``ChameleonModel`` with their own KV cache and apply ``lm_head`` themselves.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch
from PIL import Image
from torch import nn

from unitoken_eval.harness.plugin import AdapterError

from . import configuration as C
from .processing import TextTokenizer, VisionLayout, siglip_pixels

SEP_ID = 8198  # between the discrete and the continuous image tokens
NEWLINE_ID = 8803


def _materialise(module: nn.Module, state: dict[str, torch.Tensor], source: str, prefix: str, device, dtype,
                 ignore: tuple[str, ...] = ()) -> None:
    expected = module.state_dict()
    C.check_keys(state, expected, source, prefix, ignore)
    module.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()},
                           strict=False, assign=True)
    module.to(device)


def compiled_tower(vit: nn.Module, backend: str = "inductor"):
    """The SigLIP tower under torch.compile, dynamic in the number of views.

    Compiling costs once per process and pays back over a suite's tens of thousands of images (figures in
    docs/performance.md).  Eager bf16 rounds after every elementwise op and the fused kernels
    once, so features differ at bf16 rounding level, as the LLM's compiled prefill pieces do.
    UNITOKEN_EVAL_COMPILE=0 keeps the tower eager.
    """
    if os.environ.get("UNITOKEN_EVAL_COMPILE", "1") == "0":
        return vit
    return torch.compile(vit, dynamic=True, backend=backend)


class UniTokenModel:
    """Everything that turns a prompt into embeddings, loaded from a release-layout directory."""

    def __init__(self, ckpt: Path, device: torch.device, dtype: torch.dtype, *, vision: bool = True,
                 vision_config: Optional[str] = None, anyres: bool = True, keep_vq: bool = False):
        from transformers.models.chameleon.modeling_chameleon import ChameleonModel, ChameleonRotaryEmbedding

        self.ckpt, self.device, self.dtype = ckpt, device, dtype
        self.release_config = C.read_release_config(ckpt)
        self.config = C.chameleon_config(self.release_config)
        self.tokenizer = TextTokenizer(ckpt, self.release_config["vocabulary_map"])
        files = C.weight_files(ckpt)
        src = str(ckpt)
        # 1. The LLM, built without allocating (meta) and then given the checkpoint's tensors.
        with torch.device("meta"):
            llm = ChameleonModel(self.config)
            head = nn.Linear(self.config.hidden_size, self.config.vocab_size, bias=False)
        if not keep_vq:
            del llm.vqmodel  # the release has no model.vqmodel.*: the VQ-GAN is loaded from its own files
        state = C.convert_qk_norms(C.read_weights(files, "model."), self.config.num_attention_heads)
        if not keep_vq:
            state = {k: v for k, v in state.items() if not k.startswith("vqmodel.")}
        llm.rotary_emb = ChameleonRotaryEmbedding(config=self.config)  # computed buffers, not in the checkpoint
        _materialise(llm, state, src, "model.", device, dtype, ignore=("rotary_emb.",))
        head_state = C.read_weights(files, "lm_head.")
        if "weight" not in head_state:
            raise AdapterError(f"{src}: missing weight lm_head.weight")
        _materialise(head, head_state, src, "lm_head.", device, dtype)
        self.llm, self.lm_head = llm.eval(), head.eval()
        # 2. SigLIP tower + adapter (UniToken only; Lumina-mGPT / Chameleon have none).
        self.vit = self.adapter = None
        self.layout = None
        if vision:
            from transformers import SiglipVisionModel

            vit_state = C.read_weights(files, "vit.")
            if not vit_state:
                raise AdapterError(f"{src}: no vit.* weights (the SigLIP tower UniToken needs)")
            vcfg = C.siglip_config(vit_state, vision_config, src)
            vcfg._attn_implementation = "sdpa"
            with torch.device("meta"):
                vit = SiglipVisionModel(vcfg)
                vit = getattr(vit, "vision_model", vit)  # older transformers wrap the tower
            emb = vit.embeddings  # position_ids is a computed buffer the release does not save
            emb.register_buffer("position_ids", torch.arange(emb.num_positions).expand((1, -1)), persistent=False)
            vit_state = {k: v for k, v in vit_state.items() if k != "embeddings.position_ids"}
            _materialise(vit, vit_state, src, "vit.", device, dtype)
            ad_state = C.read_weights(files, "adapter.")
            for k in ("0.weight", "0.bias", "2.weight", "2.bias"):
                if k not in ad_state:
                    raise AdapterError(f"{src}: missing weight adapter.{k}")
            vh, h = ad_state["0.weight"].shape[1], ad_state["0.weight"].shape[0]
            if vh != vcfg.hidden_size or h != self.config.hidden_size:
                raise AdapterError(f"{src}: adapter.0.weight has shape {tuple(ad_state['0.weight'].shape)}, expected "
                                   f"({self.config.hidden_size}, {vcfg.hidden_size})")
            with torch.device("meta"):
                adapter = nn.Sequential(nn.Linear(vh, h), nn.GELU(), nn.Linear(h, h))
            _materialise(adapter, ad_state, src, "adapter.", device, dtype)
            self.vit, self.adapter = vit.eval(), adapter.eval()
            self.layout = VisionLayout(anyres=anyres, image_size=vcfg.image_size, patch_size=vcfg.patch_size)
        for m in (self.llm, self.lm_head, self.vit, self.adapter):
            if m is not None:
                m.requires_grad_(False)
        self.vision_tower = self.vit  # or its compiled form (compile_vision)

    def compile_vision(self, backend: str = "inductor") -> None:
        """Run the SigLIP tower compiled from now on (see :func:`compiled_tower`)."""
        if self.vit is not None:
            self.vision_tower = compiled_tower(self.vit, backend)

    # ------------------------------------------------------------------ embeddings
    def embed_ids(self, ids) -> torch.Tensor:
        return self.llm.embed_tokens(torch.as_tensor(ids, dtype=torch.long, device=self.device))

    def siglip_views(self, img: Image.Image) -> tuple[torch.Tensor, Optional[tuple[int, int]]]:
        """The CPU half of :meth:`continuous_tokens`: the image's SigLIP views as float32 pixels, and the grid."""
        views, grid = self.layout.views(img)
        return siglip_pixels(views, self.layout.image_size), grid

    @torch.no_grad()
    def continuous_tokens(self, img: Image.Image) -> torch.Tensor:
        """SigLIP features of all views -> adapter -> arranged continuous tokens [T, hidden]."""
        return self.continuous_tokens_many([img])[0]

    @torch.no_grad()
    def continuous_tokens_many(self, imgs: list[Image.Image], views: Optional[list] = None) -> list[torch.Tensor]:
        """:meth:`continuous_tokens` of several images through one SigLIP forward over all their views: per
        image the tower runs 1-5 views of 729 tokens, too few to fill a GPU."""
        views = views if views is not None else [None] * len(imgs)
        packs = [v if v is not None else self.siglip_views(im) for im, v in zip(imgs, views)]
        if not packs:
            return []
        px = torch.cat([p for p, _ in packs]).to(self.device, self.dtype)
        feats = self.adapter(self.vision_tower(px, interpolate_pos_encoding=True).last_hidden_state)
        newline = self.embed_ids([NEWLINE_ID])
        out, at = [], 0
        for im, (p, grid) in zip(imgs, packs):
            out.append(self.layout.arrange(feats[at: at + len(p)], grid, im.size, newline))
            at += len(p)
        return out

    @torch.no_grad()
    def image_prefix(self, before: list[int], block: list[int], img: Optional[Image.Image],
                     continuous: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``before`` ids + the discrete block up to EOI + [SEP + continuous] + EOI, as embeddings [P, hidden].

        ``continuous``: the image's continuous tokens when computed already (with other images')."""
        parts = [self.embed_ids(before + block[:-1])]
        if self.vit is not None and img is not None:
            if continuous is None:
                continuous = self.continuous_tokens(img)
            parts += [self.embed_ids([SEP_ID]), continuous]
        parts.append(self.embed_ids(block[-1:]))
        return torch.cat(parts, 0)
