"""Chameleon VQ-GAN tokenizer: Meta's on-disk format, strict loading, release-exact preprocessing, id layout.

The preprocessing expectations (crop offsets) were observed by running the release's own ``center_crop`` /
``var_center_crop`` after its ``set_seed(100)``; the decoder and encoder were compared once against the
release's vendored taming code on the same tiny checkpoint (identical codes, decoded pixels within 1/255).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from unitoken_eval.model_adapters.chameleon_family.vq import (
    VQGANLoadError,
    VQImageTokenizer,
    VocabularyError,
    build_vocabulary_map,
    code_name,
    write_tiny_vqgan,
)
from unitoken_eval.model_adapters.chameleon_family.vq.config import read_checkpoint


@pytest.fixture(scope="module")
def vocab():
    return build_vocabulary_map()


@pytest.fixture(scope="module")
def vq_dir(tmp_path_factory):
    return write_tiny_vqgan(tmp_path_factory.mktemp("vqgan"), seed=0)


@pytest.fixture(scope="module")
def tok(vq_dir, vocab):
    return VQImageTokenizer.from_files(vq_dir, vocab)


def _noise(w, h, seed=0, mode="RGB"):
    arr = (np.random.RandomState(seed).rand(h, w, 3) * 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB").convert(mode)


# ------------------------------------------------------------------ files and loading

def test_tiny_release_files_round_trip(vq_dir, tok):
    doc = yaml.safe_load((vq_dir / "vqgan.yaml").read_text())
    params = doc["model"]["params"]
    assert params["n_embed"] == 8192 and params["ddconfig"]["ch_mult"] == [1, 1, 1, 1, 2]
    raw = torch.load(vq_dir / "vqgan.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert any(k.startswith("loss.") for k in raw)  # training-only keys are present on disk ...
    loaded = tok.model.state_dict()
    assert not any(k.startswith("loss.") for k in loaded)  # ... and ignored when loading
    assert set(loaded) == {k for k in raw if not k.startswith("loss.")}
    for k, v in loaded.items():
        assert torch.equal(v, raw[k]), k
    assert {"quantize.embedding.weight", "decoder.conv_out.weight", "post_quant_conv.weight"} <= set(loaded)


def test_from_config_is_deterministic_per_seed(vocab):
    dd = {"ch": 32, "out_ch": 3, "ch_mult": [1, 1, 1, 1, 1], "num_res_blocks": 1, "attn_resolutions": [],
          "z_channels": 32, "resolution": 512, "in_channels": 3, "double_z": False, "dropout": 0.0}
    a = VQImageTokenizer.from_config(dd, 8192, 8, vocab, seed=7).model.state_dict()
    b = VQImageTokenizer.from_config(dd, 8192, 8, vocab, seed=7).model.state_dict()
    c = VQImageTokenizer.from_config(dd, 8192, 8, vocab, seed=8).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["decoder.conv_in.weight"], c["decoder.conv_in.weight"])


def _resave(src: Path, dst: Path, edit) -> Path:
    dst.mkdir()
    (dst / "vqgan.yaml").write_text((src / "vqgan.yaml").read_text())
    sd = read_checkpoint(src / "vqgan.ckpt")
    edit(sd)
    torch.save({"state_dict": sd}, dst / "vqgan.ckpt")
    return dst


def test_strict_loading_names_missing_unexpected_and_misshaped_keys(vq_dir, vocab, tmp_path):
    bad = _resave(vq_dir, tmp_path / "missing", lambda sd: sd.pop("decoder.up.2.block.1.conv2.bias"))
    with pytest.raises(VQGANLoadError, match=r"missing keys \['decoder\.up\.2\.block\.1\.conv2\.bias'\]") as e:
        VQImageTokenizer.from_files(bad, vocab)
    assert "vqgan.ckpt" in str(e.value)

    bad = _resave(vq_dir, tmp_path / "extra", lambda sd: sd.update({"encoder.extra.weight": torch.zeros(1)}))
    with pytest.raises(VQGANLoadError, match=r"unexpected keys \['encoder\.extra\.weight'\]"):
        VQImageTokenizer.from_files(bad, vocab)

    bad = _resave(vq_dir, tmp_path / "shape", lambda sd: sd.update({"quant_conv.bias": torch.zeros(3)}))
    with pytest.raises(VQGANLoadError, match=r"quant_conv\.bias: file \(3,\)"):
        VQImageTokenizer.from_files(bad, vocab)


def test_missing_files_are_named(vq_dir, vocab, tmp_path):
    with pytest.raises(VQGANLoadError, match="vqgan.yaml does not exist"):
        VQImageTokenizer.from_files(tmp_path, vocab)
    only_cfg = tmp_path / "only_cfg"
    only_cfg.mkdir()
    (only_cfg / "vqgan.yaml").write_text((vq_dir / "vqgan.yaml").read_text())
    with pytest.raises(VQGANLoadError, match="has no vqgan.ckpt"):
        VQImageTokenizer.from_files(only_cfg, vocab)


class _Payload:
    """A pickled object whose unpickling would run code: it must never be reconstructed."""

    marker: str = ""

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def test_pickle_with_disallowed_global_is_refused(vq_dir, vocab, tmp_path):
    marker = tmp_path / "code_ran"
    payload = _Payload()
    payload.marker = str(marker)
    d = tmp_path / "evil"
    d.mkdir()
    (d / "vqgan.yaml").write_text((vq_dir / "vqgan.yaml").read_text())
    torch.save({"state_dict": read_checkpoint(vq_dir / "vqgan.ckpt"), "callbacks": payload}, d / "vqgan.ckpt")
    with pytest.raises(VQGANLoadError) as e:
        VQImageTokenizer.from_files(d, vocab)
    msg = str(e.value)
    assert str(d / "vqgan.ckpt") in msg and "vqgan.safetensors" in msg and "makedirs" in msg
    assert not marker.exists()


def test_converted_safetensors_is_preferred(vq_dir, vocab, tmp_path, tok):
    from safetensors.torch import save_file

    d = tmp_path / "converted"
    d.mkdir()
    (d / "vqgan.yaml").write_text((vq_dir / "vqgan.yaml").read_text())
    save_file(read_checkpoint(vq_dir / "vqgan.ckpt"), str(d / "vqgan.safetensors"))
    other = VQImageTokenizer.from_files(d, vocab)
    assert other.source.endswith("vqgan.safetensors")
    assert torch.equal(other.model.decoder.conv_out.weight, tok.model.decoder.conv_out.weight)


# ------------------------------------------------------------------ preprocessing


def _release_like(img: Image.Image, left: int, top: int) -> Image.Image:
    """The resize chain spelled out independently; the offsets come from the release run (see module doc)."""
    while img.width >= 1024 and img.height >= 1024:
        img = img.resize((img.width // 2, img.height // 2), Image.BOX)
    s = max(512 / img.width, 512 / img.height)
    img = img.resize((round(img.width * s), round(img.height * s)), Image.BICUBIC)
    return img.crop((left, top, left + 512, top + 512))


# (size, crop offset drawn by the release after set_seed(100))
RELEASE_OFFSETS = [
    ((800, 600), (117, 0)),
    ((600, 800), (0, 116)),
    ((2100, 1030), (470, 0)),  # halved once (both sides >= 1024), then resized to 1044x512
    ((1030, 2100), (0, 465)),
    ((3000, 2500), (58, 0)),  # halved twice
    ((512, 512), (0, 0)),
    ((300, 200), (235, 0)),  # upscaled to 768x512
]


@pytest.mark.parametrize("size,offset", RELEASE_OFFSETS)
def test_preprocess_matches_release_crop(tok, size, offset):
    img = _noise(*size, seed=size[0])
    px = tok.preprocess(img)
    assert px.shape == (3, 512, 512) and px.dtype == torch.float32
    ref = np.asarray(_release_like(img, *offset)).astype(np.float64) / 255.0 * 2 - 1
    assert torch.equal(px, torch.from_numpy(ref).permute(2, 0, 1).float())
    assert float(px.min()) >= -1 and float(px.max()) <= 1


def test_preprocess_is_independent_of_call_order_and_global_rng(tok):
    import random

    img = _noise(800, 600, seed=3)
    a = tok.preprocess(img)
    random.seed(12345)
    state = random.getstate()
    tok.preprocess(_noise(900, 700, seed=4))
    b = tok.preprocess(img)
    assert torch.equal(a, b)
    assert random.getstate() == state  # the global generator is left alone


def test_transparency_is_flattened_onto_white_after_cropping(tok):
    rgba = np.zeros((600, 700, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 0
    rgba[:, :350, 3] = 255
    px = tok.preprocess(Image.fromarray(rgba, "RGBA"))
    # fully transparent pixels become white (+1); opaque ones keep their colour
    assert torch.allclose(px[:, :, -1], torch.ones(3, 512))
    assert torch.allclose(px[:, 0, 0], torch.tensor([200 / 255 * 2 - 1, -1.0, -1.0]))
    # an opaque RGBA image equals its RGB version; a grey one is expanded to three equal channels
    rgb = _noise(640, 640, seed=5)
    assert torch.equal(tok.preprocess(rgb.convert("RGBA")), tok.preprocess(rgb))
    grey = tok.preprocess(rgb.convert("L"))
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])


# ------------------------------------------------------------------ ids and blocks


def test_vocabulary_map_layout(vocab):
    assert vocab["<racm3:break>"] == 8197 and vocab["<eoss>"] == 8196
    assert vocab["<reserved08799>"] == 8803 and vocab["<reserved08816>"] == 8820
    assert vocab["<reserved08706>"] == 8710 and vocab["<image>"] == 8711 and vocab["<reserved16849>"] == 16853
    image_ids = sorted(v for k, v in vocab.items() if k.startswith("IMGIMG"))
    assert image_ids == list(range(4, 8196))
    assert vocab[code_name(0)] == 4 and vocab[code_name(1000)] == 5 and vocab[code_name(1)] != 5  # name order
    with pytest.raises(ValueError, match="clashes"):
        build_vocabulary_map(text_tokens={"hello": 8197})


def test_codes_bpe_round_trip_uses_names(tok, vocab):
    codes = torch.arange(8192).view(8, 32, 32)
    ids = tok.codes_to_bpe(codes)
    assert torch.equal(tok.bpe_to_codes(ids), codes)
    assert int(ids[0, 0, 10]) == vocab["IMGIMGBAZ"] != 10 + 4
    assert sorted(ids.flatten().tolist()) == list(range(4, 8196))
    with pytest.raises(ValueError, match="not image tokens: ids \\[8803\\]"):
        tok.bpe_to_codes([5, 8803])


def test_image_block_layout(tok):
    block = tok.image_block(_noise(700, 600, seed=1))
    assert len(block) == 1060
    assert block[:3] == [8197, 8820, 8820] and block[-1] == 8196
    body = torch.tensor(block[3:-1]).view(32, 33)
    assert (body[:, 32] == 8803).all()
    assert ((body[:, :32] >= 4) & (body[:, :32] <= 8195)).all()
    codes = tok.codes_from_block(block)
    assert codes.shape == (1, 32, 32)
    assert tok.block_from_codes(codes)[0] == block
    # the block is what encoding the preprocessed pixels gives
    assert torch.equal(codes[0], tok.encode(tok.preprocess(_noise(700, 600, seed=1))[None])[0])


def test_size_token_is_looked_up_by_name(vq_dir):
    vocab = build_vocabulary_map()
    vocab.pop("<reserved08816>")
    with pytest.raises(VocabularyError, match="<reserved08816>"):
        VQImageTokenizer.from_files(vq_dir, vocab)
    vocab = build_vocabulary_map()
    vocab.pop(code_name(77))
    with pytest.raises(VocabularyError, match="codes \\[77\\]"):
        VQImageTokenizer.from_files(vq_dir, vocab)


def test_encode_batch_and_decode(tok):
    imgs = [_noise(600, 520, seed=s) for s in (10, 11)]
    pixels = torch.stack([tok.preprocess(i) for i in imgs])
    codes = tok.encode(pixels)
    assert codes.shape == (2, 32, 32) and codes.dtype == torch.long
    assert torch.equal(codes[1], tok.encode(pixels[1:])[0])  # batching does not change the result
    assert len(set(codes.flatten().tolist())) > 50  # the random encoder still tells positions apart
    out = tok.decode(codes)
    assert len(out) == 2
    for im in out:
        assert im.size == (512, 512) and im.mode == "RGB"
        arr = np.asarray(im)
        assert arr.dtype == np.uint8 and arr.std() > 1
    assert not np.array_equal(np.asarray(out[0]), np.asarray(out[1]))
    single = np.asarray(tok.decode_blocks(tok.block_from_codes(codes[:1]))[0]).astype(int)
    assert np.abs(single - np.asarray(out[0]).astype(int)).max() <= 1  # batch size only changes float rounding
    tok.max_decode_batch = 1  # decoding in chunks gives the same images (up to float rounding)
    try:
        chunked = tok.decode(codes)
    finally:
        tok.max_decode_batch = 16
    assert all(np.abs(np.asarray(a, int) - np.asarray(b, int)).max() <= 1 for a, b in zip(chunked, out))
    with pytest.raises(ValueError, match="outside the codebook"):
        tok.decode(torch.full((1, 32, 32), 8192))


def test_variable_crop_sizes_as_lumina_mgpt(vq_dir, vocab):
    from unitoken_eval.model_adapters.chameleon_family.vq import crop_sizes_for

    sizes = crop_sizes_for(512)
    assert (512, 512) in sizes and all(w * h <= 512 * 512 and max(w, h) / min(w, h) <= 4 for w, h in sizes)
    assert len(crop_sizes_for(768)) == 73  # as the release's generate_crop_size_list gives
    tok = VQImageTokenizer.from_files(vq_dir, vocab, crop_sizes=sizes)
    # (image size) -> crop chosen by the release's var_center_crop (observed running it)
    wide, tall = _noise(2100, 1030, seed=8), _noise(600, 800, seed=9)
    assert tuple(tok.preprocess(wide).shape) == (3, 352, 704)
    assert tuple(tok.preprocess(tall).shape) == (3, 576, 448)
    blocks = tok.image_blocks([wide, tall, _noise(640, 480, seed=10)])
    h, w = 352 // 16, 704 // 16
    assert len(blocks[0]) == 3 + h * (w + 1) + 1
    assert blocks[0][1:3] == [vocab["<reserved08811>"], vocab["<reserved08822>"]]  # h grids 11, w grids 22
    assert blocks[1][1:3] == [vocab["<reserved08818>"], vocab["<reserved08814>"]]
    assert tok.codes_from_block(blocks[1]).shape == (1, 36, 28)


def test_lightning_metadata_is_read_inertly(vq_dir, vocab, tmp_path, monkeypatch):
    """A Lightning-style checkpoint (a ModelCheckpoint callback pickled beside the weights) loads with
    weights_only=True: the callback is replaced by an inert stand-in and its own code never runs."""
    import sys
    import types

    marker = tmp_path / "callback_code_ran"

    class ModelCheckpoint:
        def __setstate__(self, state):
            os.makedirs(marker)

    ModelCheckpoint.__module__ = "pytorch_lightning.callbacks.model_checkpoint"
    ModelCheckpoint.__qualname__ = "ModelCheckpoint"
    names = ["pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint"]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules[names[-1]].ModelCheckpoint = ModelCheckpoint
    cb = ModelCheckpoint.__new__(ModelCheckpoint)
    cb.__dict__["best_model_path"] = "/x/last.ckpt"
    d = tmp_path / "lightning"
    d.mkdir()
    (d / "vqgan.yaml").write_text((vq_dir / "vqgan.yaml").read_text())
    sd = read_checkpoint(vq_dir / "vqgan.ckpt")
    torch.save({"state_dict": sd, "epoch": 3, "callbacks": {"ModelCheckpoint": cb}}, d / "vqgan.ckpt")
    for name in names:  # loading must not need (or import) Lightning
        monkeypatch.delitem(sys.modules, name)
    tok = VQImageTokenizer.from_files(d, vocab)
    assert torch.equal(tok.model.decoder.conv_in.weight, sd["decoder.conv_in.weight"])
    assert not marker.exists()


def test_meta_rank_pairing_is_the_name_mapping_exactly_when_ids_ascend_with_codes():
    """Meta's decoder (``VocabTranslation.convert_bpe2img``, also in Lumina-mGPT) pairs the k-th smallest image id
    with code k; its encoder and ours map by the ``IMGIMG`` names.  Meta's own encode-then-decode is the identity
    only on a vocabulary whose ids ascend with codes, so that is the vocabulary its released pipelines draw on,
    and there our name mapping gives its pictures; the tiny vocabulary (ids in name order) is where they part."""
    from unitoken_eval.model_adapters.chameleon_family.vq.vocab import ImageVocabulary, code_of_name

    n = 64
    tiny = build_vocabulary_map(n_codes=n)
    ascending = {k: v for k, v in tiny.items() if not k.startswith("IMGIMG")}
    ascending.update({code_name(c): 4 + c for c in range(n)})
    for vocab, agree in ((ascending, True), (tiny, False)):
        ids = sorted(v for k, v in vocab.items() if k.startswith("IMGIMG"))
        codes = sorted(code_of_name(k) for k in vocab if k.startswith("IMGIMG"))
        by_rank = dict(zip(ids, codes))
        iv = ImageVocabulary.from_map(vocab, n)
        by_name = {int(iv.code_to_id[c]): c for c in range(n)}
        meta_round_trip = [by_rank[int(iv.code_to_id[c])] for c in range(n)]  # encode by name, decode by rank
        assert (meta_round_trip == list(range(n))) is agree
        assert (by_rank == by_name) is agree
