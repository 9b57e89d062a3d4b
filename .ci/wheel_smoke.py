"""Run in a fresh venv where only the built wheel is installed: the main job and the widgets work.

A missing package-data entry (ES modules, CSS, the shapes weights) fails here, not on a user's machine.
"""

import sys
from pathlib import Path

import av
import numpy as np

import ivcore
import ivwidgets
from ivcore import Session
from ivcore.shapes import world

checkout = Path(sys.argv[1]).resolve()
assert checkout not in Path(ivcore.__file__).resolve().parents, f"ivcore imported from the checkout: {ivcore.__file__}"

# the main job's mp4 (written by `python -m ivcore demo` just before) shows the world's shapes, not noise
with av.open("demo.mp4") as container:
    frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
assert len(frames) == 8, len(frames)
sky = np.linalg.norm(frames[0][:4, :].reshape(-1, 3).astype(float) - world.SKY_TOP, axis=-1).mean()
assert sky < 40, f"the demo's top rows are not the sky ({sky:.0f} away)"
assert world.segment(frames[0], "red").sum() > 40, "the demo's red circle is missing"

# widgets: the ES modules ship in the wheel and a Studio builds over the shipped models
studio = ivwidgets.Studio(Session.shapes(steps=2))
for widget in (studio.paint, studio.player):
    assert "export default" in str(widget._esm), type(widget).__name__
# let the widgets' background jobs (x~, the motion preview) finish before the interpreter exits
assert studio.editor.wait(120) and studio.wait(120)
print("wheel smoke test: ok", ivcore.__file__)
