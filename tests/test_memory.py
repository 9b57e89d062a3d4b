"""Real scale without weights (issue 11, items 2 and 3): meta-device parameter counts and the memory plan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import red_stroke, scene

from ivcore import Session, memory
from ivcore.backends.configs import PARAMETER_COUNTS, SD15_UNET_CONFIG, build_sd15_pia

GiB = 2**30


@pytest.fixture(scope="module")
def full_size():
    return build_sd15_pia("meta", torch.float16)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_full_size_parameter_counts_match_the_published_ones(full_size):
    # published: SD1.5 UNet 859.5 M, VAE 83.7 M, CLIP ViT-L/14 text encoder 123.1 M
    assert round(count(full_size["unet"]) / 1e6, 1) == 859.5
    assert round(count(full_size["vae"]) / 1e6, 1) == 83.7
    assert round(count(full_size["text_encoder"]) / 1e6, 1) == 123.1
    # PIA's motion UNet (stated in docs/memory.md): SD1.5 UNet - its 4-channel conv_in + the adapter
    motion = count(full_size["motion_unet"])
    conv_in = count(full_size["unet"].conv_in)
    assert motion == count(full_size["unet"]) - conv_in + count(full_size["motion_adapter"])
    assert {name: count(m) for name, m in full_size.items()} == PARAMETER_COUNTS
    assert round(motion / 1e6, 1) == 1276.7
    # nothing was allocated, and the motion UNet takes PIA's 9 channels
    assert {p.device.type for m in full_size.values() for p in [*m.parameters(), *m.buffers()]} == {"meta"}
    assert full_size["motion_unet"].conv_in.in_channels == 9
    assert full_size["motion_unet"].config.motion_max_seq_length == 32
    assert {k: full_size["unet"].config[k] for k in SD15_UNET_CONFIG} == json.loads(json.dumps(SD15_UNET_CONFIG))


def blended_tiny() -> Session:
    s = Session.tiny(seed=0)
    s.image = scene()
    s.paint(red_stroke())
    s.lam = 0.5
    s.num_frames = 4
    return s


def test_plan_parts_add_up_and_follow_the_rows():
    s = blended_tiny()
    plan = s.memory_plan()
    assert plan["total"] == sum(v for k, v in plan.items() if k != "total")
    assert all(isinstance(v, int) and v >= 0 for v in plan.values())
    # weights: every module once (VAE and CLIP are shared by P_img and P_video), per dtype
    modules = {id(m): m for b in (s.image_backend, s.video_backend) for m in (b.unet, b.vae, b.text_encoder)}
    expected = sum(t.numel() * t.element_size() for m in modules.values() for t in [*m.parameters(), *m.buffers()])
    weights = {k: v for k, v in plan.items() if k.startswith("weights:")}
    assert sum(weights.values()) == expected
    assert "weights:image.vae:float32" in weights and not any(k.startswith("weights:video.vae") for k in weights)
    # activations follow the rows of one call: 4 (blend + guidance), 2 (lam 1), 1 (and no guidance)
    act = {
        4: plan["activations:video.unet"],
        2: s.memory_plan(lam=1.0)["activations:video.unet"],
        1: s.memory_plan(lam=1.0, guidance=1.0)["activations:video.unet"],
    }
    assert 1.8 < act[4] / act[2] < 2.2 and 1.8 < act[2] / act[1] < 2.2
    s.video_backend.max_rows = 1  # an out-of-memory fallback (or the user) capped the rows
    assert s.memory_plan()["activations:video.unet"] == act[1]
    # and the frames: twice the frames, about twice the activations
    assert 1.7 < s.memory_plan(num_frames=8)["activations:video.unet"] / act[1] < 2.3
    # the decode counts only what it needs beyond the UNet's activations, the encode beyond both
    decode = memory.decode_bytes(s.video_backend, 4, 64, 64)
    assert plan["decode:video.vae"] == max(0, decode - act[4])
    assert plan["encode:video.vae"] == max(0, memory.encode_bytes(s.video_backend, 1, 64, 64) - max(act[4], decode))


def test_plan_without_an_edit_has_one_branch():
    s = blended_tiny()
    s.clear_paint()
    assert s.memory_plan()["activations:video.unet"] == s.memory_plan(lam=1.0)["activations:video.unet"]


def test_trajectories_in_path_mode_encode_one_image_per_frame():
    from ivcore import Trajectory

    s = Session.tiny(seed=0)
    s.image = scene()
    s.num_frames = 8
    s.trajectories = [Trajectory(points=[(20, 30), (44, 30)], radius=8)]
    s.video_backend.max_decode_frames = 1  # a small decode, so that the encode is the largest stage
    b = s.video_backend
    plan = s.memory_plan(guidance=1.0, lam=1.0)  # one row
    unet = plan["activations:video.unet"]
    assert unet == memory.unet_activation_bytes(b, 1, 8, 64, 64)
    assert memory.encode_bytes(b, 8, 64, 64) > unet > memory.encode_bytes(b, 1, 64, 64)
    assert plan["encode:video.vae"] == memory.encode_bytes(b, 8, 64, 64) - unet
    assert plan["total"] == sum(v for k, v in plan.items() if k.startswith("weights:")) + memory.encode_bytes(
        b, 8, 64, 64
    )
    s.trajectory_mode = "endpoint"  # x~' is one image: its encode is small again
    assert s.memory_plan(guidance=1.0, lam=1.0)["encode:video.vae"] == 0


def test_svd_plan_counts_the_image_encoder():
    s = Session.tiny(seed=0, video="svd")
    plan = s.memory_plan()
    assert plan["total"] == sum(v for k, v in plan.items() if k != "total")
    assert plan["weights:video.image_encoder:float32"] > 0 and plan["activations:video.unet"] > 0


MEASURE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import torch
    torch.set_num_threads(1)
    from conftest import red_stroke
    from ivcore import Session
    from ivcore.backends.build import tiny_backends

    def status(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024

    size = 128  # 32 x 32 latents: activations big enough to stand out of the process's RSS noise
    image, video = tiny_backends(0)
    image.size = video.size = size
    s = Session(image, video, steps=1, image_steps=1)
    s.image = np.full((size, size, 3), 120, np.uint8)
    s.content_strength = 0.0
    s.paint(red_stroke(size))
    s.lam, s.num_frames = 0.5, 8
    plan = s.memory_plan()
    s.generate(seed=1, num_frames=2, progress=False)  # warm-up: kernels, thread pools, text cache
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM (Linux >= 4.0)
    except OSError as err:
        json.dump({"skip": f"cannot reset the peak RSS: {err}"}, sys.stdout)
        sys.exit(0)
    base = status("VmRSS")
    s.generate(seed=2, progress=False)
    json.dump({"measured": status("VmHWM") - base, "plan": plan}, sys.stdout)
    """
)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to read peak RSS")
@pytest.mark.slow
def test_activation_estimate_is_within_2x_of_the_measured_peak_rss():
    tests = Path(__file__).parent
    out = subprocess.run(
        [sys.executable, "-c", MEASURE], capture_output=True, text=True, timeout=300, check=True,
        cwd=tests, env={**os.environ, "PYTHONPATH": f"{tests}{os.pathsep}{tests.parent}"},
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if "skip" in result:
        pytest.skip(result["skip"])
    plan, measured = result["plan"], result["measured"]
    estimate = plan["activations:video.unet"] + plan["decode:video.vae"]  # what a generate adds to the weights
    assert plan["activations:video.unet"] > 50 * 2**20  # the UNet's 4-row call dominates
    assert measured / 2 <= estimate <= 2 * measured, (estimate / 2**20, measured / 2**20)


@pytest.mark.slow
def test_full_size_t4_plan_fits_with_room_to_spare():
    """16 frames at 512 x 512, 0 < lam < 1 (the 4-row call), fp16: the T4 case of docs/memory.md."""
    plan = memory.sd15_pia_plan()
    # weights: the four modules in fp16, at their published sizes (plus a few buffers)
    weights = sum(v for k, v in plan.items() if k.startswith("weights:"))
    params = sum(PARAMETER_COUNTS[k] for k in ("unet", "vae", "text_encoder", "motion_unet"))
    assert 2 * params <= weights < 2 * params + 20 * 2**20
    assert plan["weights:video.unet:float16"] >= 2 * PARAMETER_COUNTS["motion_unet"]
    # a T4 has 15 GiB; keep 1 GiB for the CUDA context, cuBLAS workspaces and fragmentation
    assert plan["total"] < 14 * GiB
    # the options act where the docs say: rows cap the UNet's activations, frame-chunked decode the decode,
    # VAE slicing the decode and the encode of trajectory path mode (16 images at once)
    by_rows = memory.sd15_pia_plan(max_rows=1)
    assert 3.5 < plan["activations:video.unet"] / by_rows["activations:video.unet"] < 4.5
    by_frames = memory.sd15_pia_plan(max_decode_frames=1)
    assert plan["decode:video.vae"] > 1 * GiB and by_frames["decode:video.vae"] == 0
    assert by_frames["total"] < plan["total"] - 1 * GiB
    path = memory.sd15_pia_plan(trajectory_path=True, max_decode_frames=4)
    assert path["encode:video.vae"] > 0.5 * GiB and path["total"] < plan["total"]
    assert memory.sd15_pia_plan(trajectory_path=True, vae_slicing=True)["encode:video.vae"] == 0
    # a 16-frame 512 x 512 row is ~1 GiB with fused attention (SDPA); the L x L scores alone would be 16 GiB
    assert 0.5 * GiB < by_rows["activations:video.unet"] < 2 * GiB


# ------------------------------------------------------------------------------ any picture shape (issue 30)
def test_plan_grows_with_frames_and_size_at_non_square_sizes():
    """The plan follows s.size (W, H): more pixels or frames, more activations; W x H and H x W alike."""
    s = Session.tiny(seed=0, video="svd", size=(96, 64))
    wide = s.memory_plan(num_frames=4)
    assert s.memory_plan(num_frames=2)["activations:video.unet"] < wide["activations:video.unet"]
    s.size = (64, 96)
    tall = s.memory_plan(num_frames=4)
    s.size = (128, 96)
    big = s.memory_plan(num_frames=4)
    assert wide["activations:video.unet"] < big["activations:video.unet"]
    assert wide["total"] < big["total"]
    assert 0.9 < tall["activations:video.unet"] / wide["activations:video.unet"] < 1.1
    b = s.video_backend
    assert memory.unet_activation_bytes(b, 2, 4, 96, 128) > memory.unet_activation_bytes(b, 2, 4, 64, 96)


def test_svd_encode_counts_the_fp32_upcast_of_an_fp16_vae():
    """SVD encodes an fp16 VAE with force_upcast in fp32: fp32 activations and the weights grown to 4 bytes."""
    from types import SimpleNamespace

    from ivcore.backends.svd import tiny_svd_backend

    b = tiny_svd_backend(0)
    fp32 = memory.encode_bytes(b, 1, 64, 96)  # nothing to upcast
    b.vae.to(torch.float16)
    assert b.vae.config.force_upcast
    upcast = memory.encode_bytes(b, 1, 64, 96)
    plain = memory.encode_bytes(SimpleNamespace(vae=b.vae), 1, 64, 96)  # a backend that encodes in fp16
    grown = sum(2 * t.numel() for t in [*b.vae.parameters(), *b.vae.buffers()])
    assert upcast == fp32 + grown
    assert 1.8 < fp32 / plain < 2.2


def test_card_tables_pick_the_first_row_that_fits():
    from ivcore import memory_cards as cards

    assert cards.fits(14 * GiB) == ["T4", "24 GB"] and cards.fits(14 * GiB + 1) == ["24 GB"]
    assert cards.fits(23 * GiB + 1) == []
    totals = {"defaults": {"c": 30 * GiB}, "lean": {"c": 20 * GiB}, "leaner": {"c": 9 * GiB}}
    assert cards.first_fit(totals, "c", "24 GB") == "lean" and cards.first_fit(totals, "c", "T4") == "leaner"
    assert cards.first_fit({"only": {"c": 40 * GiB}}, "c", "T4") is None
    text = cards.markdown("X", totals)
    assert "| lean | 20.00 (24 GB) |" in text and "| defaults | 30.00 (neither) |" in text
    assert "- X at c on the T4 card: leaner" in text


@pytest.mark.slow
def test_svd_xt_plan_at_1024x576_follows_frames_and_settings():
    """SVD-XT full size (meta device): weights at the published sizes; frames, size, rows and decode chunks act."""
    from ivcore.backends.configs import build_svd_xt

    plan = memory.svd_xt_plan(num_frames=14)
    params = {name: count(m) for name, m in build_svd_xt("meta").items()}
    assert round(params["unet"] / 1e6) == 1525 and round(params["image_encoder"] / 1e6) == 632
    assert plan["weights:video.unet:float16"] >= 2 * params["unet"]
    assert plan["weights:video.image_encoder:float16"] >= 2 * params["image_encoder"]
    longer = memory.svd_xt_plan(num_frames=25)
    smaller = memory.svd_xt_plan(num_frames=14, size=(768, 448))
    assert smaller["total"] < plan["total"] < longer["total"]
    assert smaller["activations:video.unet"] < plan["activations:video.unet"] < longer["activations:video.unet"]
    rows = memory.svd_xt_plan(num_frames=14, max_rows=1)
    assert 3.5 < plan["activations:video.unet"] / rows["activations:video.unet"] < 4.5
    chunked = memory.svd_xt_plan(num_frames=14, decode_chunk_size=2)
    assert plan["decode:video.vae"] > 1 * GiB and chunked["decode:video.vae"] < plan["decode:video.vae"]
    offloaded = memory.svd_xt_plan(num_frames=14, offload_image=True)
    assert not any(k.startswith("weights:image") for k in offloaded)
    assert memory.sd15_pia_plan(size=(768, 512))["total"] > memory.sd15_pia_plan(size=(512, 512))["total"]


@pytest.mark.slow
def test_docs_card_tables_are_what_the_plans_say():
    """docs/memory.md holds `python -m ivcore.memory_cards`'s output verbatim (regenerate it when plans change)."""
    from ivcore import memory_cards

    doc = (Path(__file__).parent.parent / "docs" / "memory.md").read_text()
    assert memory_cards.all_markdown() in doc
