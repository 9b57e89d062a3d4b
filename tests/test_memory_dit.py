"""Memory plans of the DiT video families (issue 36 item 5; the pair of models, issue 37 item 5).

The plans trace the family backends' own code on meta copies of their modules (`ivcore.memory_dit`);
these tests check them against what a real CPU run of the same code allocates, against the weights the
modules hold, against each memory option's meaning, and the card table of docs/memory.md. `set_memory`
switches the real modules: the offloads never change a frame, fp8 and tiling rerun what they touch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ivcore import InstructionError, Session, memory, memory_dit
from ivcore.backends.offload import MemoryOptions, modules_of
from ivcore.testing import mirror
from tests.family_helpers import family_session, picture, yellow_square

GiB = 2**30
SIZE = (64, 48)


@pytest.fixture(scope="module")
def wan_folder(tmp_path_factory) -> Path:
    return mirror(tmp_path_factory.mktemp("wan") / "wan", "wan2.1-i2v")


@pytest.fixture
def wan(tiny_model_dirs, wan_folder) -> Session:
    s = family_session(tiny_model_dirs, wan_folder, SIZE)
    s.paint(yellow_square(s.size))
    s.lam = 0.5
    return s


def _weights(parts: dict[str, int]) -> int:
    return sum(v for k, v in parts.items() if k.startswith("weights:"))


def _module_bytes(s: Session) -> int:
    modules = modules_of({"image": s.image_backend, "video": s.video_backend})
    return sum(t.numel() * t.element_size() for m in modules.values() for t in [*m.parameters(), *m.buffers()])


def test_session_plan_holds_the_weights_and_follows_rows(wan):
    plan = wan.memory_plan()
    assert plan["total"] == sum(v for k, v in plan.items() if k != "total")
    assert _weights(plan) == _module_bytes(wan)  # every module of both backends, once
    stages = [k.split(":")[0] for k in plan if not k.startswith("weights:") and k != "total"]
    assert stages == ["text", "image text", "image", "encode", "denoise", "decode"]
    _, traces = memory_dit.trace_stages(
        wan.image_backend, wan.video_backend, options=MemoryOptions(), num_frames=wan.num_frames, height=SIZE[1],
        width=SIZE[0], steps=wan.steps, guidance=wan.guidance, lams=[0.5], has_edit=True,
    )  # fmt: skip
    four_rows = traces["denoise"][0]
    assert traces["denoise"][1] == {"video.transformer"} and traces["text"][1] == {"video.text_encoder"}
    _, traces = memory_dit.trace_stages(
        wan.image_backend, wan.video_backend, options=MemoryOptions(), num_frames=wan.num_frames, height=SIZE[1],
        width=SIZE[0], steps=wan.steps, guidance=wan.guidance, lams=[1.0], has_edit=True,
    )  # fmt: skip
    assert 1.5 < four_rows / traces["denoise"][0] < 2.5  # both branches: twice the rows


def test_meta_trace_equals_what_a_real_cpu_run_allocates(wan):
    """The plan's denoise and decode stages against the same backend code run for real under the same tracker."""
    b = wan.video_backend
    frames, (width, height) = wan.num_frames, wan.size
    encoded = b.encode_images([picture(wan.size)], torch.Generator().manual_seed(0), num_frames=frames)
    text = b.encode_prompt("a fox")
    b.scheduler.set_timesteps(wan.steps)
    t = b.scheduler.timesteps[0]
    latents = torch.zeros((2, *b.latent_shape(frames, height, width)[1:]))
    conditions = [b.condition(encoded, frames)] * 2
    real = memory.trace_peak(lambda: b.predict(b.scheduler, latents, t, conditions, text, text, wan.guidance))
    real_decode = memory.trace_peak(lambda: b.decode(latents[:1]))
    _, traces = memory_dit.trace_stages(
        None, b, options=MemoryOptions(), num_frames=frames, height=height, width=width, steps=wan.steps,
        guidance=wan.guidance, lams=[0.5], has_edit=True,
    )  # fmt: skip
    # the meta trace also counts inputs a real run already holds (latents, conditions moved to the device)
    assert real <= traces["denoise"][0] <= 1.3 * real
    assert 0.9 * real_decode <= traces["decode"][0] <= 1.3 * real_decode


def test_memory_options_act_as_they_say(wan):
    plain = wan.memory_plan()
    model = wan.memory_plan(offload="model")
    group = wan.memory_plan(offload="group")
    assert _weights(model) == 0 and _weights(group) == 0  # nothing stays on the device between stages
    assert group["total"] < model["total"] < plain["total"]
    # one model at a time: the peak is the largest stage's (its modules' weights + its activations), not a sum
    modules, traces = memory_dit.trace_stages(
        wan.image_backend, wan.video_backend, options=MemoryOptions(), num_frames=wan.num_frames, height=SIZE[1],
        width=SIZE[0], steps=wan.steps, guidance=wan.guidance, lams=[0.5], has_edit=True,
    )  # fmt: skip
    stage_peaks = [peak + sum(memory_dit.module_bytes(modules[n]) for n in used) for peak, used in traces.values()]
    assert model["total"] == max(stage_peaks)
    fp8 = wan.memory_plan(fp8=True)
    transformer = {k: v for k, v in plain.items() if k.startswith("weights:video.transformer")}
    stored = {k: v for k, v in fp8.items() if k.startswith("weights:video.transformer")}
    assert "weights:video.transformer:float8_e4m3fn" in stored
    cast = stored["weights:video.transformer:float8_e4m3fn"]  # 1 byte an element where float32 held 4
    assert sum(transformer.values()) - stored["weights:video.transformer:float32"] == 4 * cast
    wan.video_backend.max_rows = 1  # the rows one call at a time: the denoise trace follows the backend's split
    try:
        _, split = memory_dit.trace_stages(
            wan.image_backend, wan.video_backend, options=MemoryOptions(), num_frames=wan.num_frames,
            height=SIZE[1], width=SIZE[0], steps=wan.steps, guidance=wan.guidance, lams=[0.5], has_edit=True,
        )  # fmt: skip
    finally:
        wan.video_backend.max_rows = None
    assert split["denoise"][0] < 0.6 * traces["denoise"][0]


def test_the_plan_leaves_the_real_modules_alone(wan):
    before = {name: (m.device, next(m.parameters()).dtype) for name, m in modules_of({"v": wan.video_backend}).items()}
    wan.memory_plan(offload="group", fp8=True, vae_tiling=True)
    after = {name: (m.device, next(m.parameters()).dtype) for name, m in modules_of({"v": wan.video_backend}).items()}
    assert before == after and not getattr(wan.video_backend.vae, "use_tiling", False)
    assert not hasattr(wan.video_backend.transformer, "_diffusers_hook") or not any(
        "layerwise" in name for name in wan.video_backend.transformer._diffusers_hook.hooks
    )


def test_set_memory_checks_its_fields_and_keeps_the_last_good_options(wan):
    with pytest.raises(InstructionError, match="offload"):
        wan.set_memory(offload="disk")
    with pytest.raises(InstructionError, match="vae_tiling"):
        wan.set_memory(vae_tiling="yes")
    with pytest.raises(InstructionError, match="tiles"):
        wan.set_memory(tiles=True)
    with pytest.raises(InstructionError, match="offlaod"):
        wan.memory_plan(offlaod="model")
    assert wan.memory == MemoryOptions()


def test_offloads_move_modules_never_numbers(wan):
    wan.steps = 2
    plain = wan.generate().frames
    wan.set_memory(offload="model")
    assert wan.memory_plan() == wan.memory_plan(offload="model")  # the plan follows the session's options
    wan.cache.clear()
    assert np.array_equal(wan.generate().frames, plain)
    wan.set_memory(offload="group")
    wan.cache.clear()
    assert np.array_equal(wan.generate().frames, plain)
    wan.set_memory(offload=None)
    assert not any(hasattr(m, "_hf_hook") for m in wan.video_backend.transformer.modules())
    wan.cache.clear()
    assert np.array_equal(wan.generate().frames, plain)


def test_fp8_reruns_the_denoising_and_cannot_be_undone(wan):
    wan.steps = 2
    plain = wan.generate().frames
    misses = wan.stats["denoise"]["misses"]
    wan.set_memory(fp8=True)
    stored = {p.dtype for p in wan.video_backend.transformer.parameters()}
    assert torch.float8_e4m3fn in stored
    fp8 = wan.generate().frames
    assert wan.stats["denoise"]["misses"] == misses + 1  # not the cached video of before
    assert fp8.shape == plain.shape and np.isfinite(fp8.astype(float)).all()
    with pytest.raises(InstructionError, match="fp8"):
        wan.set_memory(fp8=False)
    assert wan.memory.fp8


def test_vae_tiling_switches_the_vaes(wan):
    wan.set_memory(vae_tiling=True)
    assert wan.video_backend.vae.use_tiling and wan.image_backend.vae.use_tiling
    wan.set_memory(vae_tiling=False)
    assert not wan.video_backend.vae.use_tiling


def test_a_pair_under_model_offload_peaks_at_its_largest_stage(tiny_model_dirs, wan_folder, tmp_path):
    """SDXL as P_img + Wan: with one model at a time the pair's peak is one stage's, not the two models'."""
    sdxl = mirror(tmp_path / "sdxl", "sdxl")
    s = Session.from_pretrained(sdxl, wan_folder, device="cpu", dtype=torch.float32)
    s.image, s.content, s.content_strength = picture(s.size), "a fox", 0.5
    s.paint(yellow_square(s.size))
    plan = s.memory_plan(offload="model")
    image_stage = [k for k in plan if k.startswith("image:")]
    assert image_stage and "image.unet" in image_stage[0]
    s.content_strength = 0.0  # x~ = x: no image model runs, so none is planned
    assert not any(k.startswith("image") for k in s.memory_plan(offload="model"))
    s.content_strength = 0.5
    together = s.memory_plan()
    assert plan["total"] < together["total"] and _weights(together) == _module_bytes(s)


@pytest.mark.slow
def test_full_size_families_have_their_published_sizes():
    from ivcore.backends.dit_configs import full_size_backend

    billions = {
        "wan2.1-i2v-14b-480p": (16.0, 16.8), "wan2.2-ti2v-5b": (4.9, 5.1), "cogvideox-5b-i2v": (5.4, 5.7),
        "ltx-video-0.9": (1.8, 2.0), "ltx-video-0.9.7-distilled": (12.9, 13.2), "hunyuanvideo-1.5-480p-i2v": (8.2, 8.4),
    }  # fmt: skip
    for kind, (low, high) in billions.items():
        b = full_size_backend(kind)
        count = sum(p.numel() for p in b.pipe.transformer.parameters()) / 1e9
        assert low < count < high, (kind, count)
    umt5 = full_size_backend("wan2.1-i2v-14b-480p").pipe.text_encoder
    assert 5.6 < sum(p.numel() for p in umt5.parameters()) / 1e9 < 5.8  # UMT5-XXL's encoder


@pytest.mark.slow
def test_full_size_plan_options_order_as_expected():
    ltx = dict(kind="ltx-video-0.9", size=(768, 512), num_frames=121)
    plain = memory_dit.full_size_plan(**ltx)
    tiled = memory_dit.full_size_plan(**ltx, vae_tiling=True)
    model = memory_dit.full_size_plan(**ltx, offload="model", vae_tiling=True)
    lean = memory_dit.full_size_plan(**ltx, offload="group", fp8=True, vae_tiling=True, max_rows=1)
    assert plain["total"] > tiled["total"] > model["total"] > lean["total"]
    # T5-XXL is LTX's largest module: under model offload the text stage is the peak
    assert max(model, key=lambda k: model[k] if k != "total" else -1).startswith("text:")
    assert 8 * GiB < model["total"] < 10 * GiB


@pytest.mark.slow
def test_docs_hold_the_dit_card_table():
    """docs/memory.md holds `python -m ivcore.memory_cards --dit`'s output verbatim (regenerate on plan changes)."""
    from ivcore import memory_cards

    doc = (Path(__file__).parent.parent / "docs" / "memory.md").read_text()
    assert memory_cards.dit_markdown() in doc


def test_offloaded_backends_make_their_inputs_on_the_onload_device(wan):
    """Under offloading the modules rest on the CPU; every backend must still say the device they run on."""
    onload = torch.device("cpu")
    wan.set_memory(offload="model")
    assert wan.image_backend.onload_device == onload and wan.image_backend.device == onload
    assert wan.video_backend.device == onload  # diffusers' _execution_device reads the hooks
    wan.set_memory(offload=None)
    assert wan.image_backend.onload_device is None and wan.image_backend.device == wan.image_backend.unet.device
