"""Jupyter widgets for InteractiveVideo, bound to an ``ivcore.Session``.

``PaintCanvas``, ``TrajectoryEditor`` and ``VideoPlayer`` are anywidgets (ES modules in js/);
``TakesStrip`` shows a session's takes; ``Studio`` composes them all with ipywidgets controls and an
ipycanvas latent preview.
"""

from .paint import PaintCanvas
from .player import VideoPlayer
from .studio import Studio, latents_to_rgb
from .takes_strip import TakesStrip
from .trajectory import TrajectoryEditor, parse_trajectories, rasterize_mask, rle_encode, trajectory_to_data

__all__ = [
    "PaintCanvas",
    "Studio",
    "TakesStrip",
    "TrajectoryEditor",
    "VideoPlayer",
    "latents_to_rgb",
    "parse_trajectories",
    "rasterize_mask",
    "rle_encode",
    "trajectory_to_data",
]
