"""The chapters' Colab setup cell: written from one place, and harmless in a Colab-like environment.

Fast checks (always run): every chapter's first code cell is the one ``scripts/colab_setup_cell.py``
writes (URL from ``_config.yml``, tag ``remove-cell``), the chapters that train ask Colab for a GPU,
and ``ants_syn`` without ANTsPy says how to install it.

The ``colab`` test (marked; a few minutes; needs the package registry) builds a throwaway virtual
environment shaped like Colab's: the newest NumPy, SciPy and Matplotlib the registry has for this
Python, ipykernel, Colab's ipywidgets 7.7.1, and a CUDA build of PyTorch with torchvision. PyTorch
is not installed a second time (several GB): the distributions of this interpreter's torch and
torchvision and everything they require are linked into a folder outside the environment that a
``.pth`` file puts on its path, so pip sees them as installed but never uninstalls them (they lie
outside the environment). Then, for every chapter, each ``%pip install`` line of its setup cell runs
with ``--dry-run --report`` against this checkout (the files git would commit, in place of the
GitHub URL): the test fails if pip would replace anything already installed, upgrade or downgrade.
The commented-out opt-in lines (ANTsPy in chapter 5) are dry-run too and only reported. Last,
chapter 1's line is installed for real and chapter 1 runs in that environment (nbclient,
``REGKIT_PROFILE=quick``). It cannot reproduce Colab's own image (its other preinstalled packages,
its Python version) nor its GPU. Deselect it with ``-m "not colab"``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"

_spec = importlib.util.spec_from_file_location("colab_setup_cell", ROOT / "scripts" / "colab_setup_cell.py")
setup_cell = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(setup_cell)

CHAPTERS = setup_cell.chapters(BOOK)
# What the Colab-like environment holds besides PyTorch: the newest releases for this Python,
# and the ipywidgets that Colab ships (7.x, imported when its kernel starts).
COLAB_PACKAGES = ["pip", "setuptools", "numpy", "scipy", "matplotlib", "ipykernel", "ipywidgets==7.7.1"]
TORCH = ["torch", "torchvision"]
PIP_LINE = re.compile(r"^\s*(#\s*)?%pip install (.+)$")


def pip_lines(nb) -> list[tuple[str, bool]]:
    """``(arguments, opt_in)`` of each ``%pip install`` line of the setup cell; opt-in lines are commented out."""
    source = setup_cell.first_code_cell(nb).source
    return [(m.group(2), bool(m.group(1))) for m in map(PIP_LINE.match, source.splitlines()) if m]


# ------------------------------------------------------------------------------------ fast checks


def test_setup_cells_are_written_from_one_place():
    url = setup_cell.repository_url()
    assert url == "https://github.com/regkit/registration-book"
    assert len(CHAPTERS) >= 10
    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        assert not setup_cell.apply(nb, path, url), f"{path.name}: run scripts/colab_setup_cell.py"
        cell = setup_cell.first_code_cell(nb)
        assert "remove-cell" in cell.metadata.get("tags", []), path.name
        lines = pip_lines(nb)
        required = [shlex.split(a)[-1] for a, opt in lines if not opt]
        assert required == [f"regkit[reference,data] @ git+{url}"], path.name
        # ANTsPy (which downgrades NumPy and SciPy) is never installed by default.
        assert all("ants" not in a for a, opt in lines if not opt), path.name


def test_ants_is_offered_only_where_a_chapter_calls_it():
    offered = {p.name[:2] for p in CHAPTERS if any(opt for _, opt in pip_lines(nbformat.read(p, as_version=4)))}
    assert offered == {"05"}


def test_chapters_that_train_ask_colab_for_a_gpu():
    for path in CHAPTERS:
        meta = nbformat.read(path, as_version=4).metadata
        if path.name[:2] in ("07", "08", "09", "10"):
            assert meta.get("accelerator") == "GPU" and meta["colab"]["gpuType"] == "T4", path.name
        else:
            assert "accelerator" not in meta, path.name


def test_repository_url_must_be_https(tmp_path):
    bad = tmp_path / "_config.yml"
    bad.write_text("repository:\n  url: github.com/x/y\n")
    with pytest.raises(ValueError, match="repository.url"):
        setup_cell.repository_url(bad)


def test_ants_syn_without_antspy_says_how_to_install_it(monkeypatch):
    import torch

    import regkit

    monkeypatch.setitem(sys.modules, "ants", None)  # import ants now raises ImportError
    x = torch.zeros(1, 1, 8, 8)
    with pytest.raises(ImportError, match=re.escape('pip install "regkit[ants]"')):
        regkit.register(x, x, method="ants_syn")


def test_default_extras_leave_antspy_out():
    with open(ROOT / "pyproject.toml", "rb") as fh:
        extras = tomllib.load(fh)["project"]["optional-dependencies"]
    assert [Requirement(r).name for r in extras["ants"]] == ["antspyx"]
    for name in ("reference", "data"):
        assert all(Requirement(r).name != "antspyx" for r in extras[name]), name


# ------------------------------------------------------------------------ the Colab-like environment


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", PIP_PROGRESS_BAR="off")
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, **kw)
    if proc.returncode:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def torch_closure(names=TORCH, skip=("numpy", "pip", "setuptools")) -> dict[str, metadata.Distribution]:
    """This interpreter's distributions of ``names`` and of everything they require (with extras)."""
    found: dict[str, tuple[metadata.Distribution, frozenset]] = {}
    todo = [(n, frozenset()) for n in names]
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        if key in skip or (key in found and extras <= found[key][1]):
            continue
        extras = extras | (found[key][1] if key in found else frozenset())
        dist = metadata.distribution(key)
        found[key] = (dist, extras)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""}):
                todo.append((req.name, frozenset(req.extras)))
    return {k: d for k, (d, _) in found.items()}


def link_torch(dest: Path) -> list[str]:
    """Link torch, torchvision and their requirements (top-level files and folders) into ``dest``."""
    dest.mkdir()
    dists = torch_closure()
    for dist in dists.values():
        for top in {f.parts[0] for f in dist.files or []}:
            if top in ("..", "__pycache__") or top.endswith(".pth") or (dest / top).exists():
                continue
            (dest / top).symlink_to(Path(dist.locate_file(top)).resolve())
    return sorted(f"{k}=={d.version}" for k, d in dists.items())


def source_copy(dest: Path) -> Path:
    """The files of this checkout that git would commit (tracked or not ignored), as a clone has them."""
    files = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT).stdout
    for rel in filter(None, files.split("\0")):
        src = ROOT / rel
        if src.is_file() and (rel.startswith("regkit/") or rel in ("pyproject.toml", "README.md")):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def installed(python: Path) -> dict[str, str]:
    out = _run([python, "-m", "pip", "list", "--format", "json"]).stdout
    return {canonicalize_name(d["name"]): d["version"] for d in json.loads(out)}


def replacements(report: dict, present: dict[str, str]) -> list[str]:
    """``name old -> new`` for each distribution in a pip report that is already installed."""
    out = []
    for item in report["install"]:
        name = canonicalize_name(item["metadata"]["name"])
        if name in present:
            out.append(f"{name} {present[name]} -> {item['metadata']['version']}")
    return out


def local_args(args: str, url: str, src: Path) -> list[str]:
    """A setup cell's ``%pip install`` arguments, pointing at ``src`` instead of the repository."""
    return [a.replace(f"git+{url}", src.as_uri()) for a in shlex.split(args)]


def scratch_dir() -> str | None:
    """``/dev/shm`` where it is a RAM disk with room that allows executables, else the default.

    The environment is about 20,000 files: on a disk mounted with online discard, removing them
    alone took 50-80 s here, against a second or two in RAM (the environment needs about 1 GB).
    """
    shm = Path("/dev/shm")
    try:
        usable = os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 4e9
        return str(shm) if usable and not os.statvfs(shm).f_flag & os.ST_NOEXEC else None
    except (OSError, AttributeError):
        return None


def du(path: Path) -> float:
    """Size in MB of the files under ``path`` (symbolic links not followed)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = Path(dirpath) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return total / 1e6


@pytest.fixture(scope="module")
def say(pytestconfig):
    """Print progress as it happens, past pytest's output capture: the test takes minutes."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")

    def _say(msg: str) -> None:
        with capture.global_and_fixture_disabled():
            print(f"[colab-like {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    return _say


@pytest.fixture(scope="module")
def colab_env(say):
    """A Colab-like virtual environment in a temporary folder, with every dry run already made."""
    with tempfile.TemporaryDirectory(prefix="regkit-colab-", dir=scratch_dir()) as tmp:
        say(f"building a Colab-like environment in {tmp}")
        root = Path(tmp)
        log = {"times": {}}
        t0 = time.perf_counter()
        _run([sys.executable, "-m", "venv", root / "env"])
        python = root / "env" / "bin" / "python"
        purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
        log["torch"] = link_torch(root / "torch")
        (Path(purelib) / "colab_like_torch.pth").write_text(f"{root / 'torch'}\n")
        _run([python, "-m", "pip", "install", "-q", "--no-compile", "--upgrade", *COLAB_PACKAGES])
        _run([python, "-m", "pip", "check"])  # the environment is consistent before regkit comes
        _run([python, "-c", "import torch, torchvision, numpy, scipy, matplotlib, ipywidgets"])
        log["base"] = installed(python)
        log["times"]["environment"] = time.perf_counter() - t0
        say(f"environment built in {log['times']['environment']:.0f} s: numpy {log['base']['numpy']}, "
             f"scipy {log['base']['scipy']}, matplotlib {log['base']['matplotlib']}, torch {log['base']['torch']}")

        t0 = time.perf_counter()
        src = source_copy(root / "src")
        url = setup_cell.repository_url()
        dry = []
        for line in sorted({(a, opt) for p in CHAPTERS for a, opt in pip_lines(nbformat.read(p, as_version=4))}):
            report_path = root / "report.json"
            args = local_args(line[0], url, src)
            _run([python, "-m", "pip", "install", "--dry-run", "--report", report_path, *args])
            report = json.loads(report_path.read_text())
            dry.append((line, replacements(report, log["base"]), sorted(canonicalize_name(i["metadata"]["name"]) for i in report["install"])))
        log["times"]["dry runs"] = time.perf_counter() - t0
        say(f"{len(dry)} install lines dry-run in {log['times']['dry runs']:.0f} s")
        yield {"root": root, "python": python, "src": src, "url": url, "dry": dry, "log": log}
        say("removing the environment")
    say("removed")


@pytest.mark.colab
def test_setup_cells_replace_nothing_in_a_colab_like_environment(colab_env, capsys):
    base = colab_env["log"]["base"]
    assert base["ipywidgets"] == "7.7.1" and "torch" in base and "torchvision" in base
    required = [(line, rep) for (line, opt), rep, _ in colab_env["dry"] if not opt]
    assert required, "no %pip install line found in the setup cells"
    bad = [f"{line}: {', '.join(rep)}" for line, rep in required if rep]
    assert not bad, "a setup cell's install line would replace what Colab already has:\n" + "\n".join(bad)
    with capsys.disabled():
        for (line, opt), rep, new in colab_env["dry"]:
            print(f"\n{'opt-in' if opt else 'default'} %pip install {line}: installs {len(new)}, "
                  f"replaces {', '.join(rep) or 'nothing'}")


@pytest.mark.colab
def test_chapter_1_runs_in_the_colab_like_environment(colab_env, monkeypatch, capsys, say):
    root, python, log = colab_env["root"], colab_env["python"], colab_env["log"]
    path = BOOK / "01_transforms_and_warps.ipynb"
    nb = nbformat.read(path, as_version=4)
    (args, _), = [line for line in pip_lines(nb) if not line[1]]
    t0 = time.perf_counter()
    _run([python, "-m", "pip", "install", "-q", "--no-compile", *local_args(args, colab_env["url"], colab_env["src"])])
    log["times"]["install"] = time.perf_counter() - t0
    say(f"chapter 1's line installed in {log['times']['install']:.0f} s; running chapter 1")
    after = installed(python)
    assert {k: after.get(k) for k in log["base"]} == log["base"], "the install replaced what was there"

    from nbclient import NotebookClient

    _run([python, "-m", "ipykernel", "install", "--prefix", root / "jupyter", "--name", "colab-like"])
    monkeypatch.setenv("JUPYTER_PATH", str(root / "jupyter" / "share" / "jupyter"))
    monkeypatch.setenv("REGKIT_PROFILE", "quick")
    for name in ("MPLBACKEND", "PYTHONPATH"):
        monkeypatch.delenv(name, raising=False)
    # One more cell, after the chapter's own: where regkit and NumPy came from.
    nb.cells.append(nbformat.v4.new_code_cell(
        "import numpy, regkit, torch; print(regkit.__file__, numpy.__version__, torch.__version__)"))
    t0 = time.perf_counter()
    NotebookClient(nb, kernel_name="colab-like", timeout=900, resources={"metadata": {"path": str(BOOK)}}).execute()
    log["times"]["chapter 1"] = time.perf_counter() - t0
    where, numpy_version, torch_version = nb.cells[-1].outputs[0]["text"].split()
    assert Path(where).is_relative_to(root / "env"), where
    assert numpy_version == log["base"]["numpy"] and torch_version.startswith(log["base"]["torch"].split("+")[0])
    size = du(root / "env")
    with capsys.disabled():
        times = ", ".join(f"{k} {v:.0f} s" for k, v in log["times"].items())
        print(f"\nColab-like environment: {times}; {size:.0f} MB in the environment (torch linked, not copied); "
              f"numpy {numpy_version}, scipy {after['scipy']}, matplotlib {after['matplotlib']}, torch {torch_version}")
