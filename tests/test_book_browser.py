"""The rendered book in a real browser: static sliders move with no kernel and no network.

Builds a minimal book with the repository's own ``_config.yml`` (same extensions, MathJax,
mime-type priorities and static files) around one notebook whose outputs are two
``regkit.viz.slider`` objects, opens the page from disk (``file://``) in headless Chromium and
moves the sliders. A second test checks the real book, when ``_build/html`` has been built
(``scripts/setup_and_build.sh``), for scripts or styles loaded from other hosts.

Needs Debian's ``chromium`` and ``chromium-driver`` (skipped with a reason when absent).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # in the test module only

import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from regkit import viz  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
JUPYTER_BOOK = Path(sys.executable).with_name("jupyter-book")


def _render(k: int):
    fig, ax = plt.subplots(figsize=(1.6, 1.6))
    ax.imshow(np.eye(8) * k, vmin=0, vmax=4, cmap="magma")
    ax.set_title(f"k = {k}", fontsize=8)
    ax.set_axis_off()
    return fig


def _output(obj) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("display_data", data=obj._repr_mimebundle_())


def _write_book(src: Path) -> tuple[viz.Slider, viz.Slider]:
    """A two-page book using the repository's _config.yml and static files."""
    shutil.copy(ROOT / "_config.yml", src / "_config.yml")
    shutil.copytree(ROOT / "book" / "_static", src / "book" / "_static")
    (src / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/sliders\n")
    (src / "book" / "intro.md").write_text("# Intro\n\nThe pull warp: $M(p + u(p))$.\n")

    one = viz.slider(_render, [1, 2, 3, 4], label="k")
    two = viz.slider(
        lambda a, b: _render(a + b), {"a": [0, 1], "b": [0, 2]}, initial={"b": 2}
    )
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Sliders\n\n$$\\det J_\\phi = \\det(I + \\nabla u)$$\n"),
        nbformat.v4.new_code_cell("viz.slider(render, [1, 2, 3, 4], label='k')", outputs=[_output(one)]),
        nbformat.v4.new_code_cell("viz.slider(render2, {'a': [0, 1], 'b': [0, 2]})", outputs=[_output(two)]),
    ]
    for k, cell in enumerate(nb.cells[1:], start=1):
        cell.execution_count = k
    nbformat.write(nb, src / "book" / "sliders.ipynb")
    return one, two


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    if not JUPYTER_BOOK.exists():
        pytest.skip("jupyter-book is not installed next to this Python")
    src = tmp_path_factory.mktemp("book")
    (src / "book").mkdir()
    sliders = _write_book(src)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(JUPYTER_BOOK), "build", str(src), "-W", "-n", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"book build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    print(f"minimal book built in {time.perf_counter() - t0:.1f} s")
    return src / "_build" / "html", sliders


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1200,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(predicate, timeout=20.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_static_sliders_move_without_kernel_or_network(built_book, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    html_dir, (one, two) = built_book
    page = html_dir / "book" / "sliders.html"
    source = page.read_text(encoding="utf-8")
    assert source.count('class="regkit-slider"') == 2
    assert "widget-view+json" not in source  # the static text/html won over the widget view

    browser.get(page.as_uri())
    _wait(lambda: browser.execute_script("return document.readyState") == "complete", what="page load")

    sliders = browser.find_elements(By.CSS_SELECTOR, "div.regkit-slider")
    assert len(sliders) == 2
    ids = [s.get_attribute("id") for s in sliders]
    assert len(set(ids)) == 2

    # First slider: one parameter, moved with the keyboard like a reader would.
    uid = ids[0]
    rng = browser.find_element(By.ID, f"{uid}-in0")
    img = browser.find_element(By.ID, f"{uid}-img")
    out = browser.find_element(By.ID, f"{uid}-out0")
    src0, label0 = img.get_attribute("src"), out.text
    assert label0 == "1" and src0.endswith(one._b64[0])
    rng.send_keys(Keys.ARROW_RIGHT)
    rng.send_keys(Keys.ARROW_RIGHT)
    _wait(lambda: out.text == "3", what="value label to read 3")
    assert img.get_attribute("src") != src0
    assert img.get_attribute("src").endswith(one._b64[2])
    assert img.get_attribute("data-frame") == "2"

    # Second slider: two parameters; set a value and dispatch "input" as a drag does.
    uid2 = ids[1]
    img2 = browser.find_element(By.ID, f"{uid2}-img")
    assert img2.get_attribute("data-frame") == "1"  # a=0, b=2 (initial)
    browser.execute_script(
        "var el = document.getElementById(arguments[0]); el.value = '1';"
        "el.dispatchEvent(new Event('input', {bubbles: true}));",
        f"{uid2}-in0",
    )
    _wait(lambda: browser.find_element(By.ID, f"{uid2}-out0").text == "1", what="second label")
    assert img2.get_attribute("data-frame") == "3"
    assert img2.get_attribute("src").endswith(two._b64[3])
    # The first slider did not move with it.
    assert img.get_attribute("data-frame") == "2"

    # Nothing was fetched from another host: every resource is a file:// or data: URL.
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(function(e){return e.name;})"
    )
    remote = [r for r in resources if not r.startswith(("file:", "data:", "blob:"))]
    assert remote == [], f"page loaded remote resources: {remote}"
    # Offline MathJax typeset the page's math.
    _wait(
        lambda: browser.execute_script("return document.querySelectorAll('mjx-container').length") > 0,
        what="MathJax output",
    )


_REMOTE = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=\"(?:https?:)?//", re.I)


def test_real_book_pages_load_nothing_remote():
    html_dir = ROOT / "_build" / "html"
    pages = sorted(html_dir.glob("**/*.html")) if html_dir.is_dir() else []
    if not pages:
        pytest.skip("the book is not built (run scripts/setup_and_build.sh)")
    bad = []
    for page in pages:
        text = page.read_text(encoding="utf-8", errors="replace")
        for tag in _REMOTE.findall(text):
            bad.append(f"{page.relative_to(html_dir)}: {tag}")
        if re.search(r"require(?:\.min)?\.js|html-manager|embed-amd", text):
            bad.append(f"{page.relative_to(html_dir)}: loads the ipywidgets manager")
    assert bad == []
