"""What ``compare --out DIR`` writes beside the Markdown summary.

- ``flips.html``: the samples whose score changed, worst tasks first: for understanding the image thumbnail,
  question, gold answer and both runs' answers; for generation both runs' images side by side with each
  run's judged reason.  Self-contained (inline CSS, images as base64 thumbnails, no script).
- ``junit.xml``: one test case per task, for CI systems that show test reports.
"""

from __future__ import annotations

import html
import logging
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Optional

from unitoken_eval.harness import registry
from unitoken_eval.harness.compare import (EXIT_REGRESSION, Comparison, Flip, TaskComparison, compare_runs, load_policy,
                             summary_markdown, worst_first)
from unitoken_eval.harness.report import thumbnail_uri
from unitoken_eval.harness.store import RunStore, StoreError, write_atomic
from unitoken_eval.harness.types import Prediction, Sample

log = logging.getLogger("unitoken_eval")
e = html.escape
SHOWN_PER_TASK = 40

_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}h2{margin-top:1.6em}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.35em .5em;vertical-align:top;
text-align:left}th{background:#f3f3f3}.down{background:#fdecea}.up{background:#e9f7ef}small{color:#666}
.pair{display:flex;gap:.5em}figure{margin:0}figcaption{font-size:.85em;color:#444;max-width:180px}
.verdict-regression{color:#b00020}.verdict-incomparable{color:#b00020}"""


def _load_samples(store: RunStore, task: str) -> tuple[dict[str, Sample], Optional[str]]:
    """The task's samples as the run read them, by id; empty (with why) when its data is not on this machine."""
    cfg = store.read_manifest().get("config") or {}
    try:
        t = registry.make_task(task, (cfg.get("options") or {}).get(task))
        source = (cfg.get("data") or {}).get(task)
        if source is None and cfg.get("smoke"):
            source = t.smoke_source()
        samples = t.load(source, cfg.get("limit"))
    except Exception as exc:  # the page still shows answers and gold without the data
        return {}, f"questions and images not shown: the task's data could not be loaded here ({exc})"
    return {s.id: s for s in samples}, None


def _predictions(store: RunStore, task: str) -> dict[str, Prediction]:
    try:
        return store.read_predictions(task)
    except StoreError:
        return {}


def _sample_id(rid: str, rec: dict[str, Any]) -> str:
    """Score records are keyed by sample, except per-image ones (GenEval) that name their prompt."""
    return str(rec.get("prompt_id", rid))


def _answer(pred: Optional[Prediction], rec: dict[str, Any]) -> str:
    text = pred.text if pred is not None and pred.text is not None else (pred.error if pred is not None else None)
    got = rec.get("extracted")
    parts = [e(str(text)) if text is not None else "<small>no prediction</small>"]
    if got not in (None, "", []):
        parts.append(f"<small>extracted: {e(str(got))}</small>")
    return "<br>".join(parts)


def _images(store: RunStore, task: str, rid: str, rec: dict[str, Any], pred: Optional[Prediction]) -> list[Path]:
    task_dir = store.task_dir(task)
    if rec.get("filename"):
        for base in (store.images_dir(task), task_dir):
            if (base / rec["filename"]).exists():
                return [base / rec["filename"]]
    return [task_dir / p for p in (pred.images if pred is not None else [])][:2]


def _reason(rec: dict[str, Any]) -> str:
    for key in ("reason", "why", "error", "not_scored"):
        if rec.get(key):
            return str(rec[key])
    return ""


def _figure(src: Optional[str], caption: str) -> str:
    img = f'<img src="{src}" alt="{e(caption)}">' if src else "<small>(image not readable)</small>"
    return f"<figure>{img}<figcaption>{e(caption)}</figcaption></figure>"


def _task_section(comp: Comparison, t: TaskComparison, base: RunStore, cand: RunStore) -> str:
    b_scores, c_scores = base.read_scores(t.task), cand.read_scores(t.task)
    b_preds, c_preds = _predictions(base, t.task), _predictions(cand, t.task)
    generation = any(p.images for p in list(b_preds.values())[:50])
    samples, note = ({}, None) if generation else _load_samples(base, t.task)
    down = sum(f.candidate < f.baseline for f in t.flips)
    head = (f'<h2 id="{e(t.task)}">{e(t.task)} <small class="verdict-{e(t.verdict)}">{e(t.verdict)}</small></h2>'
            f"<p>{down} worse, {len(t.flips) - down} better"
            + (f" (first {SHOWN_PER_TASK} shown, worst first)" if len(t.flips) > SHOWN_PER_TASK else "")
            + (f"; Δ {t.delta:+.4g} {e(t.scale)}" if t.delta is not None else "") + "</p>")
    if note:
        head += f"<p><small>{e(note)}</small></p>"
    rows = []
    for f in t.flips[:SHOWN_PER_TASK]:
        brec, crec = b_scores.get(f.sample_id, {}), c_scores.get(f.sample_id, {})
        sid = _sample_id(f.sample_id, brec)
        bp, cp = b_preds.get(sid), c_preds.get(sid)
        cls = "down" if f.candidate < f.baseline else "up"
        change = f"{f.baseline:g} → {f.candidate:g}"
        if generation:
            prompt = brec.get("prompt") or crec.get("prompt") or ""
            pair = "".join(_figure(thumbnail_uri(p) if p.exists() else None, f"{label}: {_reason(rec)}")
                           for label, store, rec, pred in (("baseline", base, brec, bp), ("candidate", cand, crec, cp))
                           for p in _images(store, t.task, f.sample_id, rec, pred)[:1])
            rows.append(f'<tr class="{cls}"><td>{e(f.sample_id)}<br>{change}</td><td>{e(str(prompt))}</td>'
                        f'<td><div class="pair">{pair}</div></td></tr>')
        else:
            s = samples.get(sid)
            img = thumbnail_uri(s.load_image()) if s is not None and s.image is not None else None
            question = str(s.fields.get("question", "")) if s is not None else ""
            gold = brec.get("answer", crec.get("answer", ""))
            rows.append(f'<tr class="{cls}"><td>{e(f.sample_id)}<br>{change}</td>'
                        f'<td>{_figure(img, "") if img else ""}</td><td>{e(question)}</td><td>{e(str(gold))}</td>'
                        f"<td>{_answer(bp, brec)}</td><td>{_answer(cp, crec)}</td></tr>")
    if generation:
        table = "<tr><th>sample, score</th><th>prompt</th><th>baseline | candidate (judged reason)</th></tr>"
    else:
        table = ("<tr><th>sample, score</th><th>image</th><th>question</th><th>gold</th><th>baseline answer</th>"
                 "<th>candidate answer</th></tr>")
    return head + f"<table>{table}{''.join(rows)}</table>"


def flips_page(comp: Comparison) -> str:
    base, cand = RunStore(comp.baseline), RunStore(comp.candidate)
    tasks = [t for t in worst_first(comp.tasks) if t.flips]
    index = "".join(f'<li><a href="#{e(t.task)}">{e(t.task)}</a>: {e(t.verdict)}, {len(t.flips)} changed</li>'
                    for t in tasks)
    body = "".join(_task_section(comp, t, base, cand) for t in tasks) or "<p>No sample changed its score.</p>"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>compare: samples that changed</title>"
            f"<style>{_CSS}</style></head><body><h1>Samples that changed: {e(comp.verdict)}</h1>"
            f"<p>baseline <code>{e(str(comp.baseline))}</code>, candidate <code>{e(str(comp.candidate))}</code>; "
            f"for 0/1 scores the samples whose verdict changed, otherwise the largest changes.</p>"
            f"<ul>{index}</ul>{body}</body></html>")


def write_flips_page(comp: Comparison, path: Path) -> Path:
    write_atomic(path, flips_page(comp).encode("utf-8"))
    return path


def junit_xml(comp: Comparison) -> str:
    fail_insufficient = comp.policy.insufficient_evidence == "fail" and comp.exit_code == EXIT_REGRESSION
    suite = ET.Element("testsuite", name="unitoken-eval compare", tests=str(len(comp.tasks) + bool(comp.run_problems)))
    counts = {"failures": 0, "errors": 0, "skipped": 0}
    if comp.run_problems:
        case = ET.SubElement(suite, "testcase", classname="unitoken-eval.compare", name="(runs)")
        ET.SubElement(case, "error", message="; ".join(comp.run_problems))
        counts["errors"] += 1
    for t in comp.tasks:
        case = ET.SubElement(suite, "testcase", classname="unitoken-eval.compare", name=t.task)
        why = "; ".join(t.reasons)
        if t.verdict == "regression" or (t.verdict == "insufficient" and fail_insufficient):
            ET.SubElement(case, "failure", message=why or t.verdict, type=t.verdict)
            counts["failures"] += 1
        elif t.verdict == "incomparable":
            ET.SubElement(case, "error", message=why or t.verdict, type="incomparable")
            counts["errors"] += 1
        elif t.verdict in ("insufficient", "not_scored", "skipped"):
            label = "not enough evidence" if t.verdict == "insufficient" else t.verdict.replace("_", " ")
            ET.SubElement(case, "skipped", message=f"{label}: {why}" if why else label)
            counts["skipped"] += 1
        out = [f"headline {t.headline} ({t.scale}): baseline {t.baseline}, candidate {t.candidate}, delta {t.delta}",
               f"paired n {t.n_paired} (units {t.n_units}), test {t.test or '-'}, p {t.p_value}, Holm {t.p_adjusted}",
               f"detectable drop {None if t.detectable_drop is None else round(100 * t.detectable_drop, 3)} points"]
        ET.SubElement(case, "system-out").text = "\n".join(out + t.reasons)
    for k, v in counts.items():
        suite.set(k, str(v))
    root = ET.Element("testsuites", name="unitoken-eval compare")
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(comp: Comparison, path: Path) -> Path:
    write_atomic(path, junit_xml(comp).encode("utf-8"))
    return path


__all__ = ["Flip", "compare_command", "flips_page", "junit_xml", "write_flips_page", "write_junit"]


def compare_command(baseline: Path, candidate: Path, policy: Optional[str] = None,
                    summary: Optional[str] = None, out_dir: Optional[str] = None) -> int:
    """Compare, print the Markdown summary, append it to ``summary``; with ``out_dir`` also write there
    ``summary.md``, ``flips.html`` (the samples that changed) and ``junit.xml`` (one test case per task)."""
    comp = compare_runs(Path(baseline), Path(candidate), load_policy(policy))
    page = None
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_flips_page(comp, out / "flips.html")
        write_junit(comp, out / "junit.xml")
        page = "flips.html"
    text = summary_markdown(comp, flips_page=page)
    if out_dir:
        (Path(out_dir) / "summary.md").write_text(text + "\n", encoding="utf-8")
    sys.stdout.write(text + "\n")
    if summary:
        path = Path(summary)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Appending lets several compare steps share one CI job summary file.
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return comp.exit_code
