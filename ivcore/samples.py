"""Small synthetic pictures for examples, tests and benchmarks: no files, no downloads."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def scene(size: int = 64) -> Image.Image:
    """A deterministic picture with structure: sky gradient, ground and a sun."""
    y = np.linspace(0, 1, size)[:, None]
    sky = np.stack([80 + 100 * y, 120 + 80 * y, 220 - 60 * y], axis=-1) * np.ones((1, size, 1))
    img = Image.fromarray(sky.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, size * 2 // 3, size, size], fill=(60, 140, 60))
    r = size // 8
    draw.ellipse([size // 4 - r, size // 4 - r, size // 4 + r, size // 4 + r], fill=(250, 220, 80))
    return img


def shapes_scene():
    """A red circle and a white square on sky: the shapes sessions' first picture and the demo's scene."""
    from ivcore.world import Scene, Shape

    return Scene("sky", (Shape("circle", "red", 14, 14, 14), Shape("square", "white", 48, 32, 12)))


def shapes_demo(session, lam: float = 0.0):
    """Set the demo's instructions on a shapes session (`python -m ivcore demo`, README's picture).

    A red circle and a white square on sky; a yellow square painted on x, and the content caption
    names it too (as the paper's users describe their edit: at a content_strength above 0, img2img
    would otherwise pull the square towards the caption's colours); motion "the red circle
    moves right"; the white square dragged along a curve; `lam`. Returns the scene (without the paint).
    """
    from ivcore.shapes_eval import painted_square
    from ivcore.trajectory import Trajectory
    from ivcore.world import Scene, Shape, render, shape_mask

    scene = shapes_scene()
    paint = Shape("square", "yellow", 14, 36, 12)
    session.image = render(scene)
    session.content = Scene(scene.background, (*scene.shapes, paint)).caption()
    session.motion = f"the {scene.shapes[0].name} moves right"
    session.paint(painted_square(scene, paint.colour, size=paint.size, at=(paint.x, paint.y))[0])
    path = [(48.0, 32.0), (44.0, 24.0), (36.0, 24.0), (30.0, 30.0)]
    session.trajectories = [Trajectory(points=path, mask=shape_mask(scene, 1))]
    session.lam = lam
    return scene
