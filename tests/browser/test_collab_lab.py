"""Two people, one Studio: JupyterLab with jupyter-collaboration, two browser contexts on one notebook.

Each browser context is a user of its own (its own cookies: jupyter-collaboration names it as
another collaborator). Both open the same notebook, so they share its cells, its outputs and its
kernel; every widget view on either page is built from the same kernel-side models. What is checked
is what each user sees (pixels of the paint canvas, the trajectory handle, the status line, the
video) and what the kernel holds (a cell prints the Studio's state as JSON):

- ``test_two_users_one_studio``: 10 strokes each, interleaved A, B, A, B: the kernel's
  ``PaintCanvas.strokes`` holds all 20 in the order they were drawn and both canvases show them;
  A drags a trajectory, B moves its handle and A sees it move; A clicks Generate, B sees the steps
  and the new video; A starts a long run, B's Generate is disabled while it runs, B clicks Cancel
  and both see it stop; a third user opening the notebook later sees the strokes, the trajectory,
  the video and the take.
- ``test_bursts_lose_nothing``: 50 strokes from each user at once, their pointer events
  alternating with no pause: none lost, none doubled, each user's strokes in their order; the time
  from a stroke's end in one view to its pixels in the other is measured (median < 0.5 s).

Skips when jupyter-collaboration is not installed (``pip install -e ".[collab]"``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from .browser_helpers import ARTIFACTS, SIZE, drag
from .collab_helpers import (
    BRUSH,
    canvas_box,
    close_user,
    grid,
    kernel_state,
    latencies,
    nearest,
    open_user,
    painted,
    show_studio,
    stroke,
    strokes_together,
    summary,
    wait_kernel,
    wait_painted,
    watch,
)
from .frontends import (
    OUTPUT_TEXT,
    drag_trajectory,
    jupyter_lab,
    notebook,
    require_frontend,
    run_cell,
    wait_js,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STEPS = 5  # the first run: long enough that each step shows, short on the tiny models
LONG_STEPS = 100  # the run that is cancelled: about 25 s on the tiny models, stopped after a step or two
SETUP = f"""\
from ivcore import Session
from ivwidgets import Studio
s = Session.tiny(seed=0)
st = Studio(s, scrub_lams=None)
st.steps.value = {STEPS}
st.frames.value = 4
st.paint.brush_size = {BRUSH}
st"""

STATE = """\
import json
print("RESULT" + json.dumps({
    "strokes": [k["points"][0] for k in st.paint.strokes if k.get("points")],
    "entries": len(st.paint.strokes),
    "trajectories": [t.to_dict()["points"] for t in s.trajectories],
    "takes": len(s.takes),
    "frames": None if s.last_video is None else list(s.last_video.frames.shape),
    "player_frames": st.player.num_frames,
    "running": st.running,
    "status": st.status.value,
    "error": st.error.value + st.paint.error,
}))"""

LONG_RUN = f"st.steps.value = {LONG_STEPS}"

POINTS = """() => {
  const at = (c) => (c ? [Number(c.getAttribute('cx')), Number(c.getAttribute('cy'))] : null);
  return [at(document.querySelector('.ivw-traj .ivw-handle')), at(document.querySelector('.ivw-traj .ivw-target'))];
}"""

# In the page: every status line and progress bar width the Studio shows from now on.
RECORD_STATUS = """(root) => {
  window.__ivwStatus = [];
  const note = () => {
    const status = root.querySelector('.ivw-status');
    const bar = root.querySelector('.progress-bar');
    const entry = [status ? status.textContent : '', bar ? bar.style.width || bar.style.height : ''];
    const last = window.__ivwStatus[window.__ivwStatus.length - 1];
    if (!last || last[0] !== entry[0] || last[1] !== entry[1]) window.__ivwStatus.push(entry);
  };
  new MutationObserver(note).observe(root, {subtree: true, childList: true, characterData: true,
                                            attributes: true, attributeFilter: ['style']});
  note();
}"""

MAIN_VIDEO = ".ivw-main-player video"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """JupyterLab with jupyter-collaboration (on by default once installed) over a temp root."""
    require_frontend("jupyterlab")
    pytest.importorskip(
        "jupyter_collaboration", reason="jupyter-collaboration is not installed (pip install -e '.[collab]')"
    )
    notebooks = {"studio.ipynb": notebook(SETUP, STATE, LONG_RUN), "bursts.ipynb": notebook(SETUP, STATE)}
    with jupyter_lab(tmp_path_factory.mktemp("collab"), notebooks) as url:
        yield url


@pytest.fixture()
def users(browser, lab: str, request: pytest.FixtureRequest) -> Iterator[list]:
    """Open users as the test asks (``users_on(name, notebook)``); their contexts close at the end,
    with a screenshot and the console of each kept under artifacts/ when the test failed."""
    opened: list = []

    def open_one(name: str, path: str):
        # a workspace per user and notebook: a workspace reopens the tabs it had, one notebook a page here
        workspace = f"{path.rsplit('.', 1)[0]}-{name}"
        page = open_user(browser, f"{lab}lab/workspaces/{workspace}/tree/{path}", name)
        opened.append(page)
        return page

    yield open_one
    report = getattr(request.node, "rep_call", None)
    failed = report is not None and report.failed
    for page in opened:
        close_user(page, failed, request.node.name)


def _shared_studio(pages: list) -> None:
    """Run the Studio's cell from the first page; every page shows the Studio and its x~."""
    from playwright.sync_api import expect

    first = pages[0]
    collaborative = first.evaluate("window.jupyterapp.shell.currentWidget.context.model.collaborative")
    assert collaborative is True, "the notebook is not a shared (jupyter-collaboration) document"
    run_cell(first, 0)
    first.locator(".ivw-studio").wait_for(state="visible", timeout=180_000)
    assert "Error" not in first.evaluate(OUTPUT_TEXT, 0)
    for page in pages[1:]:
        if show_studio(page):
            print(f"user {page.user_name} saw the Studio's text repr (an untrusted output) and trusted the notebook")
    for page in pages:
        expect(page.locator(".ivw-traj .ivw-base")).to_have_js_property("naturalWidth", SIZE, timeout=120_000)


def _points(page) -> list:
    """The first trajectory's handle and target as the editor on ``page`` draws them (native px)."""
    return page.evaluate(POINTS)


def _close(points: list, wanted: list[tuple[float, float]]) -> bool:
    return all(
        p is not None and abs(p[0] - w[0]) < 0.6 and abs(p[1] - w[1]) < 0.6 for p, w in zip(points, wanted, strict=True)
    )


def _wait_points(page, wanted: list[tuple[float, float]], timeout_s: float = 30) -> list:
    """Wait until ``page`` draws the handle and target at ``wanted``; returns what it draws last."""
    deadline = time.monotonic() + timeout_s
    while True:
        points = _points(page)
        if _close(points, wanted) or time.monotonic() > deadline:
            return points
        time.sleep(0.2)


def _stroke_problems(name: str, seen: dict[str, list[bool]], centres: list) -> list[str]:
    missing = [k for k, ok in enumerate(seen["at"]) if not ok]
    smeared = [k for k, bad in enumerate(seen["below"]) if bad]
    out = []
    if missing:
        out.append(f"the canvas of {name} misses {len(missing)} of {len(centres)} strokes: {missing}")
    if smeared:
        out.append(f"the canvas of {name} has paint 3 px below strokes {smeared}")
    return out


def _side_by_side(pages: list) -> None:
    """The two users' pages side by side, small, for docs/images/together.png (artifacts/ first).

    The file browser is closed and the page made tall for the shot, so that it holds the whole Studio
    under JupyterLab's bar (where each collaborator's avatar shows).
    """
    import io

    from PIL import Image

    shots = []
    for page in pages:
        page.evaluate("window.jupyterapp.shell.collapseLeft()")
        size = page.viewport_size
        page.set_viewport_size({"width": size["width"], "height": 1600})
        studio = page.locator(".ivw-studio")
        studio.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(1000)  # JupyterLab lays the panels out again
        box = studio.bounding_box()
        bottom = min(1600, box["y"] + box["height"] + 8)
        shot = page.screenshot(clip={"x": 0, "y": 0, "width": size["width"], "height": bottom})
        shots.append(Image.open(io.BytesIO(shot)).convert("RGB"))
        page.set_viewport_size(size)
    gap = 12
    width = sum(s.width for s in shots) + gap * (len(shots) - 1)
    height = max(s.height for s in shots)
    both = Image.new("RGB", (width, height), (90, 90, 90))
    x = 0
    for shot in shots:
        both.paste(shot, (x, 0))
        x += shot.width + gap
    both.thumbnail((1300, 1300))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    both.quantize(colors=128).save(ARTIFACTS / "together.png", optimize=True)


def test_two_users_one_studio(users) -> None:
    from playwright.sync_api import expect

    a = users("a", "studio.ipynb")
    b = users("b", "studio.ipynb")
    _shared_studio([a, b])
    problems: list[str] = []

    # 1. ten strokes each, in turns A, B, A, B: all 20 in the kernel, in that order, on both canvases
    centres = grid(5, 4)
    boxes = {a: canvas_box(a), b: canvas_box(b)}
    for page in (a, b):
        watch(page, centres)
    for k, centre in enumerate(centres):
        page, other = (a, b) if k % 2 == 0 else (b, a)
        stroke(page, boxes[page], centre)
        # in turns, as two people do: the next stroke once the other page shows this one. Strokes drawn
        # in two browsers at the same moment have no order but the kernel's (the burst test below)
        wait_painted(other, [centre], timeout_s=15)
    state = wait_kernel(a, 1, lambda s: len(s["strokes"]) >= len(centres), timeout_s=30)
    assert state["error"] == "", state["error"]
    order = [nearest(p, centres) for p in state["strokes"]]
    if order != list(range(len(centres))):
        problems.append(f"kernel strokes (by centre, in arrival order) {order}, wanted 0..{len(centres) - 1}")
    for name, page in (("A", a), ("B", b)):
        problems += _stroke_problems(name, wait_painted(page, centres, timeout_s=15), centres)
    a_to_b, lost_ab = latencies(a, b, list(range(0, len(centres), 2)))
    b_to_a, lost_ba = latencies(b, a, list(range(1, len(centres), 2)))
    print(
        f"interleaved strokes: A->B {summary(a_to_b)}, never seen {lost_ab}; B->A {summary(b_to_a)}, unseen {lost_ba}"
    )

    # 2. A drags a trajectory; B sees it, moves its handle; A sees the handle move
    drag_trajectory(a)
    expect(b.locator(".ivw-traj .ivw-list li")).to_have_count(1, timeout=30_000)
    seen = _wait_points(b, [(20, 20), (44, 36)])  # B sees A's trajectory where A left it
    assert _close(seen, [(20, 20), (44, 36)]), f"B draws A's trajectory at {seen}"
    b.locator(".ivw-traj .ivw-overlay").scroll_into_view_if_needed()
    drag(b, ".ivw-traj .ivw-overlay", [(20, 20), (12, 50)])  # B moves the handle
    moved = _wait_points(a, [(12, 50), (44, 36)])
    assert _close(moved, [(12, 50), (44, 36)]), f"A draws the handle and target at {moved}"
    state = wait_kernel(a, 1, lambda s: s["trajectories"] and abs(s["trajectories"][0][0][1] - 50) < 0.6)
    assert _close(state["trajectories"][0], [(12, 50), (44, 36)]) and len(state["trajectories"]) == 1, state

    # 3. A clicks Generate: B sees the steps go by and the new video
    b.locator(".ivw-studio").evaluate(RECORD_STATUS)
    a.locator(".ivw-generate").click()
    for page in (b, a):
        wait_js(page, MAIN_VIDEO, "v => v.src.startsWith('blob:') && v.readyState >= 2", 300_000)
        expect(page.locator(".ivw-status")).to_contain_text("done", timeout=60_000)
        assert page.locator(MAIN_VIDEO).evaluate("v => v.duration") == pytest.approx(4 / 8, abs=0.13)
    shown = b.evaluate("window.__ivwStatus")
    steps = [text for text, _ in shown if re.match(rf"step \d+/{STEPS}\b", text)]
    assert steps, f"B saw no progress: {shown}"
    assert any(width not in ("", "0%") for _, width in shown), f"B's progress bar never moved: {shown}"
    state = kernel_state(a, 1)
    assert state["takes"] == 1 and state["frames"] == [4, SIZE, SIZE, 3] and state["player_frames"] == 4, state

    # 4. A starts a long run; B cannot start another, clicks Cancel; both see it stop, the video stays
    run_cell(a, 2)
    a.locator(".ivw-generate").click()
    expect(b.locator(".ivw-status")).to_contain_text(re.compile(rf"step \d+/{LONG_STEPS}"), timeout=120_000)
    expect(b.locator(".ivw-generate")).to_be_disabled()  # a second Generate from B starts nothing
    expect(b.locator(".ivw-cancel")).to_be_enabled()
    b.locator(".ivw-cancel").click()
    for page in (a, b):
        expect(page.locator(".ivw-status")).to_contain_text("cancelled", timeout=60_000)
        expect(page.locator(".ivw-generate")).to_be_enabled(timeout=30_000)
        expect(page.locator(".ivw-cancel")).to_be_disabled(timeout=30_000)
    state = kernel_state(a, 1)
    assert not state["running"] and state["takes"] == 1 and state["frames"] == [4, SIZE, SIZE, 3], state
    assert "cancelled" in state["status"] and state["error"] == "", state

    # 5. a late joiner sees the strokes the kernel holds, the moved trajectory, the video and the take
    c = users("c", "studio.ipynb")
    c.locator(".ivw-studio").wait_for(state="visible", timeout=180_000)
    wait_js(c, MAIN_VIDEO, "v => v.src.startsWith('blob:') && v.readyState >= 2", 120_000)
    assert c.locator(MAIN_VIDEO).evaluate("v => v.duration") == pytest.approx(4 / 8, abs=0.13)
    expect(c.locator(".ivw-traj .ivw-list li")).to_have_count(1, timeout=30_000)
    joined = _wait_points(c, [(12, 50), (44, 36)])
    assert _close(joined, [(12, 50), (44, 36)]), f"the late joiner draws the trajectory at {joined}"
    expect(c.locator(".ivw-takes .ivw-take")).to_have_count(1, timeout=30_000)
    expect(c.locator(".ivw-status")).to_contain_text("cancelled")
    held = sorted({nearest(p, centres) for p in state["strokes"]})
    c.locator(".ivw-paint").scroll_into_view_if_needed()
    late = wait_painted(c, [centres[k] for k in held], timeout_s=30)
    assert all(late["at"]), f"the late joiner's canvas misses strokes the kernel holds: {late}"
    if len(held) < len(centres):
        shown_late = painted(c, centres)["at"]
        problems.append(f"late joiner shows {sum(shown_late)} of {len(centres)} strokes (the kernel holds {len(held)})")

    _side_by_side([a, b])  # for docs/frontends.md: the end of the session, as both users see it
    assert not problems, "\n".join(problems)


def test_bursts_lose_nothing(users) -> None:
    a = users("a", "bursts.ipynb")
    b = users("b", "bursts.ipynb")
    _shared_studio([a, b])

    centres = grid(10, 10)
    half = len(centres) // 2
    own = {a: list(range(half)), b: list(range(half, len(centres)))}
    boxes = [canvas_box(a), canvas_box(b)]
    for page in (a, b):
        watch(page, centres)
    clock = time.monotonic()
    strokes_together([a, b], boxes, [[centres[k] for k in own[a]], [centres[k] for k in own[b]]])
    drawn_s = time.monotonic() - clock

    state = wait_kernel(a, 1, lambda s: len(s["strokes"]) >= len(centres), timeout_s=90)
    assert state["error"] == "", state["error"]
    order = [nearest(p, centres) for p in state["strokes"]]
    problems: list[str] = []
    if len(order) != len(centres) or sorted(order) != list(range(len(centres))):
        lost = sorted(set(range(len(centres))) - set(order))
        doubled = sorted({k for k in order if order.count(k) > 1})
        problems.append(f"kernel holds {len(order)} strokes of {len(centres)}: lost {lost}, doubled {doubled}")
    for page, name in ((a, "A"), (b, "B")):
        mine = [k for k in order if k in own[page]]
        if mine != sorted(mine):
            problems.append(f"{name}'s strokes arrived out of their order: {mine}")
    for name, page in (("A", a), ("B", b)):
        problems += _stroke_problems(name, wait_painted(page, centres, timeout_s=30), centres)

    a_to_b, lost_ab = latencies(a, b, own[a])
    b_to_a, lost_ba = latencies(b, a, own[b])
    both = a_to_b + b_to_a
    print(
        f"bursts: {len(centres)} strokes drawn in {drawn_s:.1f} s; stroke end -> pixels in the other view: "
        f"A->B {summary(a_to_b)}; B->A {summary(b_to_a)}; all {summary(both)}; "
        f"never seen: A->B {lost_ab}, B->A {lost_ba}"
    )
    if lost_ab or lost_ba:
        problems.append(f"strokes never seen in the other view: A->B {lost_ab}, B->A {lost_ba}")
    if both:
        import statistics

        median = statistics.median(both)
        if median >= 0.5:
            problems.append(f"median stroke-to-other-view time {median:.3f} s (target < 0.5 s)")
    assert not problems, "\n".join(problems)
