"""Helpers shared by the browser tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

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


def to_screen(page, selector: str, x: float, y: float) -> tuple[float, float]:
    """Native image pixels -> page coordinates of the element drawn at CSS size."""
    box = page.locator(selector).bounding_box()
    return box["x"] + x * box["width"] / SIZE, box["y"] + y * box["height"] / SIZE


def drag(page, selector: str, points: list[tuple[float, float]], steps: int = 8) -> None:
    """A real press-move-release through ``points`` (native pixels), as page.mouse pointer events."""
    page.mouse.move(*to_screen(page, selector, *points[0]))
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*to_screen(page, selector, *p), steps=steps)
    page.mouse.up()
