"""The shapes world's models: architectures, tokenizer and the shipped weights.

The architectures are the tiny preset's (`ivcore.backends.tiny`): the shapes models differ from
`Session.tiny()` only in their weights and in a tokenizer whose vocabulary gives every word of
the world one token (a random byte-level text encoder makes captions that differ by a word
nearly identical). Trained weights are written in diffusers' folder layout, an SD1.5-style image
model and a PIA-style video model whose `unet` is a UNetMotionModel, so `Session.shapes()` loads
them through `Session.from_pretrained`, the very path real SD1.5 + PIA weights take.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from ivcore.backends.tiny import (
    IMAGE_SCHEDULER_CONFIG,
    MOTION_ADAPTER_CONFIG,
    TEXT_CONFIG,
    UNET_CONFIG,
    VAE_CONFIG,
    VIDEO_SCHEDULER_CONFIG,
    byte_level_alphabet,
)
from ivcore.world import VOCABULARY

# v-prediction: the shapes prototypes learned to copy the condition image much faster with it
PREDICTION_TYPE = "v_prediction"
SHIPPED = "shapes"  # package folder (ivcore/shapes) holding image/ and video/
# Session settings the shapes models are measured with (benchmarks/quality.py)
# content_strength 0 (x~ = x): at 0.3 a painted square the content text does not name was in 33 % of the
# frames at lambda 0 (12 held-out scenes; 100 % at 0 or when named), so a student's paint showed too rarely
SESSION_DEFAULTS = dict(steps=20, image_steps=20, guidance=2.5, image_guidance=5.0, content_strength=0.0)


def shapes_tokenizer() -> CLIPTokenizer:
    """A CLIP BPE tokenizer: single bytes (so any text tokenizes) plus one token per world word.

    Merges are added until every word of `ivcore.world.VOCABULARY` is a single token (a merge
    made for one word can split another, so this repeats until nothing is split).
    """
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for ch in byte_level_alphabet():
            vocab[ch + suffix] = len(vocab)
    merges: list[tuple[str, str]] = []
    for _ in range(100):
        tokenizer = CLIPTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=77)
        split = [tokenizer.tokenize(word) for word in VOCABULARY]
        split = [pieces for pieces in split if len(pieces) > 1]
        if not split:
            return tokenizer
        for pieces in split:
            merges.append((pieces[0], pieces[1]))
            vocab.setdefault(pieces[0] + pieces[1], len(vocab))
    raise RuntimeError("shapes tokenizer: merges did not converge")


def new_vae() -> AutoencoderKL:
    return AutoencoderKL(**VAE_CONFIG)


def new_text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    return CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), **TEXT_CONFIG))


def new_image_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(**UNET_CONFIG)


def new_video_unet() -> UNetMotionModel:
    """PIA's layout: UNetMotionModel from the 2D UNet plus a motion adapter with a 9-channel conv_in."""
    return UNetMotionModel.from_unet2d(new_image_unet(), MotionAdapter(**MOTION_ADAPTER_CONFIG))


def image_scheduler() -> DDPMScheduler:
    return DDPMScheduler.from_config({**IMAGE_SCHEDULER_CONFIG, "prediction_type": PREDICTION_TYPE})


def video_scheduler() -> DDPMScheduler:
    return DDPMScheduler.from_config({**VIDEO_SCHEDULER_CONFIG, "prediction_type": PREDICTION_TYPE})


def save_model_folder(folder: Path, unet, vae, text_encoder, tokenizer, scheduler, *, half: bool = True) -> Path:
    """Write one model in diffusers' layout (safetensors; fp16 files when `half`, to keep the wheel small)."""
    folder = Path(folder)
    for name, module in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder)):
        module = module.to(torch.float16) if half else module
        module.save_pretrained(folder / name, safe_serialization=True)
        module.to(torch.float32)
    tokenizer.save_pretrained(folder / "tokenizer")
    # inference uses DDIM (deterministic, few steps) with the training noise schedule
    config = {k: v for k, v in dict(scheduler.config).items() if not k.startswith("_")}
    from diffusers import DDIMScheduler

    DDIMScheduler.from_config(config).save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": "StableDiffusionPipeline",
                "unet": ["diffusers", type(unet).__name__],
                "vae": ["diffusers", "AutoencoderKL"],
                "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"],
                "scheduler": ["diffusers", "DDIMScheduler"],
            },
            indent=2,
        )
    )
    return folder


def shipped_folder() -> Path:
    """The package folder with the trained image/ and video/ models (raises if they are missing)."""
    folder = Path(str(resources.files("ivcore") / SHIPPED))
    if not (folder / "video" / "unet").is_dir():
        raise FileNotFoundError(
            f"shapes models: no trained weights in {folder.name}/ of the ivcore package; "
            "train them with `python -m ivcore train-shapes --out DIR` and pass DIR to Session.shapes(folder=DIR)"
        )
    return folder
