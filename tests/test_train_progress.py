"""Trainer progress: bars only where someone watches; none stored by nbclient/nbval execution."""

from __future__ import annotations

import sys
import types

import pytest
import torch

import regkit
from regkit.train import RegistrationObjective, TrainConfig, Trainer
from regkit.train.trainer import watched


class Tty:
    def __init__(self, tty: bool):
        self.tty, self.text = tty, []

    def isatty(self):
        return self.tty

    def write(self, s):
        self.text.append(s)

    def flush(self):
        pass


def fake_ipython(monkeypatch, kernel):
    module = types.ModuleType("IPython")
    module.get_ipython = lambda: types.SimpleNamespace(kernel=kernel) if kernel is not None else types.SimpleNamespace()
    monkeypatch.setitem(sys.modules, "IPython", module)


@pytest.mark.parametrize("allow_stdin", [True, False])
def test_in_a_kernel_bars_follow_whether_the_frontend_takes_input(monkeypatch, allow_stdin):
    fake_ipython(monkeypatch, types.SimpleNamespace(_allow_stdin=allow_stdin))
    monkeypatch.setattr(sys, "stderr", Tty(True))  # a kernel's streams are never the deciding fact
    assert watched() is allow_stdin


@pytest.mark.parametrize("tty", [True, False])
def test_outside_a_kernel_bars_follow_whether_stderr_is_a_terminal(monkeypatch, tty):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    monkeypatch.setattr(sys, "stderr", Tty(tty))
    assert watched() is tty
    fake_ipython(monkeypatch, None)  # terminal IPython: no kernel, same rule
    assert watched() is tty


def test_headless_execution_logs_lines_instead_of_bars(monkeypatch, capsys):
    fake_ipython(monkeypatch, types.SimpleNamespace(_allow_stdin=False))
    regkit.seed_everything(0)
    t = Trainer(torch.nn.Conv2d(2, 2, 1), lambda m, b: ((m.weight ** 2).sum(), {}),
                TrainConfig(epochs=2, batch_size=2, progress=None, metrics=("mse",)), device="cpu")
    assert not t._progress()
    t.fit({"moving": torch.zeros(2, 1, 4, 4), "fixed": torch.zeros(2, 1, 4, 4)})
    out = capsys.readouterr()
    assert "%|" not in out.err and "%|" not in out.out
    assert [line.split(" step")[0] for line in out.out.splitlines()] == ["epoch 1/2", "epoch 2/2"]


def test_explicit_progress_wins(monkeypatch):
    fake_ipython(monkeypatch, types.SimpleNamespace(_allow_stdin=False))
    t = Trainer(torch.nn.Conv2d(2, 2, 1), RegistrationObjective(), TrainConfig(progress=True), device="cpu")
    assert t._progress()


def test_a_real_kernel_headless_and_with_a_frontend(tmp_path):
    """nbclient (as the chapter script, jupyter-book and nbval run chapters) stores no bars; a
    client that accepts input, as a notebook frontend does, gets them."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_core.utils import run_sync
    code = (
        "import torch, regkit\n"
        "from regkit.train import TrainConfig, Trainer\n"
        "from regkit.train.trainer import watched\n"
        "t = Trainer(torch.nn.Conv2d(2, 2, 1), lambda m, b: ((m.weight ** 2).sum(), {}),\n"
        "            TrainConfig(epochs=1, batch_size=2, metrics=('mse',)), device='cpu')\n"
        "t.fit({'moving': torch.zeros(2, 1, 4, 4), 'fixed': torch.zeros(2, 1, 4, 4)})\n"
        "print('watched', watched())\n"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        text = "".join(o.get("text", "") for o in nb.cells[0].outputs)
        kinds = {o["output_type"] for o in nb.cells[0].outputs}
        assert "watched False" in text and "epoch 1/1" in text and "%|" not in text
        assert kinds == {"stream"}  # no widget or display outputs: nothing stale to store
        # A frontend's request: allow_stdin=True (what JupyterLab, Notebook, Colab and VS Code send).
        seen: list = []
        reply = run_sync(client.kc.execute_interactive)("from regkit.train.trainer import watched; print(watched())",
                                                        allow_stdin=True, output_hook=seen.append, timeout=60)
    assert reply["content"]["status"] == "ok"
    assert [m["content"].get("text", "").strip() for m in seen if m["msg_type"] == "stream"] == ["True"]

