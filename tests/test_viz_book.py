"""regkit.viz.glue: myst-nb's glue where it is installed, a plain display where it is not (Colab)."""

import sys

import pytest

from regkit import viz


def test_glue_without_myst_nb_shows_the_value(monkeypatch):
    shown = []
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # makes `from myst_nb import glue` fail
    monkeypatch.setattr("IPython.display.display", lambda v: shown.append(v))
    viz.glue("fig-a", "a table", display=True)
    viz.glue("n", 3, display=False)  # a number glued for the text only: nothing to show
    viz.glue("fig-b", ["an object"], display=False)  # a figure-like value is still shown
    assert shown == ["a table", ["an object"]]


def test_glue_with_myst_nb_stores_the_value(monkeypatch):
    calls = []

    class FakeMystNb:
        @staticmethod
        def glue(name, value, display=True):
            calls.append((name, value, display))

    monkeypatch.setitem(sys.modules, "myst_nb", FakeMystNb)
    viz.glue("x", 1.5, display=False)
    assert calls == [("x", 1.5, False)]
    with pytest.raises(ValueError, match="name"):
        viz.glue("", 1)


def test_glue_closes_a_figure_once_glued(monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setitem(sys.modules, "myst_nb", None)
    monkeypatch.setattr("IPython.display.display", lambda v: None)
    fig = plt.figure()
    viz.glue("fig", fig)
    assert not plt.fignum_exists(fig.number)
