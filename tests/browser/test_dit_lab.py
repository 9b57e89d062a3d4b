"""Level 2 on a DiT family (issue 36 item 3): the Studio in a real JupyterLab over a tiny Wan 2.1 session.

The notebook builds `Session.from_pretrained(<tiny SD1.5 folder>, <tiny Wan 2.1 I2V folder>)`, the path real
weights take, and shows the Studio. The test moves the frame slider with the keyboard (Wan's frame counts
are 4k+1, so one arrow press moves it by 4), clicks Generate, waits for the player to play the video, then
reads the kernel: the video has the slider's frame count at the family's size.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .frontends import (
    OUTPUT_TEXT,
    cell_output,
    jupyter_lab,
    notebook,
    open_notebook,
    require_frontend,
    run_cell,
    wait_video_playing,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SETUP = """\
import torch
from ivcore import Session
from ivwidgets import Studio
s = Session.from_pretrained({image!r}, {video!r}, device="cpu", dtype=torch.float32)
s.steps = 2
st = Studio(s)
st.scrub_lams = None  # no background sweep after the generate: one run to wait for
st.frames.add_class("ivw-frames")
st"""

CHECK = """\
import json
assert st.wait(300)
print("RESULT" + json.dumps({
    "backend": type(s.video_backend).__name__,
    "slider": [st.frames.min, st.frames.step, st.frames.value],
    "num_frames": s.num_frames,
    "frames": None if s.last_video is None else list(s.last_video.frames.shape),
    "fps": None if s.last_video is None else s.last_video.fps,
    "player_frames": st.player.num_frames,
    "player_bytes": len(st.player.value),
    "status": st.status.value,
    "error": st.error.value,
}))"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, tiny_model_dirs) -> Iterator[str]:
    require_frontend("jupyterlab")
    from ivcore.testing import mirror

    root = tmp_path_factory.mktemp("dit-lab")
    wan = mirror(root / "models" / "wan2.1-i2v", "wan2.1-i2v")
    setup = SETUP.format(image=str(tiny_model_dirs["image_model"]), video=str(wan))
    with jupyter_lab(root, {"wan.ipynb": notebook(setup, CHECK)}) as url:
        yield url


def slider_readout(page) -> str:
    return page.locator(".ivw-frames .widget-readout").inner_text().strip()


def test_the_studio_on_a_wan_session_in_jupyterlab(app_page, lab: str) -> None:
    from playwright.sync_api import expect

    page = app_page
    open_notebook(page, lab + "lab/tree/wan.ipynb")
    run_cell(page, 0)
    page.locator(".ivw-studio").wait_for(state="visible", timeout=180_000)
    assert "Error" not in page.evaluate(OUTPUT_TEXT, 0)

    # the frame slider: Wan's native 9 frames, one key press is one step of 4
    handle = page.locator(".ivw-frames .noUi-handle")
    handle.scroll_into_view_if_needed()
    expect(page.locator(".ivw-frames .widget-readout")).to_have_text("9", timeout=30_000)
    handle.focus()
    page.keyboard.press("ArrowLeft")
    expect(page.locator(".ivw-frames .widget-readout")).to_have_text("5", timeout=30_000)
    page.keyboard.press("ArrowRight")
    expect(page.locator(".ivw-frames .widget-readout")).to_have_text("9", timeout=30_000)
    page.keyboard.press("ArrowLeft")
    assert slider_readout(page) == "5"

    page.locator(".ivw-generate").click()
    wait_video_playing(page)
    expect(page.locator(".ivw-status")).to_contain_text("done", timeout=60_000)

    run_cell(page, 1)
    text = cell_output(page, 1, "RESULT")
    assert "RESULT" in text, text
    result = json.loads(text.split("RESULT", 1)[1])
    assert result["error"] == "", result["error"]
    assert result["backend"] == "WanVideoBackend"
    assert result["slider"] == [1, 4, 5]
    # the generate ran with the slider's count (the Studio passes it per run; s.num_frames keeps the default)
    assert result["frames"] == [5, 48, 64, 3] and result["num_frames"] == 9  # the tiny Wan folder's 64 x 48
    assert result["player_frames"] == 5 and result["player_bytes"] > 0
    assert result["status"].startswith("done")
    # the page plays that video: 5 frames at the tiny Wan folder's 8 fps (real Wan folders: 16)
    assert result["fps"] == 8
    duration = page.locator(".ivw-player.ivw-main-player video").evaluate("v => v.duration")
    assert duration == pytest.approx(5 / 8, abs=0.13)
