r"""GPEReg-Net paper: Tables 1-3, an ablation of the GPE module, and the "does it register" test.

CLI (each writes ``results/<name>.json`` with provenance)::

    python -m regkit reproduce gpereg-table1 --profile quick|full   # FIRE-Reg-256, every row
    python -m regkit reproduce gpereg-table2 --profile quick|full   # parameters, latency, FPS
    python -m regkit reproduce gpereg-table3 --profile quick|full   # HPatches-Reg-256
    python -m regkit reproduce gpereg-ablation --profile quick|full # no GPE, other windows
    python -m regkit reproduce gpereg-does-it-register --profile quick|full

The chapters ``book/09_deformation_free_gpereg.ipynb`` and ``book/10_does_it_register.ipynb``
call the ``run_*`` functions for their live quick runs.

Protocol
--------
From the paper: FIRE-Reg-256 (8,018 / 978 / 973 patches) and HPatches-Reg-256 (8,000 / 500 /
500), 256 x 256; NCC, SSIM and PSNR between the output and the fixed image; Adam with weight
decay, cosine annealing over 30 epochs, batch 8, gradient clipping at 1.0, mixed precision; the
efficiency table at batch 1. Our choices (the paper states none of them or they were lost):

- learning rate 1e-3 and weight decay 1e-4 (Adam, L2) for every learned model; 30 epochs for
  every learned model (the paper's implementation paragraph; its Table 1 text says "20 epochs"
  for all methods, which we read as the baselines' protocol of an earlier draft);
- VoxelMorph and TransMorph trained with local NCC (window 9) plus 1.0 x diffusion, as their
  modules suggest; SAS-Net and GPEReg-Net with their own objectives
  (:mod:`regkit.models.sasnet`, :mod:`regkit.models.gpereg`);
- the classical rows run with each method's defaults;
- the data come from :func:`regkit.data.fire.fire_reg256` (``source="auto"``: the real FIRE when
  present, else the offline proxy) and :func:`regkit.data.hpatches.hpatches_reg256`; GPEReg-Net
  gets each FIRE patch's ``frame`` (its raster order within its image pair) and its image
  ``pair`` as the sequence id; HPatches pairs have no order, so there every pair is a sequence
  start;
- training images are read once and held in memory, resized to the run's size (about 4 GB for
  the full FIRE-Reg-256 training split at 256 x 256);
- latency: batch 1 at 256 x 256 in eval mode without gradients, after warm-up, the median of
  repeated timed calls (synchronised on GPUs), FPS = 1000 / latency.

The quick profile keeps every code path and shrinks everything else so that a chapter runs on two
CPU cores in about two minutes: 64 x 64 images, a few dozen pairs, ten training steps at a
learning rate of 5e-3, and GPEReg-Net and SAS-Net at a quarter of the paper's widths
(:data:`QUICK_MODELS`; Table 2 always counts and times the paper-size models). Its numbers show
that everything runs, not the paper's values: ten steps leave the learned models barely trained.

>>> s = settings("quick")
>>> s["size"], s["batch_size"], s["models"]["gpereg"]["scene_widths"]
(64, 8, (8, 16, 32, 64))
>>> settings("full")["epochs"], settings("full")["models"]["gpereg"]
(30, {})
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import metrics
from ..runtime import by_profile, seed_everything
from . import controls
from .cli import table
from .controls import MethodSpec, iter_batches, run_method

__all__ = [
    "TABLES", "PAPER", "QUICK_MODELS", "PAPER_MODELS", "LEARNED", "CLASSICAL", "ABLATION_VARIANTS",
    "settings", "build_model", "build_objective", "load_split", "train_model", "evaluate_specs",
    "format_results", "run_table1", "run_table2", "run_table3", "run_ablation", "run_register_test",
    "measure_latency", "figure_outputs", "figure_overlays", "TableRun",
]

TABLES = {"table1": "gpereg-table1", "table2": "gpereg-table2", "table3": "gpereg-table3",
          "ablation": "gpereg-ablation", "register": "gpereg-does-it-register"}

# The paper's numbers. They also live in regkit.experiments.paper_numbers (GPEREG_TABLE1..3),
# which this module reads when it can; this copy keeps the module working on its own.
PAPER = {
    "gpereg-table1": {  # NCC, SSIM, PSNR
        "identity": (0.762, 0.494, 22.36), "sift_ransac": (0.449, 0.463, 16.39), "demons": (0.672, 0.528, 17.45),
        "horn_schunck": (0.552, 0.506, 16.77), "syn": (0.549, 0.521, 15.76), "voxelmorph": (0.820, 0.916, 25.42),
        "transmorph": (0.832, 0.876, 25.51), "sasnet": (0.748, 0.855, 32.21), "gpereg": (0.851, 0.928, 33.47),
    },
    "gpereg-table2": {  # Params (M), Latency (ms), FPS on an RTX 5090
        "voxelmorph": (0.10, 3.06, 327), "transmorph": (0.17, 2.85, 351), "sasnet": (3.35, 27.21, 37),
        "gpereg": (3.40, 14.52, 69),
    },
    "gpereg-table3": {  # NCC, SSIM, PSNR
        "identity": (0.312, 0.241, 14.87), "voxelmorph": (0.448, 0.376, 18.53), "transmorph": (0.471, 0.395, 19.24),
        "sasnet": (0.502, 0.421, 20.15), "gpereg": (0.536, 0.450, 21.01),
    },
}

LABELS = {
    "identity": "Unregistered", "sift_ransac": "SIFT", "demons": "Demons", "horn_schunck": "Optical Flow",
    "syn": "SyN", "voxelmorph": "VoxelMorph", "transmorph": "TransMorph", "sasnet": "SAS-Net",
    "gpereg": "GPEReg-Net",
}
CLASSICAL = ("identity", "sift_ransac", "demons", "horn_schunck", "syn")
"""Table 1's traditional rows (``identity`` is the unregistered pair)."""
LEARNED = ("voxelmorph", "transmorph", "sasnet", "gpereg")
"""The learned rows of Tables 1 and 3, and the rows of Table 2."""
METRICS = ("ncc", "ssim", "psnr")

PAPER_MODELS = {"gpereg": {}, "sasnet": {}}
"""Constructor overrides of the paper-size models (none: the modules' defaults)."""
QUICK_MODELS = {
    "gpereg": {"scene_widths": (8, 16, 32, 64), "appearance_widths": (8, 16, 32, 64),
               "decoder_widths": (16, 8, 8), "scene_channels": 16, "heads": 2},
    "sasnet": {"scene_widths": (8, 16, 32, 64), "appearance_widths": (8, 16, 32, 64),
               "decoder_widths": (8, 8), "scene_channels": 16},
}
"""The quick profile's GPEReg-Net and SAS-Net: a quarter of the widths (code dimension 32 kept)."""

ABLATION_VARIANTS = {
    "GPEReg-Net (window 4)": {},
    "without GPE": {"gpe": False},
    "window 1": {"window": 1},
    "window 8": {"window": 8},
}
"""Rows of the ablation: constructor overrides of GPEReg-Net (the first is the default model)."""


def _paper(key: str) -> dict:
    """``{method: values}`` from :mod:`regkit.experiments.paper_numbers` when present, else :data:`PAPER`."""
    try:
        from .paper_numbers import TABLES as PN

        t = PN[key]
        return {r.method: tuple(r.values) for r in t.rows if r.method is not None}
    except Exception:  # the module is someone else's and may change; our copy is the fallback
        return PAPER[key]


def settings(profile: str) -> dict:
    """Every setting of a run in ``profile`` ('quick' or 'full'), as plain data."""
    pick = lambda quick, full: by_profile(quick=quick, full=full, which=profile)  # noqa: E731
    return {
        "profile": profile,
        "size": pick(64, 256),
        "fire_source": pick("proxy", "auto"),
        "fire_train": pick(36, None), "fire_test": pick(18, None),
        "hpatches_train": pick(32, None), "hpatches_test": pick(16, None),
        "epochs": pick(5, 30), "steps_per_epoch": pick(2, None), "batch_size": 8,
        "lr": pick(5e-3, 1e-3), "weight_decay": 1e-4, "grad_clip": 1.0, "amp": "auto",
        "baseline_objective": {"similarity": "lncc", "smoothness": "diffusion", "weight": 1.0, "window": 9},
        "models": {k: dict(v) for k, v in pick(QUICK_MODELS, PAPER_MODELS).items()},
        "latency": {"size": pick(64, 256), "warmup": pick(1, 20), "repeats": pick(3, 200)},
        "eval_batch": 8,
    }


# ----------------------------------------------------------------------------------------------
# Models, objectives, data, training
# ----------------------------------------------------------------------------------------------


def build_model(name: str, profile: str = "quick", seed: int = 0, **overrides) -> nn.Module:
    """A fresh, seeded model for ``name`` in :data:`LEARNED` (quick or paper size)."""
    from ..models import gpereg, sasnet, transmorph, voxelmorph

    seed_everything(seed)
    cfg = {**settings(profile)["models"].get(name, {}), **overrides}
    if name == "gpereg":
        return gpereg.GPERegNet(**cfg)
    if name == "sasnet":
        return sasnet.SASNet(**cfg)
    if name == "voxelmorph":
        return voxelmorph.VoxelMorph(**cfg)
    if name == "transmorph":
        return transmorph.transmorph_256(**cfg)
    raise ValueError(f"name must be one of {LEARNED}, got {name!r}")


def build_objective(name: str, profile: str = "quick") -> nn.Module:
    """The training objective of ``name``."""
    from ..models.gpereg import GPERegObjective
    from ..models.sasnet import SASNetObjective
    from ..train import RegistrationObjective

    if name == "gpereg":
        return GPERegObjective()
    if name == "sasnet":
        return SASNetObjective()
    if name in ("voxelmorph", "transmorph"):
        return RegistrationObjective(**settings(profile)["baseline_objective"])
    raise ValueError(f"name must be one of {LEARNED}, got {name!r}")


def load_split(dataset: str, split: str, profile: str = "quick", seed: int = 0):
    """The pair data set ``"fire"`` or ``"hpatches"``, split ``train``/``test``, sized for ``profile``."""
    s = settings(profile)
    if dataset == "fire":
        from ..data.fire import fire_reg256

        return fire_reg256(split, source=s["fire_source"], seed=seed, limit=s[f"fire_{split}"])
    if dataset == "hpatches":
        from ..data.hpatches import hpatches_reg256

        return hpatches_reg256(split, seed=seed, limit=s[f"hpatches_{split}"])
    raise ValueError(f"dataset must be 'fire' or 'hpatches', got {dataset!r}")


def _materialise(data, size, keys=("moving", "fixed", "frame", "pair")) -> dict:
    """The training tensors of a pair data set, resized to ``size`` (read once, in order).

    ``pair`` (which image pair a patch comes from) becomes the integer tensor ``sequence``
    (:func:`regkit.models.gpereg._sequences` maps names to integers).
    """
    from ..models.gpereg import _sequences

    chunks: dict[str, list] = {}
    for b in iter_batches(data, 64, size=size):
        for k in keys:
            v = b.get(k)
            if k == "pair" and v is not None:
                chunks.setdefault("sequence", []).append(_sequences(v, b["moving"].shape[0], "cpu"))
            elif isinstance(v, torch.Tensor):
                chunks.setdefault(k, []).append(v)
    return {k: torch.cat(v) for k, v in chunks.items()}


def train_model(name: str, train_tensors: dict, profile: str = "quick", seed: int = 0, device="cpu",
                progress: bool | None = False, **overrides):
    """Train ``name`` on ``train_tensors`` (``moving``, ``fixed``, optional ``frame`` and ``sequence``).

    Returns ``(model, history)``.
    """
    from ..train import PairDataset, TrainConfig, Trainer

    s = settings(profile)
    model = build_model(name, profile, seed, **overrides)
    data = {k: v for k, v in train_tensors.items()
            if k in ("moving", "fixed") or (k in ("frame", "sequence") and name == "gpereg")}
    cfg = TrainConfig(
        epochs=s["epochs"], batch_size=s["batch_size"], lr=s["lr"], weight_decay=s["weight_decay"],
        grad_clip=s["grad_clip"], amp=s["amp"], seed=seed, steps_per_epoch=s["steps_per_epoch"],
        progress=progress, log=False, metrics=("ssim",),
    )
    trainer = Trainer(model, build_objective(name, profile), cfg, device=device)
    history = trainer.fit(PairDataset(**data))
    return trainer.model.eval(), history


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------


def _summary(values: list[float]) -> tuple[float, float]:
    v = torch.tensor(values, dtype=torch.float64)
    v = v[~torch.isnan(v)]
    if v.numel() == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std()) if v.numel() > 1 else 0.0


@torch.no_grad()
def evaluate_specs(specs, data, *, size=None, batch_size: int = 8, device=None) -> dict:
    """NCC, SSIM and PSNR (output vs fixed, per pair) of every spec, in the format of
    :func:`regkit.experiments.evaluate.evaluate` (so its ``format_table`` prints it).

    Unlike that evaluator, batches never mix image pairs and a spec may take the batch's
    ``frame`` (GPEReg-Net's temporal context); models are reset (``reset_cache``) first.
    """
    batches = list(iter_batches(data, batch_size, size=size, device=device))
    n = sum(b["moving"].shape[0] for b in batches)
    out = {"n_pairs": n, "metrics": list(METRICS), "batch_size": batch_size, "mask": None, "methods": {}}
    for spec in specs:
        model = spec.params.get("model")
        if hasattr(model, "reset_cache"):
            model.reset_cache()
        per = {m: [] for m in METRICS}
        seconds = 0.0
        for b in batches:
            if b["moving"].is_cuda:
                torch.cuda.synchronize(b["moving"].device)
            t0 = time.perf_counter()
            res = run_method(spec, b)
            if b["moving"].is_cuda:
                torch.cuda.synchronize(b["moving"].device)
            seconds += time.perf_counter() - t0
            w, f = res.warped.float(), b["fixed"].float()
            per["ncc"] += metrics.ncc(w, f).cpu().tolist()
            per["ssim"] += metrics.ssim(w, f).cpu().tolist()
            per["psnr"] += metrics.psnr(w.clamp(0, 1), f).cpu().tolist()
        stats = {m: _summary(v) for m, v in per.items()}
        out["methods"][spec.label] = {
            "method": spec.method, "params": {k: v for k, v in spec.params.items() if k != "model"},
            "per_pair": per, "mean": {m: s[0] for m, s in stats.items()}, "std": {m: s[1] for m, s in stats.items()},
            "seconds_per_pair": seconds / max(n, 1),
        }
    return out


def format_results(results: dict, paper: dict | None = None, digits=None) -> str:
    """Means (± std) per method, the paper's value beside each when ``paper`` (``{method: (ncc, ssim, psnr)}``)."""
    digits = digits or {"ncc": 3, "ssim": 3, "psnr": 2}
    head = f"{'method':26s}" + "".join(f"{m.upper():>16s}{'paper':>8s}" for m in METRICS)
    lines = [head]
    for label, r in results["methods"].items():
        cells = []
        pv = (paper or {}).get(r["method"])
        for i, m in enumerate(METRICS):
            d = digits[m]
            mean, std = r["mean"][m], r["std"][m]
            cells.append((f"{mean:.{d}f} ± {std:.{d}f}" if math.isfinite(mean) else "-").rjust(16))
            cells.append((f"{pv[i]:.{d}f}" if pv is not None else "-").rjust(8))
        lines.append(f"{label:26s}" + "".join(cells))
    return "\n".join(lines)


@dataclass
class TableRun:
    """What a ``run_*`` function returns: results, trained models, histories and settings."""

    name: str
    profile: str
    seed: int
    results: dict
    models: dict = field(default_factory=dict)
    histories: dict = field(default_factory=dict)
    train_time_s: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def table(self) -> str:
        return format_results(self.results, _paper(self.name) if self.name in PAPER else None)


def _spec(name: str, model=None) -> MethodSpec:
    if model is None:
        return MethodSpec(LABELS.get(name, name), name)
    return MethodSpec(LABELS.get(name, name), name, {"model": model}, frame=(name == "gpereg"))


def _train_all(names, train_tensors, profile, seed, device, progress) -> tuple[dict, dict, dict]:
    models, histories, times = {}, {}, {}
    for name in names:
        t0 = time.perf_counter()
        models[name], histories[name] = train_model(name, train_tensors, profile, seed, device, progress)
        times[name] = round(time.perf_counter() - t0, 2)
    return models, histories, times


def _run_dataset_table(key: str, dataset: str, classical, profile: str, seed: int, device, progress) -> TableRun:
    s = settings(profile)
    size = (s["size"], s["size"])
    train_tensors = _materialise(load_split(dataset, "train", profile, seed), size)
    test = load_split(dataset, "test", profile, seed)
    models, histories, times = _train_all(LEARNED, train_tensors, profile, seed, device, progress)
    specs = [_spec(n) for n in classical] + [_spec(n, models[n]) for n in LEARNED]
    results = evaluate_specs(specs, test, size=size, batch_size=s["eval_batch"], device=device)
    return TableRun(key, profile, seed, results, models, histories, times, s)


def run_table1(profile: str = "quick", seed: int = 0, device="cpu", progress: bool | None = False) -> TableRun:
    """Table 1: every row on FIRE-Reg-256 (traditional methods, then the four learned models)."""
    return _run_dataset_table(TABLES["table1"], "fire", CLASSICAL, profile, seed, device, progress)


def run_table3(profile: str = "quick", seed: int = 0, device="cpu", progress: bool | None = False) -> TableRun:
    """Table 3: the unregistered pair and the four learned models on HPatches-Reg-256."""
    return _run_dataset_table(TABLES["table3"], "hpatches", ("identity",), profile, seed, device, progress)


def run_ablation(profile: str = "quick", seed: int = 0, device="cpu", progress: bool | None = False,
                 variants: dict | None = None, base: nn.Module | None = None) -> TableRun:
    """GPEReg-Net without its GPE module and with other windows, on FIRE-Reg-256 (same data, seed, steps).

    ``base`` is an already trained default GPEReg-Net (e.g. Table 1's) to reuse for the first row.
    """
    s = settings(profile)
    size = (s["size"], s["size"])
    variants = dict(ABLATION_VARIANTS if variants is None else variants)
    train_tensors = _materialise(load_split("fire", "train", profile, seed), size)
    test = load_split("fire", "test", profile, seed)
    models, histories, times = {}, {}, {}
    for i, (label, overrides) in enumerate(variants.items()):
        if i == 0 and base is not None and not overrides:
            models[label] = base
            continue
        t0 = time.perf_counter()
        models[label], histories[label] = train_model("gpereg", train_tensors, profile, seed, device, progress, **overrides)
        times[label] = round(time.perf_counter() - t0, 2)
    specs = [MethodSpec(label, "gpereg", {"model": m}, frame=True) for label, m in models.items()]
    results = evaluate_specs(specs, test, size=size, batch_size=s["eval_batch"], device=device)
    from ..models.blocks import count_parameters

    params = {label: count_parameters(m) for label, m in models.items()}
    return TableRun(TABLES["ablation"], profile, seed, results, models, histories, times, s,
                    {"variants": {k: dict(v) for k, v in variants.items()}, "parameters": params})


# ----------------------------------------------------------------------------------------------
# Table 2: efficiency
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def measure_latency(model: nn.Module, size: int = 256, warmup: int = 20, repeats: int = 200, device="cpu") -> dict:
    """Median latency (ms) of one ``model(moving, fixed)`` call at batch 1, eval mode, no gradients.

    Synchronises CUDA devices around each call. Returns ``{"latency_ms", "fps", "repeats"}``
    (``fps = 1000 / latency_ms``; the mean and spread of the repeats are kept too).
    """
    device = torch.device(device)
    model = model.to(device).eval()
    g = torch.Generator().manual_seed(0)
    m = torch.rand(1, 1, size, size, generator=g).to(device)
    f = torch.rand(1, 1, size, size, generator=g).to(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)  # noqa: E731
    for _ in range(warmup):
        model(m, f)
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(m, f)
        sync()
        times.append((time.perf_counter() - t0) * 1000.0)
    t = torch.tensor(times, dtype=torch.float64)
    med = float(t.median())
    return {"latency_ms": med, "fps": 1000.0 / med, "mean_ms": float(t.mean()),
            "min_ms": float(t.min()), "max_ms": float(t.max()), "repeats": repeats}


def run_table2(profile: str = "quick", seed: int = 0, device="cpu") -> TableRun:
    """Table 2: parameters (paper-size models, always), latency and FPS on ``device``."""
    from ..models.blocks import count_parameters
    from .provenance import device_name

    lat = settings(profile)["latency"]
    rows = {}
    for name in LEARNED:
        model = build_model(name, "full", seed)  # the paper-size model, whatever the profile
        timing = measure_latency(model, lat["size"], lat["warmup"], lat["repeats"], device)
        rows[name] = {"label": LABELS[name], "params": count_parameters(model),
                      "params_m": round(count_parameters(model) / 1e6, 3), **timing}
    results = {"device": device_name(device), "size": lat["size"], "batch": 1, "rows": rows}
    return TableRun(TABLES["table2"], profile, seed, results, settings=settings(profile))


def format_table2(results: dict, paper: dict | None = None) -> str:
    """Parameters (M), latency (ms) and FPS, ours on ``results["device"]`` beside the paper's (RTX 5090)."""
    paper = _paper(TABLES["table2"]) if paper is None else paper
    lines = [f"device: {results['device']}, {results['size']}x{results['size']}, batch 1",
             f"{'method':12s}{'Params (M)':>12s}{'paper':>8s}{'ms':>10s}{'paper':>8s}{'FPS':>9s}{'paper':>7s}"]
    for name, r in results["rows"].items():
        p = paper.get(name, (math.nan,) * 3)
        lines.append(f"{r['label']:12s}{r['params_m']:12.2f}{p[0]:8.2f}{r['latency_ms']:10.2f}{p[1]:8.2f}"
                     f"{r['fps']:9.1f}{p[2]:7.0f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Does it register? (the controls of regkit.experiments.controls on trained models)
# ----------------------------------------------------------------------------------------------


def run_register_test(profile: str = "quick", seed: int = 0, device="cpu", progress: bool | None = False,
                      models: dict | None = None, classical=("demons", "syn")) -> TableRun:
    """Controls, shuffled-fixed tests and structural scores on FIRE-Reg-256's test split.

    ``models`` (``{name: trained model}`` for names in :data:`LEARNED`) are trained here when
    not given. Rows: the three controls, the ``classical`` methods, the learned models.
    """
    s = settings(profile)
    size = (s["size"], s["size"])
    test = load_split("fire", "test", profile, seed)
    histories, times = {}, {}
    if models is None:
        train_tensors = _materialise(load_split("fire", "train", profile, seed), size)
        models, histories, times = _train_all(LEARNED, train_tensors, profile, seed, device, progress)
    specs = list(controls.CONTROLS) + [_spec(n) for n in classical] + [_spec(n, models[n]) for n in LEARNED if n in models]
    rows = controls.does_it_register(specs, test, batch_size=s["eval_batch"], size=size, seed=seed, device=device)
    return TableRun(TABLES["register"], profile, seed, {"rows": rows}, models, histories, times, s)


REGISTER_COLUMNS = (
    ("ssim", "SSIM"), ("psnr", "PSNR"), ("shuffled_ssim", "SSIM shuf."), ("geometry_shuffled_ssim", "SSIM geo-shuf."),
    ("dice_vessels", "vessel Dice"), ("dice_vessels_gt", "Dice vs true"), ("tre", "TRE px"),
)


def format_register(rows: list[dict], columns=REGISTER_COLUMNS) -> str:
    """The "does it register" table as text (``-`` where a score does not apply)."""
    lines = [f"{'':34s}" + "".join(f"{h:>15s}" for _, h in columns)]
    for r in rows:
        cells = []
        for k, _ in columns:
            v = r.get(k)
            cells.append(("-" if v is None else ("inf" if math.isinf(v) else f"{v:.{2 if k in ('psnr', 'tre') else 3}f}")).rjust(15))
        lines.append(f"{r['label'][:34]:34s}" + "".join(cells))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Figures 2 and 3
# ----------------------------------------------------------------------------------------------


def _outputs(specs, batch) -> dict:
    outs = {}
    for spec in specs:
        model = spec.params.get("model")
        if hasattr(model, "reset_cache"):
            model.reset_cache()
        outs[spec.label] = run_method(spec, batch).warped.float().cpu()
    return outs


def figure_outputs(specs, batch, index: int = 0):
    """Figure 2 analogue: moving, fixed, and each spec's output for pair ``index``, titled with its SSIM."""
    import matplotlib.pyplot as plt

    from .. import viz

    outs = _outputs(specs, batch)
    fixed = batch["fixed"][index : index + 1].float().cpu()
    panels = [batch["moving"][index, 0].cpu(), fixed[0, 0]]
    titles = [f"moving\nSSIM {float(metrics.ssim(batch['moving'][index:index + 1].float().cpu(), fixed)):.3f}", "fixed"]
    for label, out in outs.items():
        panels.append(out[index, 0])
        titles.append(f"{label}\nSSIM {float(metrics.ssim(out[index:index + 1], fixed)):.3f}")
    ncols = len(panels)
    fig, axes = plt.subplots(1, ncols, figsize=(viz.PANEL_SIZE * 0.8 * ncols, viz.PANEL_SIZE), dpi=viz.DPI)
    for ax, img, t in zip(axes, panels, titles):
        ax.imshow(img.numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(t, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


def figure_overlays(specs, batch, index: int = 0):
    """Figure 3 analogue: red-green overlays of each output (red) on the fixed image (green)."""
    import matplotlib.pyplot as plt

    from .. import viz

    outs = _outputs(specs, batch)
    fixed = batch["fixed"][index : index + 1].float().cpu()
    items = [("moving", batch["moving"][index : index + 1].float().cpu()), *((k, v[index : index + 1]) for k, v in outs.items())]
    fig, axes = plt.subplots(1, len(items), figsize=(viz.PANEL_SIZE * 0.8 * len(items), viz.PANEL_SIZE), dpi=viz.DPI)
    for ax, (label, img) in zip(axes, items):
        viz.overlay(img, fixed, ax=ax, title=label)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# CLI entry points
# ----------------------------------------------------------------------------------------------


def _note(profile: str) -> str:
    return ("quick profile: every code path, 64 px, tiny data and quarter-width GPEReg-Net / SAS-Net trained for "
            "ten steps on a CPU; not comparable with the paper" if profile == "quick"
            else "full profile: the protocol of regkit.experiments.gpereg_tables")


def _body(run: TableRun, description: str) -> dict:
    from ..models.blocks import count_parameters

    res = run.results
    return {
        "description": description,
        "rows": {label: {"method": r["method"], "mean": r["mean"], "std": r["std"],
                         "seconds_per_pair": r["seconds_per_pair"]} for label, r in res["methods"].items()},
        "n_pairs": res["n_pairs"],
        "paper": {m: dict(zip(("ncc", "ssim", "psnr"), v)) for m, v in _paper(run.name).items()} if run.name in PAPER else None,
        "settings": run.settings,
        "parameters": {n: count_parameters(m) for n, m in run.models.items()},
        "train_time_s": run.train_time_s,
        "final_train_loss": {n: h[-1]["loss"] for n, h in run.histories.items() if h},
        "note": _note(run.profile),
    }


@table(TABLES["table1"], summary="GPEReg-Net paper, Table 1: NCC / SSIM / PSNR on FIRE-Reg-256, every row")
def reproduce_table1(profile: str, seed: int, device) -> dict:
    return _body(run_table1(profile, seed, device), "FIRE-Reg-256 test patches: output vs fixed image")


@table(TABLES["table3"], summary="GPEReg-Net paper, Table 3: NCC / SSIM / PSNR on HPatches-Reg-256")
def reproduce_table3(profile: str, seed: int, device) -> dict:
    return _body(run_table3(profile, seed, device), "HPatches-Reg-256 test pairs: output vs fixed image")


@table(TABLES["ablation"], summary="GPEReg-Net without GPE and with other windows, on FIRE-Reg-256")
def reproduce_ablation(profile: str, seed: int, device) -> dict:
    run = run_ablation(profile, seed, device)
    body = _body(run, "Ablation of the GPE module on FIRE-Reg-256 test patches")
    body["parameters"] = run.extra["parameters"]
    body["variants"] = run.extra["variants"]
    return body


@table(TABLES["table2"], summary="GPEReg-Net paper, Table 2: parameters, latency and FPS on this device")
def reproduce_table2(profile: str, seed: int, device) -> dict:
    run = run_table2(profile, seed, device)
    return {
        "description": "Parameters of the paper-size models; latency (median ms) and FPS at batch 1 on the device named",
        **run.results,
        "paper": {m: dict(zip(("params_m", "latency_ms", "fps"), v)) for m, v in _paper(run.name).items()},
        "paper_device": "NVIDIA RTX 5090",
        "settings": run.settings,
        "note": ("quick profile: 64 px inputs and three repeats on a CPU; the parameter counts are the paper-size "
                 "models'" if profile == "quick" else "full profile: 256 px, 20 warm-up and 200 timed calls"),
    }


@table(TABLES["register"], summary="Does it register? Controls, shuffled-fixed and structural tests on FIRE-Reg-256")
def reproduce_register(profile: str, seed: int, device) -> dict:
    run = run_register_test(profile, seed, device)
    from ..models.blocks import count_parameters

    return {
        "description": "Scores vs the true fixed image with true, shuffled and geometry-shuffled fixed images; "
                       "vessel-mask Dice; TRE for methods with a displacement",
        "rows": run.results["rows"],
        "settings": run.settings,
        "parameters": {n: count_parameters(m) for n, m in run.models.items()},
        "note": _note(profile),
    }
