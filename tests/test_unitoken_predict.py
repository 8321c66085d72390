"""``unitoken-eval predict`` end to end on the ``tiny`` model (its cached release-layout checkpoint)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("transformers")
from unitoken_eval.harness.cli import main  # noqa: E402


def test_predict_answer_and_image(module_cache, tmp_path, capsys):
    img = tmp_path / "q.png"
    Image.fromarray((np.random.RandomState(0).rand(240, 320, 3) * 255).astype("uint8")).save(img)
    rc = main(["predict", "--model", "tiny", "--image", str(img), "--prompt", "What is this?",
               "--max-new-tokens", "5", "--format", "json"])
    assert rc == 0
    rec = json.loads(capsys.readouterr().out)
    assert len(rec["generated_token_ids"]) == 5 and isinstance(rec["text"], str)
    assert list((module_cache / "tiny").iterdir())  # the checkpoint was written to the cache and loaded from there

    out = tmp_path / "img.png"
    rc = main(["predict", "--model", "tiny", "--generate", "--prompt", "a cat", "--seed", "7", "--cfg", "2.5",
               "--image-top-k", "20", "--out", str(out), "--format", "json"])
    assert rc == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["image"] == str(out) and Image.open(out).size == (512, 512)
    ids = rec["image_token_ids"]
    assert ids[:3] == [8197, 8820, 8820] and ids[-1] == 8196 and len(ids) == 1060
    assert rec["options"] == {"cfg": 2.5, "image_top_k": 20}


def test_predict_errors_are_named(module_cache, tmp_path, capsys):
    assert main(["predict", "--model", "tiny", "--image", str(tmp_path / "none.png"), "--prompt", "x"]) == 2
    assert "none.png" in capsys.readouterr().err
    assert main(["predict", "--model", "unitoken", "--model-args", f"path={tmp_path / 'nockpt'}",
                 "--prompt", "x"]) == 2
    assert "nockpt" in capsys.readouterr().err
