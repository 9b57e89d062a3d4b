"""Personalization: tiny LoRAs made here with peft, DreamBooth folders and single-file checkpoints.

Every file is written by the test in the formats real personalization files use (diffusers'
pipeline LoRA format with peft keys; the original SD "model.diffusion_model." layout for single
files), so the loaders run the code paths that community files take.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import scene
from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel
from diffusers.loaders import StableDiffusionLoraLoaderMixin
from peft import LoraConfig
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file

from ivcore import InstructionError, Session
from ivcore.backends.checkpoints import unet2d_config
from ivcore.backends.personalize import (
    load_image_checkpoint,
    load_lora,
    load_video_checkpoint,
    lora_weights,
    set_lora_scale,
    unload_lora,
)
from ivcore.backends.tiny import MOTION_ADAPTER_CONFIG, UNET_CONFIG, save_tiny_models, tiny_components

ATTENTION = ["to_q", "to_k", "to_v", "to_out.0"]


# ---------------------------------------------------------------------- helpers
def save_lora(model, folder: Path, name: str, config: LoraConfig) -> Path:
    """Attach a random (non-zero B) peft LoRA to `model` and save it as diffusers' pipeline format."""
    model.add_adapter(config)
    layers = get_peft_model_state_dict(model)
    assert any(v.abs().sum() > 0 for k, v in layers.items() if "lora_B" in k)
    StableDiffusionLoraLoaderMixin.save_lora_weights(
        folder, unet_lora_layers=layers, weight_name=name, unet_lora_adapter_metadata=config.to_dict()
    )
    return folder / name


def make_lora(folder: Path, seed: int = 1, name: str = "style.safetensors", targets=ATTENTION) -> Path:
    """A rank-4 LoRA on the tiny SD UNet's attention projections (it fits P_img and P_video)."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**UNET_CONFIG)
    config = LoraConfig(r=4, lora_alpha=4, target_modules=list(targets), init_lora_weights=False)
    return save_lora(unet, folder, name, config)


def make_motion_lora(folder: Path, seed: int = 2) -> Path:
    """A LoRA on the motion modules only (as AnimateDiff/AnimateLCM motion LoRAs): P_video only."""
    torch.manual_seed(seed)
    unet = UNetMotionModel.from_unet2d(UNet2DConditionModel(**UNET_CONFIG), MotionAdapter(**MOTION_ADAPTER_CONFIG))
    config = LoraConfig(r=4, lora_alpha=4, target_modules=r".*motion_modules.*\.(to_q|to_v)", init_lora_weights=False)
    return save_lora(unet, folder, "motion.safetensors", config)


def float_frames(s: Session) -> np.ndarray:
    return s.video_backend.decode(s.last_latents).cpu().numpy()


def run(s: Session, seed: int = 0) -> np.ndarray:
    return s.generate(seed=seed, progress=False).frames


def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def assert_same_state(before: dict[str, torch.Tensor], module: torch.nn.Module) -> None:
    after = module.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(isinstance(m, BaseTunerLayer) for m in module.modules())


_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}


def ldm_key(key: str, layers: int, up_attention: set[int]) -> str:
    """diffusers UNet key -> original SD (LDM) key: the inverse of diffusers' convert_ldm_unet_checkpoint."""
    for new, old in _TOP.items():
        if key.startswith(new + "."):
            return old + key[len(new) :]

    def resnet(rest: str) -> str:
        head, tail = rest.split(".", 1)
        return f"{_RESNET[head]}.{tail}"

    if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions|downsamplers)\.(\d+)\.(.*)", key):
        b, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "downsamplers":
            return f"input_blocks.{1 + b * (layers + 1) + layers}.0.op.{rest.removeprefix('conv.')}"
        index = 1 + b * (layers + 1) + j
        return f"input_blocks.{index}.0.{resnet(rest)}" if kind == "resnets" else f"input_blocks.{index}.1.{rest}"
    if m := re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key):
        kind, j, rest = m[1], int(m[2]), m[3]
        return f"middle_block.{2 * j}.{resnet(rest)}" if kind == "resnets" else f"middle_block.1.{rest}"
    m = re.match(r"up_blocks\.(\d+)\.(resnets|attentions|upsamplers)\.(\d+)\.(.*)", key)
    assert m, key
    b, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
    if kind == "upsamplers":
        return f"output_blocks.{b * (layers + 1) + layers}.{2 if b in up_attention else 1}.{rest}"
    index = b * (layers + 1) + j
    return f"output_blocks.{index}.0.{resnet(rest)}" if kind == "resnets" else f"output_blocks.{index}.1.{rest}"


def save_ldm_checkpoint(unet: UNet2DConditionModel, path: Path) -> Path:
    """The tiny UNet as an A1111/civitai-style single file (model.diffusion_model.* keys)."""
    sd = unet.state_dict()
    up_attention = {int(k.split(".")[1]) for k in sd if re.match(r"up_blocks\.\d+\.attentions\.", k)}
    layers = unet.config.layers_per_block
    save_file(
        {f"model.diffusion_model.{ldm_key(k, layers, up_attention)}": v.contiguous() for k, v in sd.items()}, path
    )
    return path


@pytest.fixture
def session(session):
    """The shared tiny session with shorter clips: these tests generate many times."""
    session.num_frames, session.steps = 2, 2
    return session


@pytest.fixture
def lora_file(tmp_path) -> Path:
    return make_lora(tmp_path)


# ---------------------------------------------------------------------- LoRA
@pytest.mark.parametrize("target", ["video", "image", "both"])
def test_scale_zero_equals_no_lora_one_changes_unload_restores(session, lora_file, target):
    image_state, video_state = state(session.image_backend.unet), state(session.video_backend.unet)
    before = run(session)
    before_float = float_frames(session)

    name = load_lora(session, lora_file, target=target, scale=0.0)
    assert name == "style"
    assert np.array_equal(run(session), before)

    set_lora_scale(session, {name: 1.0}, target=target)
    run(session)
    assert np.abs(float_frames(session) - before_float).max() > 1e-4

    unload_lora(session, target=target)
    assert np.array_equal(run(session), before)
    assert_same_state(image_state, session.image_backend.unet)
    assert_same_state(video_state, session.video_backend.unet)
    assert lora_weights(session) == {"image": {}, "video": {}}


def test_image_lora_changes_intermediate_only_through_p_img(session, lora_file):
    session.content_strength = 0.6
    x_tilde = np.asarray(session.intermediate(edited=False))
    video_state = state(session.video_backend.unet)
    load_lora(session, lora_file, target="image")
    assert not np.array_equal(np.asarray(session.intermediate(edited=False)), x_tilde)
    assert_same_state(video_state, session.video_backend.unet)
    unload_lora(session)
    assert np.array_equal(np.asarray(session.intermediate(edited=False)), x_tilde)


def test_load_is_a_cache_miss_and_bumps_weights_version(session, lora_file):
    run(session)
    run(session)
    hits, misses = session.stats["denoise"]["hits"], session.stats["denoise"]["misses"]
    assert hits == 1
    versions = (session.image_backend.weights_version, session.video_backend.weights_version)
    load_lora(session, lora_file, target="video")
    assert session.video_backend.weights_version == versions[1] + 1
    assert session.image_backend.weights_version == versions[0]
    run(session)
    assert session.stats["denoise"]["misses"] == misses + 1
    set_lora_scale(session, 0.5)
    run(session)
    unload_lora(session)
    run(session)
    assert session.stats["denoise"]["misses"] == misses + 3
    assert session.video_backend.weights_version == versions[1] + 3


def test_two_adapters_with_weights(session, tmp_path):
    a = make_lora(tmp_path, seed=1, name="a.safetensors")
    b = make_lora(tmp_path, seed=2, name="b.safetensors")
    load_lora(session, a, target="video", scale=0.5)
    run(session)
    only_a = session.last_latents.clone()
    unload_lora(session)
    run(session)
    plain = session.last_latents.clone()

    assert load_lora(session, a, target="video") == "a"
    assert load_lora(session, b, target="video", adapter_name="bee") == "bee"
    assert lora_weights(session)["video"] == {"a": 1.0, "bee": 1.0}
    run(session)
    both = session.last_latents.clone()
    assert (both - only_a).abs().max() > 1e-4

    set_lora_scale(session, {"a": 0.5, "bee": 0.0}, target="video")
    run(session)
    assert torch.equal(session.last_latents, only_a)
    set_lora_scale(session, {"a": 0.0})
    run(session)
    assert torch.equal(session.last_latents, plain)

    set_lora_scale(session, {"a": 0.5, "bee": 1.0})
    unload_lora(session, "bee")
    assert lora_weights(session)["video"] == {"a": 0.5}
    run(session)
    assert torch.equal(session.last_latents, only_a)


def test_default_names_are_unique_and_bad_names_refused(session, lora_file):
    assert load_lora(session, lora_file, target="video") == "style"
    assert load_lora(session, lora_file, target="video") == "style_2"
    with pytest.raises(InstructionError, match="adapter_name"):
        load_lora(session, lora_file, target="video", adapter_name="style")
    with pytest.raises(InstructionError, match="adapter_name"):
        load_lora(session, lora_file, target="video", adapter_name="has.dot")
    with pytest.raises(InstructionError, match="adapter_name"):
        set_lora_scale(session, {"nope": 1.0})
    with pytest.raises(InstructionError, match="adapter_name"):
        unload_lora(session, "nope")
    with pytest.raises(InstructionError, match="target"):
        load_lora(session, lora_file, target="audio")
    with pytest.raises(InstructionError, match="scale"):
        set_lora_scale(session, {"style": float("nan")})
    assert lora_weights(session)["video"] == {"style": 1.0, "style_2": 1.0}


def test_folder_with_one_safetensors_and_weight_name(session, tmp_path):
    make_lora(tmp_path / "one", name="only.safetensors")
    assert load_lora(session, tmp_path / "one", target="video") == "only"
    make_lora(tmp_path / "two", seed=1, name="x.safetensors")
    make_lora(tmp_path / "two", seed=2, name="y.safetensors")
    with pytest.raises(InstructionError, match="weight_name"):
        load_lora(session, tmp_path / "two", target="video")
    assert load_lora(session, tmp_path / "two", target="video", weight_name="y.safetensors") == "y"


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".pth", ".ckpt", ".pkl"])
def test_pickle_files_are_refused_before_reading(session, tmp_path, monkeypatch, suffix):
    path = tmp_path / f"evil{suffix}"
    path.write_bytes(b"\x80\x04 not a safetensors file")

    def no_read(*args, **kwargs):
        raise AssertionError("a pickle loader was called")

    monkeypatch.setattr(torch, "load", no_read)
    versions = (session.image_backend.weights_version, session.video_backend.weights_version)
    with pytest.raises(InstructionError, match="pickle") as info:
        load_lora(session, path)
    assert info.value.field == "lora"
    with pytest.raises(InstructionError, match="pickle"):
        load_lora(session, tmp_path / f"missing{suffix}")
    with pytest.raises(InstructionError, match="pickle"):
        load_image_checkpoint(session, path)
    with pytest.raises(InstructionError, match="pickle"):
        load_video_checkpoint(session, path)
    assert versions == (session.image_backend.weights_version, session.video_backend.weights_version)
    assert lora_weights(session) == {"image": {}, "video": {}}


def test_other_non_safetensors_inputs_are_refused(session, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "pytorch_lora_weights.bin").write_bytes(b"\x80\x04")
    with pytest.raises(InstructionError, match="safetensors"):
        load_lora(session, tmp_path / "notes.txt")
    with pytest.raises(InstructionError, match="no .safetensors file"):
        load_lora(session, tmp_path / "pickled")
    with pytest.raises(InstructionError, match="weight_name"):
        load_lora(session, tmp_path / "pickled", weight_name="pytorch_lora_weights.bin")
    with pytest.raises(InstructionError, match="no such file"):
        load_lora(session, tmp_path / "missing.safetensors")
    with pytest.raises(InstructionError):
        load_lora(session, 42)


def test_motion_lora_fits_video_only_and_both_is_all_or_nothing(session, tmp_path):
    path = make_motion_lora(tmp_path)
    image_state, video_state = state(session.image_backend.unet), state(session.video_backend.unet)
    with pytest.raises(InstructionError, match="image UNet"):
        load_lora(session, path, target="both")
    assert_same_state(image_state, session.image_backend.unet)
    assert_same_state(video_state, session.video_backend.unet)
    before = run(session)
    before_float = float_frames(session)
    load_lora(session, path, target="video")
    run(session)
    assert np.abs(float_frames(session) - before_float).max() > 1e-4
    unload_lora(session)
    assert np.array_equal(run(session), before)


def test_failure_on_second_unet_rolls_back_the_first(session, tmp_path):
    """conv_in LoRA: fits the SD UNet (4 input channels), not PIA's 9-channel conv_in."""
    path = make_lora(tmp_path, targets=["conv_in"], name="conv.safetensors")
    image_state = state(session.image_backend.unet)
    with pytest.raises(InstructionError, match="video UNet"):
        load_lora(session, path, target="both")
    assert_same_state(image_state, session.image_backend.unet)
    assert lora_weights(session) == {"image": {}, "video": {}}
    assert load_lora(session, path, target="image") == "conv"


# ---------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def other_models(tmp_path_factory):
    """A second set of tiny models (seed 1): stands in for a DreamBooth fine-tune."""
    return save_tiny_models(tmp_path_factory.mktemp("dreambooth"), seed=1)


def test_image_checkpoint_folder_replaces_p_img_only(session, other_models):
    session.content_strength = 0.6
    x_tilde = np.asarray(session.intermediate(edited=False))
    video_state, video_vae = state(session.video_backend.unet), session.video_backend.vae
    replaced = load_image_checkpoint(session, other_models["image_model"])
    assert replaced == ["unet", "vae", "text_encoder", "tokenizer"]
    assert_same_state(state(tiny_components(1)["unet"]), session.image_backend.unet)
    assert not np.array_equal(np.asarray(session.intermediate(edited=False)), x_tilde)
    assert session.video_backend.vae is video_vae
    assert_same_state(video_state, session.video_backend.unet)


@pytest.mark.parametrize("layout", ["ldm", "diffusers"])
def test_single_file_image_checkpoint(session, tmp_path, layout):
    unet = tiny_components(1)["unet"]
    path = tmp_path / "model.safetensors"
    if layout == "ldm":
        save_ldm_checkpoint(unet, path)
    else:
        save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, path)
    version = session.image_backend.weights_version
    assert load_image_checkpoint(session, path) == ["unet"]
    assert_same_state(state(unet), session.image_backend.unet)
    assert session.image_backend.weights_version == version + 1


@pytest.mark.parametrize("source", ["file", "folder"])
def test_video_checkpoint_keeps_motion_modules(session, tmp_path, other_models, source):
    """Same as building P_video from the fine-tuned UNet with the session's motion adapter."""
    fine_tuned = tiny_components(1)["unet"]
    path = save_ldm_checkpoint(fine_tuned, tmp_path / "db.safetensors") if source == "file" else None
    image_state = state(session.image_backend.unet)
    before = run(session)
    misses = session.stats["denoise"]["misses"]
    load_video_checkpoint(session, path or other_models["video_model"])
    expected = UNetMotionModel.from_unet2d(fine_tuned, tiny_components(0)["motion_adapter"])
    assert_same_state(state(expected), session.video_backend.unet)
    assert_same_state(image_state, session.image_backend.unet)
    assert not np.array_equal(run(session), before)
    assert session.stats["denoise"]["misses"] == misses + 1


def test_unet2d_config_round_trips_the_tiny_config(session):
    config = unet2d_config(session.video_backend.unet)
    rebuilt = UNet2DConditionModel(**config)
    reference = UNet2DConditionModel(**UNET_CONFIG).state_dict()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in reference.items()}


def test_checkpoints_refuse_pickle_folders_and_loaded_loras(session, tmp_path, lora_file):
    folder = tmp_path / "db"
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "config.json").write_text("{}")
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(InstructionError, match="no .safetensors weights"):
        load_image_checkpoint(session, folder)
    with pytest.raises(InstructionError, match="unet/"):
        load_image_checkpoint(session, tmp_path)
    load_lora(session, lora_file, target="image")
    with pytest.raises(InstructionError, match="unload_lora"):
        load_image_checkpoint(session, folder)


def test_scene_fixture_still_renders_after_unload(session, lora_file):
    """A fresh session and an unloaded one give the same video (nothing left behind)."""
    load_lora(session, lora_file)
    run(session)
    unload_lora(session)
    fresh = Session.tiny(seed=0)
    fresh.image, fresh.content, fresh.motion = scene(), session.content, session.motion
    fresh.num_frames, fresh.steps = 2, 2
    assert np.array_equal(run(session, 3), run(fresh, 3))


def test_weights_do_not_change_under_a_running_generation(session, lora_file):
    """A load mid-run would mix weights into a result cached under the old key: refused."""
    from ivcore.backends.fewstep import use_few_step

    seen = []

    def during(step, total, latents):
        if step == 1:
            for call in (
                lambda: load_lora(session, lora_file),
                lambda: unload_lora(session),
                lambda: load_image_checkpoint(session, lora_file),
                lambda: use_few_step(session),
            ):
                with pytest.raises(RuntimeError, match="running"):
                    call()
                seen.append(call)
            assert lora_weights(session) == {"image": {}, "video": {}}

    session.generate(seed=0, progress=False, callback=during)
    assert len(seen) == 4


def test_svd_backend_is_refused_clearly(lora_file, tmp_path):
    """SVD's UNet has no peft LoRA loader in diffusers and no SD spatial layout: clear errors, no change."""
    from ivcore.backends.fewstep import use_few_step

    s = Session.tiny(seed=0, video="svd")
    with pytest.raises(InstructionError, match="peft LoRAs"):
        load_lora(s, lora_file, target="video")
    assert load_lora(s, lora_file, target="image") == "style"
    with pytest.raises(InstructionError, match="UNetMotionModel"):
        use_few_step(s)
    with pytest.raises(InstructionError, match="UNetMotionModel"):
        load_video_checkpoint(s, save_ldm_checkpoint(tiny_components(1)["unet"], tmp_path / "x.safetensors"))


def test_session_methods_wire_to_personalize(session, tmp_path):
    """The Session's own methods reach the same code: load, scale, unload round trip."""
    import inspect

    from ivcore import Session

    for name in ("load_lora", "set_lora_scale", "unload_lora", "use_few_step", "use_default_sampler"):
        assert callable(getattr(Session, name)) and inspect.getdoc(getattr(Session, name))
    session.use_few_step(steps=3)
    assert session.steps == 3 and type(session.video_backend.scheduler).__name__ == "LCMScheduler"
    session.use_default_sampler()
    assert session.steps == 2 and type(session.video_backend.scheduler).__name__ == "DDIMScheduler"
