"""Measure the data sets against the papers' unregistered rows and write ``results/data_calibration.json``.

    python -m regkit.experiments.data_calibration [PATH]

The measurement is :func:`regkit.data.calibration.calibrate` (whole test splits, one thread);
this module only adds the provenance and writes the file, so that the data layer does not depend
on the experiments layer.
"""

from __future__ import annotations

import sys
import time

import torch

from ..data.calibration import calibrate
from .provenance import REPO_ROOT, collect, write_json

__all__ = ["main"]


def main(argv=None) -> None:
    """Measure and write ``results/data_calibration.json`` (or the path given as the only argument)."""
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else REPO_ROOT / "results" / "data_calibration.json"
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    result = calibrate()
    result["provenance"] = collect(table="data-calibration", profile="calibration (whole test splits)", seed=0,
                                   wall_time_s=time.perf_counter() - t0, device="cpu",
                                   command="python -m regkit.experiments.data_calibration")
    write_json(result, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
