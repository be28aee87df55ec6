"""Write every chapter's Colab setup cell, and Colab's notebook metadata, from one place.

    .venv/bin/python scripts/colab_setup_cell.py            # rewrite book/*.ipynb where they differ
    .venv/bin/python scripts/colab_setup_cell.py --check    # exit 1 and name the chapters that differ

The setup cell is a chapter's first code cell. It installs regkit from the repository named once,
in ``_config.yml`` (``repository.url``), on Colab only, and does nothing elsewhere. On Colab it
also fetches a shallow copy of the repository and works in its ``book`` folder, so that a chapter
finds the committed results files (``../results/*.json``) as it does in a checkout. Its extras
(``reference,data``) replace nothing that Colab already has; ``tests/test_colab_env.py`` checks
that in a Colab-like environment. A chapter whose code calls ``ants_syn`` gets, commented out, the
line that adds ANTsPy (``regkit[ants]``), with the warning that it downgrades NumPy and SciPy.

The cell carries the tag ``remove-cell``: Jupyter Book leaves it out of the rendered page, the
notebook (and so Colab) keeps it. The chapters that train (``GPU_CHAPTERS``) get Colab's metadata
for a GPU runtime (``accelerator: GPU``, ``colab.gpuType``), so Colab opens them on a GPU.

Only the setup cell's source and tags and the notebook-level metadata are touched; outputs, ids
and every other cell stay as they are.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
CONFIG = ROOT / "_config.yml"

EXTRAS = "reference,data"
HIDE_TAG = "remove-cell"
GPU_CHAPTERS = ("07", "08", "09", "10")  # the chapters that train
GPU_TYPE = "T4"
ANTS_MARK = "ants_syn"  # a chapter whose code cells name this compares against ANTsPy


def repository_url(config: Path = CONFIG) -> str:
    """The repository URL, from ``repository.url`` in the book's ``_config.yml``."""
    with open(config, encoding="utf-8") as fh:
        url = (yaml.safe_load(fh).get("repository") or {}).get("url")
    if not isinstance(url, str) or not url.startswith("https://"):
        raise ValueError(f"{config.name}: repository.url must be an https URL, got {url!r}")
    return url.rstrip("/")


def requirement(url: str, extras: str = EXTRAS) -> str:
    """``regkit[extras] @ git+URL``: the requirement the setup cell installs."""
    return f"regkit[{extras}] @ git+{url}"


def setup_cell_source(url: str, ants: bool = False) -> str:
    """The setup cell's source; ``ants`` adds the commented-out ANTsPy line."""
    lines = [
        "# Colab setup: on Colab, install regkit from the repository; elsewhere, do nothing.",
        "# It keeps what Colab already has: its torch, torchvision, NumPy, SciPy and ipywidgets.",
        "import sys",
        'if "google.colab" in sys.modules:',
        f'    %pip install -q "{requirement(url)}"',
        "    # The chapters read the committed results files (results/*.json): work in a copy.",
        f"    !git clone -q --depth 1 {url} /content/{url.rsplit('/', 1)[-1]}",
        f"    %cd /content/{url.rsplit('/', 1)[-1]}/book",
    ]
    if ants:
        lines += [
            "    # This chapter compares against ANTsPy, which is left out above: antspyx pins",
            "    # numpy<2.4 and scipy<1.16, so installing it downgrades Colab's NumPy and SciPy",
            "    # (then restart the runtime: Runtime > Restart session). Without it, the ANTsPy",
            "    # comparison is skipped. To run it, uncomment the next line:",
            f'    # %pip install -q "{requirement(url, "ants")}"',
        ]
    return "\n".join(lines)


def first_code_cell(nb) -> nbformat.NotebookNode:
    for cell in nb.cells:
        if cell.cell_type == "code":
            return cell
    raise ValueError("the notebook has no code cell")


def uses_ants(nb) -> bool:
    """Whether a code cell other than the setup cell names ``ants_syn``."""
    setup = first_code_cell(nb)
    return any(c.cell_type == "code" and c is not setup and ANTS_MARK in c.source for c in nb.cells)


def wants_gpu(path: Path) -> bool:
    return path.name[:2] in GPU_CHAPTERS


def apply(nb, path: Path, url: str) -> bool:
    """Bring ``nb`` (read from ``path``) in line; return whether anything changed."""
    before = nbformat.writes(nb)
    cell = first_code_cell(nb)
    cell.source = setup_cell_source(url, ants=uses_ants(nb))
    tags = list(cell.metadata.get("tags", []))
    if HIDE_TAG not in tags:
        cell.metadata["tags"] = tags + [HIDE_TAG]
    if wants_gpu(path):
        nb.metadata["accelerator"] = "GPU"
        colab = dict(nb.metadata.get("colab", {}))
        colab.setdefault("provenance", [])
        colab["gpuType"] = GPU_TYPE
        nb.metadata["colab"] = colab
    else:
        nb.metadata.pop("accelerator", None)
        colab = dict(nb.metadata.get("colab", {}))
        colab.pop("gpuType", None)
        if colab:
            nb.metadata["colab"] = colab
        else:
            nb.metadata.pop("colab", None)
    return nbformat.writes(nb) != before


def chapters(book: Path = BOOK) -> list[Path]:
    return sorted(book.glob("[0-9][0-9]_*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a chapter differs")
    parser.add_argument("paths", nargs="*", type=Path, help="chapters (default: book/NN_*.ipynb)")
    args = parser.parse_args(argv)
    url = repository_url()
    differ = []
    for path in args.paths or chapters():
        nb = nbformat.read(path, as_version=4)
        if apply(nb, path, url):
            differ.append(path)
            if not args.check:
                nbformat.write(nb, path)
    verb = "differ" if args.check else "rewritten"
    print(f"{len(differ)} chapter(s) {verb}" + "".join(f"\n  {p.relative_to(ROOT)}" for p in differ))
    return 1 if (args.check and differ) else 0


if __name__ == "__main__":
    sys.exit(main())
