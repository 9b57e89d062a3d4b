"""The shapes world's first scene and the demo's instructions (`python -m ivcore demo`, README's picture)."""

from __future__ import annotations

from ivcore.shapes.evaluate import painted_square
from ivcore.shapes.world import Scene, Shape, render, shape_mask
from ivcore.trajectory import Trajectory


def shapes_scene():
    """A red circle and a white square on sky: the shapes sessions' first picture and the demo's scene."""
    return Scene("sky", (Shape("circle", "red", 14, 14, 14), Shape("square", "white", 48, 32, 12)))


def shapes_demo(session, lam: float = 0.0):
    """Set the demo's instructions on a shapes session (`python -m ivcore demo`, README's picture).

    A red circle and a white square on sky; a yellow square painted on x, and the content caption
    names it too (as the paper's users describe their edit: at a content_strength above 0, img2img
    would otherwise pull the square towards the caption's colours); motion "the red circle
    moves right"; the white square dragged along a curve; `lam`. Returns the scene (without the paint).
    """
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
