"""Fixtures for the browser tests: Debian's Chromium through Playwright, a static page server,
and screenshots of failing pages under tests/browser/artifacts/.

Chromium is Debian's (``apt-get install chromium``); Playwright's own browser download is not
used. Tests skip when either is missing, so the rest of the suite runs anywhere.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .browser_helpers import free_port, screenshot_on_failure

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
HERE = Path(__file__).resolve().parent


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, request: pytest.FixtureRequest):
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    messages: list[str] = []
    page.on("console", lambda msg: messages.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: messages.append(f"pageerror: {exc}"))
    page.console_messages = messages  # type: ignore[attr-defined]
    yield page
    screenshot_on_failure(request, page)
    context.close()


@pytest.fixture(scope="session")
def static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the harness page and the shipped ES modules (as the wheel ships them)."""
    from ivwidgets._common import asset

    root = tmp_path_factory.mktemp("static")
    (root / "js").mkdir()
    for name in ("paint_canvas.js", "trajectory_editor.js", "video_player.js", "takes_strip.js", "widgets.css"):
        (root / "js" / name).write_text(asset(name), encoding="utf-8")
    shutil.copy(HERE / "harness.html", root / "index.html")
    return root


class _Quiet(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript"}

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="session")
def static_server(static_root: Path) -> Iterator[str]:
    """http://127.0.0.1:<port>/ serving static_root (ES modules need http, not file://)."""
    handler = functools.partial(_Quiet, directory=str(static_root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture()
def harness(page, static_server: str):
    """The harness page, loaded; ``page.evaluate("mount(...)")`` renders a widget with a fake model."""
    page.goto(static_server + "index.html")
    page.wait_for_function("window.ready === true")
    return page


@pytest.fixture()
def app_page(browser, request: pytest.FixtureRequest):
    """A wide page for a whole front end (JupyterLab, Notebook 7, Voila, marimo); screenshot on failure."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    screenshot_on_failure(request, page)
    context.close()


@pytest.fixture(scope="module")
def session():
    """A tiny session for the widgets' kernel halves (module-scoped: building one takes seconds)."""
    from ivcore import Session

    return Session.tiny(seed=0)
