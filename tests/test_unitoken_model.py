"""UniToken loading (release layout round trip, errors naming what is missing) and input token layout."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("transformers")
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from unitoken_eval.harness.plugin import AdapterError  # noqa: E402
from unitoken_eval.model_adapters.unitoken import UniTokenAdapter  # noqa: E402
from unitoken_eval.model_adapters.unitoken.modeling import UniTokenModel  # noqa: E402
from unitoken_eval.model_adapters.unitoken.processing import (  # noqa: E402
    PINPOINTS, VisionLayout, select_best_resolution, unpad_rows_cols,
)
from unitoken_eval.model_adapters.unitoken.tiny_checkpoint import TINY_VISION, write_tiny_release  # noqa: E402


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_release(tmp_path_factory.mktemp("ut") / "UniToken-AnyRes-tiny", seed=0)


@pytest.fixture(scope="module")
def adapter(ckpt):
    return UniTokenAdapter(path=str(ckpt), device="cpu")


def _img(w, h, seed=0):
    return Image.fromarray((np.random.RandomState(seed).rand(h, w, 3) * 255).astype("uint8"))


def test_release_layout_on_disk(ckpt):
    index = json.loads((ckpt / "model.safetensors.index.json").read_text())["weight_map"]
    assert not any(k.startswith("model.vqmodel.") for k in index)
    assert {"lm_head.weight", "adapter.0.weight", "adapter.2.bias", "vit.head.probe"} <= set(index)
    shard = ckpt / index["model.layers.0.self_attn.q_norm.weight"]
    with safe_open(str(shard), framework="pt") as f:
        assert tuple(f.get_tensor("model.layers.0.self_attn.q_norm.weight").shape) == (1, 16)
    cfg = json.loads((ckpt / "config.json").read_text())
    vm = cfg["vocabulary_map"]
    assert (vm["<eoss>"], vm["<racm3:break>"], vm["<reserved08706>"], vm["<reserved08799>"]) == (8196, 8197, 8710, 8803)
    assert vm["<reserved08816>"] == 8820 and vm["<reserved16849>"] == 16853 and cfg["bos_token_id"] == 1


def test_round_trip_weights(ckpt):
    m = UniTokenModel(ckpt, torch.device("cpu"), torch.float32)
    index = json.loads((ckpt / "model.safetensors.index.json").read_text())["weight_map"]
    state = {}
    for shard in set(index.values()):
        state.update(load_file(str(ckpt / shard)))
    # q/k norms: the saved [1, head_dim] row serves every head
    q = state["model.layers.1.self_attn.q_norm.weight"]
    assert torch.equal(m.llm.layers[1].self_attn.q_norm.weight, q.expand(4, -1))
    assert torch.equal(m.llm.layers[0].self_attn.k_norm.bias, state["model.layers.0.self_attn.k_norm.bias"].expand(4, -1))
    assert torch.equal(m.lm_head.weight, state["lm_head.weight"])
    assert torch.equal(m.llm.embed_tokens.weight, state["model.embed_tokens.weight"])
    assert torch.equal(m.vit.encoder.layers[0].mlp.fc1.weight, state["vit.encoder.layers.0.mlp.fc1.weight"])
    assert torch.equal(m.adapter[2].weight, state["adapter.2.weight"])
    # the SigLIP config was inferred from the weights
    vc = m.vit.config
    assert (vc.hidden_size, vc.intermediate_size, vc.num_hidden_layers, vc.num_attention_heads, vc.image_size,
            vc.patch_size) == tuple(TINY_VISION[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                                              "num_attention_heads", "image_size", "patch_size"))
    assert m.tokenizer.bos == 0 and m.tokenizer.eot == 8710


def test_vision_config_from_directory(ckpt, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "siglip", "vision_config": dict(
        TINY_VISION, num_attention_heads=2)}))
    m = UniTokenModel(ckpt, torch.device("cpu"), torch.float32, vision_config=str(tmp_path))
    assert m.vit.config.num_attention_heads == 2


def _copy(ckpt, tmp_path):
    dst = tmp_path / "ckpt"
    shutil.copytree(ckpt, dst)
    return dst


def test_missing_key_is_named(ckpt, tmp_path):
    dst = _copy(ckpt, tmp_path)
    index = json.loads((dst / "model.safetensors.index.json").read_text())["weight_map"]
    key = "model.layers.1.mlp.down_proj.weight"
    shard = dst / index[key]
    state = load_file(str(shard))
    del state[key]
    save_file(state, str(shard))
    with pytest.raises(AdapterError, match=r"model\.layers\.1\.mlp\.down_proj\.weight"):
        UniTokenModel(dst, torch.device("cpu"), torch.float32)


def test_missing_adapter_and_files_are_named(ckpt, tmp_path):
    dst = _copy(ckpt, tmp_path)
    index = json.loads((dst / "model.safetensors.index.json").read_text())["weight_map"]
    shard = dst / index["adapter.0.bias"]
    state = load_file(str(shard))
    del state["adapter.0.bias"]
    save_file(state, str(shard))
    with pytest.raises(AdapterError, match=r"adapter\.0\.bias"):
        UniTokenModel(dst, torch.device("cpu"), torch.float32)
    tok = (dst / "tokenizer.json").read_bytes()
    (dst / "tokenizer.json").unlink()
    with pytest.raises(AdapterError, match="tokenizer.json"):
        UniTokenModel(dst, torch.device("cpu"), torch.float32)
    (dst / "tokenizer.json").write_bytes(tok)
    (dst / index["lm_head.weight"]).unlink()
    with pytest.raises(AdapterError, match=index["lm_head.weight"]):
        UniTokenModel(dst, torch.device("cpu"), torch.float32)
    with pytest.raises(AdapterError, match="vqgan"):
        UniTokenAdapter(path=str(ckpt), vqgan=str(tmp_path / "nowhere"))
    with pytest.raises(AdapterError, match="no such directory"):
        UniTokenAdapter(path=str(tmp_path / "absent"))
    with pytest.raises(AdapterError, match="dtype"):
        UniTokenAdapter(path=str(ckpt), dtype="int8")


def test_pinpoint_choice_and_ties():
    assert select_best_resolution((100, 100)) == (384, 768)  # every layout keeps all pixels: first one wins
    assert select_best_resolution((384, 384)) == (384, 768)
    assert select_best_resolution((1000, 500)) == (768, 384)
    assert select_best_resolution((300, 1000)) == (384, 1152)
    assert select_best_resolution((1000, 400)) == (1152, 384)
    assert select_best_resolution((2000, 2000)) == (768, 768)
    assert PINPOINTS[0] == (384, 768)


# (w, h) -> continuous token count worked out by hand from the release's rules (27x27 features per tile)
CASES = {
    (500, 300): 729 + 27 * (46 + 1),   # 2x1 tiles, width unpad 54 -> 45 + odd leftover 9 keeps 46
    (1000, 400): 729 + 27 * (67 + 1),  # 3x1 tiles, width 81 -> 67 (even leftover 14)
    (1000, 300): 729 + 25 * (81 + 1),  # 3x1 tiles, height 27 -> 24 + odd leftover 3 keeps 25 rows
    (100, 100): 729 + 28 * (27 + 1),   # 1x2 tiles (tie): 54 rows -> 27 + odd leftover 27 keeps 28
    (2000, 2000): 729 + 54 * (54 + 1),  # 2x2 tiles, nothing to unpad
}


def test_unpad_rule():
    assert unpad_rows_cols((500, 300), 27, 54) == (slice(0, 27), slice(4, 50))
    assert unpad_rows_cols((1000, 300), 27, 81) == (slice(1, 26), slice(0, 81))


@pytest.mark.parametrize("size", list(CASES))
def test_continuous_token_counts(adapter, size):
    img = _img(*size)
    assert VisionLayout(anyres=True).n_tokens(size) == CASES[size]
    assert adapter.model.continuous_tokens(img).shape == (CASES[size], 64)
    assert VisionLayout(anyres=False).n_tokens(size) == 729


def test_one_siglip_forward_over_several_images_gives_each_its_own_tokens(adapter):
    """Images with 3, 4 and 5 views through one tower forward: each image's tokens as if it ran alone."""
    imgs = [_img(*size) for size in ((500, 300), (1000, 400), (2000, 2000))]
    together = adapter.model.continuous_tokens_many(imgs)
    for img, got in zip(imgs, together):
        torch.testing.assert_close(got, adapter.model.continuous_tokens(img), rtol=1e-5, atol=1e-5)
    assert [t.shape[0] for t in together] == [CASES[(500, 300)], CASES[(1000, 400)], CASES[(2000, 2000)]]
    assert adapter.model.continuous_tokens_many([]) == []


def test_compiled_vision_tower_serves_every_view_count_with_the_eager_tokens(ckpt, monkeypatch):
    """compile=auto compiles the SigLIP tower on CUDA; here dynamo traces it (backend "eager": CPU CI has no
    inductor toolchain guarantee) over 3-, 4- and 5-view batches, and UNITOKEN_EVAL_COMPILE=0 keeps it eager."""
    model = UniTokenModel(ckpt, torch.device("cpu"), torch.float32)
    imgs = [_img(*size) for size in ((500, 300), (1000, 400), (2000, 2000))]
    eager = model.continuous_tokens_many(imgs)
    monkeypatch.setenv("UNITOKEN_EVAL_COMPILE", "0")
    model.compile_vision(backend="eager")
    assert model.vision_tower is model.vit
    monkeypatch.delenv("UNITOKEN_EVAL_COMPILE")
    model.compile_vision(backend="eager")
    assert model.vision_tower is not model.vit
    for one in ([imgs[0]], [imgs[1]], imgs):  # view counts 3, 4, then 12 in one forward
        for got, want in zip(model.continuous_tokens_many(one), [eager[imgs.index(i)] for i in one]):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_sequence_layout(adapter):
    img = _img(500, 300)
    before, after = adapter.model.tokenizer.question("What is shown?", 1)
    assert before == [0]  # BOS 0, and the image comes first
    assert after[-1] == 8710 and adapter.model.tokenizer.decode(after[:-1]) == " What is shown?"
    block = adapter.vq.image_block(img)
    assert len(block) == 1060 and block[:3] == [8197, 8820, 8820] and block[-1] == 8196
    assert all(block[3 + 33 * r + 32] == 8803 for r in range(32))
    prefix = adapter.model.image_prefix(before, block, img)
    emb = adapter.model.embed_ids
    assert prefix.shape[0] == 1 + 1059 + 1 + CASES[(500, 300)] + 1
    torch.testing.assert_close(prefix[1060], emb([8198])[0])  # SEP after the discrete tokens
    torch.testing.assert_close(prefix[-1], emb([8196])[0])  # EOI closes the image
    torch.testing.assert_close(prefix[1 + 1059 + 1 + 729 + 46], emb([8803])[0])  # newline after the first row
    # with "<|image|>" in the text the image goes where it is
    b2, a2 = adapter.model.tokenizer.question("Look: <|image|> now", 1)
    assert adapter.model.tokenizer.decode(b2[1:]) == "Look: " and adapter.model.tokenizer.decode(a2[:-1]) == " now"


def test_base_variant_single_view(ckpt):
    base = UniTokenAdapter(path=str(ckpt), device="cpu", anyres="false")
    assert base.model.continuous_tokens(_img(1000, 300)).shape == (729, 64)
