"""The InteractiveVideo loop as a marimo app: paint, drag, texts, lambda, Generate, play.

    marimo run notebooks/studio_marimo.py      # the app (code hidden)
    marimo edit notebooks/studio_marimo.py     # the notebook

marimo renders anywidgets (``mo.ui.anywidget``) but not classic ipywidgets, so the ``Studio``
(an ipywidgets box) is not used here: its three anywidgets are, with marimo's own controls for
the texts, lambda and Generate. Set IVCORE_TINY=1 for the tiny random models (tests); otherwise
the trained shapes-world models shipped in the package run on the CPU.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="full", app_title="InteractiveVideo Studio")


@app.cell
def _():
    import html
    import json
    import time

    import marimo as mo
    import numpy as np

    from ivcore import Session
    from ivcore.backends.build import tiny_requested
    from ivwidgets import PaintCanvas, TrajectoryEditor, VideoPlayer
    from ivwidgets._common import session_lock  # the lock the widgets' background jobs take

    return PaintCanvas, Session, TrajectoryEditor, VideoPlayer, html, json, mo, np, session_lock, time, tiny_requested


@app.cell
def _(mo):
    mo.md(
        "# InteractiveVideo Studio\n"
        "**Paint** on x (left), **drag** from a shape to its target on x\u0303 (right), type the texts, "
        "set **\u03bb** (1: the video of x\u0303 alone, 0: of the dragged x\u0303\u2032; between: a blend) "
        "and press **Generate**."
    )
    return


@app.cell
def _(PaintCanvas, Session, TrajectoryEditor, VideoPlayer, mo, tiny_requested):
    # The session and the widgets are made once. A cell that reads a UI element reruns when it changes,
    # so each element is shown by the cell that makes it, and the player (whose frame changes 8 times a
    # second while it plays) is kept as a plain widget, wrapped only where it is shown.
    s = Session.tiny(seed=0) if tiny_requested() else Session.shapes(seed=0)
    # x~' is shown by a cell below: the canvas's own x~' panel stays empty under marimo (the kernel's
    # PNG reaches the page but the panel shows nothing; not understood yet, see docs/frontends.md)
    paint = mo.ui.anywidget(PaintCanvas(s, show_edited=False))
    editor = mo.ui.anywidget(TrajectoryEditor(s))
    player_widget = VideoPlayer()
    # Strokes reach the kernel as events, not as a value the page sets, so marimo does not rerun the
    # cells that read the canvas by itself: a state bumped on each stroke (and undo, redo, clear) does.
    get_strokes, set_strokes = mo.state(0)

    def _on_paint(_canvas) -> None:
        editor.widget.refresh()  # a stroke changes x, hence x~: the editor redraws it and its motion preview
        set_strokes(lambda n: n + 1)

    paint.widget.on_paint(_on_paint)
    mo.hstack([paint, editor], justify="start", wrap=True)
    return editor, get_strokes, paint, player_widget, s


@app.cell
def _(mo, s):
    content = mo.ui.text(value=s.content or "", label="Content", placeholder="text for the image (y)", full_width=True)
    motion = mo.ui.text(value=s.motion or "", label="Motion", placeholder="text for the motion (y')", full_width=True)
    lam = mo.ui.slider(0.0, 1.0, step=0.01, value=float(s.lam), label="\u03bb", show_value=True, include_input=True)
    steps = mo.ui.slider(1, 50, value=int(s.steps), label="Steps", show_value=True)
    frames = mo.ui.slider(1, int(s.video_backend.max_frames), value=int(s.num_frames), label="Frames", show_value=True)
    seed = mo.ui.number(value=0, start=0, step=1, label="Seed")
    generate = mo.ui.run_button(label="Generate", kind="success")
    mo.vstack(
        [
            mo.hstack([content, motion], widths="equal"),
            mo.hstack([lam, steps, frames, seed], justify="start", wrap=True),
            generate,
        ]
    )
    return content, frames, generate, lam, motion, seed, steps


@app.cell
def _(content, editor, lam, mo, motion, s):
    # Texts and lambda go to the session as they change, as in the Studio; a bad value is shown, not raised.
    try:
        if s.content != content.value:
            s.content = content.value
            editor.widget.refresh()  # x~ depends on the content text
        s.motion = motion.value
        s.lam = float(lam.value)
        instructions = "ok"
    except ValueError as exc:  # InstructionError names the field, the value and what is allowed
        instructions = str(exc)
    mo.callout(instructions, kind="danger") if instructions != "ok" else None
    return (instructions,)


@app.cell
def _(editor, get_strokes, instructions, mo, s, session_lock):
    # x~' (the intermediate image with the drags applied), recomputed after each stroke, drag or text
    _ = (get_strokes(), editor.value, instructions)  # rerun on their changes
    with session_lock(s):
        _edited = s.intermediate(edited=True)
    mo.image(_edited, alt="edited intermediate", width=256, rounded=True, caption="x\u0303\u2032 (edited intermediate)")
    return


@app.cell
def _(frames, generate, instructions, mo, player_widget, s, seed, steps, time):
    # Generate runs in this cell (marimo shows a progress bar); the player gets the new video.
    run_info = ""
    if generate.value and instructions == "ok":
        t0 = time.monotonic()
        with mo.status.progress_bar(total=int(steps.value), title="Generating", remove_on_exit=True) as bar:
            video = s.generate(
                seed=int(seed.value or 0),
                num_frames=int(frames.value),
                steps=int(steps.value),
                callback=lambda *args, **kwargs: bar.update(),
                progress=False,
            )
        player_widget.show(video)
        run_info = f"done in {time.monotonic() - t0:.1f} s: {len(video.frames)} frames"
    mo.md(run_info) if run_info else None
    return (run_info,)


@app.cell
def _(mo, player_widget):
    mo.ui.anywidget(player_widget)
    return


@app.cell
def _(editor, get_strokes, html, instructions, json, mo, np, paint, player_widget, run_info, s):
    # What the session holds (the Python side), shown in the page; the browser test reads it too.
    _ = get_strokes()  # rerun after each stroke
    layer = None if s.paint_layer is None else np.asarray(s.paint_layer)
    h, w = (0, 0) if layer is None else layer.shape[:2]
    state = {
        "painted": 0 if layer is None else int((layer[..., 3] > 0).sum()),
        "paint_at_stroke": None if layer is None else layer[h // 2, w // 2].tolist(),
        "paint_far": None if layer is None else layer[5, 5].tolist(),
        "trajectories": [t.to_dict() for t in s.trajectories],
        "lam": s.lam,
        "frames": None if s.last_video is None else list(s.last_video.frames.shape),
        "player_frames": player_widget.num_frames,
        "player_bytes": len(player_widget.value),
        "status": run_info,
        "error": paint.widget.error or editor.widget.error or ("" if instructions == "ok" else instructions),
    }
    mo.Html(
        '<details class="ivw-session-state"><summary>What the session holds</summary>'
        f"<pre>{html.escape(json.dumps(state))}</pre></details>"
    )
    return


if __name__ == "__main__":
    app.run()
