"""Tests for regkit.viz: plot functions, the colour wheel and the slider."""

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
from regkit._static_slider import frame_index, static_slider_html  # noqa: E402


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
    assert [ax.get_title() for ax in fig.axes[:3]][:1] == ["a"]


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
    ],
)
def test_bad_input_raises_value_error_naming_argument(call, name):
    with pytest.raises(ValueError, match=re.escape(name)):
        call()


def test_non_array_input_raises_type_error():
    with pytest.raises(TypeError, match="a must be"):
        viz.overlay([[0.0, 1.0]], np.zeros((1, 2)))


# --------------------------------------------------------------------------- slider


def _render_value(k):
    fig, ax = plt.subplots(figsize=(1.5, 1.5))
    ax.imshow(np.full((4, 4), k), vmin=0, vmax=5)
    ax.set_title(f"k={k}")
    return fig


def test_slider_frames_html_and_bundle():
    s = viz.slider(_render_value, [1, 2, 3, 4], label="k")
    assert len(s) == 4
    assert plt.get_fignums() == []  # rendered figures are closed (no double display inline)
    html = s.html
    # Four frames in the inline script plus the initial <img>.
    assert html.count("iVBORw0KGgo") == 5  # base64 of the PNG signature
    assert 'type="range"' in html and 'max="3"' in html
    assert "<script" in html and "src=\"http" not in html and "require" not in html
    bundle = s._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"]
    assert bundle["text/html"] == html
    assert bundle["text/plain"] == "<regkit slider over k: 4 frames>"


def test_slider_live_widget_swaps_frames():
    s = viz.slider(_render_value, [1, 2, 3], label="k", initial=2)
    w = s.widget()
    control, image = w.children
    assert image.value == s.frames[1]
    control.value = 2
    assert image.value == s.frames[2]


def test_slider_accepts_axes_and_none_returning_renders():
    def draw_axes(k):
        return viz.overlay(np.full((4, 4), k / 3), np.zeros((4, 4)), normalise=False)

    def draw_none(k):
        plt.figure(figsize=(1, 1))
        plt.plot([0, k])

    for render in (draw_axes, draw_none):
        s = viz.slider(render, [1, 2], label="k")
        assert len(s) == 2 and s.frames[0] != s.frames[1]
        assert plt.get_fignums() == []


def test_slider_several_parameters_cartesian_product():
    seen = []

    def render(a, b):
        seen.append((a, b))
        return _render_value(a + b)

    s = viz.slider(render, {"a": [0, 1], "b": [0.5, 1.5, 2.5]}, initial={"b": 1.5})
    assert seen == [(0, 0.5), (0, 1.5), (0, 2.5), (1, 0.5), (1, 1.5), (1, 2.5)]
    assert repr(s) == "<regkit slider over a x b: 6 frames>"
    assert s.html.count('type="range"') == 2
    assert s.initial == [0, 1]
    a_ctl, b_ctl, image = s.widget().children
    assert image.value == s.frames[1]
    a_ctl.value = 1
    assert image.value == s.frames[frame_index([1, 1], [2, 3])] == s.frames[4]


def test_slider_ids_unique_per_page():
    s1 = viz.slider(_render_value, [1, 2], label="k")
    s2 = viz.slider(_render_value, [1, 2], label="k")
    ids1 = set(re.findall(r'id="([^"]+)"', s1.html))
    ids2 = set(re.findall(r'id="([^"]+)"', s2.html))
    assert ids1 and not ids1 & ids2


def test_slider_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_frames"):
        viz.slider(_render_value, range(10), max_frames=5)
    with pytest.raises(ValueError, match="values"):
        viz.slider(_render_value, [])
    with pytest.raises(ValueError, match="initial"):
        viz.slider(_render_value, [1, 2], initial=7)
    with pytest.raises(TypeError, match="render"):
        viz.slider(lambda k: 42, [1])
    assert plt.get_fignums() == []


def test_slider_format_spec():
    s = viz.slider(_render_value, [0.5, 1.25], label="sigma", fmt=".2f")
    assert s.labels == [["0.50", "1.25"]]
    assert ">0.50</output>" in s.html


def test_static_slider_html_validates():
    with pytest.raises(ValueError, match="frames"):
        static_slider_html(["a", "b"], [("k", ["1", "2", "3"])])
    html = static_slider_html(["AAAA"], [("k", ["</script><b>"])], uid="demo")
    assert "</script><b>" not in html.split("<script>")[1].split("</script>")[0]
