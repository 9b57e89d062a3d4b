"""Helpers for the collaboration tests: several users (browser contexts) on one notebook, strokes at
known places on the paint canvas, and what each view shows, read from its pixels.

Why pixels and the kernel, not the widget's messages: the paint protocol between a view and the
kernel is free to change (whole history as a trait, or one message a stroke); what must hold is what
a user sees (every stroke on every canvas) and what the session gets (``PaintCanvas.strokes``).
"""

from __future__ import annotations

import math
import statistics
import time

from .browser_helpers import ARTIFACTS, SIZE
from .frontends import (
    KERNEL_READY,
    kernel_state,
)

PAINT = ".ivw-paint .ivw-live"  # where the pointer goes
LAYER = ".ivw-paint .ivw-layer"  # where every view draws the strokes it holds
HALF = 1.5  # each stroke: a horizontal segment of 2 * HALF native px through its centre
BRUSH = 2  # native px: small enough that 100 strokes fit apart on the 64 x 64 canvas


def grid(cols: int, rows: int, size: int = SIZE) -> list[tuple[float, float]]:
    """Stroke centres on a grid, row by row, at pixel centres (x.5), so that a 2 px stroke through a
    centre covers that pixel fully and leaves the pixel 3 px below it empty."""
    return [
        (math.floor((i + 0.5) * size / cols) + 0.5, math.floor((j + 0.5) * size / rows) + 0.5)
        for j in range(rows)
        for i in range(cols)
    ]


def nearest(point: list[float], centres: list[tuple[float, float]]) -> int:
    """The index of the centre a stroke (given by its first point) was drawn through."""
    x, y = point[0] + HALF, point[1]
    return min(range(len(centres)), key=lambda k: math.hypot(centres[k][0] - x, centres[k][1] - y))


def open_user(browser, url: str, name: str, *, width: int = 1100, height: int = 900):
    """A user: a browser context of its own (its own cookies: another collaborator) on ``url``.

    Returns the page once the notebook is open and its kernel idle and connected; its console
    messages are kept on ``page.console_messages`` for a failure's report.
    """
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(60_000)
    messages: list[str] = []
    page.on("console", lambda msg: messages.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: messages.append(f"pageerror: {exc}"))
    page.console_messages = messages  # type: ignore[attr-defined]
    page.user_name = name  # type: ignore[attr-defined]
    page.goto(url)
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget", timeout=120_000)
    page.wait_for_function(KERNEL_READY, timeout=120_000)
    return page


def close_user(page, failed: bool, test_name: str) -> None:
    """Close a user's context; on failure keep a screenshot and the console's tail under artifacts/."""
    if failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        stem = f"{test_name}-{page.user_name}"
        try:
            page.screenshot(path=str(ARTIFACTS / f"{stem}.png"))
        except Exception as exc:  # a crashed page must not hide the test's own failure
            print(f"screenshot of {page.user_name} failed: {exc}")
        (ARTIFACTS / f"{stem}.console.txt").write_text("\n".join(page.console_messages[-200:]), encoding="utf-8")
    page.context.close()


# The first cell's output on a page: the Studio rendered, or the widget's text repr (an untrusted output).
STUDIO_OR_TEXT = """() => {
  const cell = window.jupyterapp.shell.currentWidget.content.widgets[0];
  if (cell.node.querySelector('.ivw-studio')) return 'studio';
  const text = cell.node.querySelector('.jp-OutputArea-output.jp-RenderedText');
  return text && text.textContent.includes('Studio(') ? 'text' : '';
}"""


def show_studio(page, timeout_s: float = 180) -> bool:
    """Wait until ``page`` shows the Studio another user's cell displayed; True when it had to be trusted.

    Under jupyter-collaboration an output made by another user's run can arrive untrusted in this
    view (JupyterLab does not share a cell's trust between clients: jupyterlab issue 11435, a race
    here), and JupyterLab renders an untrusted widget view as its text repr. The user's remedy,
    as docs/frontends.md says: the Trust Notebook command (or a page reload).
    """
    from playwright.sync_api import expect

    page.wait_for_function(STUDIO_OR_TEXT, timeout=timeout_s * 1000)
    trusted_by_hand = page.evaluate(STUDIO_OR_TEXT) == "text"
    if trusted_by_hand:
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:trust'); }")  # opens a dialog
        accept = page.locator(".jp-Dialog .jp-mod-accept")
        expect(accept).to_be_visible(timeout=30_000)
        accept.click()
    page.locator(".ivw-studio").wait_for(state="visible", timeout=timeout_s * 1000)
    return trusted_by_hand


def wait_kernel(page, cell: int, done, timeout_s: float = 60) -> dict:
    """Run the state cell until ``done(state)`` holds or time is up; returns the last state."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = kernel_state(page, cell)
        if done(state) or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


def canvas_box(page) -> dict:
    """The paint canvas's box on the page, scrolled into view first (pointer events need it on screen)."""
    canvas = page.locator(PAINT)
    canvas.scroll_into_view_if_needed()
    return canvas.bounding_box()


def _screen(box: dict, x: float, y: float) -> tuple[float, float]:
    return box["x"] + x * box["width"] / SIZE, box["y"] + y * box["height"] / SIZE


def stroke(page, box: dict, centre: tuple[float, float]) -> None:
    """One short horizontal stroke through ``centre`` (native px): press, move, release."""
    cx, cy = centre
    page.mouse.move(*_screen(box, cx - HALF, cy))
    page.mouse.down()
    page.mouse.move(*_screen(box, cx, cy))
    page.mouse.move(*_screen(box, cx + HALF, cy))
    page.mouse.up()


def strokes_together(users: list, boxes: list[dict], centres: list[list[tuple[float, float]]]) -> None:
    """Every user paints their strokes at once, with no pause: the pointer events of the users'
    strokes alternate event by event, so strokes from different views overlap in time."""
    for k in range(max(len(c) for c in centres)):
        todo = [(p, b, c[k]) for p, b, c in zip(users, boxes, centres, strict=True) if k < len(c)]
        for page, box, (cx, cy) in todo:
            page.mouse.move(*_screen(box, cx - HALF, cy))
            page.mouse.down()
        for page, box, (cx, cy) in todo:
            page.mouse.move(*_screen(box, cx, cy))
        for page, box, (cx, cy) in todo:
            page.mouse.move(*_screen(box, cx + HALF, cy))
            page.mouse.up()


# In the page: which centres are painted on the layer canvas, and which pixels 3 px below them are
# (those must stay empty: a stroke painted as a blob, or shifted, shows there).
PAINTED = """(canvas, centres) => {
  const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const alpha = (x, y) => d[(Math.floor(y) * canvas.width + Math.floor(x)) * 4 + 3];
  return {
    at: centres.map(([x, y]) => alpha(x, y) > 0),
    below: centres.map(([x, y]) => y + 3 < canvas.height && alpha(x, y + 3) > 0),
  };
}"""


def painted(page, centres: list[tuple[float, float]]) -> dict[str, list[bool]]:
    return page.locator(LAYER).evaluate(PAINTED, [list(c) for c in centres])


def wait_painted(page, centres: list[tuple[float, float]], timeout_s: float = 30) -> dict[str, list[bool]]:
    """Wait until every centre is painted on ``page``'s canvas (or time is up); returns the last reading."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = painted(page, centres)
        if all(seen["at"]) or time.monotonic() > deadline:
            return seen
        time.sleep(0.25)


# In the page: a watcher that notes when each centre first shows paint on this view's canvas and
# when each of this view's own strokes ended (pointerup), both on the wall clock in ms, so that the
# times of two pages of the same browser compare. Polled every 5 ms: the pixels are what is measured.
WATCH = """(live, centres) => {
  if (window.__ivwWatch) clearInterval(window.__ivwWatch);
  const now = () => performance.timeOrigin + performance.now();
  window.__ivwSeen = {};
  window.__ivwUps = [];
  if (!live.__ivwUpHook) {
    live.__ivwUpHook = true;
    live.addEventListener('pointerup', () => window.__ivwUps.push(now()), true);
  }
  window.__ivwWatch = setInterval(() => {
    const layer = live.parentElement.querySelector('.ivw-layer');
    const d = layer.getContext('2d').getImageData(0, 0, layer.width, layer.height).data;
    const t = now();
    centres.forEach(([x, y], i) => {
      if (!(i in window.__ivwSeen) && d[(Math.floor(y) * layer.width + Math.floor(x)) * 4 + 3] > 0) {
        window.__ivwSeen[i] = t;
      }
    });
  }, 5);
}"""


def watch(page, centres: list[tuple[float, float]]) -> None:
    """Start noting, on ``page``, when each centre first shows paint and when each own stroke ends."""
    page.locator(PAINT).evaluate(WATCH, [list(c) for c in centres])


def watched(page) -> tuple[dict[int, float], list[float]]:
    """(first time each centre showed paint, the end times of this page's own strokes), in ms."""
    seen, ups = page.evaluate("[window.__ivwSeen, window.__ivwUps]")
    return {int(k): v for k, v in seen.items()}, ups


def latencies(sender, receiver, own: list[int]) -> tuple[list[float], list[int]]:
    """Seconds from the end of each of ``sender``'s strokes (its centres ``own``, in drawing order) to
    its pixels on ``receiver``'s canvas; and the centres that never showed there."""
    _, ups = watched(sender)
    seen, _ = watched(receiver)
    out, missing = [], []
    for end, centre in zip(ups, own, strict=False):  # fewer ends than strokes: some never ended
        if centre in seen:
            out.append(max(0.0, (seen[centre] - end) / 1000))
        else:
            missing.append(centre)
    return out, missing


def summary(values: list[float]) -> str:
    if not values:
        return "no values"
    q = statistics.quantiles(values, n=10, method="inclusive") if len(values) > 1 else [values[0]] * 9
    return f"median {statistics.median(values):.3f} s, p90 {q[8]:.3f} s, max {max(values):.3f} s (n={len(values)})"
