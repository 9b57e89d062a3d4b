# ---
# jupyter:
#   colab:
#     provenance: []
#     toc_visible: true
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   language_info:
#     name: python
# ---

# %% [markdown]
# # Takes and stories: keep every try, compare, go back, and continue a clip segment by segment
#
# On Colab: *File > Upload notebook*, then install the project first as colab_gpu.ipynb does.
#
# Every successful `generate` keeps a **take**: its video, every setting as plain data, the seed
# and the models. Compare takes side by side, list what differs, and `restore` one: the next
# `generate()` repeats it exactly (from the caches, in milliseconds). `continue_from` makes the
# last frame of a take the image of the next **segment** of a story, so each segment gets its own
# paint, drags and motion text. This notebook runs on a CPU with the shapes-world models of
# `Session.shapes()` (64 x 64, 8 frames).

# %%
import numpy as np

from ivcore import Session, Video
from ivcore.shapes import world
from ivcore.shapes.demo import shapes_scene
from ivcore.shapes.evaluate import painted_square

s = Session.shapes(seed=0)
scene = shapes_scene()
s.motion = "the red circle moves right"
layer, _ = painted_square(scene, "yellow", size=12, at=(14, 36))
s.paint(layer)  # a yellow square painted on x
s.content = world.Scene(scene.background, (*scene.shapes, world.Shape("square", "yellow", 14, 36, 12))).caption()

# %% [markdown]
# ## Two takes at two lambdas, side by side
#
# Lambda weighs the unedited branch (Eq. 4): at 0.2 the painted square is in the video, at 0.9
# it fades. Both generations are kept in `s.takes`.

# %%
for lam in (0.2, 0.9):
    s.lam = lam
    s.generate(seed=0, progress=False)
a, b = s.takes[-2:]
print(a, b, sep="\n")
print("differs in:", a.diff(b))
Video.side_by_side([a.video, b.video], labels=[f"lam {a.lam}", f"lam {b.lam}"])

# %% [markdown]
# ## Go back to a take
#
# `restore` sets every instruction back; the next `generate()` equals the take's video, bitwise
# on the CPU, and costs a cache lookup (benchmarks/take_cost.py).

# %%
s.lam, s.motion = 0.5, "nothing moves"
s.restore(a)
again = s.generate(progress=False)
print("lambda", s.lam, "| bitwise equal:", np.array_equal(again.frames, a.video.frames), "|", s.stats["denoise"])

# %% [markdown]
# ## A story: four segments trace a square
#
# Each segment starts from the last frame of the one before (`s.continue_from()`), with its own
# motion text: right, down, left, up. `s.story.video` joins them, each seam frame once.
# `ivcore.story.render(s, segments)` does the loop below for a list of segments, and
# `python -m ivcore story spec.json` renders one from a file.

# %%
s.story.clear()
s.clear_paint()
s.trajectories = []
s.image = world.render(world.Scene("sky", (world.Shape("circle", "red", 18, 18, 12),)))
s.content, s.lam = "a red circle on sky", 0.0
for i, way in enumerate(["right", "down", "left", "up"]):
    s.motion = f"the red circle moves {way}"
    s.generate(seed=i, progress=False)
    s.continue_from()  # this take joins the story; its last frame is the next segment's image
story = s.story.video
track = [world.centroid(world.segment(f, "red")) for f in story.frames[::7]]
print(s.story, "| the red circle at each seam:", [(round(x), round(y)) for x, y in track])
story

# %%
story.grid(cols=10)

# %% [markdown]
# `s.story.pop()` drops the last segment and sets back the instructions it was made from, to try
# it again. `s.save(folder)` keeps the takes (settings, thumbnails, the exact frames of those in
# memory) and the story; `Session.load(folder)` brings them back.

# %%
s.save("stories_session")
back = Session.load("stories_session")
print(len(back.takes), "takes,", back.story)
