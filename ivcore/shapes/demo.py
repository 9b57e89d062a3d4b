"""The shapes world's first scene and the demo's instructions (`python -m ivcore demo`, README's picture)."""

from __future__ import annotations

from ivcore.shapes.evaluate import painted_square
from ivcore.shapes.world import SIZE, Scene, Shape, Size, dims, render, shape_mask
from ivcore.trajectory import Trajectory


def place(x: float, y: float, size: Size = SIZE) -> tuple[float, float]:
    """A point of the 64 x 64 layout at the same place in a (W, H) frame (x scaled by W / 64, y by H / 64).

    The shapes keep their pixel size (the models learnt 10-18 px shapes); only where they stand
    follows the frame, so a landscape demo spreads its scene over the width instead of cropping it.
    """
    width, height = dims(size)
    return x * width / SIZE, y * height / SIZE


def shapes_scene(size: Size = SIZE) -> Scene:
    """A red circle and a white square on sky: the shapes sessions' first picture and the demo's scene.

    `size` (a side or (W, H)): the frame it is laid out in (render it with `render(scene, size=size)`);
    at 64 x 64 the centres are (14, 14) and (48, 32), at 96 x 64 (21, 14) and (72, 32).
    """
    layout = (("circle", "red", 14, 14, 14), ("square", "white", 48, 32, 12))
    shapes = (Shape(kind, colour, *(round(v) for v in place(x, y, size)), side) for kind, colour, x, y, side in layout)
    return Scene("sky", tuple(shapes))


def shapes_demo(session, lam: float = 0.0):
    """Set the demo's instructions on a shapes session (`python -m ivcore demo`, README's picture).

    A red circle and a white square on sky; a yellow square painted on x, and the content caption
    names it too (as the paper's users describe their edit: at a content_strength above 0, img2img
    would otherwise pull the square towards the caption's colours); motion "the red circle
    moves right"; the white square dragged along a curve; `lam`. Everything is laid out at the
    session's size (`place`): at 96 x 64 the scene is rendered at 96 x 64, not cropped from 64 x 64.
    Returns the scene (without the paint).
    """
    size = tuple(session.size)
    scene = shapes_scene(size)
    px, py = (round(v) for v in place(14, 36, size))
    paint = Shape("square", "yellow", px, py, 12)
    session.image = render(scene, size=size)
    session.content = Scene(scene.background, (*scene.shapes, paint)).caption()
    session.motion = f"the {scene.shapes[0].name} moves right"
    layer, _ = painted_square(scene, paint.colour, size=paint.size, at=(paint.x, paint.y), frame_size=size)
    session.paint(layer)
    path = [place(x, y, size) for x, y in ((48.0, 32.0), (44.0, 24.0), (36.0, 24.0), (30.0, 30.0))]
    session.trajectories = [Trajectory(points=path, mask=shape_mask(scene, 1, size))]
    session.lam = lam
    return scene


SQUARE = ("right", "down", "left", "up")


def square_story(session, seed: int = 0):
    """A four-segment story in which a red circle traces a square: it moves right, then (from the last
    frame of each segment) down, left and up. Returns the story's Video (`session.story.video`)."""
    from ivcore import story

    scene = Scene("sky", (Shape("circle", "red", 18, 18, 12), Shape("square", "blue", 50, 52, 10)))
    session.story.clear()
    session.clear_paint()
    session.trajectories = []
    session.image = render(scene)
    session.content = scene.caption()
    session.content_strength = 0.0
    mover = scene.shapes[0].name
    segments = [{"motion": f"the {mover} moves {way}", "seed": seed + i} for i, way in enumerate(SQUARE)]
    return story.render(session, segments)
