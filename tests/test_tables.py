import csv
import io
import re

import pytest

from unitoken_eval.harness.cli import main
from unitoken_eval.harness.tables import latex_escape, table_command, write_run_tables
from unitoken_eval_testkit.run_builder import add_task, full_understanding_run, make_run

# Transcribed by hand from the paper's text (arXiv:2504.04423v1), one line per printed row, independently of
# results/published/*.csv: method, [LLM,] then the cells left to right.
TABLE3 = """
InstructBLIP|Vicuna-7B 30.6 23.9 36.0 - 53.4 25.3 45.3 - 276
QwenVL-Chat|Qwen-7B 35.9 56.3 60.6 37.5 65.4 - 39.2 45.9 488
mPLUG-Owl2|LLaMA2-7B 32.7 60.7 64.5 - 57.8 22.2 - - 255
LLaVA-v1.5|Vicuna-7B 35.3 46.4 64.3 30.3 64.3 - 46.9 54.8 318
ShareGPT4V|Vicuna-7B 37.2 60.7 68.8 33.0 - - - 58.0 371
DeepSeek-VL|DeepSeek-1B 32.2 62.9 64.6 - 66.7 - 27.6 - 409
LLaVA-v1.6(HD)|Vicuna-7B 35.1 62.3 67.4 - 64.7 34.6 - 66.6* 532
Chameleon|- 34.4 26.0 31.6 30.3 47.4 13.6 17.8 45.6 18
Lumina-mGPT|Chameleon7B 25.1 16.1 33.0 28.2 51.3 21.2 35.8 44.1 37
Show-o|Phi1.5-1.3B 25.1 - - - - - - - -
Emu3†|- 31.6 47.6 58.5 - 68.2 - - 70.0* 687
VILA-U|LLaMA2-7B - - - - 59.0 - - - -
Janus|DeepSeek-1B 30.5 52.2 69.4 - 63.7 - - - -
UniToken|Chameleon-7B 34.2 64.1 70.3 45.2 70.3 41.6 49.6 67.6 634
"""
TABLE3_HEAD = ["MMMU", "MMB-CN", "MMB-EN", "MMStar", "SEED", "MathVista", "HBench", "AI2D", "OCRBench"]

TABLE4 = """
DALL-E2| 0.52 0.94 0.66 0.49 0.77 0.10 0.19 0.5750 0.5464 0.6374
DALL-E3| 0.67 0.96 0.87 0.47 0.83 0.43 0.45 0.8110 0.6750 0.8070
SDv1.5| 0.43 0.97 0.38 0.35 0.76 0.04 0.06 0.3730 0.3646 0.4219
SDv2.1| 0.50 0.98 0.51 0.44 0.85 0.07 0.17 0.5694 0.4495 0.4982
SDXL| 0.55 0.98 0.74 0.39 0.85 0.15 0.23 0.6369 0.5408 0.5637
SD3| 0.74 0.99 0.94 0.72 0.89 0.33 0.60 - - -
PixArt-α| 0.48 0.98 0.50 0.44 0.80 0.08 0.07 0.6886 0.5582 0.7044
LlamaGen| 0.32 0.71 0.34 0.21 0.58 0.07 0.04 - - -
Show-o| 0.53 0.95 0.52 0.49 0.82 0.11 0.28 - - -
SEED-X| 0.49 0.97 0.58 0.26 0.80 0.19 0.14 - - -
TransFusion| 0.63 - - - - - - - - -
Chameleon| 0.39 - - - - - - - - -
Lumina-mGPT| 0.52 0.98 0.72 0.32 0.85 0.19 0.16 0.5558 0.4485 0.5413
Emu3†| 0.54 0.98 0.71 0.34 0.81 0.17 0.21 0.6107 0.4734 0.6178
Janus| 0.61 0.97 0.68 0.30 0.84 0.46 0.42 0.7552 0.4768 0.6214
UniToken (Ours)| 0.58 0.98 0.75 0.39 0.81 0.26 0.32 0.7115 0.5179 0.6670
"""
TABLE4_HEAD = ["GenEval Overall", "GenEval Single Obj.", "GenEval Two Obj.", "GenEval Counting", "GenEval Colors",
               "GenEval Positions", "GenEval Color Attri.", "T2I-CompBench++ Color", "T2I-CompBench++ Shape",
               "T2I-CompBench++ Texture"]


def _expected(text):
    rows = []
    for line in text.strip().splitlines():
        method, rest = line.split("|")
        tokens = rest.split()
        rows.append((method, tokens))
    return rows


def _cli_csv(capsys, *args):
    assert main(["table", *args]) == 0
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def test_table3_csv_reproduces_every_cell_of_the_paper(capsys):
    got = _cli_csv(capsys, "--baselines", "paper", "--format", "csv", "--layout", "table3")
    want = _expected(TABLE3)
    assert [r["Method"] for r in got] == [m for m, _ in want]
    for row, (method, tokens) in zip(got, want):
        llm, cells = tokens[0], tokens[1:]
        assert row["LLM"] == llm, method
        assert [row[h] for h in TABLE3_HEAD] == cells, method
        assert "arXiv:2504.04423" in row["Source"] and "Table 3" in row["Source"]
    assert [r["Section"] for r in got].count("Understanding-Only") == 7


def test_table4_csv_reproduces_every_cell_of_the_paper(capsys):
    got = _cli_csv(capsys, "--baselines", "paper", "--format", "csv", "--layout", "table4")
    want = _expected(TABLE4)
    assert [r["Method"] for r in got] == [m for m, _ in want]
    for row, (method, cells) in zip(got, want):
        assert [row[h] for h in TABLE4_HEAD] == cells, method
    types = {r["Method"]: r["Type"] for r in got}
    assert types["LlamaGen"] == "AR based" and types["SEED-X"] == "Diffusion & AR hybrid"
    assert types["SDXL"] == "Diffusion-based" and types["Janus"] == "AR based"


def test_table6_paper_rows_keep_printed_deltas(capsys):
    got = _cli_csv(capsys, "--baselines", "paper", "--format", "csv", "--layout", "table6")
    assert [(r["#"], r["Visual Und."], r["Image Gen."]) for r in got] == [
        ("1", "2M", "2M"), ("2", "2M", "1M"), ("3", "10M", "10M"), ("4", "10M", "5M")]
    assert got[3]["Image Generation GenEval"] == "38.4(↓11.0)"
    assert got[2]["Visual Understanding General"] == "53.3"


@pytest.mark.parametrize("raw, want", [
    ("Lumina-mGPT", "Lumina-mGPT"),
    ("50% & a_b #1 $x$", r"50\% \& a\_b \#1 \$x\$"),
    ("{x}~^\\", r"\{x\}\textasciitilde{}\textasciicircum{}\textbackslash{}"),
    ("Emu3†", r"Emu3\textsuperscript{\dag}"),
    ("PixArt-α", r"PixArt-$\alpha$"),
    ("50.0(↑0.2)", r"50.0($\uparrow$0.2)"),
])
def test_latex_escape(raw, want):
    assert latex_escape(raw) == want


def test_latex_is_booktabs_with_bold_best_and_escaped_names():
    tex = table_command([], "paper", "latex", "table4")
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "\\multicolumn{7}{c}{GenEval}" in tex and "\\cmidrule(lr){4-10}" in tex
    assert "Understanding \\& Generation" in tex and "PixArt-$\\alpha$" in tex
    sd3 = next(line for line in tex.splitlines() if " & SD3 & " in line)
    assert "\\textbf{0.74}" in sd3 and "\\textbf{0.99}" in sd3
    janus = next(line for line in tex.splitlines() if " & Janus & " in line)
    assert "\\textbf{0.46}" in janus and "\\textbf{0.61}" not in janus
    # every data row has as many cells as the header
    for line in tex.splitlines():
        if line.endswith("\\\\") and "Generation" in line and "multicolumn" not in line:
            assert line.count(" & ") == 12, line


def _numbers(text):
    return re.findall(r"\d+\.\d+|\b\d+\b", text)


def test_same_numbers_in_every_format(tmp_path):
    run = full_understanding_run(tmp_path / "run")
    add_task(run, "mmvet", None, status="not_scored", reason="no judge")  # replaces the scored one
    outputs = {fmt: table_command([run.root], "paper", fmt, "table3") for fmt in ("csv", "latex", "md", "html")}
    rows = list(csv.DictReader(io.StringIO(outputs["csv"])))
    cells = [r[h] for r in rows for h in TABLE3_HEAD]
    for fmt, text in outputs.items():
        pos = 0
        for cell in cells:  # each cell appears, in order, in every format
            if cell == "-":
                continue
            found = text.find(cell.rstrip("*"), pos)
            assert found >= 0, (fmt, cell)
            pos = found
    run_row = rows[-1]
    assert run_row["Method"].startswith("unitoken (") and run_row["Section"] == "This evaluation"
    assert run_row["OCRBench"] == "634" and run_row["MMStar"] == "45.2"


def test_run_row_shows_incomplete_average_as_dash_with_a_note(tmp_path):
    run = make_run(tmp_path / "run")
    add_task(run, "ai2d_test", 67.6)
    add_task(run, "ocrbench", 634.0, scale="points_0_1000", name="total")
    text = table_command([run.root], None, "md", "table6")
    row = next(line for line in text.splitlines() if "unitoken (" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4:] == ["-", "-", "-", "-"]
    assert "TextRead incomplete (2 of 3 members): mmvet: not in the run" in text
    csv_text = table_command([run.root], None, "csv", "table6")
    assert "TextRead incomplete" in list(csv.DictReader(io.StringIO(csv_text)))[0]["Notes"]


def test_full_run_table6_values(tmp_path):
    run = full_understanding_run(tmp_path / "run")
    rows = list(csv.DictReader(io.StringIO(table_command([run.root], None, "csv", "table6"))))
    general = (34.2 + 64.1 + 70.3 + 50.0 + 45.2 + 70.3 + 41.6 + 49.6) / 8
    assert rows[0]["Visual Understanding General"] == f"{general:.1f}"
    assert rows[0]["Visual Understanding TextRead"] == f"{(67.6 + 63.4 + 30.0) / 3:.1f}"


def test_write_run_tables(tmp_path):
    run = full_understanding_run(tmp_path / "run")
    add_task(run, "geneval", 0.5, scale="fraction", name="overall", metrics={"single_object": 0.9})
    paths = write_run_tables(run)
    names = sorted(p.name for p in paths)
    for stem in ("headlines", "table3", "table4", "table6"):
        assert f"{stem}.csv" in names and f"{stem}.md" in names and f"{stem}.tex" in names
    headlines = list(csv.DictReader(io.StringIO((run.root / "tables" / "headlines.csv").read_text())))
    assert {r["Task"] for r in headlines} >= {"mme", "ocrbench", "geneval"}
    t6 = (run.root / "tables" / "table6.csv").read_text()
    assert "General" in t6 and "mme / 28" in (run.root / "tables" / "table6.md").read_text()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["table", "--baselines", "paper", "--layout", "table6", "--format", "csv",
                 "--runs", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_unknown_baselines_is_a_user_error(capsys):
    with pytest.raises(Exception, match="no baselines 'nope'"):
        table_command([], "nope", "csv", "table3")


def test_geneval_readme_rows(capsys):
    got = _cli_csv(capsys, "--baselines", "geneval_readme", "--format", "csv", "--layout", "table4")
    # djghosh13/geneval README "Main results", transcribed by hand
    want = {"CLIP retrieval (baseline)": "0.35 0.89 0.22 0.37 0.62 0.03 0.00",
            "minDALL-E": "0.23 0.73 0.11 0.12 0.37 0.02 0.01",
            "Stable Diffusion v1.5": "0.43 0.97 0.38 0.35 0.76 0.04 0.06",
            "Stable Diffusion v2.1": "0.50 0.98 0.51 0.44 0.85 0.07 0.17",
            "Stable Diffusion XL": "0.55 0.98 0.74 0.39 0.85 0.15 0.23",
            "IF-XL": "0.61 0.97 0.74 0.66 0.81 0.13 0.35"}
    assert [r["Method"] for r in got] == list(want)
    for r in got:
        assert [r[h] for h in TABLE4_HEAD[:7]] == want[r["Method"]].split()
        assert [r[h] for h in TABLE4_HEAD[7:]] == ["-", "-", "-"]
        assert "16382b084e1f9ceeefed3a8cb102044e67486dd8" in r["Source"]


@pytest.mark.parametrize("layout", ["table3", "table4", "table6"])
def test_latex_is_well_formed(tmp_path, layout):
    run = full_understanding_run(tmp_path / "run_with_%_and_&")
    tex = table_command([run.root], "paper", "latex", layout)
    body = re.sub(r"\\[{}%&$#_]", "", tex)  # escaped characters do not count
    assert body.count("{") == body.count("}")
    assert body.count("$") % 2 == 0
    assert re.findall(r"\\(begin|end)\{(\w+)\}", tex) == [("begin", "table"), ("begin", "tabular"),
                                                           ("end", "tabular"), ("end", "table")]
    assert "%" not in re.sub(r"\\%", "", tex.split("\n", 1)[1])  # no unescaped comment char after line 1
