"""Trajectory engine: frames follow eased paths, nothing else changes, bad input is named."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ivcore.errors import InstructionError
from ivcore.trajectory import (
    Trajectory,
    animate,
    animate_with_masks,
    apply_endpoint,
    frame_times,
    trajectory_path_position,
    validate_trajectories,
)

H, W = 96, 128
BG, FG = 30, 220


def square_scene(top: int = 20, left: int = 20, size: int = 16, bg: int = BG) -> tuple[np.ndarray, np.ndarray]:
    """A bright square on a dark uniform background, and its mask."""
    img = np.full((H, W, 3), bg, np.uint8)
    mask = np.zeros((H, W), bool)
    mask[top : top + size, left : left + size] = True
    img[mask] = FG
    return img, mask


def centre(top: int, left: int, size: int) -> tuple[float, float]:
    return left + (size - 1) / 2, top + (size - 1) / 2


def centroid(frame: np.ndarray, bg: int = BG, box: tuple[slice, slice] | None = None) -> tuple[float, float]:
    """Centroid of (brightness above the background); ``box`` restricts it to part of the frame."""
    weight = np.clip(frame.astype(np.float64).mean(2) - bg, 0, None)
    if box is not None:
        keep = np.zeros_like(weight)
        keep[box] = 1
        weight *= keep
    ys, xs = np.mgrid[: frame.shape[0], : frame.shape[1]]
    total = weight.sum()
    assert total > 0, "the square vanished"
    return float((xs * weight).sum() / total), float((ys * weight).sum() / total)


def assert_follows(frames: np.ndarray, traj: Trajectory, offset=(0.0, 0.0), box=None) -> float:
    """Every frame's centroid within 1 px of the eased path position; returns the worst error."""
    worst = 0.0
    for frame, t in zip(frames, frame_times(len(frames)), strict=True):
        ex, ey = trajectory_path_position(traj, t)
        cx, cy = centroid(frame, box=box)
        err = math.hypot(cx - ex - offset[0], cy - ey - offset[1])
        assert err < 1.0, f"t={t:.3f}: centroid ({cx:.2f}, {cy:.2f}) vs path ({ex:.2f}, {ey:.2f})"
        worst = max(worst, err)
    return worst


# ------------------------------------------------------------------------------------------
# Paths and timing
# ------------------------------------------------------------------------------------------


def test_path_position_uses_arc_length_easing_and_window():
    traj = Trajectory(points=[(10, 10), (30, 10), (30, 30)])
    assert trajectory_path_position(traj, 0.0) == (10.0, 10.0)
    assert trajectory_path_position(traj, 0.25) == pytest.approx((20.0, 10.0))
    assert trajectory_path_position(traj, 0.5) == pytest.approx((30.0, 10.0))
    assert trajectory_path_position(traj, 0.75) == pytest.approx((30.0, 20.0))
    assert trajectory_path_position(traj, 1.0) == (30.0, 30.0)
    eased = Trajectory(points=[(0, 0), (100, 0)], easing="ease-in-out", start=0.2, end=0.6)
    assert trajectory_path_position(eased, 0.1) == (0.0, 0.0)
    # progress (0.3 - 0.2) / 0.4 = 0.25 -> smoothstep 0.15625
    assert trajectory_path_position(eased, 0.3) == pytest.approx((15.625, 0.0))
    assert trajectory_path_position(eased, 0.4) == pytest.approx((50.0, 0.0))
    assert trajectory_path_position(eased, 0.9) == (100.0, 0.0)


def test_frame_times():
    assert frame_times(1) == [0.0]
    assert frame_times(5) == [0.0, 0.25, 0.5, 0.75, 1.0]


# ------------------------------------------------------------------------------------------
# Motion of objects
# ------------------------------------------------------------------------------------------


PATHS = [
    pytest.param([(0, 0), (37.3, 21.6)], "linear", 0.0, 1.0, id="linear"),
    pytest.param([(0, 0), (40, 30)], "ease-in-out", 0.0, 1.0, id="ease-in-out"),
    pytest.param([(0, 0), (50.5, 0), (50.5, 40.25)], "linear", 0.2, 0.7, id="multipoint-window"),
    pytest.param([(0, 0), (30, 45), (70, 10), (80, 50)], "ease-in-out", 0.1, 0.9, id="multipoint-eased"),
]


@pytest.mark.parametrize(("rel", "easing", "start", "end"), PATHS)
def test_centroid_follows_eased_path(rel, easing, start, end):
    img, mask = square_scene(top=20, left=20, size=16)
    hx, hy = centre(20, 20, 16)
    traj = Trajectory([(hx + dx, hy + dy) for dx, dy in rel], mask, easing=easing, start=start, end=end)
    frames = animate(img, [traj], 13)
    assert frames.shape == (13, H, W, 3) and frames.dtype == np.uint8
    assert_follows(frames, traj)
    # the motion is real: the last frame's centroid is at the target, far from the handle
    cx, cy = centroid(frames[-1])
    tx, ty = traj.points[-1]
    assert math.hypot(cx - tx, cy - ty) < 0.5
    assert math.hypot(cx - hx, cy - hy) > 30


def test_frames_before_start_are_the_image_and_after_end_are_the_target():
    img, mask = square_scene()
    hx, hy = centre(20, 20, 16)
    traj = Trajectory([(hx, hy), (hx + 40, hy + 20)], mask, start=0.4, end=0.6)
    frames = animate(img, [traj], 11)
    for i in range(5):  # t <= 0.4
        assert np.array_equal(frames[i], img)
    for i in range(6, 11):  # t >= 0.6
        assert np.array_equal(frames[i], frames[-1])
    assert not np.array_equal(frames[5], img)


def test_disk_mask_when_mask_is_none():
    img = np.full((H, W, 3), BG, np.uint8)
    ys, xs = np.mgrid[:H, :W]
    img[(xs - 30) ** 2 + (ys - 40) ** 2 <= 10**2] = FG
    traj = Trajectory([(30, 40), (90, 55)], None, radius=10)
    frames = animate(img, [traj], 9)
    assert_follows(frames, traj)
    assert frames[-1][40, 30].mean() < BG + 15  # the disk left its place


def test_pixels_away_from_mask_and_path_are_unchanged():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    mask = np.zeros((H, W), bool)
    mask[10:26, 10:26] = True
    traj = Trajectory([(17.5, 17.5), (60.3, 30.7), (70.5, 70.2)], mask, easing="ease-in-out")
    frames = animate(img, [traj], 10)
    touched = mask.copy()
    for t in frame_times(10):
        x, y = trajectory_path_position(traj, t)
        dx, dy = x - 17.5, y - 17.5
        y0, x0 = math.floor(10 + dy) - 1, math.floor(10 + dx) - 1
        touched[max(y0, 0) : y0 + 19, max(x0, 0) : x0 + 19] = True
    away = ~touched
    assert away.mean() > 0.6  # the check covers most of the image
    for frame in frames:
        assert np.array_equal(frame[away], img[away])
    assert not np.array_equal(frames[-1][mask], img[mask])  # the region did move


def test_two_trajectories_move_independently():
    img, mask_a = square_scene(top=10, left=10, size=12)
    _, mask_b = square_scene(top=60, left=70, size=12)
    img[mask_b] = FG
    a = Trajectory([centre(10, 10, 12), (60.5, 20.25)], mask_a, easing="ease-in-out")
    b = Trajectory([centre(60, 70, 12), (110.7, 75.5)], mask_b, start=0.3, end=0.8)
    frames = animate(img, [a, b], 11)
    top, bottom = (slice(0, 45), slice(None)), (slice(45, None), slice(None))
    assert_follows(frames, a, box=top)
    assert_follows(frames, b, box=bottom)
    # each half of the frame is what that trajectory alone gives
    only_a = animate(img, [a], 11)
    only_b = animate(img, [b], 11)
    assert np.array_equal(frames[:, :45], only_a[:, :45])
    assert np.array_equal(frames[:, 45:], only_b[:, 45:])


def test_anchor_is_bitwise_unchanged_even_when_an_object_passes_over_it():
    rng = np.random.default_rng(2)
    img, mask = square_scene(top=40, left=5, size=14)
    anchor = np.zeros((H, W), bool)
    anchor[35:60, 50:70] = True
    img[anchor] = rng.integers(0, 256, (int(anchor.sum()), 3), dtype=np.uint8)
    obj = Trajectory([centre(40, 5, 14), (110, 47)], mask)
    pin = Trajectory([(60, 47), (60, 47)], anchor, kind="anchor")
    frames = animate(img, [obj, pin], 15)
    for frame in frames:
        assert np.array_equal(frame[anchor], img[anchor])
    without = animate(img, [obj], 15)
    assert any(not np.array_equal(f[anchor], img[anchor]) for f in without)  # it does pass over


def test_anchor_with_camera_stays_still():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    pin = Trajectory([(40, 40), (40, 40)], None, radius=12, kind="anchor")
    cam = Trajectory([(64, 48), (75.5, 40.25)], kind="camera")
    frames = animate(img, [cam, pin], 6)
    ys, xs = np.mgrid[:H, :W]
    disk = (xs - 40) ** 2 + (ys - 40) ** 2 <= 144
    for frame in frames:
        assert np.array_equal(frame[disk], img[disk])
    assert not np.array_equal(frames[-1][~disk], img[~disk])


def test_camera_shifts_the_whole_frame_with_replicated_edges():
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    cam = Trajectory([(50, 50), (58, 44)], kind="camera")  # content moves by (+8, -6)
    frames = animate(img, [cam], 5)
    last = frames[-1]
    assert np.array_equal(last[: H - 6, 8:], img[6:, : W - 8])
    assert np.array_equal(last[: H - 6, :8], np.repeat(img[6:, :1], 8, axis=1))
    assert np.array_equal(last[H - 6 :, 8:], np.repeat(img[H - 1 :, : W - 8], 6, axis=0))
    # half way: (+4, -3), still integer, so still exact
    assert np.array_equal(frames[2][: H - 3, 4:], img[3:, : W - 4])


def bilinear_reference(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``out(y, x) = img(y - dy, x - dx)``, bilinear, edges clamped: the slow obvious way."""
    h, w = img.shape[:2]
    ys, xs = np.mgrid[:h, :w]
    sx, sy = xs - dx, ys - dy
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]

    def at(y, x):
        return img[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)].astype(np.float64)

    top = (1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)
    bottom = (1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1)
    return (1 - fy) * top + fy * bottom


@pytest.mark.parametrize("target", [(75.3, 40.6), (20.75, 90.5), (64.5, 48), (127.9, 0.2)])
def test_sub_pixel_camera_matches_a_bilinear_reference(target):
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    cam = Trajectory([(64, 48), target], kind="camera")
    frames = animate(img, [cam], 4)
    for frame, t in zip(frames, frame_times(4), strict=True):
        x, y = trajectory_path_position(cam, t)
        expected = bilinear_reference(img, x - 64, y - 48)
        assert np.abs(frame - expected).max() <= 0.5 + 1e-3


def test_camera_composes_with_object_motion():
    img, mask = square_scene(top=30, left=30, size=16)
    obj = Trajectory([centre(30, 30, 16), (80.25, 50.5)], mask, easing="ease-in-out")
    cam = Trajectory([(64, 48), (54.5, 41.75)], kind="camera")  # sub-pixel pan
    frames = animate(img, [obj, cam], 9)
    for frame, t in zip(frames, frame_times(9), strict=True):
        ox, oy = trajectory_path_position(obj, t)
        cx, cy = trajectory_path_position(cam, t)
        gx, gy = centroid(frame)
        assert math.hypot(gx - (ox + cx - 64), gy - (oy + cy - 48)) < 1.0


def test_frame_zero_is_the_image_and_last_frame_is_apply_endpoint():
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    mask = np.zeros((H, W), bool)
    mask[20:40, 30:55] = True
    trajs = [
        Trajectory([(42, 30), (70.3, 60.6)], mask, easing="ease-in-out"),
        Trajectory([(100, 70), (90, 20)], None, radius=9, start=0.1, end=0.5),
        Trajectory([(64, 48), (66.5, 47)], kind="camera"),
        Trajectory([(10, 80), (10, 80)], None, radius=6, kind="anchor"),
    ]
    for source in (img, Image.fromarray(img)):
        frames = animate(source, trajs, 7)
        assert np.array_equal(frames[0], img)
        end = apply_endpoint(source, trajs)
        assert end.dtype == np.uint8 and end.shape == (H, W, 3)
        assert np.array_equal(frames[-1], end)
    assert not np.array_equal(end, img)


def test_apply_endpoint_puts_the_region_at_its_target():
    img, mask = square_scene()
    traj = Trajectory([centre(20, 20, 16), (40, 30), (90.5, 60.25)], mask, start=0.5, end=0.6)
    cx, cy = centroid(apply_endpoint(img, [traj]))
    assert math.hypot(cx - 90.5, cy - 60.25) < 0.5


def test_single_frame_is_the_image():
    img, mask = square_scene()
    frames = animate(img, [Trajectory([(27.5, 27.5), (80, 80)], mask)], 1)
    assert frames.shape == (1, H, W, 3)
    assert np.array_equal(frames[0], img)


def test_no_trajectories_gives_a_still_clip():
    img, _ = square_scene()
    frames = animate(img, [], 4)
    assert all(np.array_equal(f, img) for f in frames)


# ------------------------------------------------------------------------------------------
# The hole and the masks
# ------------------------------------------------------------------------------------------


def test_hole_is_filled_with_the_background_not_black():
    img, mask = square_scene(top=20, left=20, size=16, bg=70)
    traj = Trajectory([centre(20, 20, 16), (100, 70)], mask)
    last = animate(img, [traj], 5)[-1]
    hole = last[mask].astype(int)
    assert hole.min() >= 65 and hole.max() <= 75  # the surrounding colour, neither black nor the square


def test_hole_fill_follows_a_gradient_background():
    ys, xs = np.mgrid[:H, :W]
    img = np.stack([xs * 1.5 + 20, ys * 1.5 + 30, np.full((H, W), 90.0)], -1).astype(np.uint8)
    mask = np.zeros((H, W), bool)
    mask[30:50, 40:60] = True
    expected = img[mask].astype(int)
    img[mask] = 255
    last = apply_endpoint(img, [Trajectory([(49.5, 39.5), (110, 80)], mask)])
    error = np.abs(last[mask].astype(int) - expected)
    assert error.mean() < 6 and error.max() < 20


def test_masks_cover_the_moved_square():
    img, mask = square_scene(top=20, left=20, size=16)
    traj = Trajectory([centre(20, 20, 16), (60.4, 50.7), (100.2, 40.5)], mask, easing="ease-in-out")
    frames, masks = animate_with_masks(img, [traj], 9)
    assert masks.shape == (9, H, W) and masks.dtype == bool
    assert np.array_equal(masks[0], mask)
    for frame, where in zip(frames, masks, strict=True):
        solid = frame.mean(2) > BG + 0.9 * (FG - BG)
        assert solid.sum() >= 14 * 14
        assert where[solid].all()  # covers the square
        assert where.sum() <= 18 * 18  # and not much more
    assert np.array_equal(frames, animate(img, [traj], 9))


def test_masks_follow_the_camera_and_exclude_anchors():
    img, mask = square_scene(top=20, left=20, size=16)
    obj = Trajectory([centre(20, 20, 16), (60, 50)], mask)
    cam = Trajectory([(64, 48), (74, 48)], kind="camera")
    pin = Trajectory([(60, 50), (60, 50)], None, radius=4, kind="anchor")
    frames, masks = animate_with_masks(img, [obj, cam, pin], 3)
    solid = frames[-1].mean(2) > BG + 0.9 * (FG - BG)
    assert masks[-1][solid].all()
    assert not masks[-1][50, 60]  # the anchor's pixel
    assert masks[-1][50, 75]  # object content shifted by the camera's +10 px


# ------------------------------------------------------------------------------------------
# Property: random paths
# ------------------------------------------------------------------------------------------

coord = st.tuples(st.floats(12, W - 13), st.floats(12, H - 13))


@settings(max_examples=40, deadline=None)
@given(
    path=st.lists(coord, min_size=1, max_size=3),
    easing=st.sampled_from(["linear", "ease-in-out"]),
    window=st.tuples(st.floats(0, 1), st.floats(0, 1)).filter(lambda w: abs(w[0] - w[1]) > 0.05),
    frames=st.integers(2, 9),
)
def test_centroid_on_path_for_random_paths(path, easing, window, frames):
    img = np.full((H, W, 3), BG, np.uint8)
    mask = np.zeros((H, W), bool)
    mask[42:54, 58:70] = True
    img[mask] = FG
    start, end = sorted(window)
    traj = Trajectory([(63.5, 47.5), *path], mask, easing=easing, start=start, end=end)
    assert_follows(animate(img, [traj], frames), traj)


# ------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------

GOOD = {"points": [[10, 10], [20, 20]]}


def bad_mask(kind: str) -> np.ndarray:
    if kind == "shape":
        return np.ones((H + 1, W), bool)
    if kind == "dtype":
        return np.ones((H, W), np.uint8)
    return np.zeros((H, W), bool)


BAD = [
    ({"points": "10,10"}, "points"),
    ({"points": 5}, "points"),
    ({"points": [[10, 10]]}, "points"),
    ({"points": []}, "points"),
    ({"points": [[10, 10], [W + 5, 10]]}, "points[1]"),
    ({"points": [[-1, 10], [10, 10]]}, "points[0]"),
    ({"points": [[10, 10], [10, H + 0.5]]}, "points[1]"),
    ({"points": [[10, 10], [float("nan"), 10]]}, "points[1]"),
    ({"points": [[10, float("inf")], [10, 10]]}, "points[0]"),
    ({"points": [[10, 10], [10]]}, "points[1]"),
    ({"points": [[10, 10], ["a", 3]]}, "points[1]"),
    ({"mask": "shape"}, "mask"),
    ({"mask": "dtype"}, "mask"),
    ({"mask": "empty"}, "mask"),
    ({"mask": [[True, False], [True]]}, "mask"),
    ({"start": 0.6, "end": 0.4}, "start"),
    ({"start": 0.5, "end": 0.5}, "start"),
    ({"start": -0.1}, "start"),
    ({"end": 1.5}, "end"),
    ({"start": float("nan")}, "start"),
    ({"easing": "bounce"}, "easing"),
    ({"easing": None}, "easing"),
    ({"kind": "spin"}, "kind"),
    ({"radius": 0}, "radius"),
    ({"radius": -3.0}, "radius"),
    ({"radius": float("nan")}, "radius"),
    ({"speed": 2}, "speed"),
]


def make(fields: dict, as_dict: bool):
    d = {**GOOD, **fields}
    if isinstance(d.get("mask"), str):
        d["mask"] = bad_mask(d["mask"])
    if as_dict or "speed" in d:
        return d
    return Trajectory(**d)


@pytest.mark.parametrize("as_dict", [False, True], ids=["object", "dict"])
@pytest.mark.parametrize(("fields", "suffix"), BAD)
def test_bad_input_names_the_index_and_the_problem(fields, suffix, as_dict):
    trajs = [Trajectory([(5, 5), (6, 6)]), make(fields, as_dict)]
    with pytest.raises(InstructionError) as info:
        validate_trajectories(trajs, (W, H))
    assert info.value.field == f"trajectories[1].{suffix}"
    assert isinstance(info.value, ValueError)
    with pytest.raises(InstructionError):
        animate(np.zeros((H, W, 3), np.uint8), trajs, 4)


@pytest.mark.parametrize("value", [None, "abc", Trajectory([(1, 1), (2, 2)]), {"points": [[1, 1], [2, 2]]}])
def test_trajectories_must_be_a_list(value):
    with pytest.raises(InstructionError) as info:
        validate_trajectories(value, (W, H))
    assert info.value.field == "trajectories"


def test_items_must_be_trajectories_or_dicts():
    with pytest.raises(InstructionError) as info:
        validate_trajectories([GOOD, GOOD, 42], (W, H))
    assert info.value.field == "trajectories[2]"


def test_animate_checks_image_and_frame_count():
    traj = [Trajectory([(5, 5), (6, 6)])]
    with pytest.raises(InstructionError) as info:
        animate(np.zeros((H, W), np.uint8), traj, 4)
    assert info.value.field == "image"
    for n in (0, -1, 2.5, True):
        with pytest.raises(InstructionError) as info:
            animate(np.zeros((H, W, 3), np.uint8), traj, n)
        assert info.value.field == "num_frames"


def test_validation_normalizes_and_does_not_mutate_input():
    mask = np.zeros((H, W), bool)
    mask[5:9, 5:9] = True
    obj = Trajectory([[7, 7], (np.int64(30), 40.5)], mask, radius=3, start=0, end=1)
    as_dict = {"points": [[7, 7], [30, 40]], "mask": mask.tolist(), "kind": "anchor"}
    before_obj, before_dict = copy.deepcopy(obj), copy.deepcopy(as_dict)
    out = validate_trajectories([obj, as_dict], (W, H))
    assert obj == before_obj and obj.points == before_obj.points and obj.points[0] == [7, 7]
    assert as_dict == before_dict
    assert out[0].points == [(7.0, 7.0), (30.0, 40.5)]
    assert all(type(v) is float for p in out[0].points for v in p)
    assert out[0].mask is not mask and out[0].mask.dtype == bool and np.array_equal(out[0].mask, mask)
    assert isinstance(out[0].radius, float) and out[0].radius == 3.0
    assert out[1].kind == "anchor" and isinstance(out[1].mask, np.ndarray)
    out[0].mask[:] = False
    assert mask.sum() == 16  # the copy is independent
    # a failing call leaves its input alone too
    bad = [obj, {"points": [[7, 7]], "mask": mask}]
    snapshot = copy.deepcopy(bad)
    with pytest.raises(InstructionError):
        validate_trajectories(bad, (W, H))
    assert bad[0] == snapshot[0] and bad[1]["points"] == [[7, 7]] and bad[1]["mask"] is mask


# ------------------------------------------------------------------------------------------
# Serialisation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mask_format", ["rle", "list"])
def test_to_dict_from_dict_round_trip(mask_format):
    rng = np.random.default_rng(6)
    mask = rng.random((H, W)) > 0.7
    mask[0, 0] = True  # a run of True first
    trajs = [
        Trajectory([(1.5, 2.25), (30, 40), (50, 60)], mask, 4.0, "ease-in-out", 0.2, 0.9, "object"),
        Trajectory([(10, 10), (12, 12)], None, kind="camera"),
        Trajectory([(3, 3), (3, 3)], ~mask, kind="anchor"),
    ]
    for traj in trajs:
        d = traj.to_dict(mask_format=mask_format)
        text = json.dumps(d)  # plain JSON types only
        back = Trajectory.from_dict(json.loads(text))
        assert back == traj
        assert np.array_equal(back.mask, traj.mask) if traj.mask is not None else back.mask is None
        assert validate_trajectories([d], (W, H))[0] == traj


def test_rle_mask_is_compact_and_exact():
    mask = np.zeros((512, 512), bool)
    mask[100:200, 50:150] = True
    d = Trajectory([(100, 150), (200, 200)], mask).to_dict()
    assert d["mask"]["shape"] == [512, 512]
    assert sum(d["mask"]["runs"]) == 512 * 512
    assert len(json.dumps(d)) < 2000
    assert np.array_equal(Trajectory.from_dict(d).mask, mask)


def test_bad_rle_is_reported():
    d = {"points": [[1, 1], [2, 2]], "mask": {"shape": [2, 2], "runs": [1, 2]}}
    with pytest.raises(InstructionError) as info:
        validate_trajectories([d], (W, H))
    assert info.value.field == "trajectories[0].mask"


def test_equality_compares_masks_by_content():
    mask = np.zeros((H, W), bool)
    mask[1, 1] = True
    a = Trajectory([(1, 1), (2, 2)], mask)
    assert a == Trajectory([(1.0, 1.0), (2.0, 2.0)], mask.copy())
    other = mask.copy()
    other[2, 2] = True
    assert a != Trajectory([(1, 1), (2, 2)], other)
    assert a != Trajectory([(1, 1), (2, 2)], None)
    assert a != Trajectory([(1, 1), (2, 2)], mask, easing="ease-in-out")
