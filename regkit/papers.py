"""The source papers' published numbers, as plain data, so that nothing in regkit retypes them.

The bottom of the library: the tables, the data calibration and the chapters all read the
papers' numbers from here.

Each :class:`PaperTable` holds one table of one paper: its columns, its rows in the paper's order
(with the paper's row names), the values as printed (``None`` where the paper prints nothing),
standard deviations where the paper gives them, the group each row belongs to (e.g. traditional
or deep-learning methods) and the name of the regkit method that reproduces the row.

Convention
----------
- Values are copied from the plain-text papers in the repository's shared papers folder, as
  printed (same rounding). PSNR in dB, latency in ms, parameters in millions.
- ``method`` maps a row to a :func:`regkit.register` method name; ``None`` where regkit has no
  counterpart. The paper's "Unregistered" row is regkit's ``identity`` method.
- A row the paper does not report is simply absent: GPEReg-Net's Table 3 (HPatches-Reg-256) has
  no traditional rows, only the unregistered pair and the deep models.

Example
-------
>>> t = TABLES["gpereg-table1"]
>>> t.value("SyN", "NCC"), t.columns
(0.549, ('NCC', 'SSIM', 'PSNR'))
>>> [r.name for r in t.rows_in("traditional")]
['Unregistered', 'SIFT', 'Demons', 'Optical Flow', 'SyN']
>>> t.row_for_method("horn_schunck").name
'Optical Flow'
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PaperRow", "PaperTable", "TABLES", "get_table", "GPEREG_TABLE1", "GPEREG_TABLE2", "GPEREG_TABLE3",
           "AIR_TABLE1"]


@dataclass(frozen=True)
class PaperRow:
    """One row of a published table.

    Attributes
    ----------
    name : str
        The row's name as printed in the paper.
    values : tuple
        One value per column of the table (``None`` where the paper prints none).
    group : str
        The paper's grouping of rows (``"traditional"``, ``"deep"``, ...).
    method : str or None
        The :func:`regkit.register` method that reproduces the row.
    std : tuple or None
        Standard deviations per column, where the paper gives them.
    """

    name: str
    values: tuple
    group: str
    method: str | None = None
    std: tuple | None = None


@dataclass(frozen=True)
class PaperTable:
    """One published table: ``key``, the paper, its caption, columns and rows (paper order).

    ``metrics`` names each column the way regkit does (``"ncc"``, ``"psnr"``, ...), so that a
    published value and ours meet under one key.
    """

    key: str
    paper: str
    number: str
    caption: str
    columns: tuple
    metrics: tuple
    rows: tuple
    higher_is_better: dict = field(default_factory=dict)
    notes: str = ""

    def __post_init__(self):
        if len(self.metrics) != len(self.columns):
            raise ValueError(f"{self.key}: {len(self.metrics)} metric names for {len(self.columns)} columns")
        for row in self.rows:
            if len(row.values) != len(self.columns):
                raise ValueError(f"{self.key}: row {row.name!r} has {len(row.values)} values for {len(self.columns)} columns")
            if row.std is not None and len(row.std) != len(self.columns):
                raise ValueError(f"{self.key}: row {row.name!r} has {len(row.std)} stds for {len(self.columns)} columns")

    def row(self, name: str) -> PaperRow:
        """The row called ``name`` (as printed in the paper)."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"{self.key} has no row {name!r}; rows: {[r.name for r in self.rows]}")

    def row_for_method(self, method: str) -> PaperRow | None:
        """The row reproduced by the regkit method ``method``, or ``None`` if the paper has none."""
        for r in self.rows:
            if r.method == method:
                return r
        return None

    def rows_in(self, group: str) -> list[PaperRow]:
        """The rows of one group, in the paper's order."""
        return [r for r in self.rows if r.group == group]

    def values_by_method(self, std: bool = False) -> dict:
        """``{method: {metric: value}}`` (or ``(value, std)`` with ``std=True``) for every row
        that a regkit method reproduces, keyed by regkit's metric names (the table's ``metrics``).

        >>> GPEREG_TABLE1.values_by_method()["gpereg"]
        {'ncc': 0.851, 'ssim': 0.928, 'psnr': 33.47}
        >>> AIR_TABLE1.values_by_method(std=True)["dirnet"]["mse"]
        (0.033, 0.014)
        """
        out = {}
        for r in self.rows:
            if r.method is None:
                continue
            if std:
                sd = r.std or (None,) * len(self.columns)
                out[r.method] = {m: (v, s) for m, v, s in zip(self.metrics, r.values, sd)}
            else:
                out[r.method] = dict(zip(self.metrics, r.values))
        return out

    def value(self, row: str, column: str):
        """One published value (``None`` if the paper prints none)."""
        if column not in self.columns:
            raise KeyError(f"{self.key} has no column {column!r}; columns: {list(self.columns)}")
        return self.row(row).values[self.columns.index(column)]

    def as_dict(self) -> dict:
        """JSON-able form: ``{"key", "paper", "number", "caption", "columns", "rows": [{name, group, method, values}]}``."""
        return {
            "key": self.key, "paper": self.paper, "number": self.number, "caption": self.caption,
            "columns": list(self.columns), "metrics": list(self.metrics), "notes": self.notes,
            "rows": [
                {"name": r.name, "group": r.group, "method": r.method,
                 "values": dict(zip(self.columns, r.values)),
                 **({"std": dict(zip(self.columns, r.std))} if r.std is not None else {})}
                for r in self.rows
            ],
        }


_GPEREG = "Deformation-Free Cross-Domain Image Registration via Position-Encoded Temporal Attention (GPEReg-Net)"
_AIR = "Attention for Image Registration (AiR): an unsupervised Transformer approach"

GPEREG_TABLE1 = PaperTable(
    key="gpereg-table1",
    paper=_GPEREG,
    number="Table 1",
    caption="FIRE-Reg-256, 973 test patches: NCC, SSIM and PSNR (dB) between the registered output and the fixed image.",
    columns=("NCC", "SSIM", "PSNR"),
    metrics=("ncc", "ssim", "psnr"),
    higher_is_better={"NCC": True, "SSIM": True, "PSNR": True},
    rows=(
        PaperRow("Unregistered", (0.762, 0.494, 22.36), "traditional", "identity"),
        PaperRow("SIFT", (0.449, 0.463, 16.39), "traditional", "sift_ransac"),
        PaperRow("Demons", (0.672, 0.528, 17.45), "traditional", "demons"),
        PaperRow("Optical Flow", (0.552, 0.506, 16.77), "traditional", "horn_schunck"),
        PaperRow("SyN", (0.549, 0.521, 15.76), "traditional", "syn"),
        PaperRow("VoxelMorph", (0.820, 0.916, 25.42), "deep", "voxelmorph"),
        PaperRow("TransMorph", (0.832, 0.876, 25.51), "deep", "transmorph"),
        PaperRow("SAS-Net", (0.748, 0.855, 32.21), "deep", "sasnet"),
        PaperRow("GPEReg-Net (Ours)", (0.851, 0.928, 33.47), "deep", "gpereg"),
    ),
    notes="The paper says the traditional warping methods fall below the unregistered pair on this set.",
)

GPEREG_TABLE2 = PaperTable(
    key="gpereg-table2",
    paper=_GPEREG,
    number="Table 2",
    caption="Computational cost on an NVIDIA RTX 5090 GPU: parameters (M), latency (ms), throughput (FPS).",
    columns=("Params (M)", "Latency (ms)", "FPS"),
    metrics=("params_m", "latency_ms", "fps"),
    higher_is_better={"Params (M)": False, "Latency (ms)": False, "FPS": True},
    rows=(
        PaperRow("VoxelMorph", (0.10, 3.06, 327), "deep", "voxelmorph"),
        PaperRow("TransMorph", (0.17, 2.85, 351), "deep", "transmorph"),
        PaperRow("SAS-Net", (3.35, 27.21, 37), "deep", "sasnet"),
        PaperRow("GPEReg-Net (Ours)", (3.40, 14.52, 69), "deep", "gpereg"),
    ),
)

GPEREG_TABLE3 = PaperTable(
    key="gpereg-table3",
    paper=_GPEREG,
    number="Table 3",
    caption="HPatches-Reg-256, 500 test pairs: NCC, SSIM and PSNR (dB) between the registered output and the fixed image.",
    columns=("NCC", "SSIM", "PSNR"),
    metrics=("ncc", "ssim", "psnr"),
    higher_is_better={"NCC": True, "SSIM": True, "PSNR": True},
    rows=(
        PaperRow("Unregistered", (0.312, 0.241, 14.87), "traditional", "identity"),
        PaperRow("VoxelMorph", (0.448, 0.376, 18.53), "deep", "voxelmorph"),
        PaperRow("TransMorph", (0.471, 0.395, 19.24), "deep", "transmorph"),
        PaperRow("SAS-Net", (0.502, 0.421, 20.15), "deep", "sasnet"),
        PaperRow("GPEReg-Net (Ours)", (0.536, 0.450, 21.01), "deep", "gpereg"),
    ),
    notes="The paper reports no traditional method (SIFT, Demons, optical flow, SyN) on HPatches-Reg-256.",
)

AIR_TABLE1 = PaperTable(
    key="air-table1",
    paper=_AIR,
    number="Table 1",
    caption="MNIST: MSE, PSNR (dB) and smooth Dice between the warped and the fixed digit (mean ± std).",
    columns=("MSE", "PSNR", "Smooth DICE"),
    metrics=("mse", "psnr", "smooth_dice"),
    higher_is_better={"MSE": False, "PSNR": True, "Smooth DICE": True},
    rows=(
        PaperRow("Original Image", (0.0647, 12.941, 0.756), "baseline", "identity", std=(0.029, 2.218, 0.039)),
        PaperRow("DIRNets", (0.033, 16.966, 0.809), "deep", "dirnet", std=(0.014, 2.897, 0.033)),
        PaperRow("AiR-Single Attention", (0.038, 15.65, 0.797), "deep", "air", std=(0.015, 2.638, 0.032)),
        PaperRow("AiR-Parallel Attention", (0.027, 17.311, 0.827), "deep", "mapt_air", std=(0.015, 2.522, 0.034)),
    ),
    notes="The paper prints the table transposed (metrics as rows); here methods are rows.",
)

TABLES: dict[str, PaperTable] = {t.key: t for t in (GPEREG_TABLE1, GPEREG_TABLE2, GPEREG_TABLE3, AIR_TABLE1)}
"""Every published table by key."""


def get_table(key: str) -> PaperTable:
    """The published table ``key`` (one of :data:`TABLES`)."""
    if key not in TABLES:
        raise ValueError(f"key must be one of {sorted(TABLES)}, got {key!r}")
    return TABLES[key]
