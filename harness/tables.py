"""Results tables: runs beside published rows, in a layout's column order, as CSV, LaTeX, Markdown or HTML.

Every format renders one :class:`Table` whose cells are already strings: a number is formatted once
(:func:`fmt_number` for runs; published cells keep their printed text, markers such as ``*`` included), so
the four formats cannot disagree on a digit.  "Best in column" is decided on the shown numbers.
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from unitoken_eval.harness.aggregate import (AggregateError, Cell, Layout, applicable_layouts, get_layout, load_layouts,
                               published_dir, run_cells)
from unitoken_eval.harness.store import RunStore, manifest_smoke, write_atomic
from unitoken_eval.harness.types import TaskResult

log = logging.getLogger("unitoken_eval.tables")

MISSING = "-"
_LEADING_NUMBER = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)(.*)$", re.S)


def fmt_number(value: Optional[float], digits: int) -> str:
    """The one formatting of a number in every table format."""
    if value is None:
        return MISSING
    return f"{value:.{digits}f}"


def parse_cell(text: str) -> Optional[float]:
    """The number a printed cell starts with ("66.6*" -> 66.6, "50.0(↑0.2)" -> 50.0, "-" -> None)."""
    m = _LEADING_NUMBER.match(text or "")
    return float(m.group(1)) if m else None


PARTIAL_MARK = " (partial)"
SMOKE_MARK = " [smoke]"


@dataclass
class Row:
    kind: str  # "published" or "run"
    labels: dict[str, str]
    cells: dict[str, str]
    source: str = ""
    notes: list[str] = field(default_factory=list)
    smoke: Optional[str] = None  # why this run's numbers say nothing about a model; such a row is never best
    partial: set[str] = field(default_factory=set)  # columns over part of a task's samples; never best

    def competes(self, column: str) -> bool:
        return self.smoke is None and column not in self.partial


@dataclass
class Table:
    layout: Layout
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    def best(self) -> dict[str, set[int]]:
        """Row indexes holding the best shown value of each column (ties all count)."""
        out: dict[str, set[int]] = {}
        for col in self.layout.columns:
            vals = [(i, parse_cell(r.cells.get(col.id, MISSING))) for i, r in enumerate(self.rows)
                    if r.competes(col.id)]
            vals = [(i, v) for i, v in vals if v is not None]
            if not vals:
                out[col.id] = set()
                continue
            target = max(v for _, v in vals) if col.higher_is_better else min(v for _, v in vals)
            out[col.id] = {i for i, v in vals if v == target}
        return out

    def header(self) -> list[str]:
        return [lc.label for lc in self.layout.labels] + [
            f"{c.group} {c.label}" if c.group else c.label for c in self.layout.columns]


# ------------------------------------------------------------------------------------------- building
def published_path(name: str) -> Path:
    return published_dir() / name


def load_published(layout: Layout, baselines: str) -> list[Row]:
    """The published rows of ``layout`` under the baseline set ``baselines`` (e.g. "paper")."""
    if baselines not in layout.baselines:
        known = ", ".join(sorted(layout.baselines)) or "none"
        raise AggregateError(f"layout {layout.id} has no baselines {baselines!r} (known: {known})")
    rows = []
    for name in layout.baselines[baselines]:
        path = published_path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise AggregateError(f"published baselines file {path} not found (layout {layout.id})") from None
        reader = csv.DictReader(io.StringIO(text))
        wanted = {c.id for c in layout.columns}
        have = set(reader.fieldnames or [])
        if "source" not in have:
            raise AggregateError(f"{path}: no 'source' column")
        for lineno, rec in enumerate(reader, start=2):
            cells = {}
            for cid in wanted:
                raw = (rec.get(cid) or "").strip() if cid in have else ""
                if raw and raw != MISSING and parse_cell(raw) is None:
                    raise AggregateError(f"{path}:{lineno}: column {cid}: not a number or '-': {raw!r}")
                cells[cid] = raw or MISSING
            labels = {lc.id: (rec.get(lc.id) or "").strip() for lc in layout.labels}
            rows.append(Row("published", labels, cells, source=rec["source"].strip()))
    return rows


def run_label(manifest: dict, root: Path) -> str:
    model = (manifest.get("identity") or {}).get("model") or (manifest.get("config") or {}).get("model") or "run"
    return f"{model} ({manifest.get('run_id') or root.name})"


def run_row(layout: Layout, store: RunStore, results: Optional[dict[str, TaskResult]] = None,
            section: str = "This evaluation") -> Row:
    manifest = store.read_manifest()
    results = store.all_metrics() if results is None else results
    cells: dict[str, Cell] = run_cells(layout, results)
    smoke = manifest_smoke(manifest)
    label = run_label(manifest, store.root) + (SMOKE_MARK if smoke else "")
    labels = {lc.id: "" for lc in layout.labels}
    if "section" in labels:
        labels["section"] = section
    method_key = "method" if "method" in labels else (layout.labels[0].id if layout.labels else None)
    if method_key:
        labels[method_key] = label
    partial = {c.id for c in layout.columns if cells[c.id].status == "partial"}
    texts = {c.id: fmt_number(cells[c.id].value, c.digits) + (PARTIAL_MARK if c.id in partial else "")
             for c in layout.columns}
    notes = [f"{label}: smoke run ({smoke}): it tests the harness, not a model, and is never marked best"] \
        if smoke else []
    notes += [f"{label}: {cells[c.id].note}" for c in layout.columns if cells[c.id].note]
    return Row("run", labels, texts, source=str(store.root), notes=notes, smoke=smoke, partial=partial)


def build_table(layout: Layout, runs: list[Path], baselines: Optional[str]) -> Table:
    rows = load_published(layout, baselines) if baselines else []
    run_rows = [run_row(layout, RunStore(p)) for p in runs]
    rows += run_rows
    notes = list(layout.notes) + layout.divisor_notes()
    seen: list[str] = []
    for r in rows:
        if r.kind == "published" and r.source and r.source not in seen:
            seen.append(r.source)
    notes += [f"Source: {s}" for s in seen]
    for r in run_rows:
        notes += list(dict.fromkeys(r.notes))
    return Table(layout, rows, notes)


# ------------------------------------------------------------------------------------------- formats
def render_csv(table: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(table.header() + ["Source", "Notes"])
    for r in table.rows:
        w.writerow([r.labels.get(lc.id, "") for lc in table.layout.labels]
                   + [r.cells[c.id] for c in table.layout.columns] + [r.source, "; ".join(r.notes)])
    return buf.getvalue()


_LATEX = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
    "†": r"\textsuperscript{\dag}", "‡": r"\textsuperscript{\ddag}", "α": r"$\alpha$", "β": r"$\beta$",
    "↑": r"$\uparrow$", "↓": r"$\downarrow$", "×": r"$\times$", "±": r"$\pm$",
}


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX tabular cell (special characters and the markers papers use)."""
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def _groups(layout: Layout) -> list[tuple[Optional[str], int]]:
    spans: list[tuple[Optional[str], int]] = []
    for c in layout.columns:
        if spans and spans[-1][0] == c.group:
            spans[-1] = (c.group, spans[-1][1] + 1)
        else:
            spans.append((c.group, 1))
    return spans


def render_latex(table: Table) -> str:
    lay = table.layout
    best = table.best()
    n_lab = len(lay.labels)
    spec = "l" * n_lab + "c" * len(lay.columns)
    out = ["% Generated by unitoken-eval; needs \\usepackage{booktabs}.", "\\begin{table}[t]", "\\centering",
           f"\\caption{{{latex_escape(lay.title)}}}", f"\\begin{{tabular}}{{{spec}}}", "\\toprule"]
    spans = _groups(lay)
    if any(g for g, _ in spans):
        head, rules, col = [""] * n_lab, [], n_lab + 1
        for g, n in spans:
            if g:
                head.append(f"\\multicolumn{{{n}}}{{c}}{{{latex_escape(g)}}}")
                rules.append(f"\\cmidrule(lr){{{col}-{col + n - 1}}}")
            else:
                head += [""] * n
            col += n
        out.append(" & ".join(head) + " \\\\")
        out.append("".join(rules))
    out.append(" & ".join([latex_escape(lc.label) for lc in lay.labels]
                          + [latex_escape(c.label) for c in lay.columns]) + " \\\\")
    out.append("\\midrule")
    prev_section = None
    for i, r in enumerate(table.rows):
        section = (r.kind, r.labels.get("section"))
        if prev_section is not None and section != prev_section:
            out.append("\\midrule")
        prev_section = section
        cells = [latex_escape(r.labels.get(lc.id, "")) for lc in lay.labels]
        for c in lay.columns:
            text = latex_escape(r.cells[c.id])
            cells.append(f"\\textbf{{{text}}}" if i in best[c.id] else text)
        out.append(" & ".join(cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}"]
    if table.notes:
        out.append("\\par\\smallskip{\\footnotesize")
        out += [latex_escape(n) + "\\\\" for n in table.notes]
        out.append("}")
    out.append("\\end{table}")
    return "\n".join(out) + "\n"


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_md(table: Table) -> str:
    lay = table.layout
    best = table.best()
    head = table.header()
    out = [f"**{_md_escape(lay.title)}**", "", "| " + " | ".join(_md_escape(h) for h in head) + " |",
           "|" + "|".join([" --- "] * len(lay.labels) + [" ---: "] * len(lay.columns)) + "|"]
    for i, r in enumerate(table.rows):
        cells = [_md_escape(r.labels.get(lc.id, "")) for lc in lay.labels]
        for c in lay.columns:
            text = _md_escape(r.cells[c.id])
            cells.append(f"**{text}**" if i in best[c.id] else text)
        out.append("| " + " | ".join(cells) + " |")
    if table.notes:
        out.append("")
        out += [f"- {_md_escape(n)}" for n in table.notes]
    return "\n".join(out) + "\n"


def html_fragment(table: Table, caption: bool = True) -> str:
    """The table as an HTML fragment (used alone by ``table --format html`` and inside the report)."""
    lay = table.layout
    best = table.best()
    e = html.escape
    out = [f'<table class="results" data-layout="{e(lay.id)}">']
    if caption:
        out.append(f"<caption>{e(lay.title)}</caption>")
    out.append("<thead>")
    spans = _groups(lay)
    if any(g for g, _ in spans):
        row = [f'<th colspan="{len(lay.labels)}"></th>'] if lay.labels else []
        row += [f'<th colspan="{n}" class="group">{e(g or "")}</th>' for g, n in spans]
        out.append("<tr>" + "".join(row) + "</tr>")
    out.append("<tr>" + "".join(f"<th>{e(h)}</th>" for h in
                                [lc.label for lc in lay.labels] + [c.label for c in lay.columns]) + "</tr>")
    out.append("</thead><tbody>")
    for i, r in enumerate(table.rows):
        cls = "run" if r.kind == "run" else "published"
        cells = [f"<td>{e(r.labels.get(lc.id, ''))}</td>" for lc in lay.labels]
        for c in lay.columns:
            text = e(r.cells[c.id])
            cells.append(f'<td class="num"><strong>{text}</strong></td>' if i in best[c.id]
                         else f'<td class="num">{text}</td>')
        out.append(f'<tr class="{cls}">' + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    if table.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in table.notes) + "</ul>")
    return "\n".join(out) + "\n"


TABLE_CSS = """
table.results{border-collapse:collapse;font:13px/1.4 system-ui,sans-serif;margin:8px 0}
table.results caption{font-weight:600;text-align:left;padding:4px 0}
table.results th,table.results td{padding:3px 8px;border-bottom:1px solid #ddd;white-space:nowrap}
table.results th.group{border-bottom:1px solid #888}
table.results td.num{text-align:right;font-variant-numeric:tabular-nums}
table.results tr.run td{background:#eef5ff}
ul.notes{font:12px system-ui,sans-serif;color:#555}
"""


def render_html(table: Table) -> str:
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>"
            f"{html.escape(table.layout.title)}</title><style>{TABLE_CSS}</style></head><body>\n"
            + html_fragment(table) + "</body></html>\n")


RENDERERS = {"csv": render_csv, "latex": render_latex, "md": render_md, "html": render_html}


def render(table: Table, fmt: str) -> str:
    if fmt not in RENDERERS:
        raise AggregateError(f"unknown table format {fmt!r} (known: {', '.join(RENDERERS)})")
    return RENDERERS[fmt](table)


# ------------------------------------------------------------------------------------------- commands
def table_command(runs: list[Path], baselines: Optional[str], fmt: str, layout: str,
                  layouts_path: Union[str, Path, None] = None) -> str:
    lay = get_layout(layout, layouts_path)
    return render(build_table(lay, [Path(p) for p in runs], baselines), fmt)


def headline_status(r: TaskResult, smoke: Optional[str] = None) -> str:
    """"scored", "not_scored", or "scored (partial)" / "scored (smoke)": the marks a reader must not miss."""
    marks = [m for m, on in (("partial", r.partial), ("smoke", bool(smoke))) if on]
    return f"{r.status} ({', '.join(marks)})" if marks else r.status


def headline_rows(results: dict[str, TaskResult], smoke: Optional[str] = None) -> list[list[str]]:
    """One row per task; N is what the metric averages over, Samples the task's samples in the run (blank
    for group tasks and results from before the count was kept), Errors those recorded as errors."""
    rows = []
    for tid in sorted(results):
        r = results[tid]
        value = r.headline.value if r.status == "scored" else None
        reason = "; ".join(x for x in (r.reason, r.coverage(), f"smoke run: {smoke}" if smoke else None) if x)
        rows.append([tid, r.headline.name, MISSING if value is None else fmt_value(value), r.headline.scale,
                     headline_status(r, smoke), str(r.n), "" if r.n_samples is None else str(r.n_samples),
                     str(r.n_errors), r.profile, reason])
    return rows


def fmt_value(value: float) -> str:
    """A metric for reading (at most 4 decimals, no float noise); tables of a layout use the column's digits."""
    return str(round(value, 4))


HEADLINE_HEADER = ["Task", "Headline", "Value", "Scale", "Status", "N", "Samples", "Errors", "Profile", "Reason"]


def _headline_outputs(results: dict[str, TaskResult], smoke: Optional[str] = None) -> dict[str, str]:
    rows = headline_rows(results, smoke)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADLINE_HEADER)
    w.writerows(rows)
    md = ["| " + " | ".join(HEADLINE_HEADER) + " |", "|" + "|".join([" --- "] * len(HEADLINE_HEADER)) + "|"]
    md += ["| " + " | ".join(_md_escape(x) for x in row) + " |" for row in rows]
    tex = ["% Generated by unitoken-eval; needs \\usepackage{booktabs}.",
           "\\begin{tabular}{" + "l" * 3 + "r" * (len(HEADLINE_HEADER) - 3) + "}",
           "\\toprule", " & ".join(HEADLINE_HEADER) + " \\\\", "\\midrule"]
    tex += [" & ".join(latex_escape(x) for x in row) + " \\\\" for row in rows]
    tex += ["\\bottomrule", "\\end{tabular}"]
    return {"csv": buf.getvalue(), "md": "\n".join(md) + "\n", "tex": "\n".join(tex) + "\n"}


def write_run_tables(store: RunStore, layouts_path: Union[str, Path, None] = None) -> list[Path]:
    """The run's own tables under ``<run>/tables/``: every headline, and each layout the run has a task of.

    Called at the end of every run; a broken layout file costs the layout tables (logged), never the run.
    """
    out_dir = store.root / "tables"
    results = store.all_metrics()
    written: list[Path] = []
    for ext, text in _headline_outputs(results, manifest_smoke(store.read_manifest())).items():
        path = out_dir / f"headlines.{ext}"
        write_atomic(path, text.encode("utf-8"))
        written.append(path)
    try:
        layouts = load_layouts(layouts_path)
    except AggregateError as exc:
        log.warning("layout tables not written: %s", exc)
        return written
    cells_json = {}
    for lay in applicable_layouts(results, layouts):
        try:
            cells = run_cells(lay, results)
            table = Table(lay, [run_row(lay, store, results)], [])
        except AggregateError as exc:
            log.warning("table %s not written: %s", lay.id, exc)
            continue
        table.notes = list(lay.notes) + lay.divisor_notes() + table.rows[0].notes
        cells_json[lay.id] = {c: {"value": v.value, "status": v.status, "note": v.note} for c, v in cells.items()}
        for fmt, ext in (("csv", "csv"), ("latex", "tex"), ("md", "md")):
            path = out_dir / f"{lay.id}.{ext}"
            write_atomic(path, render(table, fmt).encode("utf-8"))
            written.append(path)
    path = out_dir / "cells.json"
    write_atomic(path, (json.dumps(cells_json, indent=2) + "\n").encode("utf-8"))
    written.append(path)
    return written
