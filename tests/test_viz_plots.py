"""Tests for regkit.viz plots: images, fields, layout (sizes, fonts, titles) and the method figures."""

import colorsys
import re

import matplotlib

matplotlib.use("Agg")  # in the test module only: MPLBACKEND=Agg would break kernel figure outputs

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from regkit import viz  # noqa: E402
from regkit.viz import inputs, layout  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _img(n=1, c=1, h=24, w=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, h, w, generator=g)


def _disp(n=1, h=24, w=20, amp=2.0, seed=1):
    g = torch.Generator().manual_seed(seed)
    return amp * torch.randn(n, 2, h, w, generator=g)


# --------------------------------------------------------------------------- the package


def test_public_names_chapters_call_are_reexported():
    for name in ["checkerboard", "compare_grid", "deformed_grid", "difference", "draw_matches", "flow",
                 "jacobian_map", "overlay", "quiver", "show_pair", "slider", "PANEL_SIZE", "DPI",
                 "flow_to_rgb", "Slider", "figure_outputs", "figure_overlays", "result_table", "ResultTable"]:
        assert hasattr(viz, name), name
        assert name in viz.__all__


def test_modules_stay_small():
    from pathlib import Path

    sizes = {p.name: len(p.read_text().splitlines()) for p in Path(viz.__file__).parent.glob("*.py")}
    assert max(sizes.values()) <= 600, sizes


# --------------------------------------------------------------------------- plots


@pytest.mark.parametrize(
    "shape", [(2, 1, 24, 20), (1, 24, 20), (24, 20), (1, 3, 24, 20), (3, 24, 20)]
)
def test_image_functions_accept_tensor_and_numpy_shapes(shape):
    a = torch.rand(shape)
    for x in (a, a.numpy()):
        assert isinstance(viz.overlay(x, x), Axes)
        assert isinstance(viz.checkerboard(x, x, tiles=4), Axes)
        assert isinstance(viz.difference(x, x), Axes)
        assert isinstance(viz.show_pair(x, x), Figure)
        assert isinstance(viz.show_pair(x, x, x), Figure)


def test_functions_draw_into_given_axes():
    x, d = _img(), _disp()
    fig, axes = plt.subplots(2, 4)
    fns = [
        lambda ax: viz.overlay(x, x, ax=ax),
        lambda ax: viz.checkerboard(x, x, ax=ax),
        lambda ax: viz.difference(x, x * 0.5, ax=ax),
        lambda ax: viz.deformed_grid(d, step=4, image=x, ax=ax),
        lambda ax: viz.flow(d, ax=ax),
        lambda ax: viz.quiver(d, step=4, image=x, ax=ax),
        lambda ax: viz.jacobian_map(d, ax=ax),
    ]
    for fn, ax in zip(fns, axes.ravel()):
        assert fn(ax) is ax
    assert len(plt.get_fignums()) == 1


def test_field_functions_return_axes_on_new_figures():
    x, d = _img(), _disp()
    for out in (
        viz.deformed_grid(d, step=4),
        viz.deformed_grid(d[0], step=4, image=x),
        viz.flow(d),
        viz.flow(d.numpy()[0], legend=False, max_norm=3.0),
        viz.quiver(d, step=4),
        viz.jacobian_map(d),
    ):
        assert isinstance(out, Axes)


def test_checkerboard_top_left_tile_from_a():
    ax = viz.checkerboard(np.zeros((8, 8)), np.ones((8, 8)), tiles=2)
    arr = ax.get_images()[0].get_array()
    assert arr[0, 0] == 0 and arr[0, 7] == 1 and arr[7, 0] == 1 and arr[7, 7] == 0


def test_overlay_identical_images_are_yellow_or_black():
    x = _img()
    rgb = viz.overlay(x, x).get_images()[0].get_array()
    assert np.allclose(rgb[..., 0], rgb[..., 1]) and np.allclose(rgb[..., 2], 0)


def test_difference_is_symmetric_about_zero():
    ax = viz.difference(np.full((4, 4), 0.75), np.full((4, 4), 0.25))
    im = ax.get_images()[0]
    assert im.norm.vmin == -im.norm.vmax == -0.5


def test_deformed_grid_of_zero_field_is_regular():
    ax = viz.deformed_grid(torch.zeros(1, 2, 17, 17), step=8)
    lines = ax.get_lines()
    assert len(lines) == 6  # rows 0, 8, 16 and columns 0, 8, 16
    for line in lines:
        x, y = line.get_data()
        assert np.all(x == x[0]) or np.all(y == y[0])


def test_deformed_grid_moves_lines_by_displacement():
    d = torch.zeros(1, 2, 9, 9)
    d[:, 0] = 1.5  # every point samples 1.5 px to the right
    ax = viz.deformed_grid(d, step=8)
    x, y = ax.get_lines()[0].get_data()  # row 0
    np.testing.assert_allclose(x, np.arange(9) + 1.5)
    np.testing.assert_allclose(y, 0.0)


def test_jacobian_map_reports_folding_fraction():
    d = torch.zeros(1, 2, 16, 16)
    assert "folding 0.00%" in viz.jacobian_map(d).get_title()
    d[:, 0] = -2.0 * torch.arange(16.0)  # x -> x - 2x = -x: det J = -1 everywhere
    assert "folding 100.00%" in viz.jacobian_map(d).get_title()


def test_jacobian_map_colormap_centred_at_one():
    im = viz.jacobian_map(_disp()).get_images()[0]
    assert im.norm.vcenter == 1.0


def test_compare_grid_mixes_images_and_callables():
    x, d = _img(), _disp()
    fig = viz.compare_grid(
        [x, lambda ax: viz.flow(d, ax=ax), x[0, 0].numpy()], ["a", "flow", "c"], ncols=2
    )
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["a", "flow"]


def test_draw_matches_colours_inliers_and_outliers():
    pts = torch.tensor([[3.0, 4.0], [10.0, 2.0], [5.0, 5.0]])
    ax = viz.draw_matches(_img(), _img(seed=2), pts, pts + 1.0, torch.tensor([True, False, True]))
    colours = sorted(line.get_color() for line in ax.lines)
    assert colours == ["tab:green", "tab:green", "tab:red"]
    x, y = ax.lines[0].get_data()
    assert x[1] - x[0] == pytest.approx(20 + 1.0)  # moving drawn W = 20 px to the right


# --------------------------------------------------------------------------- sizes, fonts, titles


def _new_figures():
    x, d = _img(h=64, w=64), _disp(h=64, w=64)
    yield "overlay", viz.overlay(x, x).figure
    yield "checkerboard", viz.checkerboard(x, x).figure
    yield "difference", viz.difference(x, x).figure
    yield "show_pair", viz.show_pair(x, x, x)
    yield "compare_grid 9", viz.compare_grid([x] * 9, [f"panel {k}" for k in range(9)], ncols=9)
    yield "draw_matches", viz.draw_matches(x, x, torch.ones(2, 2), torch.ones(2, 2)).figure
    yield "deformed_grid", viz.deformed_grid(d).figure
    yield "flow", viz.flow(d).figure
    yield "quiver", viz.quiver(d).figure
    yield "jacobian_map", viz.jacobian_map(d).figure
    yield "figure_outputs", viz.figure_outputs({f"m{k}": x for k in range(8)}, x, x)
    yield "figure_overlays", viz.figure_overlays({f"m{k}": x for k in range(8)}, x, x)


def test_every_figure_is_100_dpi_and_fits_the_text_column():
    # The book's text column is 772 px at a 1400 px window: a figure of at most 7.5 in at
    # 100 dpi (plus the tight box's margin) is shown at its own size, so a 10 pt title is
    # 10 / 72 * 100 = 13.9 px on screen.
    for name, fig in _new_figures():
        assert fig.dpi >= 100, name
        assert fig.get_figwidth() <= viz.TEXT_WIDTH + 1e-9, name
        assert fig.get_figwidth() * fig.dpi <= 750 + 1e-6, name
        for ax in fig.axes:
            if ax.get_title():
                assert ax.title.get_fontsize() >= 10, name


def test_titles_fit_their_panels():
    # Long titles wrap to their panel's width and overlap no image; the notebook saves figures
    # with a tight bounding box, so the figure's edge itself clips nothing.
    long = "fixed image (moving under a known affine and a contrast change)"
    x = _img(h=64, w=64)
    figs = [viz.show_pair(x, x, titles=["moving", long]),
            viz.compare_grid([x] * 6, [long] * 6, ncols=3),
            viz.figure_outputs({**{f"m{k}": x for k in range(6)}, "GPEReg-Net (ours, full width)": x}, x, x,
                               scores={"moving": 0.5})]
    for fig in figs:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        boxes = [ax.get_window_extent(renderer) for ax in fig.axes]
        for ax, box in zip(fig.axes, boxes):
            if not ax.get_title():
                continue
            title = ax.title.get_window_extent(renderer)
            spec = ax.get_subplotspec()
            width = fig.bbox.width / spec.get_gridspec().ncols  # the panel's column of the figure
            assert spec.colspan.start * width - 1 <= title.x0 and title.x1 <= spec.colspan.stop * width + 1
            assert title.y0 >= box.y1 - 1  # above its own image
            assert not any(title.overlaps(other) for other in boxes if other is not box)
        assert "\n" in [ax.get_title() for ax in fig.axes if long[:10] in ax.get_title() or "GPE" in ax.get_title()][0]


def test_wrapped_titles_make_the_figure_taller():
    x = _img(h=64, w=64)
    short = viz.compare_grid([x] * 4, ["a"] * 4).get_figheight()
    tall = viz.compare_grid([x] * 4, ["a title that needs two lines here"] * 4).get_figheight()
    assert tall - short == pytest.approx(1.25 * 10 / 72, abs=1e-6)  # one more line of 10 pt


def test_grid_shape_and_new_figure():
    assert layout.grid_shape(1) == (1, 1)
    assert layout.grid_shape(5, max_cols=5) == (1, 5)
    assert layout.grid_shape(7, max_cols=5) == (2, 4)
    fig, axes = layout.new_figure(2, 3, size=2.0)
    assert axes.shape == (2, 3) and fig.get_size_inches().tolist() == [6.0, 4.0]
    fig, axes = layout.new_figure(1, 10)  # 24 in asked: scaled to the column, square panels kept
    assert fig.get_size_inches().tolist() == pytest.approx([7.5, 0.75])


# --------------------------------------------------------------------------- method figures


def _batch(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 16, 16, generator=g)


def test_figure_outputs_panels_titles_and_rows():
    moving, fixed = _batch(seed=1), _batch(seed=2)
    outs = {f"method {k}": _batch(seed=10 + k) for k in range(8)}
    scores = {"moving": 0.25, "method 0": 0.5, "method 3": "n/a"}
    fig = viz.figure_outputs(outs, fixed, moving, index=2, scores=scores)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:4] == ["moving\nSSIM 0.250", "fixed", "method 0\nSSIM 0.500", "method 1"]
    assert titles[5] == "method 3\nSSIM n/a"
    # 10 panels wrap into two rows of five.
    assert [ax.get_subplotspec().rowspan.start for ax in fig.axes] == [0] * 5 + [1] * 5
    # Item 2 of each batch is shown.
    np.testing.assert_allclose(fig.axes[0].get_images()[0].get_array(), moving[2, 0].double().numpy())
    np.testing.assert_allclose(fig.axes[2].get_images()[0].get_array(), outs["method 0"][2, 0].double().numpy())


def test_figure_overlays_are_output_red_on_fixed_green():
    moving, fixed = _batch(seed=1), _batch(seed=2)
    outs = {"a": _batch(seed=3), "b": _batch(seed=4)}
    fig = viz.figure_overlays(outs, fixed, moving, index=1, scores={"a": 0.9}, score_name="NCC")
    assert [ax.get_title() for ax in fig.axes] == ["moving", "a\nNCC 0.900", "b"]
    rgb = fig.axes[1].get_images()[0].get_array()
    np.testing.assert_allclose(rgb[..., 0], inputs.normalise(outs["a"][1, 0].double().numpy()), atol=1e-12)
    np.testing.assert_allclose(rgb[..., 1], inputs.normalise(fixed[1, 0].double().numpy()), atol=1e-12)
    assert len(viz.figure_overlays(outs, fixed).axes) == 2  # without the moving image


def test_figure_functions_reject_bad_input():
    x = _batch()
    with pytest.raises(TypeError, match="images"):
        viz.figure_outputs([x], x, x)
    with pytest.raises(ValueError, match="index 3 is out of range for fixed"):
        viz.figure_outputs({"a": x}, x, x, index=3)
    with pytest.raises(ValueError, match=re.escape("images['a'] and fixed")):
        viz.figure_overlays({"a": torch.rand(3, 1, 8, 8)}, x)
    with pytest.raises(ValueError, match="max_cols"):
        viz.figure_overlays({"a": x}, x, max_cols=0)


# --------------------------------------------------------------------------- colour wheel


def _field(ux, uy, h=3, w=3):
    return np.stack([np.full((h, w), float(ux)), np.full((h, w), float(uy))])


def _hue(rgb):
    return colorsys.rgb_to_hsv(*rgb)[0]


def test_flow_to_rgb_shape_and_range():
    rgb = viz.flow_to_rgb(_disp(n=2))
    assert rgb.shape == (24, 20, 3)
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0


def test_flow_to_rgb_known_directions():
    hues = {
        name: _hue(viz.flow_to_rgb(_field(ux, uy), max_norm=1.0)[0, 0])
        for name, (ux, uy) in {"+x": (1, 0), "+y": (0, 1), "-x": (-1, 0), "-y": (0, -1)}.items()
    }
    assert hues["+x"] == pytest.approx(0.0, abs=1e-6)  # red
    assert hues["+y"] == pytest.approx(0.25, abs=1e-6)  # y points down in images
    assert hues["-x"] == pytest.approx(0.5, abs=1e-6)  # opposite of +x
    assert hues["-y"] == pytest.approx(0.75, abs=1e-6)
    np.testing.assert_allclose(viz.flow_to_rgb(_field(1, 0), max_norm=1.0)[0, 0], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(viz.flow_to_rgb(_field(-1, 0), max_norm=1.0)[0, 0], [0, 1, 1], atol=1e-6)


def test_flow_to_rgb_zero_is_white_and_saturation_is_length():
    np.testing.assert_allclose(viz.flow_to_rgb(np.zeros((2, 4, 4))), 1.0)
    half = viz.flow_to_rgb(_field(1, 0), max_norm=2.0)[0, 0]
    assert colorsys.rgb_to_hsv(*half)[1] == pytest.approx(0.5)
    full = viz.flow_to_rgb(_field(5, 0), max_norm=2.0)[0, 0]  # saturates, no error
    assert colorsys.rgb_to_hsv(*full)[1] == pytest.approx(1.0)


def test_flow_to_rgb_default_max_norm_is_largest_length():
    d = np.zeros((2, 2, 2))
    d[0, 0, 0] = 4.0
    d[0, 1, 1] = 2.0
    rgb = viz.flow_to_rgb(d)
    assert colorsys.rgb_to_hsv(*rgb[0, 0])[1] == pytest.approx(1.0)
    assert colorsys.rgb_to_hsv(*rgb[1, 1])[1] == pytest.approx(0.5)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: viz.overlay(torch.rand(2, 2, 2, 2, 2), torch.rand(4, 4)), "a"),
        (lambda: viz.overlay(torch.rand(4, 4), torch.rand(2, 4, 4)), "b"),
        (lambda: viz.checkerboard(torch.rand(4, 4), torch.rand(5, 4)), "a and b"),
        (lambda: viz.show_pair(torch.rand(4), torch.rand(4, 4)), "moving"),
        (lambda: viz.show_pair(torch.rand(4, 4), torch.rand(1, 4, 4, 4)), "fixed"),
        (lambda: viz.flow_to_rgb(torch.rand(1, 3, 4, 4)), "disp"),
        (lambda: viz.flow_to_rgb(torch.rand(4, 4)), "disp"),
        (lambda: viz.flow(torch.rand(1, 1, 4, 4)), "disp"),
        (lambda: viz.quiver(torch.rand(2, 4)), "disp"),
        (lambda: viz.jacobian_map(torch.rand(1, 3, 4, 4)), "disp"),
        (lambda: viz.deformed_grid(torch.rand(1, 2, 4, 4), image=torch.rand(5, 5)), "image"),
        (lambda: viz.deformed_grid(torch.rand(1, 2, 4, 4), step=0), "step"),
        (lambda: viz.checkerboard(torch.rand(4, 4), torch.rand(4, 4), tiles=0), "tiles"),
        (lambda: viz.flow_to_rgb(torch.rand(2, 4, 4), max_norm=0.0), "max_norm"),
        (lambda: viz.overlay(torch.full((4, 4), float("nan")), torch.rand(4, 4)), "a"),
        (lambda: viz.compare_grid([torch.rand(4, 4)], ncols=0), "ncols"),
        (lambda: viz.compare_grid([torch.rand(4, 4)], size=0), "size"),
        (lambda: viz.draw_matches(torch.rand(4, 4), torch.rand(4, 4), torch.ones(2, 2), torch.ones(3, 2)),
         "points_fixed and points_moving"),
    ],
)
def test_bad_input_raises_value_error_naming_argument(call, name):
    with pytest.raises(ValueError, match=re.escape(name)):
        call()


def test_non_array_input_raises_type_error():
    with pytest.raises(TypeError, match="a must be"):
        viz.overlay([[0.0, 1.0]], np.zeros((1, 2)))
