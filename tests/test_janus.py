"""Janus-Pro adapter on a tiny random checkpoint written in the converted hub layout and loaded back through
the adapter's own loading path (registry entry point -> JanusProcessor / JanusForConditionalGeneration)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from unitoken_eval.harness import registry
from unitoken_eval.harness.types import GenerateRequest, UnderstandRequest
from unitoken_eval.harness.plugin import AdapterError, ModelAdapter, TokenIdsUnsupported
from unitoken_eval.model_adapters.janus import JanusAdapter, _SeededCFGSampler, build_prompt, t2i_prompt
from unitoken_eval_testkit.janus_tiny import write_tiny_janus


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_janus(tmp_path_factory.mktemp("janus"), seed=0)


@pytest.fixture(scope="module")
def adapter(ckpt):
    cls = registry.adapter_class("janus")
    assert cls is JanusAdapter
    return cls(path=str(ckpt), dtype="float32", device="cpu", gen_batch_size="3")


def _img(w, h, seed):
    return Image.fromarray((np.random.RandomState(seed).rand(h, w, 3) * 255).astype(np.uint8))


def test_checkpoint_layout_on_disk(ckpt):
    names = {p.name for p in ckpt.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"} <= names
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["model_type"] == "janus" and cfg["vq_config"]["num_patches"] == 4
    gen = json.loads((ckpt / "generation_config.json").read_text())
    assert gen["generation_kwargs"]["boi_token_id"] > 0


def test_prompt_format():
    vlm = "vlmevalkit"
    assert build_prompt("Q?", 1, "<image_placeholder>", "", vlm) == "User: <image_placeholder>Q?\n\nAssistant:"
    assert build_prompt(" Q", 0, "<i>", "Be brief.", vlm) == "Be brief.\n\nUser: Q\n\nAssistant:"
    assert build_prompt(" Q ", 2, "<i>", "S", "deepseek") == "S\n\n<|User|>: <i><i>\n Q\n\n<|Assistant|>:"
    assert build_prompt(" Q ", 0, "<i>", "", "deepseek") == "<|User|>: Q\n\n<|Assistant|>:"
    with pytest.raises(AdapterError, match="prompt_format"):
        build_prompt("Q", 0, "<i>", "", "llava")
    # DeepSeek's generation_inference.py: no system prompt, stripped message, <begin_of_image> appended after
    assert t2i_prompt(" a cat ") == "<|User|>: a cat\n\n<|Assistant|>:"


# DeepSeek's VLChatProcessor.system_prompt (janus/models/processing_vlm.py), the authors' default
AUTHORS_SYSTEM_PROMPT = (
    "You are a helpful language and vision assistant. You are able to understand the visual content that the "
    "user provides, and assist the user with a variety of tasks using natural language."
)


def _authors_ids(tok, question, n_images, num_image_tokens):
    """The ids DeepSeek's processor feeds for one user turn, following its template's rules: system prompt +
    sep "\n\n", then "role: " + stripped message + sep, then the open "<|Assistant|>:" turn, the whole string
    stripped and tokenized with BOS; each <image_placeholder> id then becomes BOI + N placeholders + EOI."""
    message = ("<image_placeholder>\n" * n_images + question).strip()
    sft = (AUTHORS_SYSTEM_PROMPT + "\n\n" + "<|User|>: " + message + "\n\n" + "<|Assistant|>:").strip()
    ids = tok.encode(sft)
    image, boi, eoi = (tok.convert_tokens_to_ids(t) for t in ("<image_placeholder>", "<begin_of_image>", "<end_of_image>"))
    out = []
    for i in ids:
        out += [boi] + [image] * num_image_tokens + [eoi] if i == image else [i]
    return out


def test_deepseek_format_ids_equal_the_authors_template(adapter):
    assert adapter.prompt_format == "deepseek" and adapter.fingerprint()["prompt_format"] == "deepseek"
    reqs = [UnderstandRequest("a", "What is shown?", [_img(90, 60, 1)]),
            UnderstandRequest("b", "  Describe it.\n", [_img(40, 70, 2)]),
            UnderstandRequest("c", "No image, just text", [])]
    inputs = adapter.understanding_inputs(reqs)
    for r, row, mask in zip(reqs, inputs["input_ids"], inputs["attention_mask"]):
        got = row[mask.bool()].tolist()
        assert got == _authors_ids(adapter.tokenizer, r.prompt, len(r.images), adapter.num_image_tokens), r.sample_id
    # the answer is decoded from exactly those ids: one by one, unpadded, gives the same tokens
    alone = adapter.understanding_inputs(reqs[:1])["input_ids"][0].tolist()
    assert alone == _authors_ids(adapter.tokenizer, reqs[0].prompt, 1, adapter.num_image_tokens)


def test_vlmevalkit_format_is_an_option_and_differs_after_bos(ckpt, adapter):
    vlm = JanusAdapter(path=str(ckpt), dtype="float32", device="cpu", prompt_format="vlmevalkit")
    assert vlm.fingerprint()["prompt_format"] == "vlmevalkit"
    req = UnderstandRequest("a", "What is shown?", [_img(90, 60, 1)])
    ours = vlm.understanding_inputs([req])["input_ids"][0].tolist()
    authors = adapter.understanding_inputs([req])["input_ids"][0].tolist()
    assert ours[0] == authors[0] == adapter.bos_id and ours[1] != authors[1]
    # VLMEvalKit's conversation: roles "User"/"Assistant", images then text, system prompt "" (MM-Vet: its own)
    block = "<begin_of_image>" + "<image_placeholder>" * vlm.num_image_tokens + "<end_of_image>"
    assert ours == vlm.tokenizer.encode(f"User: {block}What is shown?\n\nAssistant:")
    mmvet = UnderstandRequest("m", "Q", [], task_id="mmvet")
    assert vlm.understanding_prompt(mmvet) == ("You are a helpful assistant. Please answer truthfully and write out "
                                               "your thinking step by step to be sure you get the right answer."
                                               "\n\nUser: Q\n\nAssistant:")
    # a request's system_prompt replaces the format's own
    plain = adapter.understanding_inputs([UnderstandRequest("a", "Q", [], options={"system_prompt": ""})])
    assert plain["input_ids"][0].tolist() == adapter.tokenizer.encode("<|User|>: Q\n\n<|Assistant|>:")
    with pytest.raises(AdapterError, match="prompt_format"):
        JanusAdapter(path=str(ckpt), dtype="float32", device="cpu", prompt_format="llava")


def test_token_ids_are_reported_through_the_contract_and_predict(adapter, ckpt, tmp_path, capsys):
    from unitoken_eval.harness.cli import main

    req = UnderstandRequest("a", "What is shown?", [_img(90, 60, 1)], max_new_tokens=5)
    res = adapter.understand_with_tokens([req])[0]
    assert res["text"] == adapter.understand([req])[0] and 0 < len(res["token_ids"]) <= 5
    assert adapter.tokenizer.decode(res["token_ids"], skip_special_tokens=True).strip() == res["text"]
    gen = adapter.generate_with_tokens([GenerateRequest("g", "a red cube", n_images=2, seed=3)])[0]
    codes = gen["token_ids"]
    assert [len(c) for c in codes] == [adapter.num_image_tokens] * 2
    with torch.inference_mode():
        pixels = adapter.model.decode_image_tokens(torch.tensor(codes))
    arr = np.clip((pixels.float().numpy() + 1) / 2 * 255, 0, 255).astype(np.uint8)
    assert all(np.array_equal(a, np.asarray(im)) for a, im in zip(arr, gen["images"]))  # the ids drew the images

    img = tmp_path / "q.png"
    req.images[0].save(img)
    margs = f"path={ckpt},device=cpu,dtype=float32"
    assert main(["predict", "--model", "janus", "--model-args", margs, "--image", str(img), "--prompt",
                 "What is shown?", "--max-new-tokens", "5", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["generated_token_ids"] == res["token_ids"]
    assert main(["predict", "--model", "janus", "--model-args", margs, "--generate", "--prompt", "a red cube",
                 "--seed", "3", "--out", str(tmp_path / "g.png"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["image_token_ids"] == codes[0]


def test_contract_default_says_token_ids_are_unsupported():
    class Plain(ModelAdapter):
        id = "plain"

    with pytest.raises(TokenIdsUnsupported, match="plain"):
        Plain().understand_with_tokens([])
    with pytest.raises(TokenIdsUnsupported, match="plain"):
        Plain().generate_with_tokens([])


def test_understanding_returns_strings_and_feeds_image_tokens(adapter, monkeypatch):
    seen = {}
    real = adapter.model.generate

    def spy(**kw):
        seen.update(kw)
        seen["out"] = real(**kw)
        return seen["out"]

    decoded = []
    real_decode = adapter.tokenizer.decode

    def decode_spy(ids, **kw):
        decoded.append(list(ids))
        return real_decode(ids, **kw)

    monkeypatch.setattr(adapter.model, "generate", spy)
    monkeypatch.setattr(adapter.tokenizer, "decode", decode_spy)
    reqs = [
        UnderstandRequest("a", "What is shown?", [_img(90, 60, 1)], max_new_tokens=6),
        UnderstandRequest("b", "Describe the picture in two sentences please.", [_img(40, 70, 2)], max_new_tokens=3),
    ]
    out = adapter.understand(reqs)
    assert len(out) == 2 and all(isinstance(s, str) for s in out)
    ids = seen["input_ids"]
    image_id = adapter.model.config.image_token_id
    for row, mask in zip(ids, seen["attention_mask"]):
        real_ids = row[mask.bool()].tolist()
        assert real_ids[0] == adapter.bos_id  # left padding: BOS opens the unpadded part
        assert real_ids.count(image_id) == adapter.num_image_tokens
        start = real_ids.index(adapter.boi_id)
        assert real_ids[start + 1 + adapter.num_image_tokens] == adapter.tokenizer.convert_tokens_to_ids("<end_of_image>")
    assert seen["pixel_values"].shape[0] == 2 and seen["do_sample"] is False
    assert seen["max_new_tokens"] == 6 and seen["out"].shape[1] - ids.shape[1] <= 6
    assert len(decoded[0]) <= 6 and len(decoded[1]) <= 3  # each answer is cut at its own max_new_tokens


def test_generation_sizes_and_per_sample_seeds(adapter):
    reqs = [GenerateRequest("x", "a red cube", n_images=2, seed=11), GenerateRequest("y", "two cats", n_images=1, seed=5)]
    out = adapter.generate(reqs)
    size = 4 * 2 ** 2  # num_patches x the decoder's upsampling
    assert [len(o) for o in out] == [2, 1]
    for im in out[0] + out[1]:
        assert im.size == (size, size) and im.mode == "RGB"
    arr = [np.asarray(im) for im in out[0]]
    assert not np.array_equal(arr[0], arr[1])  # seeds 11 and 12 differ
    # the same (prompt, seed) alone in its batch gives the same image: seeds are per image, not per batch
    again = adapter.generate([GenerateRequest("y", "two cats", n_images=1, seed=5)])
    assert np.array_equal(np.asarray(again[0][0]), np.asarray(out[1][0]))
    second = adapter.generate([GenerateRequest("x", "a red cube", n_images=2, seed=12)])
    assert np.array_equal(np.asarray(second[0][0]), arr[1])


def test_top_k_one_is_deterministic_across_seeds(adapter):
    a = adapter.generate([GenerateRequest("x", "a bird", seed=1, options={"image_top_k": 1, "cfg": 3})])
    b = adapter.generate([GenerateRequest("x", "a bird", seed=99, options={"image_top_k": 1, "cfg": 3})])
    assert np.array_equal(np.asarray(a[0][0]), np.asarray(b[0][0]))


def test_sampler_applies_cfg_formula_then_draws_per_row():
    cond = torch.tensor([[0.0, 1.0, 0.5], [2.0, 0.0, 0.0]])
    uncond = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    scores = torch.cat([cond, uncond])
    guided = uncond + 3.0 * (cond - uncond)  # [[0,-1,1.5],[6,0,-2]]
    out = _SeededCFGSampler(3.0, 1.0, 1, [0, 0], "cpu")(torch.zeros(2, 1, dtype=torch.long), scores)
    assert out.argmax(-1).tolist() == guided.argmax(-1).tolist() == [2, 0]
    assert torch.isinf(out).sum() == 4  # one finite score per row
    # the draw follows softmax(guided / T): empirical frequencies over many seeds
    one = torch.zeros(1, 1, dtype=torch.long)
    pair = torch.cat([cond[:1], uncond[:1]])
    draws = [int(_SeededCFGSampler(1.5, 2.0, None, [s], "cpu")(one, pair).argmax()) for s in range(3000)]
    p = torch.softmax((uncond[0] + 1.5 * (cond[0] - uncond[0])) / 2.0, -1)
    freq = torch.bincount(torch.tensor(draws), minlength=3).float() / 3000
    assert torch.allclose(freq, p, atol=0.03)


def test_loading_errors_name_the_problem(ckpt, tmp_path):
    with pytest.raises(AdapterError, match="'path'"):
        JanusAdapter()
    with pytest.raises(AdapterError, match="config.json"):
        JanusAdapter(path=str(tmp_path))
    broken = tmp_path / "no_weights"
    broken.mkdir()
    (broken / "config.json").write_text((ckpt / "config.json").read_text())
    with pytest.raises(AdapterError, match="safetensors"):
        JanusAdapter(path=str(broken))
    with pytest.raises(AdapterError, match="neither an existing directory nor a hub id"):
        JanusAdapter(path=str(tmp_path / "does" / "not" / "exist"))
    with pytest.raises(AdapterError, match="dtype"):
        JanusAdapter(path=str(ckpt), dtype="int8")


def test_fingerprint_and_batch_sizes(adapter, ckpt):
    fp = adapter.fingerprint()
    assert fp["adapter"] == "janus" and fp["path"] == str(ckpt) and fp["dtype"] == "float32"
    assert fp["output_layer"] == "separate"
    assert adapter.batch_size("understand") == 8 and adapter.batch_size("generate") == 3


def test_batched_understanding_matches_one_by_one(adapter):
    """Left padding and a text-only prompt in the same batch do not change any answer."""
    # without the long default system prompt the tiny random model's answers follow the pixels
    short = {"system_prompt": ""}
    reqs = [
        UnderstandRequest("a", "What?", [_img(90, 70, 1)], max_new_tokens=10, options=short),
        UnderstandRequest("b", "Describe this long picture in many words now", [_img(50, 50, 2)], max_new_tokens=10),
        UnderstandRequest("c", "No image here, just text", [], max_new_tokens=10),
        UnderstandRequest("d", "What?", [_img(90, 70, 5)], max_new_tokens=10, options=short),
    ]
    batched = adapter.understand(reqs)
    assert batched == [adapter.understand([r])[0] for r in reqs]
    assert batched[0] != batched[3]  # the answer depends on the pixels


def _edit_checkpoint(src, dst, config_edit=None, drop=()):
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    if config_edit:
        cfg = json.loads((dst / "config.json").read_text())
        config_edit(cfg)
        (dst / "config.json").write_text(json.dumps(cfg))
    if drop:
        weights = load_file(dst / "model.safetensors")
        save_file({k: v for k, v in weights.items() if k not in drop}, dst / "model.safetensors", metadata={"format": "pt"})
    return dst


def test_tied_config_with_a_separate_lm_head_is_untied_loudly(ckpt, adapter, tmp_path):
    """transformers' Janus conversion defaults to tied embeddings; DeepSeek's weights carry their own lm_head."""
    bad = _edit_checkpoint(ckpt, tmp_path / "tied", lambda c: c.update(tie_word_embeddings=True))
    with pytest.warns(UserWarning, match=r"tied.*config.json|config.json.*tie_word_embeddings=true"):
        fixed = JanusAdapter(path=str(bad), dtype="float32", device="cpu")
    assert "untied" in fixed.fingerprint()["output_layer"]
    head, embed = fixed.model.lm_head.weight, fixed.model.model.language_model.embed_tokens.weight
    assert not torch.equal(head, embed) and torch.equal(head, adapter.model.lm_head.weight)
    req = UnderstandRequest("a", "What is shown?", [_img(90, 60, 1)], max_new_tokens=6)
    assert fixed.understand_with_tokens([req]) == adapter.understand_with_tokens([req])


def test_untied_config_without_an_lm_head_is_refused(ckpt, tmp_path):
    bad = _edit_checkpoint(ckpt, tmp_path / "headless", drop=("lm_head.weight",))
    with pytest.raises(AdapterError, match=r"config.json.*no lm_head.weight"):
        JanusAdapter(path=str(bad), dtype="float32", device="cpu")
    tied = _edit_checkpoint(bad, tmp_path / "tied_headless", lambda c: c.update(tie_word_embeddings=True))
    with pytest.warns(UserWarning, match="separate lm_head"):
        loaded = JanusAdapter(path=str(tied), dtype="float32", device="cpu")
    assert loaded.fingerprint()["output_layer"] == "tied"
