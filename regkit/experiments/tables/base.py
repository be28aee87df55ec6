"""What every table shares: the run record, the data folder, convergence, and the results body.

Convention
----------
Every table module of :mod:`regkit.experiments.tables` has the same public names, so that a
reader who knows one knows them all:

- ``NAME`` and ``SUMMARY``;
- ``settings(profile) -> dict``: every setting of a run, as plain data;
- ``build_model(name, profile="quick", seed=0, **overrides)`` (where the table trains models);
- ``train(name, data, profile="quick", seed=0, device="cpu", ...) -> (model, history)``;
- ``run(profile="quick", seed=0, device="cpu", data_root=None, progress=False, ...) -> TableRun``;
- ``reproduce(profile, seed, device, data_root=None) -> dict``: the body of
  ``results/<NAME>.json`` (the CLI adds provenance).

Data folders: ``data_root`` (the CLI's ``--data-root``) or, when it is ``None``, the
environment variable ``REGKIT_DATA_ROOT`` (for the notebooks); ``None`` for both means the offline
data that ship with the packages.

Example
-------
>>> converged([{"val_loss": v} for v in (1.0, 0.5, 0.4, 0.399, 0.398, 0.398)])
True
>>> converged([{"val_loss": v} for v in (1.0, 0.8, 0.6, 0.4)])
False
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ...evaluation import summary_rows
from ...models.blocks import count_parameters

__all__ = ["TableRun", "data_root", "converged", "training_record", "rows_body", "export_weights", "DATA_ENV"]

DATA_ENV = "REGKIT_DATA_ROOT"
"""Environment variable naming the data folder when no ``data_root`` is passed."""


def data_root(root=None) -> Path | None:
    """The data folder: ``root`` if given, else ``$REGKIT_DATA_ROOT`` if set, else ``None`` (offline data)."""
    if root is None:
        root = os.environ.get(DATA_ENV) or None
    if root is None:
        return None
    path = Path(root).expanduser()
    if not path.is_dir():
        raise ValueError(f"data_root must be an existing folder, got {str(path)!r}")
    return path


def converged(history: list[dict], key: str = "val_loss", window: int = 3, rel_tol: float = 0.02) -> bool | None:
    """Has ``key`` stopped improving? ``None`` when the history does not record it.

    True when the best value of the last ``window`` epochs improves on the best value before
    them by less than ``rel_tol`` (relative): the curve has flattened.
    """
    values = [h[key] for h in history if h.get(key) is not None]
    if len(values) <= window:
        return None if not values else False
    before, last = min(values[:-window]), min(values[-window:])
    scale = max(abs(before), 1e-12)
    return bool((before - last) / scale < rel_tol)


def training_record(models: dict, histories: dict, times: dict) -> dict:
    """Per trained model: parameters, training time, epochs, steps, final losses, loss curves and
    whether the validation loss flattened (:func:`converged`)."""
    out = {}
    for name, model in models.items():
        hist = histories.get(name) or []
        out[name] = {
            "parameters": count_parameters(model) if model is not None else None,
            "train_time_s": times.get(name),
            "epochs": len(hist),
            "steps": hist[-1].get("step") if hist else None,
            "final_train_loss": hist[-1].get("loss") if hist else None,
            "final_val_loss": hist[-1].get("val_loss") if hist else None,
            "loss_curve": [h.get("loss") for h in hist],
            "val_loss_curve": [h.get("val_loss") for h in hist],
            "converged": converged(hist),
        }
    return out


def rows_body(results: dict, paper=None) -> dict:
    """Rows of an :func:`regkit.evaluation.evaluate` result for a results file: per label the
    method, means, stds, failure counts, seconds per pair (and the paper's value)."""
    rows = {}
    for row in summary_rows(results, paper):
        label = row.pop("label")
        rows[label] = row
    return rows


@dataclass
class TableRun:
    """What a table's ``run`` returns: its results, the trained models and how they were made."""

    name: str
    profile: str
    seed: int
    results: dict
    models: dict = field(default_factory=dict)
    histories: dict = field(default_factory=dict)
    train_time_s: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def training(self) -> dict:
        """:func:`training_record` of this run's models."""
        return training_record(self.models, self.histories, self.train_time_s)


def export_weights(model, name: str, *, made_by: dict, folder=None, max_bytes: int = 2_000_000) -> dict:
    """Ship a trained model as ``regkit.models.pretrained(name)``: write ``<name>.pt`` (the state
    dict, through :func:`regkit.checkpoint.save_checkpoint`) into the weights folder and record
    it in ``manifest.json`` with its SHA-256, class, constructor arguments and ``made_by``
    (command, git revision, profile, data, steps, validation loss).

    Parameters
    ----------
    model : nn.Module with a ``config`` dict of its constructor arguments
    name : str, e.g. ``"air-mnist"``
    made_by : dict, plain data
    folder : path, optional (default: the package's ``regkit/models/weights``)
    max_bytes : int
        Refuse files larger than this (shipped weights stay small).

    Returns
    -------
    dict, the manifest entry.
    """
    import json

    from ...checkpoint import save_checkpoint
    from ...files import atomic_write, sha256sum
    from ...models.zoo import WEIGHTS_DIR, reload_manifest
    from ..provenance import plain

    folder = Path(folder) if folder is not None else WEIGHTS_DIR
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise TypeError(f"model must carry a config dict of its constructor arguments, got {type(model).__name__}")
    path = folder / f"{name}.pt"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_checkpoint({"model": state}, path)
    size = path.stat().st_size
    if size > max_bytes:
        path.unlink()
        raise ValueError(f"the weights of {name!r} take {size} bytes, more than max_bytes={max_bytes}")
    entry = {
        "file": path.name,
        "sha256": sha256sum(path),
        "bytes": size,
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "model_config": plain(config),
        "made_by": plain(made_by),
    }
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest[name] = entry
    with atomic_write(manifest_path, "w", suffix=".json") as f:
        f.write(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")
    reload_manifest()
    return entry


def unconverged(record: dict) -> list[str]:
    """The trained models of a results record whose validation loss had not flattened."""
    return [name for name, t in (record.get("training") or {}).items() if t.get("converged") is False]


def verdict(checks: dict[str, bool], record: dict) -> dict:
    """A status from named criteria: ``reproduced`` if all hold, ``partly`` if some, ``not
    reproduced`` if none; ``not converged`` first if a trained model had not converged. The reason
    lists what held and what did not."""
    late = unconverged(record)
    if late:
        return {"status": "not converged", "reason": f"validation loss still falling for {', '.join(late)}"}
    held = [k for k, ok in checks.items() if ok]
    failed = [k for k, ok in checks.items() if not ok]
    status = "reproduced" if not failed else ("partly" if held else "not reproduced")
    parts = ([f"holds: {'; '.join(held)}"] if held else []) + ([f"fails: {'; '.join(failed)}"] if failed else [])
    return {"status": status, "reason": ". ".join(parts)}


MODEL_CACHE_ENV = "REGKIT_MODEL_CACHE"
"""Environment variable naming a folder where tables keep the models they train, so that a later
table of the same run (the controls after Table 1, the ablation's default row) reuses them."""


def cached_training(key: dict, build, train_fn):
    """Train with ``train_fn() -> (model, history)`` unless ``$REGKIT_MODEL_CACHE`` holds a model
    trained under the same ``key`` (plain data: table inputs, settings, seed, model name).

    ``build()`` makes an untrained model of the right architecture to load cached weights into.
    Returns ``(model, history, train_time_s, cached)``; with the variable unset nothing is cached.
    """
    import hashlib
    import json
    import time

    from ...checkpoint import load_checkpoint, save_checkpoint
    from ..provenance import plain

    folder = os.environ.get(MODEL_CACHE_ENV)
    digest = hashlib.sha256(json.dumps(plain(key), sort_keys=True).encode()).hexdigest()[:20]
    path = Path(folder) / f"{digest}.pt" if folder else None
    if path is not None and path.is_file():
        state = load_checkpoint(path)
        model = build()
        model.load_state_dict(state["model"])
        return model.eval(), state["history"], state["train_time_s"], True
    t0 = time.perf_counter()
    model, history = train_fn()
    elapsed = round(time.perf_counter() - t0, 2)
    if path is not None:
        save_checkpoint({"model": model.state_dict(), "history": plain(history), "train_time_s": elapsed,
                         "key": plain(key)}, path)
    return model, history, elapsed, False
