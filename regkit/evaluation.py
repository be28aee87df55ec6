r"""One evaluation protocol for every table: method specs, batching, one metric table, one summary.

Every reproduced table, the "does it register" controls and the Trainer's validation score
methods here, so a method scores the same whichever table runs it.

- :class:`MethodSpec` -- a table row: label, registered method, its keyword arguments, and
  whether it takes the pair's temporal ``frame``/``sequence`` (GPEReg-Net).
- :func:`iter_batches` -- batches of a pair data set, in order, never mixing two image pairs,
  resized on the fly (:func:`resize_batch`) and moved to a device.
- :func:`run_method` -- one ``regkit.register`` call for a spec on a batch.
- :data:`METRICS` -- per-pair metrics by name: ``fn(result, batch, mask) -> Tensor N`` or
  ``None`` where the metric does not apply (no field, no ground truth).
- :func:`evaluate` -- every spec on every pair: per-pair values, :func:`summarise`\ d.
- :func:`summarise` -- the one rule for means: NaN marks a failed pair; it is left out of the
  mean and the standard deviation and *counted* (``failed``), never silently dropped.
- :func:`summary_rows` / :func:`format_table` -- the rows beside the paper's, as data or text.

Convention
----------
- A data set is a sequence of item dicts (``moving``/``fixed`` ``(1, H, W)`` in [0, 1], optional
  ground truth ``disp`` ``(2, H, W)`` in pixels, ``landmarks_moving``/``landmarks_fixed``
  ``(K, 2)`` and ``landmarks_valid``, masks, ``frame``, ``pair``), e.g. a
  :class:`regkit.data.PairDataset`; a batch is the same keys stacked to ``N,...``.
- A batch may carry ``fixed_input``: the image the method registers to, while the metrics still
  compare with ``fixed`` (the shuffled-fixed controls use it).
- Image metrics compare ``result.warped`` *clamped to [0, 1]* (an output is scored as an image)
  with ``fixed``, over the whole image unless ``mask`` names a boolean item entry. Summaries are
  the mean and the sample standard deviation (``ddof=1``) over pairs.
- ``seconds_per_pair`` is the wall time of the ``register`` calls per pair (synchronised on GPUs).

Example
-------
>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> pairs = [{"moving": torch.rand(1, 32, 32, generator=g), "fixed": torch.rand(1, 32, 32, generator=g)}
...          for _ in range(3)]
>>> res = evaluate(pairs, ["identity"], metrics=("mse", "epe"))
>>> res["n_pairs"], res["methods"]["identity"]["failed"]
(3, {'mse': 0, 'epe': 0})
>>> res["methods"]["identity"]["mean"]["epe"] is None     # no ground-truth field: not applicable
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from . import metrics as _metrics
from . import spatial
from ._checks import check_positive
from .registry import RegResult, register
from .runtime import eval_mode

__all__ = [
    "MethodSpec",
    "method_specs",
    "METRICS",
    "iter_batches",
    "resize_batch",
    "run_method",
    "evaluate",
    "summarise",
    "summary_rows",
    "table_data",
    "format_table",
]


# ----------------------------------------------------------------------------------------------
# Method specs
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MethodSpec:
    """One row of a table.

    Attributes
    ----------
    label : str
        Row name.
    method : str
        Registered method name (:func:`regkit.methods`).
    params : dict
        Keyword arguments of the method (e.g. ``{"model": trained_net}``).
    frame : bool
        Pass the batch's ``frame`` (and its image ``pair`` as ``sequence``): GPEReg-Net's temporal
        context.
    """

    label: str
    method: str
    params: dict = field(default_factory=dict, hash=False, compare=False)
    frame: bool = False


def method_specs(methods) -> list[MethodSpec]:
    """Normalise a method list to :class:`MethodSpec` rows.

    Parameters
    ----------
    methods : str, MethodSpec, sequence or mapping
        Entries are a method name (label = name), a ``(label, method)`` or
        ``(label, method, params)`` tuple, or a :class:`MethodSpec`; or a mapping
        ``{label: method}`` / ``{label: (method, params)}``.

    Returns
    -------
    list of MethodSpec, labels unique.

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
            spec = MethodSpec(entry[0], entry[1], dict(entry[2]) if len(entry) == 3 else {})
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
# Per-pair metrics: fn(result, batch, mask) -> Tensor N, or None where it does not apply
# ----------------------------------------------------------------------------------------------


def _output(res: RegResult) -> Tensor:
    return res.warped.float().clamp(0, 1)


def _epe(res: RegResult, batch: Mapping, mask: Tensor | None) -> Tensor | None:
    if res.disp is None or not isinstance(batch.get("disp"), Tensor):
        return None
    return _metrics.epe(res.disp.float(), batch["disp"], mask)


def _tre(res: RegResult, batch: Mapping, mask: Tensor | None) -> Tensor | None:
    lm, lf = batch.get("landmarks_moving"), batch.get("landmarks_fixed")
    if res.disp is None or not isinstance(lm, Tensor) or not isinstance(lf, Tensor):
        return None
    valid = batch.get("landmarks_valid")
    return _metrics.tre(lm, lf, res.disp.float(), valid if isinstance(valid, Tensor) else None)


def _folding(res: RegResult, batch: Mapping, mask: Tensor | None) -> Tensor | None:
    return None if res.disp is None else _metrics.folding_fraction(res.disp.float(), mask)


Metric = Callable[[RegResult, Mapping, "Tensor | None"], "Tensor | None"]

METRICS: dict[str, Metric] = {
    "mse": lambda r, b, m: _metrics.mse(_output(r), b["fixed"], m),
    "psnr": lambda r, b, m: _metrics.psnr(_output(r), b["fixed"], m),
    "ssim": lambda r, b, m: _metrics.ssim(_output(r), b["fixed"], m),
    "ncc": lambda r, b, m: _metrics.ncc(_output(r), b["fixed"], m),
    "smooth_dice": lambda r, b, m: _metrics.smooth_dice(_output(r), b["fixed"]),
    "epe": _epe,
    "tre": _tre,
    "folding": _folding,
}
"""Per-pair metrics by name: image similarity of the output (clamped to [0, 1]) with ``fixed``
(``mse``, ``psnr`` in dB, ``ssim``, ``ncc``, ``smooth_dice``), the mean end-point error of
``disp`` against the ground-truth field (``epe``, pixels), the landmark error (``tre``, pixels)
and the folding fraction of ``disp`` (``folding``). Field metrics return ``None`` (not
applicable) without a field or ground truth."""


def _metric_table(metrics) -> dict[str, Metric]:
    if isinstance(metrics, str):
        metrics = (metrics,)
    table: dict[str, Metric] = {}
    items = metrics.items() if isinstance(metrics, Mapping) else ((m, None) for m in metrics)
    for name, fn in items:
        if fn is None:
            if name not in METRICS:
                raise ValueError(f"metrics must be names from {sorted(METRICS)} (or a {{name: fn}} mapping), got {name!r}")
            fn = METRICS[name]
        elif not callable(fn):
            raise TypeError(f"metric {name!r} must be callable fn(result, batch, mask), got {type(fn).__name__}")
        table[name] = fn
    if not table:
        raise ValueError("metrics must name at least one metric")
    return table


# ----------------------------------------------------------------------------------------------
# Batches
# ----------------------------------------------------------------------------------------------


def resize_batch(batch: Mapping, size) -> dict:
    """Resize a batch to ``size = (H, W)``.

    Images bilinear (clamped to [0, 1]), bool masks nearest, ``disp`` with
    :func:`regkit.spatial.resize_disp` (values rescaled), landmarks (pixels, x then y) scaled
    with the grid (``align_corners=True``: pixel centres at both ends stay at both ends).

    Parameters
    ----------
    batch : mapping of ``N,...`` tensors with ``moving``
    size : (int, int)

    Returns
    -------
    dict, a new batch (the input is not modified).
    """
    h, w = size
    out = dict(batch)
    h0, w0 = batch["moving"].shape[-2:]
    if (h0, w0) == (h, w):
        return out
    sx, sy = (w - 1) / (w0 - 1), (h - 1) / (h0 - 1)
    for k, v in batch.items():
        if not isinstance(v, Tensor):
            continue
        if k == "disp":
            out[k] = spatial.resize_disp(v, (h, w))
        elif k.startswith("landmarks_") and v.is_floating_point() and v.shape[-1] == 2:
            out[k] = v * torch.tensor([sx, sy], dtype=v.dtype, device=v.device)
        elif v.ndim == 4 and v.shape[-2:] == (h0, w0):
            if v.dtype == torch.bool:
                out[k] = spatial.resize_image(v.float(), (h, w), mode="nearest") > 0.5
            else:
                out[k] = spatial.resize_image(v.float(), (h, w)).clamp(0, 1)
    return out


def iter_batches(data, batch_size: int = 8, size=None, device=None) -> Iterable[dict]:
    """Batches (dicts of ``N,...`` tensors) of a data set of pair dicts, in order.

    A batch never mixes two image ``pair`` s when items carry one, so that consecutive frames of
    a sequence meet in one batch (GPEReg-Net's window) and a new sequence starts a new batch.

    Parameters
    ----------
    data : sequence of item dicts, or one batch dict
    batch_size : int
    size : (int, int), optional
        Resize every batch (:func:`resize_batch`).
    device : torch.device or str, optional

    Yields
    ------
    dict batches.
    """
    from .data.pairs import collate_pairs

    check_positive("batch_size", batch_size, integer=True)
    if isinstance(data, Mapping):
        batches: Iterable[dict] = [dict(data)]
    else:
        try:
            n = len(data)
        except TypeError:
            raise TypeError(f"data must be a sequence of item dicts or a batch dict, got {type(data).__name__}") from None

        def gen():
            chunk, last = [], None
            for i in range(n):
                item = data[i]
                pair = item.get("pair")
                if chunk and (len(chunk) == batch_size or (pair is not None and pair != last)):
                    yield collate_pairs(chunk)
                    chunk = []
                chunk.append(item)
                last = pair
            if chunk:
                yield collate_pairs(chunk)

        batches = gen()
    for b in batches:
        if size is not None:
            b = resize_batch(b, size)
        if device is not None:
            b = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in b.items()}
        yield b


def run_method(spec: MethodSpec, batch: Mapping, fixed: Tensor | None = None) -> RegResult:
    """Register ``batch["moving"]`` with ``spec``.

    The target is ``fixed`` when given, else the batch's ``fixed_input`` when it has one, else
    ``batch["fixed"]``. A spec with ``frame=True`` also gets the batch's ``frame`` and, as
    ``sequence``, its ``pair``.

    Returns
    -------
    RegResult
    """
    fx = fixed if fixed is not None else batch.get("fixed_input", batch["fixed"])
    params = dict(spec.params)
    if spec.frame and "frame" in batch:
        params["frame"] = batch["frame"]
        if "pair" in batch:
            params["sequence"] = batch["pair"]
    return register(batch["moving"], fx, method=spec.method, **params)


def _reset(spec: MethodSpec) -> None:
    model = spec.params.get("model")
    if hasattr(model, "reset_cache"):
        model.reset_cache()


# ----------------------------------------------------------------------------------------------
# Summaries
# ----------------------------------------------------------------------------------------------


def summarise(values) -> dict:
    """Mean and sample standard deviation of per-pair values, with the one NaN rule.

    NaN marks a pair on which the metric failed: it is left out of the mean and std and counted
    in ``failed``. Infinite values stay in (the PSNR of identical images is +inf, and so is
    their mean). ``None`` (not applicable) gives ``None`` statistics.

    Parameters
    ----------
    values : sequence of float, or None

    Returns
    -------
    dict ``{"mean", "std", "n", "failed"}``

    >>> summarise([1.0, 2.0, float("nan")])
    {'mean': 1.5, 'std': 0.7071067811865476, 'n': 2, 'failed': 1}
    """
    if values is None:
        return {"mean": None, "std": None, "n": 0, "failed": 0}
    v = torch.as_tensor(list(values), dtype=torch.float64)
    nan = torch.isnan(v)
    ok = v[~nan]
    n = int(ok.numel())
    if n == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0, "failed": int(nan.sum())}
    mean = float(ok.mean())
    std = float(ok.std()) if n > 1 and math.isfinite(mean) else (0.0 if n == 1 else math.nan)
    return {"mean": mean, "std": std, "n": n, "failed": int(nan.sum())}


def _json_params(params: Mapping) -> dict:
    """Keyword arguments as JSON-able data (a model becomes its class name)."""
    out = {}
    for k, v in params.items():
        if isinstance(v, torch.nn.Module):
            out[k] = type(v).__name__
        elif isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
        else:
            out[k] = repr(v)
    return out


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(
    data,
    methods,
    *,
    metrics=("ncc", "ssim", "psnr"),
    batch_size: int = 8,
    size=None,
    device=None,
    mask: str | None = None,
    batches: Sequence[dict] | None = None,
    progress: bool = False,
) -> dict:
    """Run every method on every pair of ``data`` and collect per-pair metrics.

    Each spec runs over all batches in turn (its model's running cache reset first), through
    :func:`run_method`, i.e. ``regkit.register``; no method is special-cased.

    Parameters
    ----------
    data : sequence of item dicts, or one batch dict
        See the module's Convention. Ignored when ``batches`` is given.
    methods : method list
        See :func:`method_specs`. Table rows follow this order.
    metrics : sequence of names from :data:`METRICS`, or a mapping ``{name: fn}``
        ``fn(result, batch, mask) -> Tensor N or None`` for metrics of one's own.
    batch_size : int
    size : (int, int), optional
        Resize the data on the fly (:func:`resize_batch`).
    device : torch device, optional
    mask : str, optional
        Item key of a boolean ``(1, H, W)`` mask restricting the image metrics and the EPE.
    batches : sequence of batch dicts, optional
        Already built batches (e.g. with a ``fixed_input``), used as they are.
    progress : bool
        A ``tqdm`` bar over the methods.

    Returns
    -------
    dict, JSON-able
        ``{"n_pairs", "metrics", "batch_size", "size", "mask", "methods": {label: {"method",
        "params", "per_pair": {metric: [N floats] or None}, "mean", "std", "failed": {metric:
        int}, "deformation_free": bool, "seconds_per_pair"}}}``; ``mean``/``std`` are ``None``
        for a metric that does not apply to the method.
    """
    specs = method_specs(methods)
    table = _metric_table(metrics)
    if batches is None:
        batches = list(iter_batches(data, batch_size, size=size, device=device))
    if not batches:
        raise ValueError("data must hold at least one pair")
    n_pairs = sum(int(b["moving"].shape[0]) for b in batches)
    if mask is not None and not all(isinstance(b.get(mask), Tensor) for b in batches):
        raise ValueError(f"mask must name a tensor entry of the items, got {mask!r} (keys: {sorted(batches[0])})")
    out = {"n_pairs": n_pairs, "metrics": list(table), "batch_size": batch_size,
           "size": list(size) if size is not None else None, "mask": mask, "methods": {}}
    spec_iter = specs
    if progress:
        from tqdm.auto import tqdm

        spec_iter = tqdm(specs, desc="methods")
    for spec in spec_iter:
        _reset(spec)
        per: dict[str, list | None] = {name: [] for name in table}
        seconds, deformation_free = 0.0, False
        with eval_mode(spec.params.get("model")):
            for b in batches:
                moving = b["moving"]
                if moving.is_cuda:
                    torch.cuda.synchronize(moving.device)
                t0 = time.perf_counter()
                res = run_method(spec, b)
                if moving.is_cuda:
                    torch.cuda.synchronize(moving.device)
                seconds += time.perf_counter() - t0
                deformation_free = deformation_free or res.disp is None
                m = b.get(mask) if mask is not None else None
                for name, fn in table.items():
                    value = fn(res, b, m)
                    if value is None:
                        per[name] = None
                    elif per[name] is not None:
                        per[name].extend(value.detach().double().cpu().tolist())
        stats = {name: summarise(v) for name, v in per.items()}
        out["methods"][spec.label] = {
            "method": spec.method,
            "params": _json_params(spec.params),
            "per_pair": per,
            "mean": {k: s["mean"] for k, s in stats.items()},
            "std": {k: s["std"] for k, s in stats.items()},
            "failed": {k: s["failed"] for k, s in stats.items()},
            "deformation_free": deformation_free,
            "seconds_per_pair": seconds / n_pairs,
        }
    return out


# ----------------------------------------------------------------------------------------------
# Rows and text
# ----------------------------------------------------------------------------------------------


def summary_rows(results: dict, paper=None, metrics: Sequence[str] | None = None) -> list[dict]:
    """One dict per method: ``label``, ``method``, ``<metric>`` (mean), ``<metric>_std``,
    ``<metric>_failed``, ``<metric>_paper`` (published value or None when ``paper`` is given),
    ``seconds_per_pair``.

    Parameters
    ----------
    results : dict from :func:`evaluate`
    paper : :class:`regkit.papers.PaperTable`, optional
        A method's published row is the one reproduced by the same registered method.
    metrics : names to include (default: all of the results')
    """
    metrics = list(metrics or results["metrics"])
    published = paper.values_by_method() if paper is not None else {}
    rows = []
    for label, r in results["methods"].items():
        row = {"label": label, "method": r["method"]}
        for name in metrics:
            row[name] = r["mean"][name]
            row[f"{name}_std"] = r["std"][name]
            row[f"{name}_failed"] = r.get("failed", {}).get(name, 0)
            if paper is not None:
                row[f"{name}_paper"] = published.get(r["method"], {}).get(name)
        row["seconds_per_pair"] = r["seconds_per_pair"]
        rows.append(row)
    return rows


def table_data(results: dict, metrics: Sequence[str] | None = None) -> dict:
    """The summaries of an :func:`evaluate` result as ``{label: {metric: {"mean", "std", "failed"}}}``,
    the input :func:`regkit.viz.result_table` takes for one source; metrics that do not apply to a
    method are left out.

    >>> res = {"metrics": ["ncc", "epe"], "methods": {"identity": {"mean": {"ncc": 0.5, "epe": None},
    ...        "std": {"ncc": 0.1, "epe": None}, "failed": {"ncc": 0, "epe": 0}}}}
    >>> table_data(res)
    {'identity': {'ncc': {'mean': 0.5, 'std': 0.1, 'failed': 0}}}
    """
    metrics = list(metrics or results["metrics"])
    return {
        label: {m: {"mean": r["mean"][m], "std": r["std"][m], "failed": r.get("failed", {}).get(m, 0)}
                for m in metrics if r["mean"].get(m) is not None}
        for label, r in results["methods"].items()
    }


def _fmt(v, digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}f}"


def format_table(results: dict, paper=None, metrics: Sequence[str] | None = None, digits: int | Mapping = 3,
                 std: bool = True, seconds: bool = False) -> str:
    """Plain-text table of means (± std), the paper's values beside ours when ``paper`` is given.

    ``digits`` is one number or ``{metric: digits}`` (default 3). A metric with failed pairs
    shows how many (``[2 failed]``). Deterministic for given results, so a chapter can check it
    with nbval.

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
        header.append(name)
        if paper is not None:
            header.append(f"{name} (paper)")
    if seconds:
        header.append("s/pair")
    lines = [header]
    for row in rows:
        cells = [row["label"]]
        for name in metrics:
            cell = _fmt(row[name], nd(name))
            if std and cell not in ("-", "inf", "-inf"):
                cell += f" ± {_fmt(row[f'{name}_std'], nd(name))}"
            if row[f"{name}_failed"]:
                cell += f" [{row[f'{name}_failed']} failed]"
            cells.append(cell)
            if paper is not None:
                cells.append(_fmt(row[f"{name}_paper"], nd(name)))
        if seconds:
            cells.append(f"{row['seconds_per_pair']:.2f}")
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)
