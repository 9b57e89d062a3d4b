"""Hub-layout mirrors (ivcore.testing.mirror) load through the public loaders and generate.

The mirrors copy the default repositories' layout, file names, configs, scheduler classes and
fp16 variants with random weights at a reduced width, so these tests meet what a Colab user's
`from_pretrained` meets, on a CPU in seconds: 64 x 64 frames, 2 frames, 2 steps.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import scene
from safetensors import safe_open

from ivcore import InstructionError, Session
from ivcore.backends import configs
from ivcore.backends.loading import variant_order
from ivcore.testing import (
    CLIP_MERGES,
    CLIP_VOCAB_SIZE,
    clip_bpe_file,
    clip_merges,
    mirror,
    sd15_configs,
    svd_xt_configs,
    synthetic_merges,
    write_clip_tokenizer,
)

WIDTH = 0.125
SD15_FILES = {
    "model_index.json",
    "feature_extractor/preprocessor_config.json",
    "scheduler/scheduler_config.json",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    *(f"{part}/config.json" for part in ("unet", "vae", "text_encoder", "safety_checker")),
    *(f"{part}/diffusion_pytorch_model{v}.safetensors" for part in ("unet", "vae") for v in ("", ".fp16")),
    *(f"{part}/model{v}.safetensors" for part in ("text_encoder", "safety_checker") for v in ("", ".fp16")),
}
SVD_FILES = {
    "model_index.json",
    "feature_extractor/preprocessor_config.json",
    "scheduler/scheduler_config.json",
    *(f"{part}/config.json" for part in ("unet", "vae", "image_encoder")),
    *(f"{part}/diffusion_pytorch_model{v}.safetensors" for part in ("unet", "vae") for v in ("", ".fp16")),
    *(f"image_encoder/model{v}.safetensors" for v in ("", ".fp16")),
}


def files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mirrors")
    return {
        "sd15": mirror(root / "sd15", "sd15", WIDTH),
        "sd15-fp16": mirror(root / "sd15-fp16", "sd15", WIDTH, variants=("fp16",)),
        "pia": mirror(root / "pia", "pia", WIDTH),
        "lcm-lora": mirror(root / "lcm", "lcm-lora", WIDTH),
        "animatelcm-lora": mirror(root / "animatelcm", "animatelcm-lora", WIDTH),
        # SVD's head counts (5, 10, 20, 20) keep its UNet at 160 channels a block below width 0.25
        "svd-xt": mirror(root / "svd", "svd-xt", 0.01),
        "svd-xt-fp16": mirror(root / "svd-fp16", "svd-xt", 0.01, variants=("fp16",)),
    }


def small(s: Session, frames: int = 2) -> Session:
    """The mirrors keep SD1.5's 512 x 512 sample size: run them at 64 x 64 here (a multiple of 64)."""
    s.size = (64, 64)
    s.image = scene()
    s.content, s.motion = "a red fox in snow", "the fox runs"
    s.num_frames, s.steps, s.image_steps = frames, 2, 2
    return s


def pia_session(mirrors, model: str = "sd15") -> Session:
    return Session.from_pretrained(mirrors[model], mirrors[model], motion_adapter=mirrors["pia"], device="cpu")


def test_layouts_are_the_repositories(mirrors):
    assert files(mirrors["sd15"]) == SD15_FILES
    assert files(mirrors["sd15-fp16"]) == {f for f in SD15_FILES if not f.endswith("model.safetensors")}
    assert files(mirrors["pia"]) == {"config.json", "diffusion_pytorch_model.safetensors"}
    assert files(mirrors["lcm-lora"]) == {"pytorch_lora_weights.safetensors"}
    assert files(mirrors["animatelcm-lora"]) == {"AnimateLCM_sd15_t2v_lora.safetensors"}
    with safe_open(str(mirrors["lcm-lora"] / "pytorch_lora_weights.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight" in keys
    assert "lora_unet_up_blocks_1_resnets_0_time_emb_proj.alpha" in keys
    assert files(mirrors["svd-xt"]) == SVD_FILES
    assert files(mirrors["svd-xt-fp16"]) == {f for f in SVD_FILES if not f.endswith("model.safetensors")}


def test_width_scales_channels_only():
    full = sd15_configs(1.0)
    assert full["unet"] == configs.SD15_UNET_CONFIG and full["vae"] == configs.SD15_VAE_CONFIG
    assert full["text_encoder"] == configs.CLIP_L14_TEXT_CONFIG
    assert full["motion_adapter"] == configs.PIA_ADAPTER_CONFIG
    assert svd_xt_configs(1.0) == {
        "unet": configs.SVD_XT_UNET_CONFIG,
        "vae": configs.SVD_XT_VAE_CONFIG,
        "image_encoder": configs.SVD_XT_IMAGE_ENCODER_CONFIG,
    }
    for width in (0.01, 0.125, 0.25, 0.5):
        for scaled, real in ((sd15_configs(width), full), (svd_xt_configs(width), svd_xt_configs(1.0))):
            for part, config in scaled.items():
                changed = {k for k in config if config[k] != real[part][k]}
                allowed = {"block_out_channels", "cross_attention_dim", "hidden_size", "intermediate_size"}
                assert changed <= allowed | {"projection_dim"}, (width, part, changed)
        assert sd15_configs(width)["text_encoder"]["vocab_size"] == CLIP_VOCAB_SIZE


@pytest.mark.slow
def test_sd15_and_pia_mirrors_generate(mirrors):
    s = pia_session(mirrors)
    # what SD1.5 ships: PNDM for P_img (no generator in its step), CLIP's vocabulary size
    assert type(s.image_backend.scheduler).__name__ == configs.SD15_SCHEDULER_CLASS
    assert type(s.video_backend.scheduler).__name__ == "DDIMScheduler"
    assert len(s.image_backend.tokenizer) == CLIP_VOCAB_SIZE
    assert s.video_backend.unet.config.in_channels == 9 and s.size == (512, 512) and s.video_backend.num_frames == 16
    assert s.video_backend.vae is s.image_backend.vae
    s.content_strength = 0.6  # P_img runs (2 PNDM steps), then P_video
    frames = small(s).generate(seed=0, progress=False).frames
    assert frames.shape == (2, 64, 64, 3) and frames.std() > 0


@pytest.mark.slow
def test_fp16_only_folder_loads_the_same_weights(mirrors):
    """A folder with only `*.fp16.safetensors` loads in float32: the fp16 weights, upcast."""
    assert variant_order(mirrors["sd15-fp16"], "unet", torch.float32) == ["fp16"]
    assert variant_order(mirrors["sd15"], "unet", torch.float32) == [None, "fp16"]
    assert variant_order(mirrors["sd15"], "unet", torch.float16) == ["fp16", None]
    plain, fp16 = pia_session(mirrors), pia_session(mirrors, "sd15-fp16")
    assert fp16.image_backend.unet.dtype == torch.float32
    for name in ("unet", "vae", "text_encoder"):
        a = getattr(plain.image_backend, name).state_dict()
        b = getattr(fp16.image_backend, name).state_dict()
        assert all(torch.equal(a[k].half().float(), b[k]) for k in a if a[k].is_floating_point()), name
    small(fp16).content_strength = 0.0
    assert fp16.generate(seed=0, progress=False).frames.shape == (2, 64, 64, 3)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["svd-xt", "svd-xt-fp16"])
def test_svd_xt_mirror_generates(mirrors, model):
    s = Session.from_pretrained(mirrors["sd15"], mirrors[model], device="cpu")
    assert type(s.video_backend).__name__ == "SVDVideoBackend" and s.size == (1024, 576)  # SVD-XT's native size
    assert s.video_backend.max_frames == 25 and s.guidance == 3.0
    assert type(s.video_backend.scheduler).__name__ == "EulerDiscreteScheduler"
    s.content_strength = 0.0
    frames = small(s).generate(seed=0, progress=False).frames
    assert frames.shape == (2, 64, 64, 3)


def test_svd_xt_mirror_comes_out_at_its_native_1024_by_576(mirrors):
    """SVD-XT was trained at 1024 x 576 (its configs say 768 px square, the same area): sessions start landscape."""
    s = Session.from_pretrained(mirrors["sd15"], mirrors["svd-xt"], device="cpu")
    assert s.size == (1024, 576) == s.video_backend.native_size and s.image.size == (1024, 576)
    assert s.video_backend.size == 1024  # the square-era int: the longer side
    overridden = Session.from_pretrained(mirrors["sd15"], mirrors["svd-xt"], device="cpu", size=(576, 1024))
    assert overridden.size == (576, 1024) and overridden.image.size == (576, 1024)
    with pytest.raises(InstructionError, match="64"):
        overridden.size = (1000, 576)  # not a multiple of what SVD's VAE and UNet take


@pytest.mark.slow
def test_svd_xt_mirror_runs_a_step_at_1024_by_576(mirrors):
    """One step of SVD-XT's architecture at its native size: 72 x 128 latents, 9216 tokens a frame."""
    s = Session.from_pretrained(mirrors["sd15"], mirrors["svd-xt"], device="cpu")
    s.image = scene()  # a square picture, centre-cropped to 16:9
    s.content_strength = 0.0  # x~ = x: P_img (SD1.5 at 1024 x 576) is not what this checks
    s.num_frames, s.steps, s.guidance = 2, 1, 1.0  # one row per UNet call
    video = s.generate(seed=0, progress=False)
    assert video.frames.shape == (2, 576, 1024, 3) and video.frames.std() > 0
    assert s.last_latents.shape == (1, 4, 2, 72, 128)


@pytest.mark.slow
def test_sd15_and_pia_mirrors_run_at_a_non_square_size(mirrors):
    """SD1.5 img2img and PIA at 128 x 64 (multiples of 64, landscape): P_img and P_video follow W x H."""
    s = Session.from_pretrained(
        mirrors["sd15"], mirrors["sd15"], motion_adapter=mirrors["pia"], device="cpu", size=(128, 64)
    )
    assert s.size == (128, 64) and s.video_backend.native_size == (512, 512)
    s.image = scene()
    s.content, s.motion = "a red fox in snow", "the fox runs"
    s.content_strength = 0.6  # P_img runs (2 PNDM steps) at 128 x 64, then one step of P_video
    s.num_frames, s.steps, s.image_steps = 2, 1, 2
    assert s.intermediate(edited=False).size == (128, 64)
    video = s.generate(seed=0, progress=False)
    assert video.frames.shape == (2, 64, 128, 3) and video.frames.std() > 0
    assert s.last_latents.shape == (1, 4, 2, 8, 16)
    with pytest.raises(InstructionError, match="64"):
        s.size = (96, 64)  # SD1.5 + PIA take multiples of 64


@pytest.mark.slow
def test_lcm_lora_and_animatelcm_few_step(mirrors):
    s = small(pia_session(mirrors))
    s.content_strength = 0.0
    before = s.generate(seed=0, progress=False).frames
    assert s.load_lora(mirrors["lcm-lora"]) == "pytorch_lora_weights"  # kohya keys: both UNets
    s.use_few_step(steps=2, lora=mirrors["animatelcm-lora"])  # peft keys: P_video
    assert s.video_backend.scheduler.__class__.__name__ == "LCMScheduler" and s.steps == 2
    assert set(s.video_backend.unet.peft_config) == {"pytorch_lora_weights", "fewstep"}
    few = s.generate(seed=0, progress=False).frames
    assert few.shape == before.shape and not np.array_equal(few, before)
    s.use_default_sampler()
    s.unload_lora()
    # the weights are bitwise the originals again; peft's module swap moves UNet outputs by ~1e-6
    restored = s.generate(seed=0, progress=False).frames
    assert np.abs(restored.astype(int) - before).max() <= 1


def test_clip_merges_from_a_bpe_file(tmp_path):
    """open_clip's file layout: a header line, then the merges in rank order, then more than CLIP uses."""
    merges = synthetic_merges()
    assert len(merges) == len(set(merges)) == CLIP_MERGES
    path = tmp_path / "bpe_simple_vocab_16e6.txt.gz"
    path.write_bytes(gzip.compress(("\n".join(["#version: 0.2", *merges, "x y"]) + "\n").encode()))
    assert clip_merges(path) == (merges, True)


@pytest.mark.parametrize(
    "kwargs, field",
    [(dict(kind="sd21"), "kind"), (dict(width=0), "width"), (dict(width=1.5), "width"), (dict(variants=()), "variants"),
     (dict(variants=("bf16",)), "variants")],
)  # fmt: skip
def test_bad_arguments_are_refused(tmp_path, kwargs, field):
    options = {"kind": "pia", "width": WIDTH, **kwargs}
    with pytest.raises(InstructionError, match=field):
        mirror(tmp_path / "m", options.pop("kind"), **options)
    assert not (tmp_path / "m").exists()


def test_hub_ids_try_fp16_first_in_float16_and_fall_back():
    """Hub repositories are not listed: both variants are tried in order, safetensors only."""
    from ivcore.backends.loading import load_component

    calls = []

    class Model:
        @classmethod
        def from_pretrained(cls, model, variant=None, **kwargs):
            calls.append((variant, kwargs["use_safetensors"], kwargs.get("subfolder")))
            if variant == "fp16":
                raise OSError("no diffusion_pytorch_model.fp16.safetensors in this repository")
            return "loaded"

    assert variant_order("owner/model", "unet", torch.float16) == ["fp16", None]
    assert variant_order("owner/model", "unet", torch.float32) == [None, "fp16"]
    assert load_component(Model, "owner/model", "unet", torch.float16) == "loaded"
    assert calls == [("fp16", True, "unet"), (None, True, "unet")]


def test_p_img_with_sd15s_pndm_equals_diffusers_img2img(mirrors):
    """SD1.5's own scheduler (PNDM, no generator in its step): P_img matches the pipeline exactly."""
    from diffusers import StableDiffusionImg2ImgPipeline

    b = pia_session(mirrors).image_backend
    image = scene().resize((64, 64))
    ours = b.img2img(
        image, b.encode_prompt("a red fox"), b.encode_prompt(""), strength=0.6, steps=4, guidance=7.5, seed=3
    )
    pipe = StableDiffusionImg2ImgPipeline(
        vae=b.vae, text_encoder=b.text_encoder, tokenizer=b.tokenizer, unet=b.unet, scheduler=b.scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    reference = pipe(
        "a red fox", image=image, strength=0.6, num_inference_steps=4, guidance_scale=7.5,
        generator=torch.Generator().manual_seed(3),
    ).images[0]  # fmt: skip
    assert type(b.scheduler).__name__ == "PNDMScheduler"
    assert np.array_equal(np.asarray(ours), np.asarray(reference)) and np.asarray(ours).std() > 1


@pytest.mark.skipif(clip_bpe_file() is None, reason="open_clip (CLIP's BPE file) is not installed")
def test_real_clip_merges_give_clips_token_ids(tmp_path):
    from transformers import CLIPTokenizer

    assert write_clip_tokenizer(tmp_path / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(tmp_path / "tokenizer")
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]  # CLIP's own ids
