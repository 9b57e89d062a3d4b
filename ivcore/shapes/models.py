"""The shapes world's models: architectures, tokenizer and the shipped weights.

The architectures are the tiny preset's (`ivcore.backends.tiny`) but for the video UNet's depth
(2 layers per block, as SD1.5's and PIA's, against the preset's 1: the shipped model was grown
from 1 to 2 at step 18000 with `deepen_video_unet`, which took camera pans from 67 % to 88 % on held-out clips 0-23).
Otherwise the shapes models differ from `Session.tiny()` only in their weights and in a tokenizer
whose vocabulary gives every word of the world one token (a random byte-level text encoder makes
captions that differ by a word nearly identical). Trained weights are written in diffusers'
folder layout, an SD1.5-style image model and a PIA-style video model whose `unet` is a
UNetMotionModel, so `Session.shapes()` loads them through `Session.from_pretrained`, the very path
real SD1.5 + PIA weights take.
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
from ivcore.errors import InstructionError
from ivcore.shapes.world import VOCABULARY

# v-prediction: the shapes prototypes learned to copy the condition image much faster with it
PREDICTION_TYPE = "v_prediction"
# Session settings the shapes models are measured with (benchmarks/quality.py)
# content_strength 0 (x~ = x): at 0.3 a painted square the content text does not name was in 33 % of the
# frames at lambda 0 (12 held-out scenes; 100 % at 0 or when named), so a student's paint showed too rarely
SESSION_DEFAULTS = dict(steps=20, image_steps=20, guidance=2.5, image_guidance=5.0, content_strength=0.0)


def shapes_tokenizer() -> CLIPTokenizer:
    """A CLIP BPE tokenizer: single bytes (so any text tokenizes) plus one token per world word.

    Merges are added until every word of `ivcore.shapes.world.VOCABULARY` is a single token (a merge
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


def new_video_unet(layers_per_block: int = 1, width: int = 1) -> UNetMotionModel:
    """PIA's layout: UNetMotionModel from the 2D UNet plus a motion adapter with a 9-channel conv_in.

    `layers_per_block` 1 is the tiny preset's; 2 is SD1.5's and PIA's depth (the shipped video model).
    `width` multiplies the preset's channels (32, 64); the shipped model has 1.
    """
    unet = UNetMotionModel.from_unet2d(new_image_unet(), MotionAdapter(**MOTION_ADAPTER_CONFIG))
    if (layers_per_block, width) == (unet.config.layers_per_block, 1):
        return unet
    channels = tuple(c * width for c in unet.config.block_out_channels)
    return UNetMotionModel.from_config(
        {**dict(unet.config), "layers_per_block": layers_per_block, "block_out_channels": channels}
    )


def video_unet_width(unet: UNetMotionModel) -> int:
    """How many times the preset's channels a video UNet has."""
    return width_of(unet.config.block_out_channels[0])


def width_of(first_block_channels: int) -> int:
    """The width (times the preset's channels) of a UNet whose first block has this many channels."""
    return first_block_channels // UNET_CONFIG["block_out_channels"][0]


def deepen_video_unet(unet: UNetMotionModel, layers_per_block: int) -> UNetMotionModel:
    """The same function with more layers per block: the new layers start as identities.

    A trained model can so grow and train on instead of starting over (the shipped video model went
    from 1 to 2 layers per block at step 18000). New resnets have a zero last conv (and, in the up
    blocks, a shortcut that passes the hidden state and drops the skip), new attention and motion
    modules a zero output projection. Down block i keeps its layers first and appends identities;
    an up block pops its skips in reverse, so it keeps its first layer, then the identities (which
    pop the duplicated skips), then the rest.
    """
    n = unet.config.layers_per_block
    if not isinstance(layers_per_block, int) or layers_per_block < n:
        raise InstructionError("layers_per_block", layers_per_block, f"an int >= the model's {n}")
    deep = UNetMotionModel.from_config({**dict(unet.config), "layers_per_block": layers_per_block})
    per_layer = (".resnets.", ".attentions.", ".motion_modules.")
    shared = {k: v for k, v in unet.state_dict().items() if "mid_block" in k or not any(p in k for p in per_layer)}
    deep.load_state_dict(shared, strict=False)
    added = layers_per_block - n
    for old, new in zip(unet.down_blocks, deep.down_blocks, strict=True):
        _map_layers(old, new, {i: i for i in range(n)})
    for old, new in zip(unet.up_blocks, deep.up_blocks, strict=True):
        _map_layers(old, new, {0: 0, **{k + added: k for k in range(1, n + 1)}})
    return deep


def _map_layers(old, new, sources: dict[int, int]) -> None:
    """Copy layer `sources[i]` of `old` into layer i of `new`; make every other layer of `new` an identity."""
    for name in ("resnets", "attentions", "motion_modules"):
        old_layers, new_layers = getattr(old, name, None), getattr(new, name, None)
        if new_layers is None:
            continue
        for i, layer in enumerate(new_layers):
            if i in sources:
                layer.load_state_dict(old_layers[sources[i]].state_dict())
            elif name == "resnets":
                _zero(layer.conv2)
                if layer.conv_shortcut is not None:  # (hidden, skip) -> hidden
                    _zero(layer.conv_shortcut)
                    with torch.no_grad():
                        layer.conv_shortcut.weight[:, : layer.out_channels, 0, 0] = torch.eye(layer.out_channels)
            else:
                _zero(layer.proj_out)


def widen_video_unet(unet: UNetMotionModel, width: int) -> UNetMotionModel:
    """The same function with `width` times the preset's channels, doubling as often as it takes.

    Net2Net's widening, made exact for a UNet: every channel is doubled in place (channel i becomes
    2i and 2i + 1), so group and layer norms see each group's values twice and keep their statistics;
    a layer reading doubled channels splits each weight between the two copies at random (r, 1 - r),
    which keeps the sum and lets the copies learn apart; attention heads keep their number and
    double their width, so the queries shrink by sqrt(2) to keep the scores; the timestep sinusoid,
    which a wider model computes at more frequencies, keeps its old ones at the even places.
    """
    have = video_unet_width(unet)
    if not isinstance(width, int) or width < have or width % have or (width // have) & (width // have - 1):
        raise InstructionError("width", width, f"the model's {have} times a power of two")
    while video_unet_width(unet) < width:
        unet = _double_channels(unet)
    return unet


def _double_channels(unet: UNetMotionModel) -> UNetMotionModel:
    channels = tuple(2 * c for c in unet.config.block_out_channels)
    wide = UNetMotionModel.from_config({**dict(unet.config), "block_out_channels": channels})
    old = unet.state_dict()
    state = {}
    for name, target in wide.state_dict().items():
        t = old[name]
        if name == "time_embedding.linear_1.weight":  # input: [cos, sin] of the timestep at more frequencies
            half = t.shape[1] // 2
            sinusoid = torch.zeros(t.shape[0], 4 * half, dtype=t.dtype)
            sinusoid[:, : 2 * half : 2], sinusoid[:, 2 * half :: 2] = t[:, :half], t[:, half:]  # the old frequencies
            t = sinusoid.repeat_interleave(2, 0)
        else:
            for dim in range(t.ndim):
                if target.shape[dim] == t.shape[dim]:
                    continue
                if target.shape[dim] != 2 * t.shape[dim]:
                    raise RuntimeError(f"widen: {name} {tuple(t.shape)} -> {tuple(target.shape)} is not a doubling")
                if dim == 1 and name.endswith("weight"):  # an input: the two copies share each weight
                    r = 0.25 + 0.5 * torch.rand(t.shape, dtype=t.dtype)
                    t = torch.stack([r * t, (1 - r) * t], 2).flatten(1, 2)
                else:
                    t = t.repeat_interleave(2, dim)
            if name.endswith(("to_q.weight", "to_q.bias")):
                t = t * 2**-0.5
        state[name] = t
    wide.load_state_dict(state)
    return wide


def _zero(module: torch.nn.Module) -> None:
    for p in module.parameters():
        torch.nn.init.zeros_(p)


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
    folder = Path(str(resources.files("ivcore.shapes")))
    if not (folder / "video" / "unet").is_dir():
        raise FileNotFoundError(
            f"shapes models: no trained weights in {folder.name}/ of the ivcore package; "
            "train them with `python -m ivcore train-shapes --out DIR` and pass DIR to Session.shapes(folder=DIR)"
        )
    return folder
