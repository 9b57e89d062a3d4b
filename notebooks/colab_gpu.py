# ---
# jupyter:
#   accelerator: GPU
#   colab:
#     gpuType: T4
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
# # InteractiveVideo with real weights on a GPU (Colab, Lambda, your own)
#
# On Colab: *File > Upload notebook*, then set `INSTALL_FROM` below.
#
# On Colab choose *Runtime > Change runtime type > T4 GPU* (15 GB) first. This notebook loads
# real models in fp16:
#
# | role | default | notes |
# |---|---|---|
# | P_img (image + content) | SD1.5 img2img | any SD1.5-family model in the diffusers layout (safetensors) |
# | P_video (motion) | SD1.5 + PIA | PIA: SD1.5 UNet + motion modules, 9-channel image condition |
#
# SD1.5 is `stable-diffusion-v1-5/stable-diffusion-v1-5` on the model hub, PIA `openmmlab/PIA-condition-adapter`.
#
# Without a GPU (or with `IVCORE_TINY=1` set) `Session.from_pretrained` builds the tiny random
# preset instead, so every cell still runs, just with noise-like frames. To see the method work
# on a CPU, use [quickstart.ipynb](quickstart.ipynb): it runs small models trained on a world of
# coloured shapes (`Session.shapes()`).

# %% [markdown]
# ## Install
#
# Set `INSTALL_FROM` (the next cell) to a wheel you uploaded to the runtime (Files pane on the
# left; `python -m build` in a checkout makes it) or to a repository address, then run the cells
# in order. Colab already has a CUDA build of torch, so installing the project does not pull
# another one; on other machines install torch for your GPU first. Leave it `""` where the
# project is installed already. The install cell also turns on Colab's custom widget manager,
# without which Colab does not show third-party widgets (it is skipped elsewhere).

# %%
# a wheel uploaded to this runtime, e.g. "/content/interactivevideo-0.1.0-py3-none-any.whl"
# or a repository address: "git+" and its https address (your fork, or the published project)
# or "" to install nothing (on Colab a /content/interactivevideo-*.whl is then used if there is one)
INSTALL_FROM = ""

# %%
import glob
import importlib
import os
import subprocess
import sys


def pip_install_command(source, python=sys.executable):
    """The pip command that installs the project from `source`: a .whl file or a git+ address; None for ""."""
    if not source:
        return None
    if source.endswith(".whl"):
        if not os.path.isfile(source):
            raise FileNotFoundError(f"INSTALL_FROM: no wheel at {source!r}; upload it first (Files pane on the left)")
        return [python, "-m", "pip", "install", "-q", source]
    if source.startswith("git+"):
        return [python, "-m", "pip", "install", "-q", f"interactivevideo @ {source}"]
    raise ValueError(f'INSTALL_FROM: {source!r}; give a .whl file, a git+https://... address or ""')


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
    output.enable_custom_widget_manager()

# %%
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPE = torch.float16 if DEVICE == "cuda" else torch.float32
if DEVICE == "cuda":
    props = torch.cuda.get_device_properties(0)
    print(f"{props.name}, {props.total_memory / 2**30:.1f} GiB")
else:  # real weights on a CPU would take hours: build the tiny preset instead
    os.environ["IVCORE_TINY"] = "1"
    print("no GPU: Session.from_pretrained will build the tiny preset (IVCORE_TINY=1)")

# %% [markdown]
# ## Load the models
#
# `Session.from_pretrained(image_model, video_model, motion_adapter=..., device=..., dtype=...)`
# takes hub ids or local folders (safetensors only). When both models are the same id, VAE, CLIP
# and UNet weights are loaded once and shared. The first run downloads about 5 GB. Any
# SD1.5-family model works as `IMAGE_MODEL` (DreamBooth fine-tunes, LCM-distilled models).

# %%
from ivcore import Session, Trajectory

IMAGE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # P_img: any SD1.5-family model
VIDEO_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # the SD1.5 base PIA runs on
MOTION_ADAPTER = "openmmlab/PIA-condition-adapter"

s = Session.from_pretrained(IMAGE_MODEL, VIDEO_MODEL, motion_adapter=MOTION_ADAPTER, device=DEVICE, dtype=DTYPE)
TINY = s.size[0] <= 64  # True when the tiny preset was built (no GPU, or IVCORE_TINY=1)
s

# %% [markdown]
# **Few-step option.** The authors' demo ran P_img as SD1.5 + LCM-LoRA (StreamDiffusion): 4
# image steps instead of 25, without classifier-free guidance. Set `FEW_STEP = True` to load the
# LCM-LoRA on P_img only and switch its sampler to `LCMScheduler`; P_video stays SD1.5 + PIA.

# %%
FEW_STEP = False
if FEW_STEP and not TINY:
    from diffusers import LCMScheduler

    s.load_lora("latent-consistency/lcm-lora-sdv1-5", target="image")
    s.image_backend.scheduler = LCMScheduler.from_config(s.image_backend.scheduler.config)
    s.image_steps, s.image_guidance = 4, 1.0
print(f"P_img: {s.image_steps} steps, guidance {s.image_guidance}; P_video: {s.steps} steps")


# %% [markdown]
# ## Memory on a 15 GB T4
#
# A blended run (0 < lam < 1) puts both branches through the UNet in one batch, twice the
# activations of a plain run. The defaults still fit a T4: `s.memory_plan()` estimates the peak
# of the next `generate` before it runs: about 10.4 GiB for 16 frames (PIA is trained on 16) at
# 512 x 512 with a blend (an estimate, not yet measured on a T4), the largest part being the
# decode of all 16 frames at once. If an
# allocation fails anyway (another process on the GPU, a larger size), the video backend splits
# its UNet calls and decodes by itself and remembers what fit (`s.video_backend.max_rows`). To
# need less up front:
#
# - VAE slicing for the decode and attention slicing on the image UNet (below, about 2 GiB less);
#   feed-forward chunking of the video UNet as a last resort (it saves memory but costs time);
# - `s.video_backend.max_rows = 2` (or 1): the blend's rows in separate UNet calls;
# - lam exactly 0 or 1 (or no edit) runs one branch only; fewer frames (`s.num_frames = 8`) last.
#
# These calls change memory, not results beyond float rounding.


# %%
def save_memory(session):
    for backend in (session.image_backend, session.video_backend):
        unet = backend.unet
        if hasattr(unet, "set_attention_slice"):  # UNet2DConditionModel
            unet.set_attention_slice("auto")
        # last resort (slower): unet.enable_forward_chunking(chunk_size=1, dim=1) on UNetMotionModel
        if hasattr(backend.vae, "enable_slicing"):  # decode the frames one at a time
            backend.vae.enable_slicing()


save_memory(s)
if DEVICE == "cuda":
    s.num_frames = 16  # fits a 15 GB T4 (see the estimate)
    torch.cuda.empty_cache()
    # the next generate as set now; with an edit and 0 < lam < 1 (4 rows a UNet call): about 10.4 GiB
    print(f"estimated peak of the next generate: {s.memory_plan()['total'] / 2**30:.1f} GiB")
else:  # a CPU run is a smoke test of the cells
    s.steps = 4
print(s.num_frames, "frames,", s.steps, "steps")

# %% [markdown]
# ## Image, content, motion
#
# Use your own picture with `s.image = "photo.jpg"` (on Colab upload it with the file browser on
# the left, or `from google.colab import files; files.upload()`). Here a picture is drawn in code.

# %%
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
    d.ellipse([40 * u, 8 * u, 52 * u, 20 * u], fill=(255, 230, 90))  # sun
    d.ellipse([10 * u, 44 * u, 20 * u, 54 * u], fill=(220, 40, 40))  # red ball
    d.rectangle([50 * u, 36 * u, 53 * u, 48 * u], fill=(90, 60, 30))  # trunk
    d.ellipse([45 * u, 25 * u, 58 * u, 38 * u], fill=(30, 90, 40))  # crown
    return img


W, H = s.size
s.image = make_scene(W)
s.content = "a watercolor painting of a valley at sunset, a red ball on the grass, a tree"
s.content_strength = 0.0 if TINY else 0.5  # tiny models' img2img makes noise: keep x~ = x there
s.motion = "the ball rolls down the hill, leaves sway in the wind"
s.negative_prompt = "blurry, low quality"
s.intermediate(edited=False)

# %% [markdown]
# ## Plain video (lam = 1)
#
# Nothing is edited yet, so only one branch runs: this is what PIA alone would make of x~.

# %%
s.lam = 1.0
plain = s.generate(seed=0)
print({k: round(v, 2) for k, v in s.last_timings.items()}, "seconds")
plain

# %% [markdown]
# ## Paint and drag, then blend (lam = 0.5)
#
# A blue bird painted in the sky, and the red ball dragged to the right along a path. The edited
# image x~' conditions the second branch; lam = 0.5 blends both noise predictions (Eq. 4).

# %%
import matplotlib.pyplot as plt

layer = Image.new("RGBA", (W, H), (0, 0, 0, 0))
ImageDraw.Draw(layer).ellipse([0.15 * W, 0.2 * H, 0.32 * W, 0.28 * H], fill=(30, 60, 220, 255))
s.paint(layer)
u = W / 64
s.trajectories = [
    Trajectory(points=[(15 * u, 49 * u), (28 * u, 46 * u), (38 * u, 52 * u)], radius=6 * u, easing="ease-in-out")
]
s.lam = 0.5

fig, axes = plt.subplots(1, 2, figsize=(7, 3.5))
for ax, im, title in zip(axes, [s.intermediate(edited=False), s.intermediate()], ["x~", "x~' (edited)"], strict=True):
    ax.imshow(im)
    ax.set_title(title)
    ax.set_axis_off()
plt.show()

# %%
blended = s.generate(seed=0)
if DEVICE == "cuda":
    print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
print({k: round(v, 2) for k, v in s.last_timings.items()}, "seconds")
blended

# %%
blended.grid(cols=8, title="lam = 0.5")

# %% [markdown]
# ## The full loop with widgets
#
# `Studio(s)` is the app: paint on the canvas, drag handles to targets in the trajectory editor,
# edit the texts, move the lambda slider and press Generate; latent previews show while it runs.
# Moving only lambda reruns only the denoising (see `s.stats`).

# %%
from ivwidgets import Studio

studio = Studio(s)
studio

# %% [markdown]
# ## Keep your work
#
# The mp4 plays anywhere (H.264); the session folder (JSON, PNG, safetensors) reloads with
# `Session.load(folder, device=DEVICE, dtype=DTYPE)`.

# %%
blended.to_mp4("interactivevideo.mp4")
folder = s.save("interactivevideo_session")
if DEVICE == "cuda":
    torch.cuda.empty_cache()
print(sorted(p.name for p in folder.iterdir()))
