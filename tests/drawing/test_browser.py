"""The SVG files opened in a real browser engine: headless Chromium (Debian's), driven through Playwright.

Chromium renders each file as a page of its own: no error on the page or its console, an SVG document
(an XML error would show as a parsererror element), drawn at the size the file declares, and no two of
its labels' rendered boxes overlapping (the fonts the browser really found, not the layout's estimate).
Skipped only when no Chromium is installed (CI installs Debian's package: .ci/run).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

import pytest

import vggspec
from vggspec.drawing.network import draw_comparison, draw_plan
from vggspec.drawing.svg import picture_size, svg_text
from vggspec.drawing.verify_plot import draw_verify_report

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Every <text>'s box on the page (after its rotation), and the root's rendered size.
MEASURE = """() => {
    const root = document.documentElement;
    const box = root.getBoundingClientRect();
    const texts = [...document.querySelectorAll("text")].map((text) => {
        const r = text.getBoundingClientRect();
        return [text.textContent, r.left, r.top, r.right, r.bottom];
    });
    return {tag: root.tagName, errors: document.getElementsByTagName("parsererror").length,
            width: box.width, height: box.height, texts};
}"""


def find_chromium() -> Optional[str]:
    return next(
        (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None
    )


@pytest.fixture(scope="module")
def browser():
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium found (on Debian: apt-get install chromium): the SVG is not opened in a browser")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def rendered(browser, path: Path) -> dict:
    """What Chromium made of the file at ``path``, and the errors it reported."""
    page = browser.new_page(viewport={"width": 2600, "height": 2000})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    try:
        page.goto(path.as_uri())
        return {**page.evaluate(MEASURE), "problems": problems}
    finally:
        page.close()


def overlapping(texts: list[list]) -> list[tuple[str, str]]:
    """Pairs of rendered labels whose boxes share more than half a pixel each way."""
    found = []
    for i, (first, *a) in enumerate(texts):
        for second, *b in texts[i + 1 :]:
            if min(a[2], b[2]) - max(a[0], b[0]) > 0.5 and min(a[3], b[3]) - max(a[1], b[1]) > 0.5:
                found.append((first, second))
    return found


def verify_report() -> dict:
    names = [layer.name for layer in vggspec.plan("vgg16").layers]
    pairs = [["keras", "torch"], ["keras", "onnx"], ["torch", "onnx"]]
    layers = [
        {
            "name": name,
            "rel_diff": 1e-6,
            "pairs": [{"pair": pair, "rel_diff": (1 + n) * 1e-7 * i} for n, pair in enumerate(pairs)],
        }
        for i, name in enumerate(names)
    ]
    return {"spec": "vgg16", "backends": ["keras", "torch", "onnx"], "ok": True, "tolerance": 1e-4,
            "first_divergent_layer": None, "layers": layers}  # fmt: skip


@pytest.mark.parametrize(("name", "width"), [("vgg16", None), ("vgg16", 800), ("C vs D", None), ("verify plot", None)])
def test_chromium_renders_the_svg_at_its_declared_size_without_errors(browser, tmp_path, name, width):
    if name == "vgg16":
        scene = draw_plan(vggspec.plan("vgg16"))
    elif name == "C vs D":
        scene = draw_comparison(vggspec.plan("C"), vggspec.plan("D"))
    else:
        scene = draw_verify_report(verify_report())
    path = tmp_path / "picture.svg"
    path.write_text(svg_text(scene, width), encoding="utf-8")
    page = rendered(browser, path)
    assert page["problems"] == [] and page["errors"] == 0 and page["tag"] == "svg"
    assert (page["width"], page["height"]) == picture_size(scene, width)
    assert len(page["texts"]) == len(scene.texts())
    assert overlapping(page["texts"]) == []
    if name == "vgg16":
        drawn = {text for text, *_ in page["texts"]}
        assert {layer.name for layer in vggspec.plan("vgg16").layers} <= {w for t in drawn for w in t.split()}
        assert "Total params: 138,357,544 (527.79 MB)" in drawn


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="CI only: elsewhere the browser test may skip")
def test_ci_has_a_chromium_for_the_browser_test():
    """CI installs Chromium (.ci/run) and Playwright (the dev extra): there the browser test must not skip."""
    assert find_chromium() is not None
