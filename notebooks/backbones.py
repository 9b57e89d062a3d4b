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
# # One Session, every video backbone
#
# On Colab: *File > Upload notebook*, then install the project first as colab_gpu.ipynb does.
#
# Eq. 4 of InteractiveVideo needs no training, so any image-to-video model whose image condition can be
# swapped per branch can be P_video. The same `Session` runs PIA and SVD, and also today's diffusion
# transformers: Wan 2.1 / 2.2, CogVideoX, LTX-Video (and its distilled 8-step release) and HunyuanVideo 1.5.
# `Session.from_pretrained(image_model, video_model)` reads the video model's `model_index.json`
# to find its family. Defaults such as size, frame count, steps, guidance and fps then come from that
# family (docs/backbones.md).
#
# For each family this notebook builds a session, paints a yellow square over the picture and generates at
# lam = 1 (the paint ignored: the video of x~) and lam = 0.5 (both conditions pull on one video). The two
# videos are shown side by side, and the session's memory estimate is printed. By default it runs on
# tiny random-init models in each family's real folder layout (`ivcore.testing.mirror`: no download, a
# CPU is enough). Their videos are noise, but every stage is real. With a GPU and the weights, set
# `REAL_WEIGHTS = True` to load the real hub ids instead (tens of GB each; see docs/memory.md for
# which card fits which family).

# %%
import os

import torch

# True: the real hub ids below (a GPU with room for them, and the weights downloaded or downloadable);
# False: tiny random-init folders in each family's hub layout, built here on the CPU.
REAL_WEIGHTS = False
REAL_WEIGHTS = REAL_WEIGHTS and torch.cuda.is_available() and os.environ.get("IVCORE_TINY") != "1"

IMAGE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # P_img; any image family works (docs/backbones.md)
FAMILIES = {  # mirror kind -> the hub id of the real model in that layout
    "wan2.1-i2v": "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
    "wan2.2-ti2v-5b": "Wan-AI/Wan2.2-TI2V-5B-Diffusers",
    "cogvideox-5b-i2v": "THUDM/CogVideoX-5b-I2V",
    "ltx-video-0.9.0-i2v": "Lightricks/LTX-Video",
    "ltx-video-0.9.7-distilled": "Lightricks/LTX-Video-0.9.7-distilled",  # 8 steps, guidance 1
    "hunyuanvideo-1.5-480p-i2v": "hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_i2v",
}

# %%
import tempfile
from pathlib import Path

from ivcore import Session
from ivcore.backends.tiny import save_tiny_models
from ivcore.testing import mirror

if REAL_WEIGHTS:
    image_model, video_models = IMAGE_MODEL, dict(FAMILIES)
    options = dict(device="cuda", dtype=torch.bfloat16)
else:  # tiny folders, written once into a temporary directory
    # IVCORE_TINY=1 (the tests) would make from_pretrained build the tiny PIA preset instead of reading a
    # folder; these folders are tiny already and the point is to load each family's layout, so it is off here
    os.environ.pop("IVCORE_TINY", None)
    root = Path(tempfile.mkdtemp(prefix="backbones-"))
    image_model = save_tiny_models(root / "sd")["image_model"]  # the tiny SD1.5-layout P_img of the tests
    video_models = {kind: mirror(root / kind, kind) for kind in FAMILIES}
    options = dict(device="cpu", dtype=torch.float32)

# %% [markdown]
# ## A picture and a paint edit at each family's size
#
# Each family has its own native size and size multiple (16 for Wan 2.1, 32 for Wan 2.2 TI2V-5B and
# LTX-Video, ...), so the picture and the paint layer are drawn at `s.size`: a picture from the shapes
# world, scaled to the model's size, and a yellow square in its upper left quarter.

# %%
import numpy as np

from ivcore.shapes import world
from ivwidgets.notebooks import to_model

scene = world.Scene("sky", (world.Shape("circle", "red", 18, 18, 14), world.Shape("square", "white", 46, 34, 14)))


def paint_layer(size):
    """A yellow square, opaque, over the upper left quarter of a (width, height) picture; clear elsewhere."""
    width, height = size
    layer = np.zeros((height, width, 4), np.uint8)
    layer[height // 8 : height // 2, width // 8 : width // 2] = (255, 220, 0, 255)
    return layer


def family_session(video_model):
    s = Session.from_pretrained(image_model, video_model, **options)
    if REAL_WEIGHTS:
        s.set_memory(offload="model")  # one model on the GPU at a time (docs/memory.md)
    s.image = to_model(world.render(scene), s.size)
    s.content, s.content_strength = scene.caption(), 0.0  # 0: x~ is the picture itself
    s.motion = "the red circle moves down"
    s.paint(paint_layer(s.size))
    return s


# %% [markdown]
# ## Each family at lam 1 and lam 0.5
#
# Moving lambda reruns only the denoising and the decoding: the text, P_img and the image encodings of x~ and
# x~' come from the session's caches (`s.stats` counts the hits). `s.memory_plan()` estimates the peak device
# memory of the next generate: the weights of both models and the activations of every stage, traced on the
# meta device from the loaded configs with nothing allocated. On the tiny folders it is a few MB. On the real
# ids it is the number docs/memory.md tabulates per card.

# %%
from IPython.display import display

from ivcore import Video

results = {}
for kind, video_model in video_models.items():
    s = family_session(video_model)
    plain = s.generate(seed=0, lam=1.0, progress=False)
    blend = s.generate(seed=0, lam=0.5, progress=False)
    total = s.memory_plan()["total"]
    width, height = s.size
    results[kind] = (plain, blend)
    print(
        f"{kind}: {type(s.video_backend).__name__}, {width}x{height}, {s.num_frames} frames "
        f"({s.video_backend.frame_rule[0]}k+1), {s.steps} steps, guidance {s.guidance}; "
        f"memory_plan total {total / 2**20:.2f} MiB; denoise runs {s.stats['denoise']['misses']}, "
        f"image hits {s.stats['image']['hits']}"
    )
    display(Video.side_by_side([plain, blend], labels=[f"{kind} lam 1", "lam 0.5"]))

# %% [markdown]
# ## How far lambda moved each video
#
# At lam 0.5 the edited branch (x~' with the yellow square) pulls on the video. The mean distance from the
# lam = 1 video, in uint8 levels, shows that it did so on every family. On the tiny random-init models it
# is a number, not a picture to judge by eye.

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, len(results), figsize=(3 * len(results), 2.6))
for ax, (kind, (plain, blend)) in zip(np.atleast_1d(axes), results.items(), strict=True):
    moved = np.abs(blend.frames.astype(int) - plain.frames.astype(int)).mean()
    ax.imshow(np.concatenate([plain.frames[-1], blend.frames[-1]], axis=1))
    ax.set_title(f"{kind}\nlast frame, lam 1 | 0.5\nmean |diff| {moved:.1f}", fontsize=8)
    ax.axis("off")
    assert moved > 0, kind
plt.tight_layout()
plt.show()

# %%
if not REAL_WEIGHTS:
    import shutil

    shutil.rmtree(root, ignore_errors=True)  # the tiny folders
