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
# # InteractiveVideo quickstart (CPU, no downloads)
#
# On Colab: *File > Upload notebook*, then install the project first as colab_gpu.ipynb does.
#
# [InteractiveVideo](https://arxiv.org/abs/2402.03040) makes a video from four instructions:
# an **image** you give or paint on, a **content** text, a **motion** text and **trajectories**
# (drag things along paths). Two diffusion models are chained (Eq. 1 of the paper):
#
# $$\text{video} = P_\text{video}\big(P_\text{img}(x, y),\ y',\ r\big)$$
#
# This notebook runs the whole loop on the CPU with `Session.shapes()`: small diffusion models
# (64 x 64 pictures, 8-frame clips) trained on the *shapes world* of `ivcore.shapes.world`, flat red,
# green, blue, yellow and white circles, squares and triangles on a night, grey or sky background.
# They ship with the package, so nothing is downloaded, and a clip takes a few seconds. The world
# is small, but every instruction visibly does what the paper says: the motion text moves the
# shape it names, a painted shape shows up in the video, lambda fades it out again. For real
# pictures use [colab_gpu.ipynb](colab_gpu.ipynb) on a GPU.

# %%
from ivcore import InstructionError, Session
from ivcore.shapes import world

s = Session.shapes(seed=0)
s

# %% [markdown]
# ## 1. Image instruction *x*
#
# Any PIL image, H x W x 3 uint8 array or file path works; it is center-cropped to the model size.
# Here the picture comes from the shapes world: a `world.Scene` is a background and a few shapes
# (kind, colour, centre x and y, size in pixels), and `world.render` draws it.

# %%
from PIL import Image

scene = world.Scene("sky", (world.Shape("circle", "red", 18, 18, 14), world.Shape("square", "white", 46, 34, 14)))
s.image = world.render(scene)  # a 64 x 64 x 3 uint8 array
s.image.resize((256, 256), Image.NEAREST)

# %% [markdown]
# ## 2. Content *y* and motion *y'*
#
# `content` is the prompt of the image model P_img (img2img with `content_strength`; 0 keeps the
# image as it is). `motion` is the prompt of the video model P_video. The shapes models know the
# world's captions: the content names the shapes and the background, the motion says which shape
# moves where ("the red circle moves down"), that "the camera pans left", or that "nothing moves".

# %%
s.content = scene.caption()  # "a red circle and a white square on sky"
# 0 (the shapes session's default): x~ is x itself. Light img2img (0.3) redraws the picture
# softly, and a painted square that P_img softens is dropped by the video model within a few frames
s.content_strength = 0.0
s.motion = "the red circle moves down"
print(f"content: {s.content!r}, motion: {s.motion!r}, {s.num_frames} frames, {s.steps} steps")

# %% [markdown]
# ## 3. Paint a square, in code
#
# Painting is an RGBA layer over *x* (transparent where you did not paint). The widget
# `PaintCanvas` sends exactly such a layer on every stroke; here `painted_square` draws a yellow
# square where the scene has room and returns the layer and its mask.
# `s.intermediate(edited=False)` is x~ = P_img(x, y) (x itself at content_strength 0);
# `s.intermediate()` is the edited x~'.

# %%
import matplotlib.pyplot as plt

from ivcore.shapes.evaluate import painted_square

layer, painted = painted_square(scene, "yellow")
s.paint(layer)

panels = {
    "x (image)": s.image,
    "paint layer": layer,
    "x~ = P_img(x, y)": s.intermediate(edited=False),
    "x~' (edited)": s.intermediate(),
}
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
for ax, (title, im) in zip(axes, panels.items(), strict=True):
    ax.imshow(im, interpolation="nearest")
    ax.set_title(title)
    ax.set_axis_off()
plt.show()

# %% [markdown]
# ## 4. Generate
#
# `lam` is the weight of Eq. 4: 1 gives the plain video of x~, 0 the video of the edited x~',
# values between blend the two noise predictions at every denoising step. At lam = 0 the video
# follows the edit: the yellow square is there, and the red circle moves down as the motion text
# says. The result is a `Video`: it plays inline, `.grid()` draws its frames, `.frames` is a
# uint8 array.

# %%
s.lam = 0.0
video = s.generate(seed=0)
video

# %%
video.grid(title=f"lam = {s.lam}: the painted square is in the video")

# %% [markdown]
# ## 5. Move lambda, re-run: only the denoising reruns
#
# At lam = 1 the video is conditioned on the unedited x~ only, so the painted square is gone
# (values between fade it). Every stage is cached under a key of its own inputs: changing lambda
# keeps the text embeddings, the P_img images and the VAE latents, so only `denoise` and `decode`
# miss.

# %%
before = s.stats
s.lam = 1.0
plain = s.generate(seed=0)
after = s.stats
for stage in after:
    hits = after[stage]["hits"] - before[stage]["hits"]
    misses = after[stage]["misses"] - before[stage]["misses"]
    print(f"{stage:8s} hits +{hits}  misses +{misses}")
print({k: round(v, 2) for k, v in s.last_timings.items()}, "seconds")
for lam, v in [(0.0, video), (1.0, plain)]:
    yellow = [int(world.segment(frame, "yellow").sum()) for frame in v.frames]
    print(f"lam = {lam}: yellow pixels per frame {yellow} (the painted square has {painted.sum()})")
plain.grid(title=f"lam = {s.lam}: the plain video of x~, no square")

# %% [markdown]
# ## 6. Bad input is refused, the session stays usable
#
# Every setter checks its value and raises `InstructionError` (a `ValueError`) that names the
# field, the value and what is allowed. The session keeps its last good state and video.

# %%
try:
    s.lam = 1.5
except InstructionError as err:
    print(err)
print("lam is still", s.lam, "and the last video is", s.last_video)

# %% [markdown]
# ## 7. Save the clip and the session
#
# `to_mp4()` gives H.264 bytes (or writes a file); `s.save(folder)` writes JSON, PNGs and
# safetensors (no pickle), and `Session.load(folder)` rebuilds the session, shapes models included.

# %%
video.to_mp4("quickstart.mp4")
folder = s.save("quickstart_session")
print(sorted(p.name for p in folder.iterdir()))
Session.load(folder)

# %% [markdown]
# ## 8. The same loop with widgets
#
# `Studio(s)` puts everything above into one app: paint on the canvas, drag trajectories, type the
# texts, move the lambda slider and press Generate. It is bound to the same session `s`, so
# what you do there shows up in `s` (and the other way round). Try painting a shape of another
# colour, or dragging the white square, with the motion text "the white square follows the path".

# %%
from ivwidgets import Studio

studio = Studio(s)
studio
