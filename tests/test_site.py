"""The documentation site builds without warnings and works in a browser.

The site is built once per session (``python -m sphinx -W -E -b html docs
docs/_build/html``, README.md's command with a fresh environment, so a warning
on any page fails), served on 127.0.0.1 and opened in Debian's headless
Chromium through chromedriver and Selenium: the front page, the user guide,
a guide and an API page render with no console errors and their pictures
load; every internal link and image of every built page resolves (fragments
included); screenshots go to ``docs/_build/html/_screenshots``.
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import urllib.parse

import pytest

ROOT = pathlib.Path(__file__).parent.parent
DOCS = ROOT / "docs"
BUILD = DOCS / "_build" / "html"
SHOTS = BUILD / "_screenshots"

# page -> text its main heading must contain
PAGES = {
    "site.html": "diaggauss",
    "index.html": "diaggauss user guide",
    "quickstart-torch.html": "Quickstart: PyTorch",
    "from-torch.html": "From torch",
    "gallery.html": "Pictures",
    "numerics.html": "Numerics",
    "numpyro-pyro.html": "numpyro and Pyro models",
    "api/generated/diaggauss.MultivariateNormalDiag.html": "diaggauss.MultivariateNormalDiag",
}


@pytest.fixture(scope="session")
def site():
    pytest.importorskip("sphinx")
    pytest.importorskip("pydata_sphinx_theme")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    cmd = [sys.executable, "-m", "sphinx", "-W", "-E", "-q", "-b", "html", "docs", str(BUILD)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"the site build failed:\n{done.stdout}\n{done.stderr}"
    return BUILD


def test_build_has_every_page_and_figure(site):
    for page in PAGES:
        assert (site / page).is_file(), page
    for name in ("density", "mixture", "speed"):
        png = site / "_generated" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    # no generated picture is checked in: they exist only in the build
    assert not list(DOCS.glob("_generated/*"))


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        for key in ("href", "src"):
            value = attrs.get(key)
            if value and not (tag == "link" and attrs.get("rel") == "preconnect"):
                self.links.append(value)


def _parse(path: pathlib.Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_no_internal_link_is_broken(site):
    # the built pages (the theme's _static holds a Jinja macro file, not a page)
    pages = sorted(p for p in site.rglob("*.html") if not {"_static", "_sources"} & set(p.parts))
    assert len(pages) >= 40
    parsed = {p: _parse(p) for p in pages}
    broken, checked = [], 0
    for page, links in parsed.items():
        for link in links.links:
            url = urllib.parse.urlsplit(link)
            if url.scheme or url.netloc or link.startswith(("mailto:", "javascript:", "data:")):
                continue
            target = page if not url.path else (page.parent / urllib.parse.unquote(url.path))
            target = target.resolve()
            if target.is_dir():
                target = target / "index.html"
            checked += 1
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: {link} (no file)")
                continue
            if url.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if url.fragment not in ids:
                    broken.append(f"{page.relative_to(site)}: {link} (no id {url.fragment!r})")
    assert checked > 500
    assert not broken, "\n".join(broken)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def served(site):
    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _browser_paths():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed "
            "(apt-get install -y chromium chromium-driver); README's test command installs them"
        )
    return chromium, driver


@pytest.fixture(scope="session")
def browser():
    chromium, driver_path = _browser_paths()
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1400",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.mark.parametrize("page", sorted(PAGES))
def test_page_renders_without_console_errors(page, served, browser, site):
    from selenium.webdriver.common.by import By

    browser.get_log("browser")  # drop what earlier pages left
    browser.get(f"{served}/{page}")
    state = browser.execute_script("return document.readyState")
    assert state == "complete"
    heading = browser.find_element(By.CSS_SELECTOR, "main h1, article h1")
    assert PAGES[page] in heading.text, heading.text
    # the theme's header rendered, with the site's sections
    header = browser.find_element(By.CSS_SELECTOR, ".bd-header").text
    for section in ("Getting started", "User guide", "API reference"):
        assert section in header, header
    # every picture on the page loaded
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.src, i.complete, i.naturalWidth]);"
    )
    for src, complete, width in images:
        assert complete, f"{page}: image {src} did not load"
        assert width > 0, f"{page}: image {src} is empty or broken"
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, f"{page}: console errors: {errors}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / (page.replace("/", "_").removesuffix(".html") + ".png")
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000, shot


def test_a_console_error_is_seen(served, browser):
    # The check above can fail: a page whose script throws is reported.
    browser.get_log("browser")
    browser.get(f"{served}/site.html")
    browser.execute_script("setTimeout(() => { throw new Error('planted by the test'); }, 0);")
    browser.execute_script("return new Promise(r => setTimeout(r, 100));")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert any("planted by the test" in e["message"] for e in errors), errors
