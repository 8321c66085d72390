"""A run as one self-contained HTML page: tables, charts against published rows, breakdowns, sample images.

Self-contained means one file that opens anywhere (a CI artifact, an e-mail): CSS inline, charts as inline
SVG, images as base64 thumbnails, no script and no external URL.  The image count is bounded so a GenEval
run of 2,212 images still gives a page of a few megabytes.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path
from typing import Any, Iterable, Optional

from PIL import Image

from unitoken_eval.harness.aggregate import (AggregateError, Layout, applicable_layouts, is_score_metric, load_layouts,
                               run_cells)
from unitoken_eval.harness.store import RunStore, StoreError, manifest_smoke, read_jsonl, write_atomic
from unitoken_eval.harness.tables import (HEADLINE_HEADER, PARTIAL_MARK, SMOKE_MARK, TABLE_CSS, MISSING, build_table,
                            headline_rows, html_fragment, load_published, parse_cell, run_label)
from unitoken_eval.harness.types import TaskResult

log = logging.getLogger("unitoken_eval.report")

MAX_IMAGES_PER_TASK = 16
MAX_IMAGES_TOTAL = 96
THUMB_PX = 160
MAX_BARS = 40
_IMAGE_EXT = {".png", ".jpg", ".jpeg", ".webp"}

e = html.escape


# -------------------------------------------------------------------------------------------- SVG charts
def bar_chart_svg(title: str, items: list[tuple[str, float, bool]], digits: int = 2, width: int = 410) -> str:
    """Horizontal bars; ``items`` are (label, value, highlighted).  Highlighted bars are this run's."""
    items = items[:MAX_BARS]
    if not items:
        return ""
    bar_h, gap, label_w, top = 16, 4, 170, 24
    height = top + len(items) * (bar_h + gap) + 8
    vmax = max(max(v for _, v, _ in items), 1e-12)
    plot_w = width - label_w - 60
    parts = [f'<svg class="chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{e(title)}">',
             f'<text x="4" y="15" class="ct">{e(title)}</text>']
    for i, (label, value, mine) in enumerate(items):
        y = top + i * (bar_h + gap)
        w = max(1.0, plot_w * max(value, 0.0) / vmax)
        short = label if len(label) <= 26 else label[:25] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end" class="cl">{e(short)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                     f'class="{"bar run" if mine else "bar"}"><title>{e(label)}: {value:.{digits}f}</title></rect>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 12}" class="cv">{value:.{digits}f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _layout_charts(layout: Layout, store: RunStore, results: dict[str, TaskResult], smoke: Optional[str]) -> str:
    cells = run_cells(layout, results)
    published = []
    if "paper" in layout.baselines:
        try:
            published = load_published(layout, "paper")
        except AggregateError as exc:
            log.warning("report: %s", exc)
    charts = []
    for col in layout.columns:
        mine = cells[col.id].value
        if mine is None:
            continue
        label = "this run" + (SMOKE_MARK if smoke else "") + (PARTIAL_MARK if cells[col.id].status == "partial" else "")
        items = []
        for row in published:
            v = parse_cell(row.cells.get(col.id, MISSING))
            if v is not None:
                items.append((row.labels.get("method") or row.labels.get("row") or "?", v, False))
        items.append((label, round(mine, col.digits), True))
        items.sort(key=lambda t: -t[1])
        title = f"{col.group + ' ' if col.group else ''}{col.label}"
        charts.append(bar_chart_svg(title, items, col.digits))
    return "".join(f'<div class="cell">{c}</div>' for c in charts)


def _flatten_numeric(metrics: dict[str, Any], prefix: str = "", depth: int = 0) -> list[tuple[str, float]]:
    out = []
    for k, v in metrics.items():
        name = f"{prefix}{k}"
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out.append((name, float(v)))
        elif isinstance(v, dict) and depth < 2:
            out += _flatten_numeric(v, f"{name}.", depth + 1)
    return out


def _breakdowns(results: dict[str, TaskResult]) -> str:
    blocks = []
    for tid in sorted(results):
        r = results[tid]
        if r.status != "scored":
            continue  # numbers of an unscored task (over the judged part, say) are not its scores
        nums = [(name, v) for name, v in _flatten_numeric(r.metrics or {}) if is_score_metric(name, v)]
        if not nums:
            continue
        # Group by the top-level key so counts (n per category) do not squash accuracies on one axis.
        groups: dict[str, list[tuple[str, float]]] = {}
        for name, v in nums:
            head = name.split(".", 1)[0] if "." in name else ""
            groups.setdefault(head, []).append((name.split(".", 1)[1] if head else name, v))
        for head, vals in groups.items():
            title = (f"{tid}: {head}" if head else f"{tid}: metrics") + (f" ({r.coverage()})" if r.partial else "")
            digits = 4 if max(abs(v) for _, v in vals) <= 1.0 else 2
            blocks.append(f'<div class="cell">{bar_chart_svg(title, [(n, v, False) for n, v in vals], digits)}</div>')
    return "".join(blocks)


# -------------------------------------------------------------------------------------------- images
def thumbnail_uri(source: "Path | Image.Image") -> Optional[str]:
    """A small inline JPEG (data URI) of an image file or a PIL image; None (logged) when it cannot be read."""
    try:
        with (Image.open(source) if isinstance(source, (str, Path)) else source.copy()) as im:
            im = im.convert("RGB")
            im.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=82)
    except (OSError, ValueError) as exc:
        log.warning("report: cannot read image %s: %s", source, exc)
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _prompt_near(path: Path, stop: Path) -> Optional[str]:
    """The prompt of an image in an official layout that keeps ``metadata.jsonl`` beside its samples."""
    for parent in path.parents:
        meta = parent / "metadata.jsonl"
        if meta.exists():
            try:
                for _, obj in read_jsonl(meta):
                    return str(obj.get("prompt") or obj.get("text") or "") or None
            except StoreError:
                return None
        if parent == stop:
            break
    return None


def _image_entries(store: RunStore, tid: str, limit: int) -> list[dict[str, Any]]:
    """(image path, caption, score) for up to ``limit`` images of a task, spread over its samples."""
    task_dir = store.task_dir(tid)
    scores = store.read_scores(tid)
    entries = []
    try:
        preds = store.read_predictions(tid)
    except StoreError:
        preds = {}
    for sid, pred in preds.items():
        for rel in pred.images[:1]:
            p = task_dir / rel
            if p.suffix.lower() in _IMAGE_EXT and p.exists():
                rec = _score_record(scores, sid, rel)
                prompt = rec.get("prompt") or pred.meta.get("prompt") or _prompt_near(p, task_dir)
                entries.append({"path": p, "id": sid, "prompt": prompt, "score": _verdict(rec)})
    if not entries:
        images = store.images_dir(tid)
        files = sorted(p for p in images.rglob("*") if p.suffix.lower() in _IMAGE_EXT and p.name != "grid.png") \
            if images.exists() else []
        for p in files:
            rel = p.relative_to(images)
            sid = rel.parts[0] if len(rel.parts) > 1 else p.stem
            rec = _score_record(scores, sid, str(rel))
            entries.append({"path": p, "id": sid, "prompt": rec.get("prompt") or _prompt_near(p, images),
                            "score": _verdict(rec)})
    if len(entries) > limit:
        step = len(entries) / limit
        entries = [entries[int(i * step)] for i in range(limit)]
    return entries


def _score_record(scores: dict[str, dict[str, Any]], sid: str, rel: str) -> dict[str, Any]:
    """The score record of a sample, or of one of its images where a task scores per image (GenEval keys its
    records by the image's trailing path, ``<index>/samples/<n>.png``)."""
    if sid in scores:
        return scores[sid]
    parts = Path(rel).parts
    for i in range(len(parts)):
        rec = scores.get("/".join(parts[i:]))
        if rec is not None:
            return rec
    return {}


def _verdict(rec: dict[str, Any]) -> Any:
    return rec["correct"] if isinstance(rec.get("correct"), bool) else rec.get("score")


def _score_text(score: Any) -> str:
    if isinstance(score, bool):
        return "correct" if score else "wrong"
    if isinstance(score, (int, float)):
        return f"score {score:g}"
    return ""


def _grids(store: RunStore, results: dict[str, TaskResult]) -> str:
    blocks, budget = [], MAX_IMAGES_TOTAL
    for tid in store.task_ids():
        if budget <= 0:
            break
        if not store.images_dir(tid).exists() and not any(p.images for p in _safe_preds(store, tid)):
            continue
        entries = _image_entries(store, tid, min(MAX_IMAGES_PER_TASK, budget))
        figs = []
        for ent in entries:
            src = thumbnail_uri(ent["path"])
            if src is None:
                continue
            cap = " · ".join(x for x in (str(ent["id"]), ent["prompt"] or "", _score_text(ent["score"])) if x)
            ok = ent["score"]
            cls = "ok" if ok in (1, True) else "bad" if ok in (0, False) else ""
            figs.append(f'<figure class="{cls}"><img alt="{e(cap)}" src="{src}" width="{THUMB_PX}">'
                        f'<figcaption>{e(cap)}</figcaption></figure>')
        budget -= len(figs)
        if figs:
            total = sum(1 for _ in _all_images(store, tid))
            blocks.append(f"<h3>{e(tid)} <small>({len(figs)} of {total} images)</small></h3>"
                          f'<div class="grid">{"".join(figs)}</div>')
    return "".join(blocks)


def _safe_preds(store: RunStore, tid: str):
    try:
        return list(store.read_predictions(tid).values())
    except StoreError:
        return []


def _all_images(store: RunStore, tid: str) -> Iterable[Path]:
    d = store.images_dir(tid)
    return (p for p in d.rglob("*") if p.suffix.lower() in _IMAGE_EXT and p.name != "grid.png") if d.exists() else ()


# -------------------------------------------------------------------------------------------- page
def _kv_table(rows: list[tuple[str, Any]]) -> str:
    out = ['<table class="kv">']
    for k, v in rows:
        if v in (None, "", {}, []):
            continue
        text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, sort_keys=True)
        out.append(f"<tr><th>{e(k)}</th><td><code>{e(text)}</code></td></tr>")
    out.append("</table>")
    return "".join(out)


def _manifest_section(manifest: dict[str, Any], results: dict[str, TaskResult]) -> str:
    cfg = manifest.get("config") or manifest.get("identity") or {}
    detectors = sorted({str(r.metrics.get("detector")) for r in results.values()
                        if isinstance(r.metrics, dict) and r.metrics.get("detector")})
    judges = sorted({str(r.metrics.get("judge")) for r in results.values()
                     if isinstance(r.metrics, dict) and r.metrics.get("judge")})
    rows = [("run id", manifest.get("run_id")), ("model", cfg.get("model")), ("model args", cfg.get("model_args")),
            ("model fingerprint", manifest.get("model_fingerprint")), ("profile", cfg.get("profile") or "task default"),
            ("judge", cfg.get("judge") or (", ".join(judges) if judges else "none")),
            ("detector", ", ".join(detectors) if detectors else None),
            ("data", cfg.get("data")), ("limit", cfg.get("limit")), ("smoke data", cfg.get("smoke")),
            ("seed", manifest.get("seed")), ("options", cfg.get("options")), ("versions", manifest.get("versions")),
            ("git commit", manifest.get("git_commit")), ("host", manifest.get("host")),
            ("platform", manifest.get("platform")), ("started", manifest.get("started")),
            ("finished", manifest.get("finished")), ("resumed", manifest.get("resumed"))]
    rows.insert(5, ("smoke run", manifest_smoke(manifest)))
    refs = [(f"scorer: {tid}", f"{r.profile}: {r.reference}") for tid, r in sorted(results.items()) if r.reference]
    return _kv_table(rows + refs)


def _warnings(manifest: dict[str, Any], results: dict[str, TaskResult], layouts: list[Layout]) -> list[str]:
    out = []
    smoke = manifest_smoke(manifest)
    if smoke:
        out.append(f"smoke run ({smoke}): its numbers test the harness, not a model")
    for tid, why in (manifest.get("failed_tasks") or {}).items():
        out.append(f"{tid}: FAILED: {why}")
    for tid, r in sorted(results.items()):
        if r.status != "scored":
            out.append(f"{tid}: not scored ({r.reason or 'no reason given'})")
        if r.n_errors or r.n_missing:
            total = f" of {r.n_samples}" if r.n_samples is not None else ""
            out.append(f"{tid}: {r.n_errors}{total} samples recorded as errors and {r.n_missing} without a "
                       f"prediction; the metrics cover the other samples (N = {r.n}) and are marked partial")
        out += [f"{tid}: {w}" for w in r.warnings]
    for lay in layouts:
        for cid, cell in run_cells(lay, results).items():
            # An average none of whose members ran is just absent; a partial one is worth a warning.
            if cell.status == "incomplete" and not cell.note.split("(", 1)[-1].startswith("0 of"):
                out.append(f"{lay.id}: {cell.note}")
    return out


CSS = TABLE_CSS + """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#1f2328;max-width:1500px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
h3{font-size:14px;margin:16px 0 6px}small{color:#666;font-weight:normal}
.sub{color:#57606a}
.cells{display:flex;flex-wrap:wrap;gap:12px}.cell{border:1px solid #e5e7eb;border-radius:6px;padding:6px}
svg.chart .ct{font:600 12px system-ui,sans-serif;fill:#1f2328}
svg.chart .cl,svg.chart .cv{font:11px system-ui,sans-serif;fill:#444}
svg.chart .bar{fill:#b6c2cf}svg.chart .bar.run{fill:#1f6feb}
table.kv{border-collapse:collapse;font-size:12px}table.kv th{text-align:left;padding:2px 10px 2px 0;
vertical-align:top;white-space:nowrap}table.kv td code{white-space:pre-wrap;word-break:break-all}
.grid{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0;width:164px;border:2px solid #e5e7eb;border-radius:4px;
padding:2px}figure.ok{border-color:#2da44e}figure.bad{border-color:#cf222e}
figcaption{font-size:11px;color:#444;overflow-wrap:anywhere}
ul.warn li{color:#9a6700}
"""


def build_report(run: Path) -> str:
    store = RunStore(Path(run))
    manifest = store.read_manifest()
    results = store.all_metrics()
    try:
        layouts = applicable_layouts(results, load_layouts())
    except AggregateError as exc:
        log.warning("report: layouts unavailable: %s", exc)
        layouts = []
    smoke = manifest_smoke(manifest)
    title = f"unitoken-eval report: {run_label(manifest, store.root)}{SMOKE_MARK if smoke else ''}"
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(title)}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>{e(title)}</h1>",
             f'<p class="sub">{len(results)} tasks · run directory <code>{e(str(store.root))}</code></p>']
    warnings = _warnings(manifest, results, layouts)
    parts.append("<h2>Warnings</h2>")
    parts.append('<ul class="warn">' + "".join(f"<li>{e(w)}</li>" for w in warnings) + "</ul>" if warnings
                 else "<p>None.</p>")
    # Headlines
    head = HEADLINE_HEADER
    rows = "".join("<tr>" + "".join(f"<td>{e(x)}</td>" for x in row) + "</tr>" for row in headline_rows(results, smoke))
    parts.append("<h2>Headlines</h2><table class=\"results\"><thead><tr>"
                 + "".join(f"<th>{h}</th>" for h in head) + f"</tr></thead><tbody>{rows}</tbody></table>")
    # Paper tables and charts
    for lay in layouts:
        parts.append(f"<h2>{e(lay.title)}</h2>")
        try:
            table = build_table(lay, [store.root], "paper" if "paper" in lay.baselines else None)
            parts.append(html_fragment(table, caption=False))
            charts = _layout_charts(lay, store, results, smoke)
        except AggregateError as exc:
            parts.append(f"<p>table unavailable: {e(str(exc))}</p>")
            continue
        if charts:
            parts.append(f"<h3>Against the published rows <small>(blue: this run)</small></h3>"
                         f'<div class="cells">{charts}</div>')
    breakdowns = _breakdowns(results)
    if breakdowns:
        parts.append(f'<h2>Per-category breakdowns</h2><div class="cells">{breakdowns}</div>')
    grids = _grids(store, results)
    if grids:
        parts.append(f"<h2>Generated samples</h2><p class=\"sub\">At most {MAX_IMAGES_PER_TASK} per task, "
                     f"spread over the prompts; border green = judged correct, red = wrong.</p>{grids}")
    parts.append("<h2>Manifest</h2>" + _manifest_section(manifest, results))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(run: Path, out: Optional[Path] = None) -> Path:
    out = Path(out) if out else Path(run) / "report.html"
    write_atomic(out, build_report(Path(run)).encode("utf-8"))
    return out
