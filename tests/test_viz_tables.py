"""Tests for regkit.viz.tables: the HTML parses and shows every value, the text form is exact."""

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from regkit import viz

SOURCES = ["paper", "full run", "CPU profile", "live quick run"]
METRICS = {"NCC": ".3f", "SSIM": ".3f", "PSNR": ".2f", "TRE": ".1f"}


def _four_by_four():
    g = np.random.default_rng(0)
    data = {}
    for k, s in enumerate(SOURCES):
        data[s] = {}
        for method in ["Unregistered", "SyN", "VoxelMorph-2", "GPEReg-Net"]:
            vals = {}
            for m in METRICS:
                mean = float(g.uniform(0.3, 0.9) * (30 if m == "PSNR" else 1) * (5 if m == "TRE" else 1))
                vals[m] = mean if s == "paper" else (mean, float(g.uniform(0.01, 0.1)))
            data[s][method] = vals
    return data


def _parse(html):
    root = ET.fromstring(html)  # well-formed markup, or this raises
    assert root.tag == "div" and root.get("class") == "regkit-table"
    return root


def _text(el):
    return "".join(el.itertext())


def test_html_parses_and_shows_every_value():
    data = _four_by_four()
    t = viz.result_table(data, METRICS, row_title="method", caption="Table 1 on FIRE-Reg-256")
    root = _parse(t._repr_html_())
    table = root.find("table")
    assert _text(table.find("caption")) == "Table 1 on FIRE-Reg-256"
    head = table.find("thead").findall("tr")
    assert [_text(th) for th in head[0]] == ["method", *SOURCES]
    assert [th.get("colspan") for th in head[0][1:]] == ["4"] * 4
    assert [_text(th) for th in head[1]] == list(METRICS) * 4
    body = table.find("tbody").findall("tr")
    assert [_text(tr[0]) for tr in body] == ["Unregistered", "SyN", "VoxelMorph-2", "GPEReg-Net"]
    for tr in body:
        method = _text(tr[0])
        cells = [_text(td) for td in tr[1:]]
        k = 0
        for s in SOURCES:
            for m, spec in METRICS.items():
                value = data[s][method][m]
                mean, std = value if isinstance(value, tuple) else (value, None)
                expected = format(mean, spec) + (f"± {format(std, spec)}" if std is not None else "")
                assert cells[k] == expected, (s, method, m)
                k += 1


def test_html_fits_the_column_mean_and_std_on_separate_lines():
    # Each cell's longest line is the "± 0.045" line: with ~16 columns of at most 7
    # characters at 0.8rem the table stays within the 772 px column.
    html = viz.result_table(_four_by_four(), METRICS).to_html()
    root = _parse(html)
    for td in root.iter("td"):
        main = td.text or ""
        lines = [main] + [_text(span) for span in td.findall("span")]
        assert max(len(x) for x in lines) <= 7
        assert all(span.get("class") in ("rk-sd", "rk-fail") for span in td.findall("span"))
    style = _text(root.find("style"))
    assert "font-size:0.8rem" in style and "white-space:normal" in style and "overflow-x:auto" in style


def test_text_form_is_exact():
    t = viz.result_table(
        {
            "paper": {"SyN": {"NCC": 0.549, "SSIM": 0.523}, "GPEReg-Net": {"NCC": 0.762, "SSIM": 0.71}},
            "quick run": {
                "SyN": {"NCC": (0.61234, 0.0412), "SSIM": {"mean": 0.5, "std": 0.1, "failed": 2}},
                "GPEReg-Net": {"NCC": float("nan"), "SSIM": "diverged"},
            },
        },
        {"NCC": ".3f", "SSIM": ".2f"},
        row_title="method",
        caption="Table 1 (quick profile)",
        notes="quick: a smoke run, not a reproduction",
    )
    expected = "\n".join([
        "Table 1 (quick profile)",
        "            paper       | quick run",
        "method        NCC  SSIM |           NCC                    SSIM",
        "---------------------------------------------------------------",
        "SyN         0.549  0.52 | 0.612 ± 0.041  0.50 ± 0.10 (2 failed)",
        "GPEReg-Net  0.762  0.71 |             –                diverged",
        "quick: a smoke run, not a reproduction",
    ])
    assert t.to_text() == expected
    assert repr(t) == str(t) == expected
    from IPython.lib.pretty import pretty

    assert pretty(t) == expected


def test_group_by_metric_puts_the_paper_beside_ours():
    data = {"paper": {"SyN": {"NCC": 0.5, "SSIM": 0.4}}, "ours": {"SyN": {"NCC": 0.6, "SSIM": 0.45}}}
    t = viz.result_table(data, ["NCC", "SSIM"], group="metric", labels={"NCC": "NCC ↑"})
    assert t.columns == [("paper", "NCC"), ("ours", "NCC"), ("paper", "SSIM"), ("ours", "SSIM")]
    head = _parse(t.to_html()).find("table/thead").findall("tr")
    assert [_text(th) for th in head[0]][1:] == ["NCC ↑", "SSIM"]
    assert [_text(th) for th in head[1]] == ["paper", "ours", "paper", "ours"]
    assert t.to_text().splitlines()[0].split() == ["NCC", "↑", "|", "SSIM"]


def test_empty_columns_are_dropped_and_row_groups_printed():
    data = {
        "paper": {"SIFT": {"NCC": 0.4}, "VoxelMorph-2": {"NCC": 0.6}},
        "ours": {"SIFT": {"NCC": 0.41, "TRE": 3.2}, "VoxelMorph-2": {"NCC": 0.58, "TRE": None}},
    }
    rows = {"traditional": ["SIFT"], "deep learning": ["VoxelMorph-2"]}
    t = viz.result_table(data, ["NCC", "TRE"], rows=rows)
    assert t.columns == [("paper", "NCC"), ("ours", "NCC"), ("ours", "TRE")]  # the paper has no TRE
    assert len(viz.result_table(data, ["NCC", "TRE"], drop_empty=False).columns) == 4
    lines = t.to_text().splitlines()
    assert lines == ["                paper | ours",
                     "                  NCC |   NCC    TRE",
                     "------------------------------------",
                     "traditional",
                     "  SIFT          0.400 | 0.410  3.200",
                     "deep learning",
                     "  VoxelMorph-2  0.600 | 0.580      –"]
    groups = [tr for tr in _parse(t.to_html()).iter("tr") if tr.get("class") == "rk-rowgroup"]
    assert [_text(tr) for tr in groups] == ["traditional", "deep learning"]
    assert groups[0][0].get("colspan") == "4"


def test_row_dicts_give_the_same_table():
    data = {"paper": {"SyN": {"NCC": 0.549}}, "ours": {"SyN": {"NCC": (0.6, 0.05)}, "SIFT": {"NCC": 0.4}}}
    records = [
        {"source": "paper", "row": "SyN", "NCC": 0.549},
        {"source": "ours", "row": "SyN", "NCC": (0.6, 0.05)},
        {"source": "ours", "row": "SIFT", "NCC": 0.4},
    ]
    assert viz.result_table(records).to_text() == viz.result_table(data).to_text()
    assert viz.result_table(records).to_html() == viz.result_table(data).to_html()


def test_numpy_and_torch_scalars_and_escaping():
    t = viz.result_table({"<ours>": {"a & b": {"NCC": (np.float32(0.5), torch.tensor(0.25))}}})
    assert "0.500 ± 0.250" in t.to_text()
    html = t.to_html()
    _parse(html)
    assert "&lt;ours&gt;" in html and "&amp;" in html and "<ours>" not in html


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"data": "table"}, TypeError, "data must be"),
        ({"data": {"p": {"r": {"NCC": math.inf}}}}, ValueError, re.escape("data['p']['r']['NCC'] must be finite")),
        ({"data": {"p": {"r": {"NCC": True}}}}, TypeError, re.escape("data['p']['r']['NCC'] must hold real numbers")),
        ({"data": {"p": {"r": {"NCC": (1, 2, 3)}}}}, ValueError, "got 3 items"),
        ({"data": {"p": {"r": {"NCC": {"avg": 1}}}}}, ValueError, "'mean'"),
        ({"data": {"p": {"r": {"NCC": {"mean": 1, "failed": -1}}}}}, ValueError, "failed"),
        ({"data": {"p": {"r": 0.5}}}, TypeError, re.escape("data['p']['r'] must be a mapping")),
        ({"data": {"p": {"r": {"NCC": 1}}}, "group": "row"}, ValueError, "group"),
        ({"data": {"p": {"r": {"NCC": 1}}}, "sources": ["q"]}, ValueError, "sources"),
        ({"data": {"p": {"r": {"NCC": 1}}}, "formats": {"NCC": "%3f"}}, ValueError, "formats"),
        ({"data": [{"row": "r", "NCC": 1}]}, ValueError, "source"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        viz.result_table(**kwargs)


def test_text_of_several_words_wraps_numbers_and_single_words_do_not():
    table = viz.result_table({"": {"air-table1": {"status": "pending", "reason": "no converged run yet", "n": 0.5}}},
                         ["status", "reason", "n"])
    page = table.to_html()
    wrapped = '<td style="text-align:left;white-space:normal;min-width:6em;max-width:16em">'
    assert wrapped + "no converged run yet</td>" in page
    assert '<td class="rk-g">pending</td>' in page and "<td>0.500</td>" in page
