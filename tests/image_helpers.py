"""What the image-family tests share (test_sdxl, test_flux, test_flux2, test_qwen_image, test_zimage): tiny
folders in the hub layouts, a session over them through from_pretrained (the path real weights take), the family
pipeline loaded by diffusers itself as oracle, and the checks every image family must pass the same way.

Written once so that a family added later runs the very checks the others run, not a copy that drifts."""

from __future__ import annotations

import numpy as np
import torch
from family_helpers import MOTION, picture, yellow_square

from ivcore import Session
from ivcore.stages.images import composite
from ivcore.testing import mirror

VIDEO = "wan2.1-i2v"  # the P_video most image tests pair with (64 x 48 native)


def image_folders(tmp_path_factory, name: str, kinds, video: str = VIDEO) -> dict:
    """Tiny folders of the image `kinds` and of `video`, under one temporary root named `name`."""
    root = tmp_path_factory.mktemp(name)
    return {kind: mirror(root / kind, kind) for kind in (*kinds, video)}


def image_session(
    image_folder, video_folder, content: str = "a fox in the snow", dtype: torch.dtype = torch.float32, **kwargs
) -> Session:
    """A session over the two folders on the CPU with a picture at its size, `content`, MOTION and strength 0.6."""
    s = Session.from_pretrained(image_folder, video_folder, device="cpu", dtype=dtype, **kwargs)
    s.image = picture(s.size)
    s.content, s.motion = content, MOTION
    s.content_strength = 0.6
    return s


def oracle_pipeline(pipeline_class: str, folder, **kwargs):
    """The family's diffusers pipeline loaded from the same folder by diffusers itself (not over the session's
    modules, so that a wrong flag or component in our loader shows up as a difference)."""
    import diffusers

    pipe = getattr(diffusers, pipeline_class).from_pretrained(str(folder), **kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def assert_strength_0_gives_x(s: Session) -> None:
    """Strength 0: x~ is x and x~' is x + paint, exactly (P_img does not run)."""
    s.content_strength = 0.0
    assert np.array_equal(np.asarray(s.intermediate(edited=False)), np.asarray(s.image))
    s.paint(yellow_square(s.size))
    assert np.array_equal(np.asarray(s.intermediate()), np.asarray(composite(s.image, s.paint_layer)))


def assert_one_edit_above_0(s: Session) -> np.ndarray:
    """An edit family: every strength above 0 runs the same edit, one image-cache entry for all; gives it."""
    s.content_strength = 0.3
    low = np.asarray(s.intermediate(edited=False))
    misses = s.stats["image"]["misses"]
    s.content_strength = 1.0
    assert np.array_equal(np.asarray(s.intermediate(edited=False)), low)
    assert s.stats["image"]["misses"] == misses  # one cache entry for every strength above 0
    return low


def assert_painting_reruns_p_img_for_x_tilde_edited_only(s: Session) -> None:
    """A second paint layer recomputes x~' only; x~ and the prompts come from the caches."""
    s.lam = 0.5
    s.paint(yellow_square(s.size))
    s.generate(seed=0, num_frames=5, progress=False)
    before = s.stats["image"]
    s.paint(yellow_square(s.size)[::-1].copy())  # another layer
    s.generate(seed=0, num_frames=5, progress=False)
    after = s.stats["image"]
    assert after["misses"] - before["misses"] == 1  # x~' only
    assert after["hits"] - before["hits"] >= 1  # x~ from the cache
    text = s.stats["text"]["misses"]
    s.generate(seed=0, num_frames=5, progress=False)
    assert s.stats["text"]["misses"] == text  # nothing re-encoded


def assert_take_restores_bitwise(s: Session, tmp_path, backend: str, change: dict | None = None, **generate) -> None:
    """Generate with paint at lam 0.4, change the settings (`change`, default another content text at lam 0.9)
    and generate again, restore the first take: the same frames bitwise with P_img and the video recomputed; a
    saved and loaded session has the family's `backend` and the same x~'. `generate` (default 5 frames) goes to
    every generate."""
    generate = {"num_frames": 5, **generate, "progress": False}
    s.paint(yellow_square(s.size))
    s.lam = 0.4
    first = s.generate(seed=3, **generate)
    assert first.frames.shape == (generate["num_frames"], s.size[1], s.size[0], 3)
    for name, value in (change or {"content": "a wolf", "lam": 0.9}).items():
        setattr(s, name, value)
    s.generate(seed=4, **generate)
    s.restore(s.takes[-2])
    s.cache.clear()  # P_img and the video recomputed, not read back
    assert np.array_equal(s.generate(**generate).frames, first.frames)
    s.save(tmp_path / "saved")
    loaded = Session.load(tmp_path / "saved")
    assert type(loaded.image_backend).__name__ == backend
    assert np.array_equal(np.asarray(loaded.intermediate()), np.asarray(s.intermediate()))
