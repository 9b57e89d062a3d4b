"""What the example notebooks share (notebooks/*.py), imported by them instead of pasted into their cells.

lambda_explained and trajectories open the same way: real weights (SD1.5 img2img + PIA) on a GPU,
the shapes-world models of ``Session.shapes()`` on a CPU, and a scene drawn in the shapes world's
64 x 64 pixels that must be scaled to the model's size (512 x 512 for SD1.5).

Why here: the notebooks also run where only the wheel is installed. On Colab a notebook comes alone
(opened from GitHub or uploaded), without the notebooks folder, after colab_gpu's install cell has
installed the project, so a helper module next to the notebooks would not be found there. In the
package, it belongs to a client of the engine, not to the engine: it picks models by their hub ids
and joins the session with the shapes world, which ``ivcore`` itself never does (docs/architecture.md).
``ivwidgets`` is the package's notebook-facing client. The install cell of colab_gpu stays in its
cell (it runs before the package is there).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ivcore import Session

__all__ = ["PIA", "SD15", "gpu_or_shapes_session", "to_model"]

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
PIA = "openmmlab/PIA-condition-adapter"


def gpu_or_shapes_session(seed: int = 0) -> Session:
    """SD1.5 img2img + PIA on a GPU (a few GB to download; a T4 is enough), else the shapes-world models.

    The shapes-world models (64 x 64 pictures, 8-frame clips) ship in the package: nothing is downloaded.
    Under ``IVCORE_TINY=1`` both build the tiny random preset instead (the tests).
    """
    import torch

    if torch.cuda.is_available():
        return Session.from_pretrained(SD15, SD15, motion_adapter=PIA)
    return Session.shapes(seed=seed)


def to_model(picture: Image.Image | np.ndarray, size: tuple[int, int]) -> Image.Image | np.ndarray:
    """A shapes-world picture, paint layer or bool mask at the model's ``size`` (W, H), nearest neighbour.

    A bool mask stays a bool array; a picture or layer (PIL image or uint8 array) comes back as a PIL image.
    """
    if isinstance(picture, np.ndarray) and picture.dtype == bool:
        return np.asarray(Image.fromarray(picture).resize(size, Image.NEAREST))
    image = picture if isinstance(picture, Image.Image) else Image.fromarray(picture)
    return image.resize(size, Image.NEAREST)
