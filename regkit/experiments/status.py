"""The reproduction-status page: every reproduced table, its numbers per profile, and a verdict.

Generated from the results files (``results/**/*.json``, written by ``python -m regkit
reproduce``), never typed: for each table of :mod:`regkit.experiments.tables` it collects the
paper's numbers and ours per profile (``full`` on a GPU, the ``cpu`` profile, and ``quick`` where a
quick run was saved), and asks the table's own ``assess(record)`` for a status and a one-line
reason.

Statuses
--------
- ``reproduced``: the table's criteria hold for a converged run;
- ``partly``: some criteria hold;
- ``not reproduced``: none holds;
- ``not converged``: a run exists, but a learned model's validation loss had not flattened;
- ``pending``: no converged run has been made yet (e.g. a GPU run that has not happened);
- ``measured``: an experiment of ours with no paper numbers to compare (the controls), run with
  converged models.

Example
-------
>>> s = collect(results_dir="no-such-folder")
>>> [e["status"] for e in s][:1]
['pending']
"""

from __future__ import annotations

import json
from pathlib import Path

from . import tables
from .provenance import REPO_ROOT

__all__ = ["load_records", "collect", "status_table", "numbers_table", "STATUSES", "CHAPTERS"]

STATUSES = ("reproduced", "partly", "not reproduced", "not converged", "pending", "measured")
CHAPTERS = {
    "air-table1": "08_attention_air",
    "gpereg-table1": "09_deformation_free_gpereg",
    "gpereg-table2": "09_deformation_free_gpereg",
    "gpereg-table3": "09_deformation_free_gpereg",
    "gpereg-ablation": "09_deformation_free_gpereg",
    "gpereg-does-it-register": "10_does_it_register",
}
"""The chapter that shows each table."""


def load_records(results_dir=None) -> dict:
    """``{table: {profile: record}}`` from every results file under ``results_dir``
    (default: the repository's ``results/``). Each record gains ``_path`` (relative)."""
    root = Path(results_dir) if results_dir is not None else REPO_ROOT / "results"
    out: dict[str, dict] = {}
    if not root.is_dir():
        return out
    for path in sorted(root.rglob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(record, dict) or record.get("table") not in tables.TABLES:
            continue
        record["_path"] = path.relative_to(root.parent).as_posix() if root.parent in path.parents else path.name
        out.setdefault(record["table"], {})[record.get("profile", "?")] = record
    return out


def collect(results_dir=None) -> list[dict]:
    """One entry per table: ``table``, ``summary``, ``chapter``, ``records`` (per profile),
    ``status``, ``reason``, ``profile`` (the record the verdict rests on)."""
    records = load_records(results_dir)
    entries = []
    for name in tables.names():
        module = tables.get(name)
        recs = records.get(name, {})
        best = next((recs[p] for p in ("full", "cpu") if p in recs), None)
        if best is None:
            status, reason = "pending", "no converged run yet" + (" (only a quick run)" if "quick" in recs else "")
        else:
            verdict = module.assess(best)
            status, reason = verdict["status"], verdict["reason"]
        if status not in STATUSES:
            raise ValueError(f"{name}: assess returned an unknown status {status!r}")
        entries.append({
            "table": name, "summary": module.SUMMARY, "chapter": CHAPTERS.get(name), "records": recs,
            "status": status, "reason": reason, "profile": best.get("profile") if best else None,
        })
    return entries


PROFILE_LABELS = {"full": "full run", "cpu": "CPU profile", "quick": "quick run"}


def run_label(profile: str, record: dict) -> str:
    """A column title for one results record: its profile and, for a full run, the device type
    it ran on (``"full run (CPU)"``: the AiR table's full protocol fits a CPU)."""
    label = PROFILE_LABELS[profile]
    device = (record.get("provenance") or {}).get("device_type")
    return f"{label} ({device.upper()})" if profile == "full" and device else label


def status_table(results_dir=None):
    """The status of every table as a :class:`regkit.viz.tables.ResultTable` (HTML in a notebook,
    fixed-width text otherwise): status, reason, results files and chapter per table."""
    from ..viz.tables import result_table

    rows = {}
    for e in collect(results_dir):
        files = ", ".join(f"{p}: {r['_path']}" for p, r in sorted(e["records"].items()))
        rows[e["table"]] = {"status": e["status"], "reason": e["reason"], "results files": files or None,
                            "chapter": e["chapter"]}
    return result_table({"": rows}, ["status", "reason", "results files", "chapter"], row_title="table")


def _row_values(record: dict, metrics) -> dict:
    rows = record.get("rows")
    out = {}
    if isinstance(rows, dict):
        for label, r in rows.items():
            out[r.get("label", label)] = {
                m: ({"mean": r[m], "std": r.get(f"{m}_std"), "failed": r.get(f"{m}_failed") or 0}
                    if isinstance(r.get(m), (int, float)) else r.get(m)) for m in metrics}
    elif isinstance(rows, list):
        for r in rows:
            out[r["label"]] = {m: r.get(m) for m in metrics}
    return out


def _paper_values(record: dict, metrics) -> dict:
    rows = record.get("rows")
    if isinstance(rows, dict) and any(f"{m}_paper" in r for r in rows.values() for m in metrics):
        return {label: {m: r.get(f"{m}_paper") for m in metrics} for label, r in rows.items()}
    paper = record.get("paper")
    if isinstance(paper, dict) and isinstance(rows, dict):
        by_method = {r.get("method", k): r.get("label", k) for k, r in rows.items()}
        out = {}
        for method, values in paper.items():
            label = by_method.get(method, method)
            out[label] = {m: (v["mean"] if isinstance(v, dict) else v) for m, v in values.items() if m in metrics}
        return out
    return {}


def numbers_table(table: str, results_dir=None, metrics=None, formats=None):
    """The paper's numbers beside ours for one table, one column group per source: the paper,
    the full run, the CPU profile (and a saved quick run), each labelled with its profile.

    Parameters
    ----------
    table : str
        A table name (:func:`regkit.experiments.tables.names`).
    results_dir : path, optional
    metrics : sequence of str, optional
        Default: the table module's ``METRICS``.
    formats : mapping, optional
        Format per metric (default: 3 decimals, PSNR 2).
    """
    from ..viz.tables import result_table

    module = tables.get(table)
    metrics = list(metrics or getattr(module, "METRICS", ("ncc", "ssim", "psnr")))
    records = load_records(results_dir).get(table, {})
    data = {}
    for profile in ("full", "cpu", "quick"):
        if profile in records:
            if "paper" not in data:
                paper = _paper_values(records[profile], metrics)
                if paper:
                    data["paper"] = paper
            data[run_label(profile, records[profile])] = _row_values(records[profile], metrics)
    if not data:
        data = {"(no results file yet)": {}}
    fmts = {m: ".2f" if m == "psnr" else ".3f" for m in metrics}
    fmts.update(formats or {})
    notes = [f"{run_label(p, r)}: {r['_path']}, {r.get('provenance', {}).get('device', '?')}"
             for p, r in records.items() if p in PROFILE_LABELS]
    return result_table(data, metrics, formats=fmts, group="metric", row_title="method", notes=notes)
