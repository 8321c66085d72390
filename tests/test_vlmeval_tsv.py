"""VK TSV loading (VK e8e78f05 ImageBaseDataset.__init__ / toliststr / decode_base64_to_image), HF rows, MD5 fetch."""

import base64
import io

import pytest
from PIL import Image

from unitoken_eval.harness.plugin import TaskError
from unitoken_eval.tasks.common import vk_catalog
from unitoken_eval.tasks.common.hf_data import load_hf_rows, looks_like_hf_source
from unitoken_eval.tasks.common.vlmeval_tsv import PANDAS_NA_STRINGS, as_vlmevalkit_reads, load_tsv, resolve_tsv


def b64(colour, size=(8, 8), mode="RGB"):
    buf = io.BytesIO()
    Image.new(mode, size, colour).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def write(path, header, rows):
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_rows_reuse_images_lists_and_missing_values(tmp_path):
    red, blue = b64((255, 0, 0)), b64((0, 0, 255), mode="RGBA")
    p = write(tmp_path / "X.tsv", ["index", "image", "question", "A", "B", "C", "answer"], [
        ["0", red, "q0", "cat", "None", "", "A"],
        ["1000000", "0", "q0", "dog", "cat", "", "B"],
        ["7", repr([blue, red]), "q7", "x", "y", "z", "C"],
    ])
    rows = load_tsv(p, ["question", "answer"])
    assert [r.index for r in rows] == ["0", "1000000", "7"]
    assert rows[0].fields["B"] == "None"      # the text is kept (VK's pandas read loses it: as_vlmevalkit_reads)
    assert rows[0].fields["C"] is None        # empty cell
    assert rows[1].image_key == rows[0].image_key == "0"
    assert rows[1].image().getpixel((0, 0)) == (255, 0, 0)
    assert rows[2].n_images == 2
    img = rows[2].image()                     # first of the list; RGBA converted to RGB as VK does
    assert img.mode == "RGB" and img.getpixel((0, 0)) == (0, 0, 255)
    assert "image" not in rows[0].fields


def test_errors_name_file_and_row(tmp_path):
    p = write(tmp_path / "bad.tsv", ["index", "image", "question"], [["1", b64((0, 0, 0)), "q"]])
    with pytest.raises(TaskError, match=r"bad\.tsv: header \(line 1\) lacks column\(s\) \['answer'\]"):
        load_tsv(p, ["question", "answer"])
    p = write(tmp_path / "img.tsv", ["index", "image", "question"],
              [["1", b64((0, 0, 0)), "q"], ["2", "A" * 80 + "!!not-base64", "q"]])
    rows = load_tsv(p, ["question"])
    with pytest.raises(TaskError, match=r"img\.tsv: row 3 \(index 2\): image cell is not a decodable"):
        rows[1].image()
    p = write(tmp_path / "ref.tsv", ["index", "image", "question"], [["1", b64((0, 0, 0)), "q"], ["2", "99", "q"]])
    with pytest.raises(TaskError, match=r"ref\.tsv: row 3 \(index 2\): image cell '99' names no row"):
        load_tsv(p, ["question"])
    p = write(tmp_path / "dup.tsv", ["index", "question"], [["1", "q"], ["1", "q"]])
    with pytest.raises(TaskError, match=r"dup\.tsv: row 3: index '1' repeats row 2"):
        load_tsv(p, ["question"])


def test_resolve_tsv(tmp_path, monkeypatch):
    monkeypatch.setenv("LMUData", str(tmp_path))
    with pytest.raises(TaskError, match="MMStar.tsv does not exist"):
        resolve_tsv("MMStar", None)
    (tmp_path / "MMStar.tsv").write_text("index\n1\n")
    assert resolve_tsv("MMStar", None) == tmp_path / "MMStar.tsv"
    assert resolve_tsv("MMStar", str(tmp_path)) == tmp_path / "MMStar.tsv"
    with pytest.raises(TaskError, match="nope.tsv does not exist"):
        resolve_tsv("MMStar", str(tmp_path / "nope.tsv"))


def test_catalog_md5_and_fetch_from_file_url(tmp_path, monkeypatch):
    assert len(vk_catalog.CATALOG) == 12  # eleven benchmarks + unmasked AI2D
    assert vk_catalog.CATALOG["MMBench_DEV_EN"].md5 == "b6caf1133a01c6bb705cf753bb527ed8"  # image_mcq.py @ e8e78f05
    src = tmp_path / "src.tsv"
    src.write_text("index\tquestion\n1\tq\n")
    md5 = vk_catalog.md5_file(src)
    vk_catalog.verify_md5(src, md5)
    with pytest.raises(TaskError, match="does not match the published"):
        vk_catalog.verify_md5(src, "0" * 32)
    monkeypatch.setitem(vk_catalog.CATALOG, "MME", vk_catalog.VKData("MME", src.as_uri(), md5))
    out = vk_catalog.fetch_tsv("MME", tmp_path / "lmu")
    assert out.read_text() == src.read_text()
    monkeypatch.setitem(vk_catalog.CATALOG, "MME", vk_catalog.VKData("MME", src.as_uri(), "1" * 32))
    with pytest.raises(TaskError, match="does not match"):
        vk_catalog.fetch_tsv("MME", tmp_path / "lmu2")
    assert not list((tmp_path / "lmu2").glob("*"))  # no partial file left behind


def test_hf_parquet_rows_in_tsv_shape(tmp_path):
    datasets = pytest.importorskip("datasets")
    png = base64.b64decode(b64((0, 255, 0)))
    ds = datasets.Dataset.from_dict({
        "question_id": ["code/1.png", "code/1.png"], "question": ["Is it green?", "Is it red?"],
        "answer": ["Yes", "No"], "category": ["color", "color"],
        "image": [{"bytes": png, "path": None}, {"bytes": png, "path": None}],
    }).cast_column("image", datasets.Image())
    pq = tmp_path / "test-00000.parquet"
    ds.to_parquet(str(pq))
    assert looks_like_hf_source(str(pq)) and looks_like_hf_source(str(tmp_path)) and looks_like_hf_source("lmms-lab/MME")
    assert not looks_like_hf_source(str(tmp_path / "MME.tsv"))
    rows = load_hf_rows(str(tmp_path), "test", {"question": "question", "answer": "answer", "image_path": "question_id"},
                        index_column=None, image_key_column="image_path")
    assert [r.index for r in rows] == ["0", "1"]
    assert rows[0].image_key == rows[1].image_key == "code/1.png"
    assert rows[1].image().getpixel((0, 0)) == (0, 255, 0)
    with pytest.raises(TaskError, match=r"column\(s\) \['hint'\] missing"):
        load_hf_rows(str(pq), "test", {"hint": "hint"}, index_column=None)


def test_na_strings_kept_as_text_and_blanked_as_vlmevalkit_reads_them(tmp_path):
    # Every cell's text is kept (only an empty cell is missing); as_vlmevalkit_reads blanks exactly the cells
    # pandas' default read_csv (VK's load) makes missing.
    import pandas as pd

    words = sorted(PANDAS_NA_STRINGS - {""}) + ["none", "Nan", "NONE", " None", "N.A.", "0", "-"]
    path = tmp_path / "t.tsv"
    write(path, ["index", "image", "A"], [[str(i + 1), b64("red"), w] for i, w in enumerate(words)] +
          [[str(len(words) + 1), b64("red"), ""]])
    rows = load_tsv(path)
    assert [r.fields["A"] for r in rows] == words + [None]
    vk_missing = pd.read_csv(path, sep="\t")["A"].isna().tolist()
    assert [as_vlmevalkit_reads(r.fields)["A"] is None for r in rows] == vk_missing
    assert sum(vk_missing) == len(PANDAS_NA_STRINGS)
