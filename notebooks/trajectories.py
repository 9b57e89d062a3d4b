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
# # Trajectories: move things, pin things, pan the camera
#
# On Colab: *File > Upload notebook*, then install the project first as colab_gpu.ipynb does.
#
# A Trajectory Instruction drags the content of a region from a handle point along a path to a
# target. `Trajectory(points=[handle, ..., target], mask=None, radius=..., easing=..., start=0,
# end=1, kind=...)`:
#
# | field | meaning |
# |---|---|
# | `points` | (x, y) pixels: handle first, then path points, target last |
# | `mask` | bool (H, W) region that moves; `None` means a disk of `radius` around the handle |
# | `easing` | `"linear"` or `"ease-in-out"` along the path |
# | `start`, `end` | the part of the clip (0..1) during which it moves |
# | `kind` | `"object"` moves its region, `"anchor"` pins its region still, `"camera"` pans the whole frame |
#
# The motion preview applies them to x~ without diffusion (instant); the generated video uses
# them as conditions of the video model. On a GPU this notebook uses real weights; on a CPU the
# shapes-world models of `Session.shapes()` (64 x 64, 8 frames), which were trained with
# trajectories: the shape you drag follows its path in the generated video.

# %%
import numpy as np
from PIL import Image

from ivcore import Trajectory
from ivcore.shapes import world
from ivwidgets.notebooks import gpu_or_shapes_session, to_model

# Real weights on a GPU (SD1.5 img2img + PIA: a few GB to download, a T4 is enough); on a CPU small
# diffusion models trained on the shapes world (ivcore.shapes.world), shipped in the package.
# to_model scales a 64 x 64 world picture, paint layer or mask to the model's size (s.size).
s = gpu_or_shapes_session(seed=0)
u = s.size[0] / world.SIZE  # the scene lives in 64 x 64 world pixels; u converts them to model pixels
s

# %%
scene = world.Scene("sky", (world.Shape("circle", "red", 18, 18, 14), world.Shape("square", "white", 46, 34, 14)))
s.image = to_model(world.render(scene), s.size)
s.content = scene.caption()
s.content_strength = 0.0  # 0: x~ is the picture itself, so the scene's masks fit it exactly
s.motion = "the white square follows the path"
s.image.resize((256, 256), Image.NEAREST)

# %% [markdown]
# ## An object and an anchor
#
# The white square is dragged along a curve: its mask is the square's own shape
# (`world.shape_mask(scene, 1)`, a bool array), so exactly its pixels move. The red circle is an
# **anchor**: its pixels stay where they are, on top of everything that moves.

# %%
import matplotlib.pyplot as plt


def curve(start, bend, end, n=9):
    """n points of the quadratic Bezier curve from `start` to `end`, pulled towards `bend` (world pixels)."""
    t = np.linspace(0, 1, n)[:, None]
    p = (1 - t) ** 2 * np.array(start) + 2 * (1 - t) * t * np.array(bend) + t**2 * np.array(end)
    return [(float(x * u), float(y * u)) for x, y in p]


square = Trajectory(points=curve((46, 34), (38, 54), (24, 44)), mask=to_model(world.shape_mask(scene, 1), s.size))
anchor = Trajectory(points=[(18 * u, 18 * u)] * 2, mask=to_model(world.shape_mask(scene, 0), s.size), kind="anchor")
camera = Trajectory(points=[(32 * u, 32 * u), (16 * u, 32 * u)], kind="camera")
COLORS = {"object": "magenta", "anchor": "lime", "camera": "cyan"}


def show_paths(title):
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    axes[0].imshow(s.intermediate(edited=False), interpolation="nearest")
    for t in s.trajectories:
        xs, ys = np.transpose(t.points)
        axes[0].plot(xs, ys, "-o", color=COLORS[t.kind], ms=3, lw=1.5)
        axes[0].annotate(t.kind, t.points[-1], color=COLORS[t.kind], fontsize=8)
        if t.mask is not None:
            axes[0].contour(t.mask, levels=[0.5], colors=COLORS[t.kind], linewidths=1)
    axes[0].set_title(f"x~ and the paths: {title}")
    axes[1].imshow(s.intermediate(), interpolation="nearest")
    axes[1].set_title("x~' (every region at its target)")
    for ax in axes:
        ax.set_axis_off()
    plt.show()


s.trajectories = [square, anchor]
show_paths("object + anchor")

# %% [markdown]
# ## Motion preview: no diffusion, instant
#
# `s.motion_preview()` is what the trajectory editor loops while you drag. Frame *i* of *F* sits
# at clip time i / (F - 1); holes left by moving objects are filled from the background.

# %%
preview_objects = s.motion_preview()
preview_objects.grid(title="motion preview: the white square along its path, the red circle anchored")

# %% [markdown]
# ## Generate, and compare side by side
#
# In the default `trajectory_mode = "path"` the edited branch is conditioned on the animated frame
# of each time step; `"endpoint"` uses the paper's single x~' instead. lam = 0 follows the
# trajectories only; raise it to mix in the unedited video. `world.track` finds the centre of a
# colour in every frame, so we can check where the white square went.

# %%
s.lam = 0.0
video_objects = s.generate(seed=0)

fig, axes = plt.subplots(2, 1, figsize=(12, 3.6))
preview_objects.grid(ax=axes[0], title="motion preview (no diffusion)")
video_objects.grid(ax=axes[1], title=f"generated, trajectory_mode = {s.trajectory_mode!r}, lam = {s.lam}")
plt.tight_layout()
plt.show()


def centres(video, colour):
    return " ".join("-" if c is None else f"({c[0] / u:.0f},{c[1] / u:.0f})" for c in world.track(video.frames, colour))


print("white square, preview:  ", centres(preview_objects, "white"))
print("white square, generated:", centres(video_objects, "white"))
print("red circle, generated:  ", centres(video_objects, "red"))

# %% [markdown]
# ## A camera pan
#
# A `"camera"` trajectory moves the whole frame by its handle's displacement (edges are
# replicated): its handle moves left, so the picture's content slides left and the view pans to
# the right, which is what the motion text "the camera pans right" says in the shapes world. Its
# mask is ignored, and an anchor would stay put in frame coordinates (like a caption), so this
# set has none.

# %%
s.trajectories = [camera]
s.motion = "the camera pans right"
show_paths("camera")
preview_camera = s.motion_preview()
video_camera = s.generate(seed=0)

fig, axes = plt.subplots(2, 1, figsize=(12, 3.6))
preview_camera.grid(ax=axes[0], title="motion preview: camera pan")
video_camera.grid(ax=axes[1], title="generated")
plt.tight_layout()
plt.show()

# %%
from IPython.display import HTML

clips = {
    "preview: object + anchor": preview_objects,
    "generated": video_objects,
    "preview: camera pan": preview_camera,
    "generated ": video_camera,
}
HTML(
    '<div style="display:flex;flex-wrap:wrap;gap:12px">'
    + "".join(f"<div>{v._repr_html_()}<br>{name}</div>" for name, v in clips.items())
    + "</div>"
)

# %% [markdown]
# ## Try it by hand
#
# `TrajectoryEditor(s)` shows x~: press on a handle and drag to the target, add path points,
# mark anchors and brush masks; the preview follows the drag. Its trajectories land in
# `s.trajectories`. With the shapes models, give the shape you drag the world's motion text for
# it, as above: `s.motion = "the red circle follows the path"`.

# %%
from ivwidgets import TrajectoryEditor

editor = TrajectoryEditor(s)
editor
