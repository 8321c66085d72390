"""BLIP-VQA attribute binding score (colour, shape, texture; the attribute part of complex).

Follows BLIPvqa_eval (BLIP_vqa.py, models/blip_vqa.py ``vqa_prob``, data/utils.py ``pre_question``,
data/__init__.py test transform) at T2I-CompBench @1b70949, on transformers' BLIP classes:

- image: RGB, resized to 480 x 480 with bicubic filtering (torchvision Resize on a PIL image is PIL's resize),
  scaled to [0, 1], normalised with CLIP's mean and std;
- question: "{noun chunk}?", lower-cased, ``.!"()*#:;~`` removed, at most 50 words, tokenised to at most
  35 tokens, padded to the longest in the batch, its first token replaced by ``[ENC]`` (30523) as BLIP does
  and transformers' ``BlipForQuestionAnswering`` does not;
- answer: one decoder step from ``[DEC]`` (30522) over the question states (question mask as the encoder
  mask), softmax over the vocabulary, p = P(yes=2748) / (P(yes) + P(no=2053));
- per chunk the official script keeps ``'{:.4f}'.format(p)``; an image's score is the float32 product of its
  (up to 8) chunk values, itself kept to 4 decimals; the category score is the mean over images.

Known difference: transformers' ``Salesforce/blip-vqa-capfilt-large`` stores the ViT position embeddings
at 384 px (they were interpolated from the 480-px original when converted); running at 480 px interpolates
them back (bicubic), which the original checkpoint does not need.  Numeric parity with the original
``model_base_vqa_capfilt_large.pth`` is not verified.
"""

from __future__ import annotations

import re
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image

from unitoken_eval.tasks.common.scorer_models import load_pretrained

DEFAULT_MODEL = "Salesforce/blip-vqa-capfilt-large"
IMAGE_SIZE = 480
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
BOS_ID = 30522  # [DEC]
ENC_ID = 30523  # [ENC]
YES_ID = 2748
NO_ID = 2053
MAX_QUESTION_TOKENS = 35

_STRIP = re.compile(r'([.!"()*#:;~])')


def pre_question(question: str, max_words: int = 50) -> str:
    q = _STRIP.sub("", question.lower()).rstrip(" ")
    words = q.split(" ")
    if len(words) > max_words:
        q = " ".join(words[:max_words])
    return q


def round4(x: float) -> float:
    """The official script's ``float('{:.4f}'.format(x))``."""
    return float(f"{float(x):.4f}")


def round_chunk(p: float) -> float:
    """A chunk's answer as upstream writes it: the float32 probability formatted with 4 decimals."""
    return round4(float(np.float32(p)))


def image_score(chunk_probs: Sequence[float]) -> float:
    """Product of the per-chunk values (each kept to 4 decimals) in float32, kept to 4 decimals.

    An image whose prompt has no chunk scores 1 (every question slot empty), as upstream.
    """
    acc = np.float32(1.0)
    for p in chunk_probs:
        acc = np.float32(acc * np.float32(round_chunk(p)))
    return round4(float(acc))


def score_prompt_images(
    questions: Sequence[str], images: Sequence, yes_prob: Callable[[list, list[str]], list[float]]
) -> list[dict]:
    """Scores of the images of one prompt; ``yes_prob(images, questions)`` returns one p per pair."""
    out = [{"chunk_probs": [], "score": None} for _ in images]
    if questions:
        pairs_img = [im for im in images for _ in questions]
        pairs_q = [q for _ in images for q in questions]
        probs = yes_prob(pairs_img, pairs_q)
        for i in range(len(images)):
            out[i]["chunk_probs"] = [round_chunk(p) for p in probs[i * len(questions) : (i + 1) * len(questions)]]
    for rec in out:
        rec["score"] = image_score(rec["chunk_probs"])
    return out


def preprocess(image: Image.Image, size: int = IMAGE_SIZE) -> np.ndarray:
    """BLIP's test transform: Resize((size, size), BICUBIC) -> ToTensor -> Normalize(CLIP mean, std)."""
    im = image.convert("RGB").resize((size, size), Image.BICUBIC)
    arr = np.asarray(im, dtype=np.float32) / 255.0
    arr = (arr - np.array(CLIP_MEAN, dtype=np.float32)) / np.array(CLIP_STD, dtype=np.float32)
    return arr.transpose(2, 0, 1).copy()


class BlipVQA:
    """transformers' BLIP VQA model driven as BLIP's ``vqa_prob`` inference."""

    def __init__(self, model, tokenizer, device: str = "cpu", label: str = "", batch_size: int = 32):
        import torch

        self.torch = torch
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device
        self.label = label
        self.batch_size = batch_size
        vc = model.config.vision_config
        self.interpolate = int(vc.image_size) != IMAGE_SIZE

    @classmethod
    def load(cls, model_id: Optional[str] = None, device: Optional[str] = None, batch_size: int = 32) -> "BlipVQA":
        from transformers import AutoTokenizer, BlipForQuestionAnswering

        model_id = model_id or DEFAULT_MODEL
        device = device or default_device()
        model, tokenizer = load_pretrained("T2I-CompBench++ BLIP VQA weights", model_id, "blip_model", DEFAULT_MODEL,
                                           BlipForQuestionAnswering.from_pretrained, AutoTokenizer.from_pretrained)
        return cls(model, tokenizer, device, label=f"BLIP VQA {model_id} (transformers)", batch_size=batch_size)

    def yes_prob(self, images: list, questions: list[str]) -> list[float]:
        torch = self.torch
        out: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                ims = images[start : start + self.batch_size]
                qs = [pre_question(q) for q in questions[start : start + self.batch_size]]
                # The same image asked several questions is encoded once (upstream re-encodes it per question).
                index: dict[int, int] = {}
                distinct = []
                for im in ims:
                    if id(im) not in index:
                        index[id(im)] = len(distinct)
                        distinct.append(im)
                pix = torch.from_numpy(np.stack([preprocess(im) for im in distinct])).to(self.device)
                embeds = self.model.vision_model(
                    pixel_values=pix, interpolate_pos_encoding=self.interpolate
                ).last_hidden_state
                image_embeds = embeds[torch.tensor([index[id(im)] for im in ims], device=self.device)]
                image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=self.device)
                tok = self.tokenizer(qs, padding="longest", truncation=True, max_length=MAX_QUESTION_TOKENS,
                                     return_tensors="pt").to(self.device)
                input_ids = tok.input_ids.clone()
                input_ids[:, 0] = ENC_ID
                q_states = self.model.text_encoder(
                    input_ids=input_ids, attention_mask=tok.attention_mask,
                    encoder_hidden_states=image_embeds, encoder_attention_mask=image_mask,
                ).last_hidden_state
                start_ids = torch.full((len(ims), 1), BOS_ID, dtype=torch.long, device=self.device)
                logits = self.model.text_decoder(
                    input_ids=start_ids, encoder_hidden_states=q_states,
                    encoder_attention_mask=tok.attention_mask, reduction="none",
                ).logits[:, 0, :]
                prob = torch.softmax(logits.float(), dim=1)
                p = prob[:, YES_ID] / (prob[:, YES_ID] + prob[:, NO_ID])
                out.extend(float(x) for x in p.cpu())
        return out


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
