"""What the video-family tests share (test_wan, test_cogvideox, test_ltx, test_hunyuan): a picture, a paint
edit, a session on a tiny folder, the family pipeline as oracle, and the uint8 distance they are compared by."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ivcore import Session

MOTION = "a red fox runs"


def picture(size: tuple[int, int]) -> Image.Image:
    rng = np.random.RandomState(0)
    return Image.fromarray((rng.rand(size[1], size[0], 3) * 255).astype(np.uint8))


def yellow_square(size: tuple[int, int]) -> np.ndarray:
    layer = np.zeros((size[1], size[0], 4), np.uint8)
    layer[8:28, 8:28] = (255, 220, 0, 255)
    return layer


def family_session(tiny_model_dirs, folder, size: tuple[int, int]) -> Session:
    """The tiny SD1.5 image model with a video family's tiny folder, through from_pretrained (the real path)."""
    s = Session.from_pretrained(tiny_model_dirs["image_model"], folder, device="cpu", dtype=torch.float32)
    s.image = picture(size)
    s.content, s.motion = "a fox", MOTION
    s.content_strength = 0.3
    return s


def pipeline_frames(s: Session, image: Image.Image | None = None, seed: int = 0, **extra) -> np.ndarray:
    """The family's diffusers pipeline over the session's own modules, with the session's prompt, negative
    prompt, size, frames, steps, guidance and `seed`, as uint8 frames; `extra` adds or overrides arguments.
    `image` None: x~."""
    width, height = s.size
    options = dict(
        image=s.intermediate(edited=False) if image is None else image, prompt=s.motion,
        negative_prompt=s.negative_prompt, height=height, width=width, num_frames=s.num_frames,
        num_inference_steps=s.steps, guidance_scale=s.guidance, output_type="np",
    )  # fmt: skip
    frames = s.video_backend.pipeline()(**{**options, **extra}, generator=torch.Generator().manual_seed(seed))
    return (frames.frames[0] * 255).round().astype(np.uint8)


def levels(a: np.ndarray, b: np.ndarray) -> int:
    """The largest difference of two uint8 videos, in levels."""
    return int(np.abs(a.astype(int) - b.astype(int)).max())
