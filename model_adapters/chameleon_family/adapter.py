"""The base adapter of the Chameleon family (UniToken, Lumina-mGPT, Chameleon): load, answer, draw.

Model args: ``path=DIR_OR_HUB_ID[,vqgan=DIR][,vision_config=DIR][,dtype=float32|bfloat16][,device=cpu|cuda]
[,anyres=auto|true|false][,compile=auto|true|false][,batch_size=N|auto][,gen_batch_size=N|auto][,kv_cache=bf16|int8]
[,prefill=bf16|fp8]``

``vqgan`` defaults to ``PATH/vqgan`` (Meta's ``vqgan.yaml`` + ``vqgan.ckpt``; the UniToken release does not
ship them).  ``anyres=auto`` reads the variant from the checkpoint name (``...-base-...`` = one squashed
384 view, anything else AnyRes).  ``compile``: CUDA-graph decoding and a compiled SigLIP tower (auto = on CUDA).  ``kv_cache=int8``:
image generation on an int8 KV cache (:mod:`.kv_cache`, GPUs with int8 tensor cores): larger batches and more
images/s, at a measured, non-zero logit error; understanding always uses the exact cache.  ``prefill=fp8``: the
understanding prompts' GEMMs in float8 (per-token and per-channel scales) on GPUs with float8 tensor cores:
faster prefill at a measured logit error (docs/performance.md); answers may differ from bf16.
Generation request options: ``cfg`` (default 3.0, the release demo's), ``image_top_k`` (2000),
``temperature`` (1.0).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Optional

import torch
from PIL import Image

from unitoken_eval.harness.types import GenerateRequest, Kind, UnderstandRequest
from unitoken_eval.harness.plugin import AdapterError, ModelAdapter
from unitoken_eval.model_adapters.unitoken import configuration as C
from unitoken_eval.model_adapters.unitoken.modeling import UniTokenModel
from unitoken_eval.model_adapters.unitoken.processing import T2I_TEMPLATE

from . import batching
from .decoding import ChameleonDecoders
from .grid import ImageGrid
from .kv_cache import int8_kv_unsupported
from .vq.background import BackgroundDecoder
from .weights import fp8_unsupported

EOT = 8710
GEN_SUFFIX = (16853, 8197)  # appended by the release after the T2I prompt: a marker token and BOI
DEFAULT_CFG, DEFAULT_TOP_K, DEFAULT_TEMPERATURE = 3.0, 2000, 1.0


def _float_option(options: dict, key: str, default: float, sample: str) -> float:
    try:
        return float(options.get(key, default))
    except (TypeError, ValueError) as exc:
        raise AdapterError(f"sample {sample}: option {key}={options.get(key)!r} is not a number") from exc


class ChameleonFamilyAdapter(ModelAdapter):
    """Shared by UniToken, Lumina-mGPT and (via a subclass) Chameleon: load, answer, draw."""

    capabilities = frozenset({"understand", "generate"})
    vision = True  # SigLIP branch present
    t2i_template = T2I_TEMPLATE
    gen_suffix: tuple[int, ...] = GEN_SUFFIX
    default_cfg = DEFAULT_CFG
    extra_args: tuple[str, ...] = ()
    crop_sizes = None  # VQ crops for understanding: None = the 512x512 square UniToken uses

    def image_grid(self) -> ImageGrid:
        """The generated image's token layout (UniToken: 512x512 = 32x32 codes, size token 8820)."""
        return ImageGrid()

    def __init__(self, **model_args: Any):
        super().__init__(**model_args)
        self.args = C.ModelArgs.parse(model_args, self.extra_args)
        self._check_args()
        self.ckpt = C.resolve_checkpoint(self.args.path)
        self.device = self.args.torch_device()
        self.dtype = self.args.torch_dtype(self.device)
        self._refuse_unsupported_options()
        self.anyres = self._resolve_anyres()
        self.model = self._load_model()
        self.vq = self._load_vq()
        comp = self.args.compile.lower()
        self.use_graphs = (self.device.type == "cuda") if comp == "auto" else comp == "true"
        if self.use_graphs and self.device.type != "cuda":
            raise AdapterError("model argument compile=true needs device=cuda (CUDA graphs)")
        if self.use_graphs:
            self.model.compile_vision()
        self.decoders = ChameleonDecoders(self.model.llm, self.model.lm_head, use_graphs=self.use_graphs)
        draws = self.draws_images()
        batching.resolve(self.args, self.model.config, self.device, self.dtype,
                         self.image_grid().n_tokens if draws else None)

    def draws_images(self) -> bool:
        """Whether this instance generates images (sizes the image batch at load time)."""
        return "generate" in self.capabilities

    # ------------------------------------------------------------------ loading steps a variant may change
    def _check_args(self) -> None:
        """Refuse model arguments that do not apply to this variant (after parsing, before anything loads)."""

    def _resolve_anyres(self) -> bool:
        anyres = self.args.anyres.lower()
        if anyres == "auto":
            anyres = "false" if "base" in Path(self.args.path).name.lower().split("-") else "true"
        return anyres == "true"

    def _load_model(self) -> UniTokenModel:
        return UniTokenModel(self.ckpt, self.device, self.dtype, vision=self.vision,
                             vision_config=self.args.vision_config, anyres=self.anyres)

    def _refuse_unsupported_options(self) -> None:
        """Options this GPU cannot run are refused before the weights load, not at the first batch."""
        checks = ((self.args.prefill == "fp8", fp8_unsupported), (self.args.kv_cache == "int8", int8_kv_unsupported))
        for asked, unsupported in checks:
            why = unsupported(self.device) if asked else None
            if why:
                raise AdapterError(why)

    def _load_vq(self):
        from .vq import VQGANLoadError, VQImageTokenizer

        vq_dir = Path(self.args.vqgan) if self.args.vqgan else self.ckpt / "vqgan"
        if not vq_dir.is_dir():
            raise AdapterError(f"VQ-GAN directory {vq_dir} does not exist: pass vqgan=DIR holding Meta's "
                               "vqgan.yaml and vqgan.ckpt (Chameleon release, tokenizer/ folder)")
        try:
            return VQImageTokenizer.from_files(vq_dir, self.model.release_config["vocabulary_map"],
                                               device=self.device, dtype=torch.float32, crop_sizes=self.crop_sizes)
        except (VQGANLoadError, FileNotFoundError, ValueError) as exc:
            raise AdapterError(f"VQ-GAN {vq_dir}: {exc}") from exc

    # ------------------------------------------------------------------ interface
    def batch_size(self, kind: Kind) -> int:
        return self.args.batch_size if kind == "understand" else self.args.gen_batch_size

    def fingerprint(self) -> dict[str, Any]:
        """Config + weight index hashes (and the hub revision for a downloaded snapshot): a re-uploaded
        checkpoint or an edited config gives another fingerprint, so a resumed run cannot mix the two."""
        idx = self.ckpt / C.INDEX_FILE
        digest = hashlib.sha256((idx if idx.is_file() else self.ckpt / "config.json").read_bytes()).hexdigest()[:16]
        cfg_digest = hashlib.sha256((self.ckpt / "config.json").read_bytes()).hexdigest()[:16]
        fp = {"adapter": self.id, "path": self.args.path, "weights_index_sha256": digest,
              "config_sha256": cfg_digest, "anyres": self.anyres,
              "dtype": str(self.dtype).replace("torch.", ""), "vq": self.vq.fingerprint()}
        if self.args.kv_cache != "bf16":  # images drawn on another cache are other samples
            fp["kv_cache"] = self.args.kv_cache
        if self.args.prefill != "bf16":  # answers from float8 GEMMs are another model's answers
            fp["prefill"] = self.args.prefill
        revision = C.hub_revision(self.ckpt)
        if revision:
            fp["hub_revision"] = revision
        return fp

    def _count(self, **amounts: float) -> None:
        # prefills: distinct (image, text-before-image) prefixes run through the model, at most one per prompt;
        # prefill_tokens: the tokens those prefills and the prompts' own text ran through the model;
        # *_model_s: wall time inside the model calls (results on the host), what a decoder-only bench times
        counts = self.__dict__.setdefault("_counts", {"prompts": 0, "prefills": 0, "prefill_tokens": 0,
                                                       "generated_images": 0,
                                                       "answer_model_s": 0.0, "image_decoder_s": 0.0})
        for k, v in amounts.items():
            counts[k] += v

    def counters(self) -> dict[str, float]:
        self._count()
        return dict(self._counts)

    def close(self) -> None:
        if self.decoders is not None:
            self.decoders.release()
        self.model = self.vq = self.decoders = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def understand(self, requests: list[UnderstandRequest]) -> list[str]:
        return [r["text"] for r in self.understand_with_tokens(requests)]

    def generate(self, requests: list[GenerateRequest]) -> list[list[Image.Image]]:
        return [r["images"] for r in self.generate_with_tokens(requests)]

    # ------------------------------------------------------------------ understanding
    def prompt_parts(self, req: UnderstandRequest) -> tuple[list[int], list[int]]:
        if len(req.images) > 1:
            raise AdapterError(f"sample {req.sample_id}: {len(req.images)} images; this model takes one per prompt")
        return self.model.tokenizer.question(req.prompt, len(req.images))

    def group_prompts(self, requests: list[UnderstandRequest]):
        """Distinct (image, text-before-image) prefixes in first-seen order, and each request's group and suffix.

        Requests with the same ``image_key`` and the same text before the image share one prefix (one prefill);
        a request without a key is its own group.
        """
        keys: dict[Any, int] = {}
        pending: list[tuple[list[int], Optional[Image.Image]]] = []
        group, suffixes = [], []
        for i, req in enumerate(requests):
            before, after = self.prompt_parts(req)
            img = req.images[0] if req.images else None
            ikey = req.image_key if req.image_key is not None else ("#", i)
            key = (ikey if img is not None else None, tuple(before))
            if key not in keys:
                keys[key] = len(pending)
                pending.append((before, img))
            group.append(keys[key])
            suffixes.append(after)
        return pending, group, suffixes

    def preprocess(self, requests: list[UnderstandRequest]) -> None:
        """The VQ crop and the SigLIP views of each request's image, as CPU tensors, computed while the GPU
        works on the previous batch (this CPU work would otherwise stall it).
        Requests with the same ``image_key`` share one result.  A failure is left for the in-line path to report."""
        if self.vq is None:
            return
        done: dict[str, dict] = {}
        for req in requests:
            if not isinstance(req, UnderstandRequest) or len(req.images) != 1 or req.prepared:
                continue
            if req.image_key is not None and req.image_key in done:
                req.prepared = done[req.image_key]
                continue
            img = req.images[0]
            try:
                req.prepared["vq_pixels"] = self.vq.preprocess(img)
                if self.model.vit is not None:
                    req.prepared["siglip_views"] = self.model.siglip_views(img)
            except Exception:  # noqa: BLE001 - an optimisation only: the in-line path raises with context
                req.prepared = {}
                continue
            if req.image_key is not None:
                done[req.image_key] = req.prepared

    def build_prefixes(self, requests: list[UnderstandRequest]):
        """Distinct (image, text-before-image) prefixes -> embeddings; each request's group and text suffix."""
        pending, group, suffixes = self.group_prompts(requests)
        # what preprocess() computed ahead, by image object (each pending image is some request's own)
        ahead = {id(r.images[0]): r.prepared for r in requests if r.images and r.prepared}
        prefixes = []
        imgs = [img for _, img in pending if img is not None]
        blocks = iter(self.vq.image_blocks(imgs, [ahead.get(id(im), {}).get("vq_pixels") for im in imgs]))
        conts = iter(self.model.continuous_tokens_many(imgs, [ahead.get(id(im), {}).get("siglip_views")
                                                              for im in imgs])
                     if self.model.vit is not None else [])
        for before, img in pending:
            if img is None:
                prefixes.append(self.model.embed_ids(before))
            else:
                cont = next(conts) if self.model.vit is not None else None
                prefixes.append(self.model.image_prefix(before, next(blocks), img, continuous=cont))
        # a text-only prompt whose suffix is empty cannot happen: the turn always ends with 8710
        return prefixes, group, suffixes

    @torch.no_grad()
    def understand_with_tokens(self, requests: list[UnderstandRequest]) -> list[dict[str, Any]]:
        if not requests:
            return []
        t0 = time.perf_counter()
        self.decoders.make_room_for_answers()
        prefixes, group, suffixes = self.build_prefixes(requests)
        self._count(prompts=len(requests), prefills=len(prefixes),
                    prefill_tokens=sum(p.shape[0] for p in prefixes) + sum(len(x) for x in suffixes))
        limits = [max(1, int(r.max_new_tokens)) for r in requests]
        rules = self.answer_rules()
        ids = None
        if rules is not None and rules.repetition_penalty != 1.0:  # the penalty counts the prompt's ids too
            ids = [self.prefix_ids[group[r]] + list(suffixes[r]) for r in range(len(requests))]
        outs = self.decoders.greedy_answers(prefixes, suffixes, group, limits, self.answer_stop_ids(),
                                            prefill=self.args.prefill, rules=rules, prompt_ids=ids)
        self._count(answer_model_s=time.perf_counter() - t0)  # token lists are on the host: the GPU is done
        return [{"text": self.decode_answer(o), "token_ids": o} for o in outs]

    def answer_rules(self):
        """Logit rules of the greedy answer decoder (:class:`.decoders.AnswerRules`), or None (plain argmax).
        A variant whose rules carry a repetition penalty sets ``self.prefix_ids`` in :meth:`build_prefixes`
        (each prefix's token ids)."""
        return None

    def answer_stop_ids(self) -> list[int]:
        """Tokens that end an answer: the release's end of turn."""
        return [EOT]

    def decode_answer(self, ids: list[int]) -> str:
        # surrounding whitespace is stripped (the scorers compare stripped answers; a leading space is common)
        return self.model.tokenizer.decode(ids).strip()

    # ------------------------------------------------------------------ generation
    def t2i_prompt(self, req: GenerateRequest) -> list[int]:
        return self.model.tokenizer.t2i(req.prompt, self.t2i_template) + list(self.gen_suffix)

    def uncond_context(self) -> Optional[list[int]]:
        """The unconditional CFG branch's context; None = ``[BOI]`` (UniToken's and Lumina-mGPT's releases)."""
        return None

    @torch.no_grad()
    def generate_with_tokens(self, requests: list[GenerateRequest]) -> list[dict[str, Any]]:
        """Rows with equal sampling options are drawn together; image k of a request uses seed + k."""
        rows: dict[tuple[float, int, float], list[tuple[int, int, list[int]]]] = {}
        for i, req in enumerate(requests):
            o = req.options or {}
            cfg = _float_option(o, "cfg", self.default_cfg, req.sample_id)
            top_k = int(_float_option(o, "image_top_k", DEFAULT_TOP_K, req.sample_id))
            temp = _float_option(o, "temperature", DEFAULT_TEMPERATURE, req.sample_id)
            if top_k < 1 or temp <= 0:
                raise AdapterError(f"sample {req.sample_id}: image_top_k must be >= 1 and temperature > 0")
            prompt = self.t2i_prompt(req)
            for k in range(req.n_images):
                rows.setdefault((cfg, top_k, temp), []).append((i, req.seed + k, prompt))
        results: list[dict[str, Any]] = [{"images": [], "token_ids": []} for _ in requests]
        step = max(1, self.args.gen_batch_size)
        # VQ decoding runs in a background thread (on its own CUDA stream) while the next chunk's tokens are
        # sampled: done in line it would take a sizeable share of the image rate.
        with BackgroundDecoder(self.vq, self.device) as decoder:
            pending = []
            for (cfg, top_k, temp), items in rows.items():
                for s in range(0, len(items), step):
                    chunk = items[s: s + step]
                    grid = self.image_grid()
                    t0 = time.perf_counter()
                    toks = self.decoders.image_tokens([c[2] for c in chunk], [c[1] for c in chunk], cfg, top_k, temp,
                                                      grid=grid, kv_cache=self.args.kv_cache,
                                                      uncond=self.uncond_context())
                    codes = self.vq.bpe_to_codes(grid.codes(toks)).cpu()  # checked here, before the next chunk
                    self._count(image_decoder_s=time.perf_counter() - t0)
                    pending.append((chunk, toks.tolist(), decoder.submit(codes)))
            for chunk, toks, images in pending:
                self._count(generated_images=len(chunk))
                for (i, _, _), t, img in zip(chunk, toks, images.result()):
                    results[i]["images"].append(img)
                    results[i]["token_ids"].append([self.gen_suffix[-1]] + t)
        return results

