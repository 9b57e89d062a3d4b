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
# # What lambda does (Eq. 4)
#
# On Colab: *File > Upload notebook*, then install the project first as colab_gpu.ipynb does.
#
# InteractiveVideo runs the video model on two intermediate images at once: x~ = P_img(x, y)
# (what the image model made) and x~' (x~ after your paint strokes and drags). At every denoising
# step *t* the UNet predicts the noise twice from the **same** noisy latent, step and text:
# eps_t conditioned on z0 = E(x~), and eps'_t conditioned on z0' = E(x~'). The sampler then
# steps with the blend
#
# $$\hat\epsilon_t = \lambda\,\epsilon_t + (1-\lambda)\,\epsilon'_t .$$
#
# So lambda = 1 gives exactly the video of x~ and lambda = 0 exactly the video of x~';
# in between, the two conditions pull on one and the same video. On a GPU this notebook uses
# real weights; on a CPU the shapes-world models of `Session.shapes()` (64 x 64, 8 frames),
# trained on flat coloured shapes. The edit here is a yellow square painted into the sky: watch
# it stand in the video at lambda = 0 and fade out as lambda goes to 1.

# %%
import numpy as np

from ivcore.shapes import world
from ivcore.shapes.evaluate import painted_square
from ivwidgets.notebooks import gpu_or_shapes_session, to_model

# Real weights on a GPU (SD1.5 img2img + PIA: a few GB to download, a T4 is enough); on a CPU small
# diffusion models trained on the shapes world (ivcore.shapes.world), shipped in the package.
# to_model scales a 64 x 64 world picture, paint layer or mask to the model's size (s.size).
s = gpu_or_shapes_session(seed=0)
s

# %%
import matplotlib.pyplot as plt

scene = world.Scene("sky", (world.Shape("circle", "red", 18, 18, 14), world.Shape("square", "white", 46, 34, 14)))
s.image = to_model(world.render(scene), s.size)
s.content = scene.caption()
s.motion = "the red circle moves down"
s.content_strength = 0.0  # 0: x~ is the picture itself
layer, painted = painted_square(scene, "yellow")  # the edit: a yellow square where the sky is free
s.paint(to_model(layer, s.size))

fig, axes = plt.subplots(1, 2, figsize=(6, 3))
pictures = {"x~  (lam = 1)": s.intermediate(edited=False), "x~'  (lam = 0)": s.intermediate()}
for ax, (title, im) in zip(axes, pictures.items(), strict=True):
    ax.imshow(im, interpolation="nearest")
    ax.set_title(title)
    ax.set_axis_off()
plt.show()

# %% [markdown]
# ## A lambda sweep in one batched run
#
# `s.sweep(lams=[...])` denoises every lambda together: at each step one UNet call covers the
# rows that are needed (lambda 1 needs only the x~ branch, lambda 0 only x~', the others both),
# and it returns one `Video` per lambda, the same frames `s.generate(lam=...)` gives.

# %%
import time

lams = [0.0, 0.25, 0.5, 0.75, 1.0]
start = time.perf_counter()
videos = s.sweep(lams=lams, seed=0)
sweep_s = time.perf_counter() - start

start = time.perf_counter()
check = s.generate(seed=0, lam=0.5)
one_s = time.perf_counter() - start
diff = np.abs(check.frames.astype(int) - videos[2].frames.astype(int)).max()
print(f"sweep: {len(lams)} videos in {sweep_s:.1f}s; one generate(lam=0.5): {one_s:.1f}s")
print(f"largest pixel difference between the two lam = 0.5 videos: {diff}")

# %% [markdown]
# ## Frames across lambda
#
# Rows are lambda values, columns frames: the red circle moves down in every row (the motion text
# is the same), while the painted square is solid at lambda = 0 and fades as lambda grows. The
# right column shows |video(lambda) - video(1)|: where each video still differs from the
# unedited one.

# %%
ref1 = videos[-1].frames.astype(float)
gap = np.abs(videos[0].frames.astype(float) - ref1).mean(axis=(0, 3)).max() or 1.0
fig, axes = plt.subplots(len(lams), 2, figsize=(12, 1.6 * len(lams)), gridspec_kw={"width_ratios": [4, 1]})
for row, (lam, v) in enumerate(zip(lams, videos, strict=True)):
    v.grid(ax=axes[row, 0])
    axes[row, 0].set_ylabel(f"lam = {lam}")
    axes[row, 0].set_axis_on()
    axes[row, 0].set_xticks([])
    axes[row, 0].set_yticks([])
    diff = np.abs(v.frames.astype(float) - ref1).mean(axis=(0, 3))
    axes[row, 1].imshow(diff, cmap="magma", vmin=0, vmax=gap)
    axes[row, 1].set_axis_off()
axes[0, 1].set_title("|v(lam) - v(1)|")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## How much of the painted square is left?
#
# `world.segment(frame, "yellow")` finds the yellow pixels of a frame. Compared with the painted
# mask, the overlap (IoU) measures how much of the edit each video keeps: all of it at
# lambda = 0, none of it at lambda = 1.

# %%
mask = to_model(painted, s.size)


def square_iou(video):
    ious = []
    for frame in video.frames:
        yellow = world.segment(frame, "yellow")
        ious.append((yellow & mask).sum() / max(1, (yellow | mask).sum()))
    return float(np.mean(ious))


ious = [square_iou(v) for v in videos]
for lam, iou in zip(lams, ious, strict=True):
    print(f"lam = {lam:4}: IoU with the painted square {iou:.2f}")
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(lams, ious, "o-", color="goldenrod")
ax.set_xlabel("lambda")
ax.set_ylabel("IoU with the painted square")
ax.set_ylim(-0.05, 1.05)
plt.show()


# %% [markdown]
# ## How far is each video from the two ends?
#
# For each lambda: the distance of its video to the lambda = 1 video and to the lambda = 0
# video, divided by the distance between those two. If the video were linear in lambda, the two
# curves would be the dashed straight lines; the sampler is not linear (each step starts from the
# last), so they bend. They still start and end exactly at 0 and 1.


# %%
def dist(a, b):
    return float(np.sqrt(np.mean((a.frames.astype(float) - b.frames.astype(float)) ** 2)))


ends = dist(videos[0], videos[-1]) or 1.0
to_1 = [dist(v, videos[-1]) / ends for v in videos]
to_0 = [dist(v, videos[0]) / ends for v in videos]
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.plot(lams, to_1, "o-", label="to the lam = 1 video (x~)")
ax.plot(lams, to_0, "s-", label="to the lam = 0 video (x~')")
ax.plot([0, 1], [1, 0], "--", color="gray", lw=0.8)
ax.plot([0, 1], [0, 1], "--", color="gray", lw=0.8)
ax.set_xlabel("lambda")
ax.set_ylabel("relative RMS distance")
ax.legend()
plt.show()

# %% [markdown]
# ## Lambda per step: a schedule
#
# `lam` can also be a list with one weight per denoising step (a list of another length is
# resampled linearly to the number of steps). Early steps lay out the scene, late steps add
# detail, so a ramp from 0 to 1 takes the layout from the edit x~' and the detail from x~.

# %%
steps = s.steps
ramp = list(np.linspace(0.0, 1.0, steps))
fig, ax = plt.subplots(figsize=(5, 2.8))
ax.step(range(steps), [0.5] * steps, where="mid", label="constant 0.5")
ax.step(range(steps), ramp, where="mid", label="ramp 0 -> 1")
ax.set_xlabel("denoising step")
ax.set_ylabel("lambda")
ax.set_ylim(-0.05, 1.05)
ax.legend()
plt.show()

scheduled = s.generate(seed=0, lam=ramp)
print(
    f"ramp video: distance to lam=1 {dist(scheduled, videos[-1]) / ends:.2f}, "
    f"to lam=0 {dist(scheduled, videos[0]) / ends:.2f}, IoU with the painted square {square_iou(scheduled):.2f}"
)
scheduled.grid(title="lam: ramp 0 -> 1 over the steps")

# %%
scheduled
