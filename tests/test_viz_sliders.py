"""Tests for regkit.viz sliders: frames (size, resolution, format), alt text, captions, HTML, widget."""

import base64
import io
import re
from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg")  # in the test module only: MPLBACKEND=Agg would break kernel figure outputs

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from regkit import viz  # noqa: E402
from regkit.viz.static_slider import frame_alt, frame_index, static_slider_html  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _render_value(k):
    fig, ax = plt.subplots(figsize=(1.5, 1.5))
    ax.imshow(np.full((4, 4), k), vmin=0, vmax=5)
    ax.set_title(f"k={k}")
    return fig


def _size(frame: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(frame)) as im:
        return im.size


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(html):
    p = _Tags()
    p.feed(html)
    p.close()
    return p.tags


# --------------------------------------------------------------------------- frames


def test_slider_frames_html_and_bundle():
    s = viz.slider(_render_value, [1, 2, 3, 4], label="k")
    assert len(s) == 4 and s.image_format == "webp"
    assert plt.get_fignums() == []  # rendered figures are closed (no double display inline)
    html = s.html
    # Four frames, each once: three in the inline script, the initial one only in the <img>.
    assert all(html.count(b64) == 1 for b64 in s._b64)
    assert html.count("data:image/webp;base64,") == 2  # the <img> and the script's prefix
    assert 'type="range"' in html and 'max="3"' in html
    assert "<script" in html and "src=\"http" not in html and "require" not in html
    bundle = s._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"]
    assert bundle["text/html"] == html
    assert bundle["text/plain"] == "<regkit slider over k: 4 frames>"


def test_frames_are_wide_enough_and_share_one_size():
    # A 1.5 in figure: the resolution rises until the frame is FRAME_WIDTH px wide.
    s = viz.slider(_render_value, [1, 2, 3], label="k")
    sizes = {_size(f) for f in s.frames}
    assert sizes == {s.size} and s.size[0] >= viz.FRAME_WIDTH
    assert s.size[0] <= viz.FRAME_WIDTH + 10  # just enough: the frame costs no more than needed
    assert f'width="{s.size[0]}" height="{s.size[1]}"' in s.html


def test_low_dpi_is_raised_to_100():
    def wide(k):  # 7.2 in wide: 60 dpi would give 432 px frames with 7 px text
        fig, ax = plt.subplots(figsize=(7.2, 2.4))
        ax.plot([0, k])
        ax.set_title(f"k = {k}")
        return fig

    s = viz.slider(wide, [1, 2], label="k", dpi=60)
    assert s.dpi == 100 and s.size[0] >= viz.FRAME_WIDTH
    assert viz.slider(wide, [1, 2], label="k", dpi=150).dpi == 150
    assert viz.slider(_render_value, [1], label="k", min_width=0).dpi == 100


def test_frames_of_different_size_are_centred_on_one_canvas():
    def growing(k):
        fig, ax = plt.subplots(figsize=(2 + k, 2))
        ax.plot([0, 1])
        return fig

    s = viz.slider(growing, [0, 1, 2], label="k", image_format="png")
    assert len({_size(f) for f in s.frames}) == 1
    with Image.open(io.BytesIO(s.frames[0])) as im:
        rgb = np.asarray(im.convert("RGB"))
    assert (rgb[:, :5] == 255).all() and (rgb[:, -5:] == 255).all()  # white side bands


def test_webp_frames_match_png_frames():
    def photo(k):
        g = np.random.default_rng(0)
        img = np.cumsum(np.cumsum(g.normal(size=(64, 64)), 0), 1)  # smooth, photo-like
        fig, ax = plt.subplots(figsize=(2.4, 2.4))
        ax.imshow(np.roll(img, k, 1), cmap="gray")
        return fig

    lossy = viz.slider(photo, [0, 8], label="k")
    lossless = viz.slider(photo, [0, 8], label="k", image_format="png")
    for a, b in zip(lossy.frames, lossless.frames):
        assert a[:4] == b"RIFF" and a[8:12] == b"WEBP" and b[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(io.BytesIO(a)) as x, Image.open(io.BytesIO(b)) as y:
            err = np.abs(np.asarray(x.convert("RGB"), float) - np.asarray(y.convert("RGB"), float))
        assert err.mean() < 3.0  # of 255: quality 90 is visually lossless
        assert len(a) < len(b)


# --------------------------------------------------------------------------- text


def test_alt_text_and_caption_say_what_the_frames_show():
    s = viz.slider(_render_value, [1, 2], label="k", caption="A constant image of value k.")
    assert s.alt == ["A constant image of value k. (k = 1). Panels: k=1",
                     "A constant image of value k. (k = 2). Panels: k=2"]
    tags = _tags(s.html)
    img = [a for t, a in tags if t == "img"][0]
    assert img["alt"] == s.alt[0]
    assert "<figcaption>A constant image of value k.</figcaption>" in s.html
    assert '"A constant image of value k. (k = 2). Panels: k=2"' in s.html  # the script's list
    s2 = viz.slider(_render_value, [1], label="k", alt="value k", caption="Caption.")
    assert s2.alt == ["value k (k = 1). Panels: k=1"]
    w = s.widget()
    assert w.children[-1].value == "<em>A constant image of value k.</em>"


def test_slider_html_parses_and_ids_unique_per_page():
    s1 = viz.slider(_render_value, [1, 2], label="k")
    s2 = viz.slider(_render_value, [1, 2], label="k")
    for s in (s1, s2):
        tags = [t for t, _ in _tags(s.html)]
        assert tags.count("input") == 1 and tags.count("img") == 1 and tags.count("figure") == 1
    ids1 = set(re.findall(r'id="([^"]+)"', s1.html))
    ids2 = set(re.findall(r'id="([^"]+)"', s2.html))
    assert ids1 and not ids1 & ids2


# --------------------------------------------------------------------------- behaviour


def test_slider_live_widget_swaps_frames():
    s = viz.slider(_render_value, [1, 2, 3], label="k", initial=2)
    w = s.widget()
    control, image = w.children
    assert image.value == s.frames[1] and image.format == "webp"
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
    assert s.alt[4].startswith("a = 1, b = 1.5. Panels: ")
    a_ctl, b_ctl, image = s.widget().children
    assert image.value == s.frames[1]
    a_ctl.value = 1
    assert image.value == s.frames[frame_index([1, 1], [2, 3])] == s.frames[4]


def test_slider_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_frames"):
        viz.slider(_render_value, range(10), max_frames=5)
    with pytest.raises(ValueError, match="values"):
        viz.slider(_render_value, [])
    with pytest.raises(ValueError, match="initial"):
        viz.slider(_render_value, [1, 2], initial=7)
    with pytest.raises(TypeError, match="render"):
        viz.slider(lambda k: 42, [1])
    with pytest.raises(ValueError, match="image_format"):
        viz.slider(_render_value, [1], image_format="gif")
    with pytest.raises(ValueError, match="dpi"):
        viz.slider(_render_value, [1], dpi=-1)
    with pytest.raises(ValueError, match="min_width"):
        viz.slider(_render_value, [1], min_width=-5)
    assert plt.get_fignums() == []


def test_slider_format_spec():
    s = viz.slider(_render_value, [0.5, 1.25], label="sigma", fmt=".2f")
    assert s.labels == [["0.50", "1.25"]]
    assert ">0.50</output>" in s.html


# --------------------------------------------------------------------------- static HTML


def test_static_slider_html_validates_and_escapes():
    with pytest.raises(ValueError, match="frames"):
        static_slider_html(["a", "b"], [("k", ["1", "2", "3"])])
    with pytest.raises(ValueError, match="alt"):
        static_slider_html(["a", "b"], [("k", ["1", "2"])], alt=["only one"])
    with pytest.raises(ValueError, match="image_format"):
        static_slider_html(["a"], [("k", ["1"])], image_format="gif")
    html = static_slider_html(["AAAA"], [("k", ["</script><b>"])], uid="demo", caption="<i>")
    assert "</script><b>" not in html.split("<script>")[1].split("</script>")[0]
    assert "<figcaption>&lt;i&gt;</figcaption>" in html


def test_static_slider_html_per_frame_alt_and_single_copy_of_start_frame():
    frames = [base64.b64encode(bytes([k])).decode() + "xyz" for k in range(4)]
    html = static_slider_html(frames, [("a", ["0", "1"]), ("b", ["x", "y"])], initial=[1, 0], uid="t",
                              alt="demo", size=(600, 200))
    assert [html.count(f) for f in frames] == [1, 1, 1, 1]
    img = [a for t, a in _tags(html) if t == "img"][0]
    assert img["alt"] == "demo (a = 1, b = x)" and img["data-frame"] == "2"
    assert img["src"].endswith(frames[2]) and img["width"] == "600" and img["height"] == "200"
    assert frame_alt("", [("k", "1")]) == "k = 1"
