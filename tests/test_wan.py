"""Wan 2.1 / 2.2 behind the Session: diffusers' WanImageToVideoPipeline is the oracle, Eq. 4 identities exact.

Every variant runs from a tiny folder in its hub layout (`ivcore.testing.mirror`), loaded through
`Session.from_pretrained(image_model, video_model)`, the path real weights take.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from family_helpers import family_session, levels, pipeline_frames, yellow_square
from PIL import Image

from ivcore import InstructionError, Session, Trajectory
from ivcore.testing import mirror

KINDS = ("wan2.1-i2v", "wan2.2-i2v-a14b", "wan2.2-ti2v-5b")
SIZES = {"wan2.1-i2v": (64, 48), "wan2.2-i2v-a14b": (64, 48), "wan2.2-ti2v-5b": (64, 64)}


@pytest.fixture(scope="session")
def wan_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("wan")
    return {kind: mirror(root / kind, kind) for kind in KINDS}


def make_session(tiny_model_dirs, folder, kind) -> Session:
    return family_session(tiny_model_dirs, folder, SIZES[kind])


@pytest.fixture(scope="module", params=KINDS)
def wan(request, tiny_model_dirs, wan_folders):
    return request.param, make_session(tiny_model_dirs, wan_folders[request.param], request.param)


def reference(s: Session, image: Image.Image, seed: int = 0) -> np.ndarray:
    """WanImageToVideoPipeline over the session's own modules, the same prompt, size, frames, steps, guidance."""
    return pipeline_frames(s, image, seed)


def test_the_family_and_its_defaults_come_from_the_folder(wan):
    kind, s = wan
    assert type(s.video_backend).__name__ == "WanVideoBackend"
    assert s.video_backend.variant == {"wan2.1-i2v": "wan2.1-i2v-480p"}.get(kind, kind)
    assert s.size == SIZES[kind] and s.num_frames == 9 and s.steps == 4 and s.guidance == 5.0
    assert s.models["video_model"].endswith(kind)
    assert s.video_backend.frame_rule == (4, 1)


def test_lam_1_is_the_pipeline_on_x_tilde_and_lam_0_on_x_tilde_edited(wan):
    kind, s = wan
    s.clear_paint()
    s.lam = 1.0
    plain = s.generate(seed=0, progress=False).frames
    z_plain = s.last_latents
    assert levels(plain, reference(s, s.intermediate(edited=False))) <= 1
    s.paint(yellow_square(s.size))
    s.lam = 0.0
    edited = s.generate(seed=0, progress=False).frames
    z_edited = s.last_latents
    assert levels(edited, reference(s, s.intermediate(edited=True))) <= 1
    s.lam = 0.5
    s.generate(seed=0, progress=False)
    z_half = s.last_latents
    # a random-init transformer barely uses its image input: compare latents, well above float noise (1e-6)
    for other in (z_plain, z_edited):
        assert float((z_half - other).abs().max() / other.abs().max()) > 1e-4
    s.lam = 1.0  # painted, but lam 1 ignores the edit: still the plain video
    assert np.array_equal(s.generate(seed=0, progress=False).frames, plain)


def test_moving_lambda_reruns_only_denoise_and_decode(wan):
    _, s = wan
    s.paint(yellow_square(s.size))
    s.lam = 0.3
    s.generate(seed=1, progress=False)
    before = {stage: dict(v) for stage, v in s.stats.items()}
    s.lam = 0.6
    s.generate(seed=1, progress=False)
    after = s.stats
    for stage in ("text", "image", "encode"):
        assert after[stage]["misses"] == before[stage]["misses"], stage
    for stage in ("denoise", "decode"):
        assert after[stage]["misses"] == before[stage]["misses"] + 1, stage


def test_a_sweep_equals_its_generates(wan):
    _, s = wan
    s.paint(yellow_square(s.size))
    videos = s.sweep([0.0, 0.5], seed=2, progress=False)
    for lam, video in zip((0.0, 0.5), videos, strict=True):
        assert np.array_equal(video.frames, s.generate(seed=2, lam=lam, progress=False).frames)


def test_frame_counts_and_sizes_follow_the_family(wan):
    kind, s = wan
    s.lam = 1.0
    last = s.generate(seed=0, progress=False)
    with pytest.raises(InstructionError, match="num_frames.*4k\\+1"):
        s.generate(num_frames=8, progress=False)
    with pytest.raises(InstructionError, match="num_frames"):
        s.num_frames = 6
    assert s.num_frames == 9 and s.last_video is last
    multiple = 32 if kind == "wan2.2-ti2v-5b" else 16
    with pytest.raises(InstructionError, match=f"size.*multiples of {multiple}"):
        s.size = (64 + multiple // 2, 48)
    video = s.generate(seed=0, num_frames=5, progress=False)
    assert video.frames.shape == (5, s.size[1], s.size[0], 3)


def test_takes_restore_bitwise_and_stories_continue(wan):
    _, s = wan
    s.paint(yellow_square(s.size))
    s.lam = 0.4
    first = s.generate(seed=3, progress=False)
    s.lam = 0.9
    s.generate(seed=4, progress=False)
    s.restore(s.takes[-2])
    assert np.array_equal(s.generate(progress=False).frames, first.frames)
    s.continue_from()
    assert np.array_equal(np.asarray(s.image), s.story.segments[-1].video.frames[-1])


def test_trajectories_in_both_modes_move_the_video(wan):
    kind, s = wan
    s.clear_paint()
    s.lam = 0.0
    still = s.generate(seed=0, progress=False).frames
    width, height = s.size
    s.trajectories = [Trajectory(points=[(16, height // 2), (48, height // 2)], radius=8)]
    for mode in ("path", "endpoint"):
        s.trajectory_mode = mode
        moved = s.generate(seed=0, progress=False).frames
        assert np.abs(moved.astype(int) - still).mean() > 0.01, mode
    s.trajectories = []


def test_the_first_frame_of_ti2v_is_the_blend_of_the_two_images(tiny_model_dirs, wan_folders):
    s = make_session(tiny_model_dirs, wan_folders["wan2.2-ti2v-5b"], "wan2.2-ti2v-5b")
    s.paint(yellow_square(s.size))
    backend = s.video_backend
    generator = torch.Generator().manual_seed(0)
    x, x_edit = s.intermediate(edited=False), s.intermediate(edited=True)
    frame = backend.encode_images([x], generator, num_frames=9).condition[:, :, :1]
    frame_edit = backend.encode_images([x_edit], generator, num_frames=9).condition[:, :, :1]
    for lam in (0.0, 0.25, 1.0):
        s.lam = lam
        s.generate(seed=0, progress=False)
        expected = lam * frame + (1 - lam) * frame_edit
        assert torch.allclose(s.last_latents[:, :, :1], expected, atol=1e-6), lam


def test_the_two_experts_of_wan_2_2_split_at_the_boundary(tiny_model_dirs, wan_folders):
    s = make_session(tiny_model_dirs, wan_folders["wan2.2-i2v-a14b"], "wan2.2-i2v-a14b")
    pipe = s.video_backend.pipeline()
    boundary = pipe.config.boundary_ratio * pipe.scheduler.config.num_train_timesteps
    calls = {"high": [], "low": []}
    hooks = [
        pipe.transformer.register_forward_pre_hook(lambda m, a, k: calls["high"].append(float(k["timestep"][0])),
                                                   with_kwargs=True),
        pipe.transformer_2.register_forward_pre_hook(lambda m, a, k: calls["low"].append(float(k["timestep"][0])),
                                                     with_kwargs=True),
    ]  # fmt: skip
    try:
        s.lam = 1.0
        plain = s.generate(seed=0, progress=False).frames
    finally:
        for hook in hooks:
            hook.remove()
    assert calls["high"] and calls["low"]
    assert min(calls["high"]) >= boundary > max(calls["low"])
    s.video_backend.guidance_2 = 1.0  # the low-noise expert without guidance: another video
    assert levels(s.generate(seed=0, progress=False).frames, plain) > 0
    assert levels(s.generate(seed=0, progress=False).frames, pipeline_frames(s, guidance_scale_2=1.0)) <= 1
    s.video_backend.guidance_2 = None


def test_save_and_load_keep_the_family(tmp_path, tiny_model_dirs, wan_folders):
    s = make_session(tiny_model_dirs, wan_folders["wan2.1-i2v"], "wan2.1-i2v")
    s.lam = 1.0
    video = s.generate(seed=0, progress=False)
    s.save(tmp_path / "saved")
    loaded = Session.load(tmp_path / "saved")
    assert type(loaded.video_backend).__name__ == "WanVideoBackend"
    assert loaded.size == s.size and loaded.num_frames == s.num_frames
    assert np.array_equal(loaded.generate(seed=0, progress=False).frames, video.frames)


def test_a_folder_of_another_class_is_refused_naming_video_model(tmp_path, tiny_model_dirs):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "FluxPipeline"}')
    with pytest.raises(InstructionError, match="video_model.*FluxPipeline.*WanImageToVideoPipeline"):
        Session.from_pretrained(tiny_model_dirs["image_model"], folder, device="cpu")


def test_the_tiny_preset_runs_each_wan_variant():
    for kind in KINDS:
        s = Session.tiny(video=kind)
        assert s.video_backend.variant.startswith(kind.split("-")[0])
        assert s.generate(progress=False).frames.shape == (9, s.size[1], s.size[0], 3)


@pytest.mark.parametrize("layout", ["diffusers", "original"])
def test_a_step_distillation_lora_loads_into_the_transformer_and_takes_record_it(tmp_path, layout):
    """Both key layouts people publish Wan LoRAs in (diffusers' peft names, the original repo's
    `diffusion_model.blocks.N.self_attn.q.lora_down`) go through the pipeline's own converter."""
    from safetensors.torch import save_file

    s = Session.tiny(video="wan2.1-i2v")
    transformer = s.video_backend.transformer
    generator = torch.Generator().manual_seed(0)
    tensors = {}
    for i, block in enumerate(transformer.blocks):
        for ours, theirs in (("to_q", "q"), ("to_k", "k"), ("to_v", "v")):
            layer = getattr(block.attn1, ours)
            down = torch.randn(4, layer.in_features, generator=generator) * 0.5
            up = torch.randn(layer.out_features, 4, generator=generator) * 0.5
            if layout == "diffusers":
                key = f"transformer.blocks.{i}.attn1.{ours}"
                tensors.update({f"{key}.lora_A.weight": down, f"{key}.lora_B.weight": up})
            else:
                key = f"diffusion_model.blocks.{i}.self_attn.{theirs}"
                tensors.update({f"{key}.lora_down.weight": down, f"{key}.lora_up.weight": up})
    save_file(tensors, tmp_path / "distill.safetensors")
    s.lam, s.steps, s.guidance = 1.0, 4, 1.0  # how step-distilled Wan LoRAs run: 4 steps, no CFG
    before = s.generate(progress=False)
    name = s.load_lora(tmp_path / "distill.safetensors", target="video")
    with_lora = s.generate(progress=False)
    assert np.abs(with_lora.frames.astype(int) - before.frames).mean() > 0.5
    assert [entry["name"] for entry in s.takes[-1].models["loras"]] == [name]
    with pytest.raises(InstructionError, match="restore|lora|LoRA"):
        s.unload_lora(name)
        s.restore(s.takes[-1])
    assert np.array_equal(s.generate(progress=False).frames, before.frames)


def test_the_cli_demo_runs_a_wan_folder(tmp_path, tiny_model_dirs, wan_folders):
    from ivcore.cli import main
    from ivcore.video import Video

    out = tmp_path / "wan.mp4"
    main(["demo", "--image-model", str(tiny_model_dirs["image_model"]), "--video-model",
          str(wan_folders["wan2.1-i2v"]), "--device", "cpu", "--out", str(out)])  # fmt: skip
    assert Video.from_mp4(out.read_bytes()).frames.shape == (9, 48, 64, 3)


def test_the_studio_runs_a_wan_session_with_frames_in_steps_of_four():
    from ivwidgets import Studio

    s = Session.tiny(video="wan2.1-i2v")
    st = Studio(s)
    assert (st.frames.min, st.frames.step, st.frames.value) == (1, 4, 9)
    st.frames.value = 5
    assert st.generate() and st.wait(120)
    assert st.player.video.frames.shape == (5, 48, 64, 3)
    assert s.last_video is not None and s.last_video.frames.shape[0] == 5
