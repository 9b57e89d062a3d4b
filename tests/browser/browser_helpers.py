"""Helpers shared by the browser tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import base64
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from ivwidgets import PaintCanvas

SIZE = 64  # the tiny session's image size
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def screenshot_on_failure(request: pytest.FixtureRequest, page) -> None:
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = request.node.name.replace("/", "_").replace("[", "-").replace("]", "")
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        except Exception as exc:  # a crashed page must not hide the test's own failure
            print(f"screenshot failed: {exc}")


def to_screen(page, selector, x: float, y: float, size: tuple[int, int] = (SIZE, SIZE)) -> tuple[float, float]:
    """Native image pixels (of a ``size`` = (W, H) picture) -> page coordinates of the element at CSS size.

    ``selector``: a CSS selector (its first match) or a Playwright locator (one view of several).
    """
    box = (page.locator(selector).first if isinstance(selector, str) else selector).bounding_box()
    return box["x"] + x * box["width"] / size[0], box["y"] + y * box["height"] / size[1]


def drag(
    page, selector, points: list[tuple[float, float]], steps: int = 8, size: tuple[int, int] = (SIZE, SIZE)
) -> None:
    """A real press-move-release through ``points`` (native pixels), as page.mouse pointer events."""
    page.mouse.move(*to_screen(page, selector, *points[0], size=size))
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*to_screen(page, selector, *p, size=size), steps=steps)
    page.mouse.up()


class KernelLoop:
    """A real kernel-side widget behind the harness page's fake model, without Jupyter.

    ``pump()`` hands the messages the page sent (``model.send``) to the widget as ipykernel would,
    then pushes the widget's synced ``traits`` and its own messages back to the page, like the
    kernel's updates reaching every view. Tests call it where a kernel round trip would happen.
    """

    def __init__(self, page, widget, traits: tuple[str, ...]):
        self.page, self.widget, self.traits = page, widget, traits
        self.to_page: list[dict] = []
        widget.send = lambda content, buffers=None: self.to_page.append(content)

    def pump(self) -> int:
        """Deliver what the page sent; returns how many messages went to the kernel."""
        sent = self.page.evaluate("model.takeSent()")
        for msg in sent:
            buffers = [memoryview(base64.b64decode(b)) for b in msg["buffers"]]
            self.widget._handle_custom_msg(msg["content"], buffers)
        state = {name: getattr(self.widget, name) for name in self.traits}
        replies, self.to_page = self.to_page, []
        self.page.evaluate(
            "([state, replies]) => { for (const [k, v] of Object.entries(state)) model.kernel(k, v);"
            " for (const r of replies) model.message(r); }",
            [state, replies],
        )
        return len(sent)

    def settle(self, count: int, timeout_s: float = 10.0) -> None:
        """Pump until ``count`` messages in all reached the kernel (strokes are sent after a PNG encode)."""
        deadline, got = time.monotonic() + timeout_s, 0
        while got < count:
            got += self.pump()
            if time.monotonic() > deadline:
                raise AssertionError(f"{got} of {count} messages reached the kernel in {timeout_s} s")
            time.sleep(0.02)
        self.pump()


# -- the paint canvas with its kernel half -------------------------------------------------------
PAINT_TRAITS = ("strokes", "undone", "error")


def mount_paint(page, session, views: int = 1, **traits) -> KernelLoop:
    """A PaintCanvas on ``session`` rendered ``views`` times in the page, its kernel half in this process."""
    session.clear_paint()
    widget = PaintCanvas(session, show_edited=False, **traits)
    names = ("width", "height", "color", "swatches", "brush_size", "opacity", "tool", "strokes", "undone")
    state = {name: getattr(widget, name) for name in names}
    image = base64.b64encode(widget.image).decode()
    state.update(image=image, edited="", show_edited=False, busy=False, error="")
    page.evaluate("([s, b, n]) => mount('paint_canvas', s, b, n)", [state, ["image", "edited"], views])
    page.wait_for_function(
        f"[...document.querySelectorAll('.ivw-base')].every((i) => i.naturalWidth === {widget.width})"
    )
    return KernelLoop(page, widget, PAINT_TRAITS)


def canvas_pixels(page, view: int = 0) -> np.ndarray:
    """What a view's paint layer canvas shows, (H, W, 4) uint8."""
    data = page.evaluate(
        "(i) => { const c = document.querySelectorAll('.ivw-layer')[i];"
        " return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]; }",
        view,
    )
    return np.asarray(data[2], np.uint8).reshape(data[1], data[0], 4)


def kernel_layer(session) -> np.ndarray:
    layer = session.paint_layer
    return np.zeros((SIZE, SIZE, 4), np.uint8) if layer is None else np.asarray(layer.convert("RGBA"))
