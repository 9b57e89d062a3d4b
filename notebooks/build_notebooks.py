"""Build the notebooks in this folder from the cell lists below (outputs empty).

    python notebooks/build_notebooks.py          # rewrite the .ipynb files
    python notebooks/build_notebooks.py --check  # exit 1 if a committed notebook differs

Edit the cells here, not in Jupyter, so that notebooks stay small, output-free and reviewable.
Cell ids are fixed (name-index), so rebuilding an unchanged notebook changes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
# The project's addresses are declared once, in pyproject.toml's [project.urls]; the notebooks
# derive theirs from it. Without a Repository entry there are no Colab badges (they would open a
# repository that does not exist): the notebooks say how to upload them instead.
PROJECT = tomllib.loads((HERE.parent / "pyproject.toml").read_text())["project"]
URLS = PROJECT.get("urls", {})
PAPER = URLS["Paper"]
WHEEL = f"{PROJECT['name']}-{PROJECT['version']}-py3-none-any.whl"
REPOSITORY = URLS.get("Repository", "").rstrip("/")
GITHUB = "https://github.com/"
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
PIA = "openmmlab/PIA-condition-adapter"


def badge(name: str) -> str:
    """An "Open in Colab" badge when the repository is on GitHub, else how to open the notebook in Colab."""
    if REPOSITORY.startswith(GITHUB):
        colab = f"https://colab.research.google.com/github/{REPOSITORY.removeprefix(GITHUB)}"
        return f"[![Open In Colab]({BADGE})]({colab}/blob/main/notebooks/{name}.ipynb)"
    setup = "set `INSTALL_FROM` below" if name == "colab_gpu" else "install the project first as colab_gpu.ipynb does"
    return f"On Colab: *File > Upload notebook*, then {setup}."


# The cell lists below keep one (kind, source) pair a line, as they read best: not ruff-formatted.
# fmt: off
# colab_gpu's picture, drawn in code (no file to download), in a 64-unit space scaled to the model
# size: sky, hills, a sun at (46, 14), a red ball at (15, 49), a tree at (51, 36).
SCENE = '''\
import numpy as np
from PIL import Image, ImageDraw


def make_scene(size):
    """Sky, hills, a sun, a red ball and a tree, drawn at `size` x `size` pixels."""
    u = size / 64
    y = np.linspace(0, 1, size)[:, None, None]
    sky = np.array([70, 130, 230]) * (1 - y) + np.array([250, 190, 150]) * y
    img = Image.fromarray((sky * np.ones((1, size, 1))).astype(np.uint8))
    d = ImageDraw.Draw(img)
    d.polygon([(0, 64 * u), (0, 44 * u), (26 * u, 38 * u), (64 * u, 46 * u), (64 * u, 64 * u)], fill=(50, 120, 60))
    d.ellipse([40 * u, 8 * u, 52 * u, 20 * u], fill=(255, 230, 90))    # sun
    d.ellipse([10 * u, 44 * u, 20 * u, 54 * u], fill=(220, 40, 40))    # red ball
    d.rectangle([50 * u, 36 * u, 53 * u, 48 * u], fill=(90, 60, 30))   # trunk
    d.ellipse([45 * u, 25 * u, 58 * u, 38 * u], fill=(30, 90, 40))     # crown
    return img'''

# The shapes world's scene of the CPU notebooks (ivcore.shapes.world: 64 x 64 pictures, 8-frame clips):
# a red circle at (18, 18) and a white square at (46, 34), both 14 px, on a sky over grass.
WORLD_SCENE = """\
scene = world.Scene("sky", (world.Shape("circle", "red", 18, 18, 14), world.Shape("square", "white", 46, 34, 14)))"""

SESSION_GPU_OR_SHAPES = f'''\
import numpy as np
import torch
from PIL import Image

from ivcore import Session, Trajectory
from ivcore.shapes import world
from ivcore.shapes.evaluate import painted_square

if torch.cuda.is_available():  # real weights: SD1.5 img2img + PIA (a few GB to download; a T4 is enough)
    s = Session.from_pretrained("{SD15}", "{SD15}", motion_adapter="{PIA}")
else:  # CPU: small diffusion models trained on the shapes world (ivcore.shapes.world), shipped in the package
    s = Session.shapes(seed=0)
W, H = s.size
u = W / world.SIZE  # the scene lives in 64 x 64 world pixels; u converts them to model pixels


def to_model(picture):
    """A 64 x 64 world picture, paint layer or bool mask at the model's size (as it is for the shapes models)."""
    if isinstance(picture, np.ndarray) and picture.dtype == bool:
        return np.asarray(Image.fromarray(picture).resize((W, H), Image.NEAREST))
    image = picture if isinstance(picture, Image.Image) else Image.fromarray(picture)
    return image.resize((W, H), Image.NEAREST)


s'''

INSTALL = '''\
import glob
import importlib
import os
import subprocess
import sys


def pip_install_command(source, python=sys.executable):
    \"\"\"The pip command that installs the project from `source`: a .whl file or a git+ address; None for "".\"\"\"
    if not source:
        return None
    if source.endswith(".whl"):
        if not os.path.isfile(source):
            raise FileNotFoundError(f"INSTALL_FROM: no wheel at {source!r}; upload it first (Files pane on the left)")
        return [python, "-m", "pip", "install", "-q", source]
    if source.startswith("git+"):
        return [python, "-m", "pip", "install", "-q", f"interactivevideo @ {source}"]
    raise ValueError(f"INSTALL_FROM: {source!r}; give a .whl file, a git+https://... address or \\"\\"")


IN_COLAB = "google.colab" in sys.modules
uploaded = sorted(glob.glob("/content/interactivevideo-*.whl")) if IN_COLAB else []
command = pip_install_command(INSTALL_FROM or (uploaded[-1] if uploaded else ""))
if command:
    print(" ".join(command))
    subprocess.run(command, check=True)
    importlib.invalidate_caches()  # let this running kernel see the package just installed

import ivcore

print("ivcore", ivcore.__version__, "from", os.path.dirname(ivcore.__file__))
try:  # Colab shows third-party widgets only with its custom widget manager
    from google.colab import output
except ImportError:  # Jupyter, VS Code: nothing to enable
    output = None
if output is not None:
    output.enable_custom_widget_manager()'''

WIDGET_GUARD = '''\
try:
    from ivwidgets import {name}
except ImportError as exc:  # the engine works without the widgets
    print("ivwidgets is not available:", exc)
else:
    {var} = {name}(s)
    display({var})'''


# --------------------------------------------------------------------------------------------
# quickstart
# --------------------------------------------------------------------------------------------
QUICKSTART = [
    ("md", f"""\
# InteractiveVideo quickstart (CPU, no downloads)

{badge("quickstart")}

[InteractiveVideo]({PAPER}) makes a video from four instructions:
an **image** you give or paint on, a **content** text, a **motion** text and **trajectories**
(drag things along paths). Two diffusion models are chained (Eq. 1 of the paper):

$$\\text{{video}} = P_\\text{{video}}\\big(P_\\text{{img}}(x, y),\\ y',\\ r\\big)$$

This notebook runs the whole loop on the CPU with `Session.shapes()`: small diffusion models
(64 x 64 pictures, 8-frame clips) trained on the *shapes world* of `ivcore.shapes.world`, flat red,
green, blue, yellow and white circles, squares and triangles on a night, grey or sky background.
They ship with the package, so nothing is downloaded, and a clip takes a few seconds. The world
is small, but every instruction visibly does what the paper says: the motion text moves the
shape it names, a painted shape shows up in the video, lambda fades it out again. For real
pictures use [colab_gpu.ipynb](colab_gpu.ipynb) on a GPU."""),
    ("code", """\
from ivcore import InstructionError, Session, Trajectory, Video
from ivcore.shapes import world

s = Session.shapes(seed=0)
s"""),
    ("md", """\
## 1. Image instruction *x*

Any PIL image, H x W x 3 uint8 array or file path works; it is center-cropped to the model size.
Here the picture comes from the shapes world: a `world.Scene` is a background and a few shapes
(kind, colour, centre x and y, size in pixels), and `world.render` draws it."""),
    ("code", "from PIL import Image\n\n" + WORLD_SCENE + """
s.image = world.render(scene)  # a 64 x 64 x 3 uint8 array
s.image.resize((256, 256), Image.NEAREST)"""),
    ("md", """\
## 2. Content *y* and motion *y'*

`content` is the prompt of the image model P_img (img2img with `content_strength`; 0 keeps the
image as it is). `motion` is the prompt of the video model P_video. The shapes models know the
world's captions: the content names the shapes and the background, the motion says which shape
moves where ("the red circle moves down"), that "the camera pans left", or that "nothing moves"."""),
    ("code", """\
s.content = scene.caption()   # "a red circle and a white square on sky"
# 0 (the shapes session's default): x~ is x itself. Light img2img (0.3) redraws the picture
# softly, and a painted square that P_img softens is dropped by the video model within a few frames
s.content_strength = 0.0
s.motion = "the red circle moves down"
print(f"content: {s.content!r}, motion: {s.motion!r}, {s.num_frames} frames, {s.steps} steps")"""),
    ("md", """\
## 3. Paint a square, in code

Painting is an RGBA layer over *x* (transparent where you did not paint). The widget
`PaintCanvas` sends exactly such a layer on every stroke; here `painted_square` draws a yellow
square where the scene has room and returns the layer and its mask.
`s.intermediate(edited=False)` is x~ = P_img(x, y) (x itself at content_strength 0);
`s.intermediate()` is the edited x~'."""),
    ("code", """\
import matplotlib.pyplot as plt

from ivcore.shapes.evaluate import painted_square

layer, painted = painted_square(scene, "yellow")
s.paint(layer)

panels = {"x (image)": s.image, "paint layer": layer, "x~ = P_img(x, y)": s.intermediate(edited=False),
          "x~' (edited)": s.intermediate()}
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
for ax, (title, im) in zip(axes, panels.items()):
    ax.imshow(im, interpolation="nearest"); ax.set_title(title); ax.set_axis_off()
plt.show()"""),
    ("md", """\
## 4. Generate

`lam` is the weight of Eq. 4: 1 gives the plain video of x~, 0 the video of the edited x~',
values between blend the two noise predictions at every denoising step. At lam = 0 the video
follows the edit: the yellow square is there, and the red circle moves down as the motion text
says. The result is a `Video`: it plays inline, `.grid()` draws its frames, `.frames` is a
uint8 array."""),
    ("code", """\
s.lam = 0.0
video = s.generate(seed=0)
video"""),
    ("code", """\
video.grid(title=f"lam = {s.lam}: the painted square is in the video")"""),
    ("md", """\
## 5. Move lambda, re-run: only the denoising reruns

At lam = 1 the video is conditioned on the unedited x~ only, so the painted square is gone
(values between fade it). Every stage is cached under a key of its own inputs: changing lambda
keeps the text embeddings, the P_img images and the VAE latents, so only `denoise` and `decode`
miss."""),
    ("code", """\
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
    yellow = [world.segment(frame, "yellow").sum() for frame in v.frames]
    print(f"lam = {lam}: yellow pixels per frame {yellow} (the painted square has {painted.sum()})")
plain.grid(title=f"lam = {s.lam}: the plain video of x~, no square")"""),
    ("md", """\
## 6. Bad input is refused, the session stays usable

Every setter checks its value and raises `InstructionError` (a `ValueError`) that names the
field, the value and what is allowed. The session keeps its last good state and video."""),
    ("code", """\
try:
    s.lam = 1.5
except InstructionError as err:
    print(err)
print("lam is still", s.lam, "and the last video is", s.last_video)"""),
    ("md", """\
## 7. Save the clip and the session

`to_mp4()` gives H.264 bytes (or writes a file); `s.save(folder)` writes JSON, PNGs and
safetensors (no pickle), and `Session.load(folder)` rebuilds the session, shapes models included."""),
    ("code", """\
video.to_mp4("quickstart.mp4")
folder = s.save("quickstart_session")
print(sorted(p.name for p in folder.iterdir()))
Session.load(folder)"""),
    ("md", """\
## 8. The same loop with widgets

`Studio(s)` puts everything above into one app: paint on the canvas, drag trajectories, type the
texts, move the lambda slider and press Generate. It is bound to the same session `s`, so
what you do there shows up in `s` (and the other way round). Try painting a shape of another
colour, or dragging the white square, with the motion text "the white square follows the path"."""),
    ("code", WIDGET_GUARD.format(name="Studio", var="studio")),
]


# --------------------------------------------------------------------------------------------
# colab_gpu
# --------------------------------------------------------------------------------------------
COLAB_GPU = [
    ("md", f"""\
# InteractiveVideo with real weights on a GPU (Colab, Lambda, your own)

{badge("colab_gpu")}

On Colab choose *Runtime > Change runtime type > T4 GPU* (15 GB) first. This notebook loads
real models in fp16:

| role | default | notes |
|---|---|---|
| P_img (image + content) | `{SD15}` img2img | any SD1.5-family model in the diffusers layout (safetensors) |
| P_video (motion) | `{SD15}` + `{PIA}` | PIA: SD1.5 UNet + motion modules, 9-channel image condition |

Without a GPU (or with `IVCORE_TINY=1` set) `Session.from_pretrained` builds the tiny random
preset instead, so every cell still runs, just with noise-like frames. To see the method work
on a CPU, use [quickstart.ipynb](quickstart.ipynb): it runs small models trained on a world of
coloured shapes (`Session.shapes()`)."""),
    ("md", """\
## Install

Set `INSTALL_FROM` (the next cell) to a wheel you uploaded to the runtime (Files pane on the
left; `python -m build` in a checkout makes it) or to a repository address, then run the cells
in order. Colab already has a CUDA build of torch, so installing the project does not pull
another one; on other machines install torch for your GPU first. Leave it `""` where the
project is installed already. The install cell also turns on Colab's custom widget manager,
without which Colab does not show third-party widgets (it is skipped elsewhere)."""),
    ("code", f"""\
# a wheel uploaded to this runtime, e.g. "/content/{WHEEL}"
# or a repository address: "git+" and its https address (your fork, or the published project)
# or "" to install nothing (on Colab a /content/interactivevideo-*.whl is then used if there is one)
INSTALL_FROM = "{'git+' + REPOSITORY if REPOSITORY else ''}\""""),
    ("code", INSTALL),
    ("code", """\
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPE = torch.float16 if DEVICE == "cuda" else torch.float32
if DEVICE == "cuda":
    props = torch.cuda.get_device_properties(0)
    print(f"{props.name}, {props.total_memory / 2**30:.1f} GiB")
else:  # real weights on a CPU would take hours: build the tiny preset instead
    os.environ["IVCORE_TINY"] = "1"
    print("no GPU: Session.from_pretrained will build the tiny preset (IVCORE_TINY=1)")"""),
    ("md", """\
## Load the models

`Session.from_pretrained(image_model, video_model, motion_adapter=..., device=..., dtype=...)`
takes hub ids or local folders (safetensors only). When both models are the same id, VAE, CLIP
and UNet weights are loaded once and shared. The first run downloads about 5 GB. Any
SD1.5-family model works as `IMAGE_MODEL` (DreamBooth fine-tunes, LCM-distilled models)."""),
    ("code", f"""\
from ivcore import Session, Trajectory

IMAGE_MODEL = "{SD15}"   # P_img: any SD1.5-family model
VIDEO_MODEL = "{SD15}"   # the SD1.5 base PIA runs on
MOTION_ADAPTER = "{PIA}"

s = Session.from_pretrained(IMAGE_MODEL, VIDEO_MODEL, motion_adapter=MOTION_ADAPTER, device=DEVICE, dtype=DTYPE)
TINY = s.size[0] <= 64  # True when the tiny preset was built (no GPU, or IVCORE_TINY=1)
s"""),
    ("md", """\
**Few-step option.** The authors' demo ran P_img as SD1.5 + LCM-LoRA (StreamDiffusion): 4
image steps instead of 25, without classifier-free guidance. Set `FEW_STEP = True` to load the
LCM-LoRA on P_img only and switch its sampler to `LCMScheduler`; P_video stays SD1.5 + PIA."""),
    ("code", """\
FEW_STEP = False
if FEW_STEP and not TINY:
    from diffusers import LCMScheduler

    s.load_lora("latent-consistency/lcm-lora-sdv1-5", target="image")
    s.image_backend.scheduler = LCMScheduler.from_config(s.image_backend.scheduler.config)
    s.image_steps, s.image_guidance = 4, 1.0
print(f"P_img: {s.image_steps} steps, guidance {s.image_guidance}; P_video: {s.steps} steps")"""),
    ("md", """\
## Memory on a 15 GB T4

A blended run (0 < lam < 1) puts both branches through the UNet in one batch, twice the
activations of a plain run. The defaults still fit a T4: `s.memory_plan()` estimates the peak
of the next `generate` before it runs: about 10.4 GiB for 16 frames (PIA is trained on 16) at
512 x 512 with a blend (an estimate, not yet measured on a T4), the largest part being the
decode of all 16 frames at once. If an
allocation fails anyway (another process on the GPU, a larger size), the video backend splits
its UNet calls and decodes by itself and remembers what fit (`s.video_backend.max_rows`). To
need less up front:

- VAE slicing for the decode and attention slicing on the image UNet (below, about 2 GiB less);
  feed-forward chunking of the video UNet as a last resort (it saves memory but costs time);
- `s.video_backend.max_rows = 2` (or 1): the blend's rows in separate UNet calls;
- lam exactly 0 or 1 (or no edit) runs one branch only; fewer frames (`s.num_frames = 8`) last.

These calls change memory, not results beyond float rounding."""),
    ("code", """\
def save_memory(session):
    for backend in (session.image_backend, session.video_backend):
        unet = backend.unet
        if hasattr(unet, "set_attention_slice"):       # UNet2DConditionModel
            unet.set_attention_slice("auto")
        # last resort (slower): unet.enable_forward_chunking(chunk_size=1, dim=1) on UNetMotionModel
        if hasattr(backend.vae, "enable_slicing"):     # decode the frames one at a time
            backend.vae.enable_slicing()


save_memory(s)
if DEVICE == "cuda":
    s.num_frames = 16  # fits a 15 GB T4 (see the estimate)
    torch.cuda.empty_cache()
    # the next generate as set now; with an edit and 0 < lam < 1 (4 rows a UNet call): about 10.4 GiB
    print(f"estimated peak of the next generate: {s.memory_plan()['total'] / 2**30:.1f} GiB")
else:  # a CPU run is a smoke test of the cells
    s.steps = 4
print(s.num_frames, "frames,", s.steps, "steps")"""),
    ("md", """\
## Image, content, motion

Use your own picture with `s.image = "photo.jpg"` (on Colab upload it with the file browser on
the left, or `from google.colab import files; files.upload()`). Here a picture is drawn in code."""),
    ("code", SCENE + """


W, H = s.size
s.image = make_scene(W)
s.content = "a watercolor painting of a valley at sunset, a red ball on the grass, a tree"
s.content_strength = 0.0 if TINY else 0.5   # tiny models' img2img makes noise: keep x~ = x there
s.motion = "the ball rolls down the hill, leaves sway in the wind"
s.negative_prompt = "blurry, low quality"
s.intermediate(edited=False)"""),
    ("md", """\
## Plain video (lam = 1)

Nothing is edited yet, so only one branch runs: this is what PIA alone would make of x~."""),
    ("code", """\
s.lam = 1.0
plain = s.generate(seed=0)
print({k: round(v, 2) for k, v in s.last_timings.items()}, "seconds")
plain"""),
    ("md", """\
## Paint and drag, then blend (lam = 0.5)

A blue bird painted in the sky, and the red ball dragged to the right along a path. The edited
image x~' conditions the second branch; lam = 0.5 blends both noise predictions (Eq. 4)."""),
    ("code", """\
import matplotlib.pyplot as plt

layer = Image.new("RGBA", (W, H), (0, 0, 0, 0))
ImageDraw.Draw(layer).ellipse([0.15 * W, 0.2 * H, 0.32 * W, 0.28 * H], fill=(30, 60, 220, 255))
s.paint(layer)
u = W / 64
s.trajectories = [Trajectory(points=[(15 * u, 49 * u), (28 * u, 46 * u), (38 * u, 52 * u)], radius=6 * u,
                             easing="ease-in-out")]
s.lam = 0.5

fig, axes = plt.subplots(1, 2, figsize=(7, 3.5))
for ax, im, title in zip(axes, [s.intermediate(edited=False), s.intermediate()], ["x~", "x~' (edited)"]):
    ax.imshow(im); ax.set_title(title); ax.set_axis_off()
plt.show()"""),
    ("code", """\
blended = s.generate(seed=0)
if DEVICE == "cuda":
    print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
print({k: round(v, 2) for k, v in s.last_timings.items()}, "seconds")
blended"""),
    ("code", """\
blended.grid(cols=8, title="lam = 0.5")"""),
    ("md", """\
## The full loop with widgets

`Studio(s)` is the app: paint on the canvas, drag handles to targets in the trajectory editor,
edit the texts, move the lambda slider and press Generate; latent previews show while it runs.
Moving only lambda reruns only the denoising (see `s.stats`)."""),
    ("code", WIDGET_GUARD.format(name="Studio", var="studio")),
    ("md", """\
## Keep your work

The mp4 plays anywhere (H.264); the session folder (JSON, PNG, safetensors) reloads with
`Session.load(folder, device=DEVICE, dtype=DTYPE)`."""),
    ("code", """\
blended.to_mp4("interactivevideo.mp4")
folder = s.save("interactivevideo_session")
if DEVICE == "cuda":
    torch.cuda.empty_cache()
print(sorted(p.name for p in folder.iterdir()))"""),
]


# --------------------------------------------------------------------------------------------
# lambda_explained
# --------------------------------------------------------------------------------------------
LAMBDA = [
    ("md", f"""\
# What lambda does (Eq. 4)

{badge("lambda_explained")}

InteractiveVideo runs the video model on two intermediate images at once: x~ = P_img(x, y)
(what the image model made) and x~' (x~ after your paint strokes and drags). At every denoising
step *t* the UNet predicts the noise twice from the **same** noisy latent, step and text:
eps_t conditioned on z0 = E(x~), and eps'_t conditioned on z0' = E(x~'). The sampler then
steps with the blend

$$\\hat\\epsilon_t = \\lambda\\,\\epsilon_t + (1-\\lambda)\\,\\epsilon'_t .$$

So lambda = 1 gives exactly the video of x~ and lambda = 0 exactly the video of x~';
in between, the two conditions pull on one and the same video. On a GPU this notebook uses
real weights; on a CPU the shapes-world models of `Session.shapes()` (64 x 64, 8 frames),
trained on flat coloured shapes. The edit here is a yellow square painted into the sky: watch
it stand in the video at lambda = 0 and fade out as lambda goes to 1."""),
    ("code", SESSION_GPU_OR_SHAPES),
    ("code", WORLD_SCENE + """
import matplotlib.pyplot as plt

s.image = to_model(world.render(scene))
s.content = scene.caption()
s.motion = "the red circle moves down"
s.content_strength = 0.0                         # 0: x~ is the picture itself
layer, painted = painted_square(scene, "yellow")  # the edit: a yellow square where the sky is free
s.paint(to_model(layer))

fig, axes = plt.subplots(1, 2, figsize=(6, 3))
for ax, im, title in zip(axes, [s.intermediate(edited=False), s.intermediate()], ["x~  (lam = 1)", "x~'  (lam = 0)"]):
    ax.imshow(im, interpolation="nearest"); ax.set_title(title); ax.set_axis_off()
plt.show()"""),
    ("md", """\
## A lambda sweep in one batched run

`s.sweep(lams=[...])` denoises every lambda together: at each step one UNet call covers the
rows that are needed (lambda 1 needs only the x~ branch, lambda 0 only x~', the others both),
and it returns one `Video` per lambda, the same frames `s.generate(lam=...)` gives."""),
    ("code", """\
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
print(f"largest pixel difference between the two lam = 0.5 videos: {diff}")"""),
    ("md", """\
## Frames across lambda

Rows are lambda values, columns frames: the red circle moves down in every row (the motion text
is the same), while the painted square is solid at lambda = 0 and fades as lambda grows. The
right column shows |video(lambda) - video(1)|: where each video still differs from the
unedited one."""),
    ("code", """\
ref1 = videos[-1].frames.astype(float)
gap = np.abs(videos[0].frames.astype(float) - ref1).mean(axis=(0, 3)).max() or 1.0
fig, axes = plt.subplots(len(lams), 2, figsize=(12, 1.6 * len(lams)), gridspec_kw={"width_ratios": [4, 1]})
for row, (lam, v) in enumerate(zip(lams, videos)):
    v.grid(ax=axes[row, 0])
    axes[row, 0].set_ylabel(f"lam = {lam}")
    axes[row, 0].set_axis_on(); axes[row, 0].set_xticks([]); axes[row, 0].set_yticks([])
    diff = np.abs(v.frames.astype(float) - ref1).mean(axis=(0, 3))
    axes[row, 1].imshow(diff, cmap="magma", vmin=0, vmax=gap)
    axes[row, 1].set_axis_off()
axes[0, 1].set_title("|v(lam) - v(1)|")
plt.tight_layout()
plt.show()"""),
    ("md", """\
## How much of the painted square is left?

`world.segment(frame, "yellow")` finds the yellow pixels of a frame. Compared with the painted
mask, the overlap (IoU) measures how much of the edit each video keeps: all of it at
lambda = 0, none of it at lambda = 1."""),
    ("code", """\
mask = to_model(painted)


def square_iou(video):
    ious = []
    for frame in video.frames:
        yellow = world.segment(frame, "yellow")
        ious.append((yellow & mask).sum() / max(1, (yellow | mask).sum()))
    return float(np.mean(ious))


ious = [square_iou(v) for v in videos]
for lam, iou in zip(lams, ious):
    print(f"lam = {lam:4}: IoU with the painted square {iou:.2f}")
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(lams, ious, "o-", color="goldenrod")
ax.set_xlabel("lambda"); ax.set_ylabel("IoU with the painted square"); ax.set_ylim(-0.05, 1.05)
plt.show()"""),
    ("md", """\
## How far is each video from the two ends?

For each lambda: the distance of its video to the lambda = 1 video and to the lambda = 0
video, divided by the distance between those two. If the video were linear in lambda, the two
curves would be the dashed straight lines; the sampler is not linear (each step starts from the
last), so they bend. They still start and end exactly at 0 and 1."""),
    ("code", """\
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
ax.set_xlabel("lambda"); ax.set_ylabel("relative RMS distance"); ax.legend()
plt.show()"""),
    ("md", """\
## Lambda per step: a schedule

`lam` can also be a list with one weight per denoising step (a list of another length is
resampled linearly to the number of steps). Early steps lay out the scene, late steps add
detail, so a ramp from 0 to 1 takes the layout from the edit x~' and the detail from x~."""),
    ("code", """\
steps = s.steps
ramp = list(np.linspace(0.0, 1.0, steps))
fig, ax = plt.subplots(figsize=(5, 2.8))
ax.step(range(steps), [0.5] * steps, where="mid", label="constant 0.5")
ax.step(range(steps), ramp, where="mid", label="ramp 0 -> 1")
ax.set_xlabel("denoising step"); ax.set_ylabel("lambda"); ax.set_ylim(-0.05, 1.05); ax.legend()
plt.show()

scheduled = s.generate(seed=0, lam=ramp)
print(f"ramp video: distance to lam=1 {dist(scheduled, videos[-1]) / ends:.2f}, "
      f"to lam=0 {dist(scheduled, videos[0]) / ends:.2f}, IoU with the painted square {square_iou(scheduled):.2f}")
scheduled.grid(title="lam: ramp 0 -> 1 over the steps")"""),
    ("code", """\
scheduled"""),
]


# --------------------------------------------------------------------------------------------
# trajectories
# --------------------------------------------------------------------------------------------
TRAJECTORIES = [
    ("md", f"""\
# Trajectories: move things, pin things, pan the camera

{badge("trajectories")}

A Trajectory Instruction drags the content of a region from a handle point along a path to a
target. `Trajectory(points=[handle, ..., target], mask=None, radius=..., easing=..., start=0,
end=1, kind=...)`:

| field | meaning |
|---|---|
| `points` | (x, y) pixels: handle first, then path points, target last |
| `mask` | bool (H, W) region that moves; `None` means a disk of `radius` around the handle |
| `easing` | `"linear"` or `"ease-in-out"` along the path |
| `start`, `end` | the part of the clip (0..1) during which it moves |
| `kind` | `"object"` moves its region, `"anchor"` pins its region still, `"camera"` pans the whole frame |

The motion preview applies them to x~ without diffusion (instant); the generated video uses
them as conditions of the video model. On a GPU this notebook uses real weights; on a CPU the
shapes-world models of `Session.shapes()` (64 x 64, 8 frames), which were trained with
trajectories: the shape you drag follows its path in the generated video."""),
    ("code", SESSION_GPU_OR_SHAPES),
    ("code", WORLD_SCENE + """
s.image = to_model(world.render(scene))
s.content = scene.caption()
s.content_strength = 0.0   # 0: x~ is the picture itself, so the scene's masks fit it exactly
s.motion = "the white square follows the path"
s.image.resize((256, 256), Image.NEAREST)"""),
    ("md", """\
## An object and an anchor

The white square is dragged along a curve: its mask is the square's own shape
(`world.shape_mask(scene, 1)`, a bool array), so exactly its pixels move. The red circle is an
**anchor**: its pixels stay where they are, on top of everything that moves."""),
    ("code", """\
import matplotlib.pyplot as plt


def curve(start, bend, end, n=9):
    \"\"\"n points of the quadratic Bezier curve from `start` to `end`, pulled towards `bend` (world pixels).\"\"\"
    t = np.linspace(0, 1, n)[:, None]
    p = (1 - t) ** 2 * np.array(start) + 2 * (1 - t) * t * np.array(bend) + t**2 * np.array(end)
    return [(float(x * u), float(y * u)) for x, y in p]


square = Trajectory(points=curve((46, 34), (38, 54), (24, 44)), mask=to_model(world.shape_mask(scene, 1)))
anchor = Trajectory(points=[(18 * u, 18 * u)] * 2, mask=to_model(world.shape_mask(scene, 0)), kind="anchor")
camera = Trajectory(points=[(32 * u, 32 * u), (16 * u, 32 * u)], kind="camera")
COLORS = {"object": "magenta", "anchor": "lime", "camera": "cyan"}


def show_paths(title):
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    axes[0].imshow(s.intermediate(edited=False), interpolation="nearest")
    for t in s.trajectories:
        xs, ys = zip(*t.points)
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
show_paths("object + anchor")"""),
    ("md", """\
## Motion preview: no diffusion, instant

`s.motion_preview()` is what the trajectory editor loops while you drag. Frame *i* of *F* sits
at clip time i / (F - 1); holes left by moving objects are filled from the background."""),
    ("code", """\
preview_objects = s.motion_preview()
preview_objects.grid(title="motion preview: the white square along its path, the red circle anchored")"""),
    ("md", """\
## Generate, and compare side by side

In the default `trajectory_mode = "path"` the edited branch is conditioned on the animated frame
of each time step; `"endpoint"` uses the paper's single x~' instead. lam = 0 follows the
trajectories only; raise it to mix in the unedited video. `world.track` finds the centre of a
colour in every frame, so we can check where the white square went."""),
    ("code", """\
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
print("red circle, generated:  ", centres(video_objects, "red"))"""),
    ("md", """\
## A camera pan

A `"camera"` trajectory moves the whole frame by its handle's displacement (edges are
replicated): its handle moves left, so the picture's content slides left and the view pans to
the right, which is what the motion text "the camera pans right" says in the shapes world. Its
mask is ignored, and an anchor would stay put in frame coordinates (like a caption), so this
set has none."""),
    ("code", """\
s.trajectories = [camera]
s.motion = "the camera pans right"
show_paths("camera")
preview_camera = s.motion_preview()
video_camera = s.generate(seed=0)

fig, axes = plt.subplots(2, 1, figsize=(12, 3.6))
preview_camera.grid(ax=axes[0], title="motion preview: camera pan")
video_camera.grid(ax=axes[1], title="generated")
plt.tight_layout()
plt.show()"""),
    ("code", """\
from IPython.display import HTML

clips = {"preview: object + anchor": preview_objects, "generated": video_objects,
         "preview: camera pan": preview_camera, "generated ": video_camera}
HTML('<div style="display:flex;flex-wrap:wrap;gap:12px">'
     + "".join(f"<div>{v._repr_html_()}<br>{name}</div>" for name, v in clips.items()) + "</div>")"""),
    ("md", """\
## Try it by hand

`TrajectoryEditor(s)` shows x~: press on a handle and drag to the target, add path points,
mark anchors and brush masks; the preview follows the drag. Its trajectories land in
`s.trajectories`. With the shapes models, give the shape you drag the world's motion text for
it, as above: `s.motion = "the red circle follows the path"`."""),
    ("code", WIDGET_GUARD.format(name="TrajectoryEditor", var="editor")),
]

# --------------------------------------------------------------------------------------------
# studio_app: the Studio alone, served as a teaching app by Voila (`voila notebooks/studio_app.ipynb`
# shows the outputs and the text, never the code cells)
# --------------------------------------------------------------------------------------------
STUDIO_APP = [
    ("md", """\
# InteractiveVideo Studio

Make a short video from a picture with four instructions, as in the paper:

1. **Paint** on the picture (left): the colours you paint become part of the image instruction.
2. **Drag** on the intermediate picture x\u0303 (right) from a shape to where it should go: a trajectory.
3. **Type** what the picture shows (Content) and how it moves (Motion), e.g. "the red circle follows the path".
4. Set **\u03bb**: at 1 the video grows from x\u0303 alone, at 0 from the dragged picture x\u0303\u2032; in
   between it blends the two (Eq. 4 of the paper).

Press **Generate**; the video plays below when it is ready. The models here are small ones trained
on a world of coloured shapes, small enough for a CPU."""),
    ("code", """\
from ivcore import Session
from ivcore.backends.build import tiny_requested
from ivwidgets import Studio

# IVCORE_TINY=1 (tests): the tiny random models, faster still; otherwise the trained shapes models
s = Session.tiny(seed=0) if tiny_requested() else Session.shapes(seed=0)
studio = Studio(s)
studio"""),
]

# fmt: on

NOTEBOOKS = {
    "quickstart": (QUICKSTART, False),
    "colab_gpu": (COLAB_GPU, True),
    "lambda_explained": (LAMBDA, False),
    "trajectories": (TRAJECTORIES, False),
    "studio_app": (STUDIO_APP, False),
}


def build(name: str) -> nbformat.NotebookNode:
    cells, gpu = NOTEBOOKS[name]
    nb = new_notebook()
    for i, (kind, source) in enumerate(cells):
        cell = new_markdown_cell(source) if kind == "md" else new_code_cell(source)
        cell["id"] = f"{name}-{i}"
        nb.cells.append(cell)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "colab": {"provenance": [], "toc_visible": True, **({"gpuType": "T4"} if gpu else {})},
    }
    if gpu:
        nb.metadata["accelerator"] = "GPU"
    nbformat.validate(nb)
    return nb


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name in NOTEBOOKS:
        path = HERE / f"{name}.ipynb"
        text = nbformat.writes(build(name)) + "\n"
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print("out of date (run python notebooks/build_notebooks.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
