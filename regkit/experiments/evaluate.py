r"""Evaluate registration methods on a pair data set through the one protocol.

:func:`evaluate` loops over a data set in batches and, for every batch, over the methods, each
called the same way, ``regkit.register(moving, fixed, method=..., **params)``; it never
special-cases a method. Metrics are computed from the :class:`~regkit.RegResult` and the batch:
image metrics compare ``result.warped`` with ``fixed``; field metrics (end-point error, TRE,
folding) apply where the method returns a field and the data set has the ground truth, and are
NaN ("not applicable") elsewhere, e.g. for deformation-free models.

Convention
----------
- A data set is a sequence of item dicts (e.g. a :class:`regkit.data.pairs.PairDataset`) with
  ``moving``/``fixed`` ``(1, H, W)`` in [0, 1] and optional ground truth ``disp`` ``(2, H, W)``
  (pixels, pull on the fixed grid), ``landmarks_moving``/``landmarks_fixed`` ``(K, 2)`` and
  ``landmarks_valid`` ``(K,)``. Items are batched with :func:`regkit.data.pairs.collate_pairs`.
- Metrics are per pair (see :mod:`regkit.metrics`); summaries are the mean and the sample
  standard deviation (``ddof=1``) over pairs. ``seconds`` is the wall time of the
  ``register`` call per pair (batched methods share a batch's time equally).
- Metrics are computed over the whole image unless ``mask`` names a boolean item entry (e.g.
  ``"fov_fixed"``), as the GPEReg-Net paper states no mask.

Example
-------
>>> import torch
>>> from regkit.experiments.evaluate import evaluate, format_table
>>> g = torch.Generator().manual_seed(0)
>>> pairs = [{"moving": torch.rand(1, 32, 32, generator=g), "fixed": torch.rand(1, 32, 32, generator=g)}
...          for _ in range(3)]
>>> res = evaluate(pairs, ["identity"], metrics=("mse",), progress=False)
>>> res["n_pairs"], sorted(res["methods"]["identity"])
(3, ['mean', 'method', 'params', 'per_pair', 'seconds_per_pair', 'std'])
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .. import metrics as _metrics
from ..registry import RegResult, register

__all__ = ["MethodSpec", "METRICS", "evaluate", "summary_rows", "format_table", "method_specs"]


@dataclass(frozen=True)
class MethodSpec:
    """A row of a table: its ``label``, the registered ``method`` and the ``params`` it is called with."""

    label: str
    method: str
    params: dict = field(default_factory=dict)


def method_specs(methods) -> list[MethodSpec]:
    """Normalise a method list to :class:`MethodSpec` rows.

    Accepts a sequence whose entries are a method name (label = name), a ``(label, method)`` or
    ``(label, method, params)`` tuple, or a :class:`MethodSpec`; or a mapping ``{label: method}``
    / ``{label: (method, params)}``. Labels must be unique.

    >>> [s.label for s in method_specs(["identity", ("SyN", "syn", {"radius": 2})])]
    ['identity', 'SyN']
    """
    if isinstance(methods, (str, MethodSpec)):
        methods = [methods]
    if isinstance(methods, Mapping):
        methods = [(k, *(v if isinstance(v, tuple) else (v,))) for k, v in methods.items()]
    specs = []
    for entry in methods:
        if isinstance(entry, MethodSpec):
            spec = entry
        elif isinstance(entry, str):
            spec = MethodSpec(entry, entry)
        elif isinstance(entry, tuple) and len(entry) in (2, 3) and all(isinstance(e, str) for e in entry[:2]):
            params = dict(entry[2]) if len(entry) == 3 else {}
            spec = MethodSpec(entry[0], entry[1], params)
        else:
            raise TypeError(
                "methods entries must be a method name, (label, method), (label, method, params) or a "
                f"MethodSpec, got {entry!r}"
            )
        specs.append(spec)
    if not specs:
        raise ValueError("methods must name at least one method")
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"methods must have unique labels, got {labels}")
    return specs


# ----------------------------------------------------------------------------------------------
# Per-pair metrics: fn(result, batch, mask) -> Tensor N, or None when it does not apply
# ----------------------------------------------------------------------------------------------


def _epe(res: RegResult, batch: dict, mask: Tensor | None) -> Tensor | None:
    if res.disp is None or not isinstance(batch.get("disp"), Tensor):
        return None
    return _metrics.epe(res.disp, batch["disp"], mask)


def _tre(res: RegResult, batch: dict, mask: Tensor | None) -> Tensor | None:
    lm, lf = batch.get("landmarks_moving"), batch.get("landmarks_fixed")
    if res.disp is None or not isinstance(lm, Tensor) or not isinstance(lf, Tensor):
        return None
    valid = batch.get("landmarks_valid")
    return _metrics.tre(lm, lf, res.disp, valid if isinstance(valid, Tensor) else None)


def _folding(res: RegResult, batch: dict, mask: Tensor | None) -> Tensor | None:
    return None if res.disp is None else _metrics.folding_fraction(res.disp)


METRICS: dict[str, Callable[[RegResult, dict, Tensor | None], Tensor | None]] = {
    "ncc": lambda res, b, m: _metrics.ncc(res.warped, b["fixed"], m),
    "ssim": lambda res, b, m: _metrics.ssim(res.warped, b["fixed"], m),
    "psnr": lambda res, b, m: _metrics.psnr(res.warped, b["fixed"], m),
    "mse": lambda res, b, m: _metrics.mse(res.warped, b["fixed"], m),
    "epe": _epe,
    "tre": _tre,
    "folding": _folding,
}
"""Per-pair metrics by name: image similarity of ``warped`` vs ``fixed`` (``ncc``, ``ssim``,
``psnr`` in dB, ``mse``), mean end-point error of ``disp`` against the ground-truth field
(``epe``, pixels), landmark error (``tre``, pixels) and folding fraction of ``disp``
(``folding``)."""


def _batches(dataset, batch_size: int) -> Iterable[tuple[int, list[dict]]]:
    n = len(dataset)
    for start in range(0, n, batch_size):
        yield start, [dataset[i] for i in range(start, min(n, start + batch_size))]


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}


def _summary(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0 or np.isnan(a).any():
        return math.nan, math.nan
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def evaluate(
    dataset: Sequence[dict],
    methods,
    *,
    metrics: Sequence[str] = ("ncc", "ssim", "psnr"),
    batch_size: int = 8,
    device: torch.device | str | None = None,
    mask: str | None = None,
    progress: bool = True,
) -> dict:
    """Run every method on every pair of ``dataset`` and collect per-pair metrics.

    Parameters
    ----------
    dataset : sequence of item dicts
        See the module's Convention (a :class:`~regkit.data.pairs.PairDataset` or a list).
    methods : method list
        Registered method names, ``(label, method[, params])`` tuples, :class:`MethodSpec` or a
        ``{label: method}`` mapping (see :func:`method_specs`). Table rows follow this order.
    metrics : sequence of str
        Names from :data:`METRICS`.
    batch_size : int
        Pairs per ``register`` call.
    device : torch device, optional
        Where the batches go (default: where the data set puts them, the CPU).
    mask : str, optional
        Item key of a boolean ``(1, H, W)`` mask to restrict the image metrics and the EPE to.
    progress : bool
        Show a ``tqdm`` bar over batches.

    Returns
    -------
    dict, JSON-able
        ``{"n_pairs", "metrics", "batch_size", "mask", "methods": {label: {"method", "params",
        "per_pair": {metric: [N floats]}, "mean": {metric: float}, "std": {metric: float},
        "seconds_per_pair": float}}}``. A metric that does not apply (no field, no ground truth)
        is NaN for that method.
    """
    specs = method_specs(methods)
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if not metrics or unknown:
        raise ValueError(f"metrics must be a non-empty list from {sorted(METRICS)}, got {list(metrics)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    try:
        n_pairs = len(dataset)
    except TypeError:
        raise TypeError(f"dataset must be a sequence of item dicts, got {type(dataset).__name__}") from None
    if n_pairs == 0:
        raise ValueError("dataset must hold at least one pair")
    from ..data.pairs import collate_pairs  # light, but keeps `import regkit.experiments.evaluate` lighter

    dev = torch.device(device) if device is not None else None
    per_pair = {s.label: {m: [] for m in metrics} for s in specs}
    seconds = {s.label: 0.0 for s in specs}
    batches = _batches(dataset, batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=math.ceil(n_pairs / batch_size), desc="pairs", unit="batch")
    for _, items in batches:
        batch = collate_pairs(items)
        if dev is not None:
            batch = _to(batch, dev)
        moving, fixed = batch["moving"], batch["fixed"]
        m = batch.get(mask) if mask is not None else None
        if mask is not None and not isinstance(m, Tensor):
            raise ValueError(f"mask must name a tensor entry of the items, got {mask!r} (keys: {sorted(batch)})")
        for spec in specs:
            if moving.is_cuda:
                torch.cuda.synchronize(moving.device)
            t0 = time.perf_counter()
            res = register(moving, fixed, method=spec.method, **spec.params)
            if moving.is_cuda:
                torch.cuda.synchronize(moving.device)
            seconds[spec.label] += time.perf_counter() - t0
            for name in metrics:
                value = METRICS[name](res, batch, m)
                vals = [math.nan] * moving.shape[0] if value is None else value.detach().double().cpu().tolist()
                per_pair[spec.label][name].extend(vals)
    out = {"n_pairs": n_pairs, "metrics": list(metrics), "batch_size": batch_size, "mask": mask, "methods": {}}
    for spec in specs:
        stats = {name: _summary(v) for name, v in per_pair[spec.label].items()}
        out["methods"][spec.label] = {
            "method": spec.method,
            "params": dict(spec.params),
            "per_pair": per_pair[spec.label],
            "mean": {k: v[0] for k, v in stats.items()},
            "std": {k: v[1] for k, v in stats.items()},
            "seconds_per_pair": seconds[spec.label] / n_pairs,
        }
    return out


# ----------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------


def _paper_column(paper, metric: str):
    for c in paper.columns:
        if c.split(" ")[0].lower() == metric.lower():
            return c
    return None


def summary_rows(results: dict, paper=None, metrics: Sequence[str] | None = None) -> list[dict]:
    """One dict per method: ``{"label", "method", "<metric>": mean, "<metric>_std": std,
    "<metric>_paper": published value or None, "seconds_per_pair"}``.

    ``paper`` is a :class:`regkit.experiments.paper_numbers.PaperTable`; a method's published
    row is the one whose ``method`` is the same registered method.
    """
    metrics = list(metrics or results["metrics"])
    rows = []
    for label, r in results["methods"].items():
        row = {"label": label, "method": r["method"]}
        prow = paper.row_for_method(r["method"]) if paper is not None else None
        for name in metrics:
            row[name] = r["mean"][name]
            row[f"{name}_std"] = r["std"][name]
            if paper is not None:
                col = _paper_column(paper, name)
                row[f"{name}_paper"] = prow.values[paper.columns.index(col)] if (prow is not None and col) else None
        row["seconds_per_pair"] = r["seconds_per_pair"]
        rows.append(row)
    return rows


def _fmt(v, digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}"


def format_table(results: dict, paper=None, metrics: Sequence[str] | None = None, digits: int | Mapping = 3,
                 std: bool = True, seconds: bool = False) -> str:
    """Plain-text table of means (± std), with the paper's values beside ours when ``paper`` is given.

    ``digits`` is one number or ``{metric: digits}`` (default 3; PSNR reads well with 2). The text
    is deterministic for given results, so a chapter can check it with nbval.

    >>> res = {"metrics": ["ncc"], "methods": {"identity": {"method": "identity", "mean": {"ncc": 0.5},
    ...        "std": {"ncc": 0.1}, "seconds_per_pair": 0.0}}}
    >>> print(format_table(res))
    method    ncc
    identity  0.500 ± 0.100
    """
    metrics = list(metrics or results["metrics"])
    rows = summary_rows(results, paper, metrics)

    def nd(name):
        return digits.get(name, 3) if isinstance(digits, Mapping) else digits

    header = ["method"]
    for name in metrics:
        header.append(f"{name}")
        if paper is not None:
            header.append(f"{name} (paper)")
    if seconds:
        header.append("s/pair")
    lines = [header]
    for row in rows:
        cells = [row["label"]]
        for name in metrics:
            cell = _fmt(row[name], nd(name))
            if std and cell != "-":
                cell += f" ± {_fmt(row[f'{name}_std'], nd(name))}"
            cells.append(cell)
            if paper is not None:
                cells.append(_fmt(row[f"{name}_paper"], nd(name)))
        if seconds:
            cells.append(f"{row['seconds_per_pair']:.2f}")
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)
