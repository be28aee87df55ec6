"""Execute chapters in the quick profile and save them with their outputs.

    .venv/bin/python scripts/execute_chapters.py book/03_features_ransac.ipynb [...]

Each chapter runs in its own folder (as nbval runs it), on the ``python3`` kernel, with
``REGKIT_PROFILE=quick`` and without ``MPLBACKEND`` (which would break inline figures). Widget
state and widget views are not stored: a saved chapter (in the built book, or opened without a
kernel) shows the static sliders, and a live kernel makes the widgets anew.
"""

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def drop_widgets(nb) -> None:
    """Remove saved widget state and widget views (their static HTML fallback stays), and timings."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for out in cell.get("outputs", []):
            out.get("data", {}).pop(WIDGET_VIEW, None)


def execute(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    client = NotebookClient(
        nb, timeout=1800, kernel_name="python3", store_widget_state=False, record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    drop_widgets(nb)
    nbformat.write(nb, path)
    return time.perf_counter() - start


if __name__ == "__main__":
    os.environ["REGKIT_PROFILE"] = "quick"
    os.environ.pop("MPLBACKEND", None)
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for arg in sys.argv[1:]:
        seconds = execute(Path(arg))
        size = Path(arg).stat().st_size / 1e6
        print(f"{arg}: {seconds:.0f} s, {size:.2f} MB")
