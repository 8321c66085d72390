"""BLIP-VQA scoring as BLIPvqa_eval does it (Karine-Huang/T2I-CompBench@1b70949: BLIP_vqa.py,
models/blip_vqa.py vqa_prob, data/utils.py pre_question, data/__init__.py transform_test), and CLIPScore's
preprocessing (CLIPScore_eval/clip/clip.py _transform)."""

import numpy as np
import pytest
import torch
from PIL import Image

from unitoken_eval.tasks.common.scorer_models import ScorerUnavailable
from unitoken_eval.tasks.t2i_compbench import blip_vqa, clipscore, nouns


def test_questions_skip_list_and_np_num():
    chunks = ["a girl", "the top", "top", "the left", "the side", "the right", "a frog"]
    # 'the top' is not in upstream's skip list; 'top', 'the side', 'the left', 'the right' are
    assert nouns.blip_questions(chunks) == ["a girl?", "the top?", "a frog?"]
    many = [f"chunk{i}" for i in range(11)]
    assert nouns.blip_questions(many) == [f"chunk{i}?" for i in range(8)]
    assert nouns.blip_questions([]) == []


def test_pre_question():
    assert blip_vqa.pre_question('The "Red" Hat.?') == "the red hat?"
    assert blip_vqa.pre_question("a (big) dog!;~*#:  ") == "a big dog"
    assert blip_vqa.pre_question(" ".join(["w"] * 60)) == " ".join(["w"] * 50)


def _upstream_image_scores(probs_per_image, np_num=8):
    """BLIP_vqa.py main(): a float32 reward matrix of '{:.4f}'-rounded answers, 1 for empty slots, a running
    product over the slots, each product formatted '{:.4f}' again."""
    reward = torch.zeros((len(probs_per_image), np_num))
    for k, probs in enumerate(probs_per_image):
        for i in range(np_num):
            reward[k][i] = float("{:.4f}".format(torch.tensor(probs[i]).float())) if i < len(probs) else 1
    final = reward[:, 0]
    for i in range(1, np_num):
        final *= reward[:, i]
    return [float("{:.4f}".format(final[k].item())) for k in range(len(probs_per_image))]


def test_image_score_matches_upstream_float32_product():
    rng = np.random.RandomState(0)
    cases = [list(rng.rand(rng.randint(1, 9))) for _ in range(300)] + [[0.99995, 0.00005], [1.0], [0.0, 0.5]]
    ours = [blip_vqa.image_score(c) for c in cases]
    assert ours == _upstream_image_scores(cases)
    assert blip_vqa.image_score([]) == 1.0  # every slot empty: reward 1


def test_score_prompt_images_product_over_chunks_with_stub():
    table = {"a red dog?": 0.9, "a blue cup?": 0.5}
    calls = []

    def stub(images, questions):
        calls.append((list(images), list(questions)))
        return [table[q] * (1.0 if im == "good" else 0.2) for im, q in zip(images, questions)]

    recs = blip_vqa.score_prompt_images(["a red dog?", "a blue cup?"], ["good", "bad"], stub)
    assert calls == [(["good", "good", "bad", "bad"], ["a red dog?", "a blue cup?"] * 2)]
    assert [r["score"] for r in recs] == [0.45, pytest.approx(0.018)]
    assert recs[1]["chunk_probs"] == [0.18, 0.1]
    assert [r["score"] for r in blip_vqa.score_prompt_images([], ["x"], stub)] == [1.0]


def test_blip_preprocess_is_bicubic_480_with_clip_normalisation():
    rng = np.random.RandomState(1)
    im = Image.fromarray((rng.rand(37, 53, 3) * 255).astype("uint8"))
    arr = blip_vqa.preprocess(im)
    assert arr.shape == (3, 480, 480)
    ref = np.asarray(im.resize((480, 480), Image.BICUBIC), dtype=np.float32) / 255.0
    np.testing.assert_allclose(arr[1], (ref[:, :, 1] - 0.4578275) / 0.26130258, rtol=1e-6)


def test_blip_vqa_uses_enc_and_dec_tokens_and_yes_no_ratio():
    from unitoken_eval.tasks.t2i_compbench import smoke_models

    m = smoke_models.blip_vqa()
    assert m.interpolate  # 384-px position embeddings run at 480 px
    seen = {}

    def enc_hook(mod, args, kwargs):
        seen["enc"] = kwargs["input_ids"].clone()

    def dec_hook(mod, args, kwargs, out):
        seen["dec"] = kwargs["input_ids"].clone()
        seen["dec_mask"] = kwargs["encoder_attention_mask"].clone()
        seen["logits"] = out.logits[:, 0, :].clone()

    h1 = m.model.text_encoder.register_forward_pre_hook(enc_hook, with_kwargs=True)
    h2 = m.model.text_decoder.register_forward_hook(dec_hook, with_kwargs=True)
    try:
        im = Image.fromarray((np.random.RandomState(2).rand(64, 64, 3) * 255).astype("uint8"))
        p = m.yes_prob([im, im], ["a red dog?", "the cup?"])
    finally:
        h1.remove()
        h2.remove()
    assert seen["enc"][:, 0].tolist() == [blip_vqa.ENC_ID] * 2
    assert seen["dec"].tolist() == [[blip_vqa.BOS_ID]] * 2
    # the decoder attends to the question states under the question's own padding mask (vqa_prob), not ones
    assert seen["dec_mask"].sum(1).tolist() == [len(m.tokenizer("a red dog?").input_ids),
                                               len(m.tokenizer("the cup?").input_ids)]
    prob = torch.softmax(seen["logits"], dim=1)
    want = (prob[:, 2748] / (prob[:, 2748] + prob[:, 2053])).tolist()
    assert p == pytest.approx(want, rel=1e-6)
    assert all(0.0 < x < 1.0 for x in p)
    # one image asked twice is encoded once: same answers as two separate copies
    copy = im.copy()
    assert m.yes_prob([im, copy], ["a red dog?", "the cup?"]) == pytest.approx(p, abs=1e-6)


def test_clip_preprocess_matches_torchvision_resize_and_centre_crop():
    im = Image.fromarray((np.random.RandomState(3).rand(300, 500, 3) * 255).astype("uint8"))  # h=300, w=500
    arr = clipscore.preprocess(im)
    assert arr.shape == (3, 224, 224)
    # torchvision: short side 224 -> (373, 224); crop left = round((373 - 224) / 2) = 74 (ties to even: 74.5 -> 74)
    ref = im.resize((373, 224), Image.BICUBIC).crop((74, 0, 298, 224))
    ref = np.asarray(ref, dtype=np.float32) / 255.0
    np.testing.assert_allclose(arr[0], (ref[:, :, 0] - 0.48145466) / 0.26862954, rtol=1e-6)


def test_clip_scores_are_raw_cosines():
    from unitoken_eval.tasks.t2i_compbench import smoke_models

    c = smoke_models.clip()
    im = Image.fromarray((np.random.RandomState(4).rand(64, 64, 3) * 255).astype("uint8"))
    s = c.scores([im, im], ["a red dog", "a cat on a table"])
    with torch.inference_mode():
        pix = torch.from_numpy(clipscore.preprocess(im))[None]
        v = c.model.get_image_features(pixel_values=pix)
        v = v if torch.is_tensor(v) else v.pooler_output
        tok = c.tokenizer(["a red dog"], return_tensors="pt")
        t = c.model.get_text_features(**tok)
        t = t if torch.is_tensor(t) else t.pooler_output
        want = torch.nn.functional.cosine_similarity(v, t).item()
    assert s[0] == pytest.approx(want, abs=1e-5)
    assert -1.0 <= s[1] <= 1.0


# BLIP's own parameter names (BLIPvqa_eval/models/vit.py: timm-style ViT) for each transformers name.
_ORIGINAL_VIT = (
    ("vision_model.embeddings.class_embedding", "visual_encoder.cls_token"),
    ("vision_model.embeddings.position_embedding", "visual_encoder.pos_embed"),
    ("vision_model.embeddings.patch_embedding.", "visual_encoder.patch_embed.proj."),
    ("vision_model.post_layernorm.", "visual_encoder.norm."),
    ("vision_model.encoder.layers.", "visual_encoder.blocks."),
    (".self_attn.projection.", ".attn.proj."),
    (".self_attn.qkv.", ".attn.qkv."),
    (".layer_norm1.", ".norm1."),
    (".layer_norm2.", ".norm2."),
)


def _as_original(name):
    for hf, orig in _ORIGINAL_VIT:
        name = name.replace(hf, orig)
    return name


def test_original_salesforce_checkpoint_loads_into_transformers_classes(tmp_path):
    from unitoken_eval.tasks.t2i_compbench import blip_original, smoke_models

    ref = smoke_models.blip_vqa()
    sd = {_as_original(k): v.clone() for k, v in ref.model.state_dict().items()}
    assert "visual_encoder.blocks.0.attn.proj.weight" in sd and "visual_encoder.norm.bias" in sd
    assert {blip_original.hf_key(k) for k in sd} == set(ref.model.state_dict())
    # as released: {"model": state_dict}, ViT position embeddings at the checkpoint's own size
    torch.save({"model": sd}, tmp_path / "model_base_vqa_capfilt_large.pth")
    ref.tokenizer.save_pretrained(tmp_path / "tok")
    cfg = ref.model.config
    v = {k: getattr(cfg.vision_config, k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                                     "num_attention_heads", "patch_size", "layer_norm_eps")}
    t = {k: getattr(cfg.text_config, k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                                   "num_attention_heads", "encoder_hidden_size",
                                                   "max_position_embeddings", "sep_token_id", "layer_norm_eps")}
    m = blip_original.load_original(str(tmp_path / "model_base_vqa_capfilt_large.pth"), str(tmp_path / "tok"),
                                    "cpu", vision=v, text=t)
    assert m.model.config.vision_config.image_size == 384  # taken from the checkpoint's 12 x 12 + 1 positions
    im = Image.fromarray((np.random.RandomState(5).rand(40, 40, 3) * 255).astype("uint8"))
    assert m.yes_prob([im], ["a red dog?"]) == pytest.approx(ref.yes_prob([im], ["a red dog?"]), abs=1e-6)
    torch.save({"model": {"foo": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(ScorerUnavailable, match="not an original BLIP VQA checkpoint"):
        blip_original.load_original(str(tmp_path / "other.pth"), str(tmp_path / "tok"), "cpu")
