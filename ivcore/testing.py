"""Hub-layout mirrors: random-init folders laid out like the repositories `from_pretrained` loads.

Real weights are not needed to check that the loader reads what the hub holds: the folder layout,
file names, configs, scheduler class, tokenizer files and `fp16` variants are public, and time and
memory depend on the architecture, not on the weights. `mirror(folder, kind, width)` writes such a
folder with random weights:

- "sd15": `stable-diffusion-v1-5/stable-diffusion-v1-5` (model_index.json, unet, vae, text_encoder,
  tokenizer, scheduler = PNDMScheduler, feature_extractor, safety_checker).
- "pia": `openmmlab/PIA-condition-adapter` (a MotionAdapter with a 9-channel conv_in at the root).
- "svd-xt": `stabilityai/stable-video-diffusion-img2vid-xt` (unet, vae, image_encoder,
  feature_extractor, scheduler = EulerDiscreteScheduler).
- "lcm-lora": `latent-consistency/lcm-lora-sdv1-5` (pytorch_lora_weights.safetensors, kohya keys
  with diffusers' block names: `lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight`).
- "animatelcm-lora": AnimateLCM's LoRA file for few-step sampling (`AnimateLCM_sd15_t2v_lora.safetensors`
  of `wangfuyun/AnimateLCM`; its motion part is a MotionAdapter), on the SD1.5 attention blocks,
  written in diffusers' own peft layout (`unet.down_blocks.0.attentions.0.proj_in.lora_A.weight`) so
  the mirrors cover both layouts diffusers reads.

The repositories' single-file checkpoints at their roots (`v1-5-pruned.safetensors`, `svd_xt.safetensors`)
and pickle copies (`*.bin`) are not written: `from_pretrained` never reads them. The ranks and
target layers of the two LoRAs follow their training recipes (LCM-LoRA: rank 64 on attention,
feed-forward, resnet convs, samplers and time projections); the key layouts are the two that
diffusers' `load_lora_weights` reads for SD1.5 (which one each published file uses could not be
checked here, offline); the tensors are random.

The video families' kinds ("wan2.1-i2v", "wan2.2-i2v-a14b", "wan2.2-ti2v-5b", ...) come from each family's
module (`ivcore.backends.families`): tiny random-init models in the repository's layout (model_index.json,
transformer, vae, text_encoder, tokenizer built in code, scheduler, ...), loaded by `from_pretrained(folder)`
like the real repository; `width` does not apply to them. The image families' kinds ("sdxl", "sdxl-turbo",
"flux-dev", "flux-schnell", "flux-kontext") come from `ivcore.backends.image_families` the same way.

`width < 1` scales channel counts only (rounded up to multiples of the group-norm groups and head
counts): the same blocks, layers, heads, vocabulary (49408), sample sizes and file names, so the
loader sees the same structure and a CPU can run it. `width=1` gives the real sizes (several GB).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ivcore.backends import configs, families, image_families
from ivcore.backends.tiny import byte_level_alphabet
from ivcore.errors import InstructionError
from ivcore.instructions import check_choice

# the kinds written here, then every video family's own (`ivcore.backends.families`: "wan2.1-i2v", ...) and every
# image family's (`ivcore.backends.image_families`: "sdxl", ...)
KINDS = (
    "sd15", "pia", "svd-xt", "lcm-lora", "animatelcm-lora", *families.mirror_kinds(), *image_families.mirror_kinds(),
)  # fmt: skip
REPOSITORIES = {
    "sd15": configs.SD15_MODEL,
    "pia": configs.PIA_ADAPTER,
    "svd-xt": configs.SVD_XT_MODEL,
    "lcm-lora": "latent-consistency/lcm-lora-sdv1-5",
    "animatelcm-lora": "wangfuyun/AnimateLCM",
}
# which weight variants each repository holds (None: the plain float32 files)
DEFAULT_VARIANTS: dict[str, tuple[str | None, ...]] = {"sd15": (None, "fp16"), "pia": (None,), "svd-xt": (None, "fp16")}
LORA_FILES = {"lcm-lora": "pytorch_lora_weights.safetensors", "animatelcm-lora": "AnimateLCM_sd15_t2v_lora.safetensors"}
LCM_LORA_TARGETS = (
    "to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
    "conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj",
)  # fmt: skip
ATTENTION_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2")
LORA_RANK = 64
CLIP_VOCAB_SIZE = 49408
CLIP_MERGES = CLIP_VOCAB_SIZE - 2 * 256 - 2  # 48894 merges: bytes, bytes + </w>, merges, 2 specials
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# safety_checker/config.json: a CLIPConfig whose vision tower (ViT-L/14) the checker runs
SAFETY_VISION_CONFIG = dict(
    hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24, patch_size=14,
    image_size=224, projection_dim=768, hidden_act="quick_gelu",
)  # fmt: skip


# ---------------------------------------------------------------------------------------- widths
def scaled(channels: int, width: float, multiple: int) -> int:
    """`channels * width` rounded up to a multiple of `multiple` (at least one multiple); exact at width 1."""
    return max(multiple, math.ceil(channels * width / multiple - 1e-9) * multiple)


def sd15_configs(width: float = 1.0) -> dict[str, dict[str, Any]]:
    """The SD1.5 + PIA configs at a width: {"unet", "vae", "text_encoder", "motion_adapter", "safety_vision"}."""
    heads = configs.CLIP_L14_TEXT_CONFIG["num_attention_heads"]
    hidden = scaled(configs.CLIP_L14_TEXT_CONFIG["hidden_size"], width, 4 * heads)
    intermediate = scaled(configs.CLIP_L14_TEXT_CONFIG["intermediate_size"], width, 4 * heads)
    text = dict(configs.CLIP_L14_TEXT_CONFIG, hidden_size=hidden, projection_dim=hidden, intermediate_size=intermediate)
    channels = [scaled(c, width, 32) for c in configs.SD15_UNET_CONFIG["block_out_channels"]]
    unet = dict(configs.SD15_UNET_CONFIG, block_out_channels=channels, cross_attention_dim=hidden)
    vae = dict(
        configs.SD15_VAE_CONFIG,
        block_out_channels=[scaled(c, width, 32) for c in configs.SD15_VAE_CONFIG["block_out_channels"]],
    )
    adapter = dict(configs.PIA_ADAPTER_CONFIG, block_out_channels=channels)
    vision = dict(SAFETY_VISION_CONFIG, hidden_size=scaled(1024, width, 64), intermediate_size=scaled(4096, width, 64),
                  projection_dim=scaled(768, width, 64))  # fmt: skip
    return dict(unet=unet, vae=vae, text_encoder=text, motion_adapter=adapter, safety_vision=vision)


def svd_xt_configs(width: float = 1.0) -> dict[str, dict[str, Any]]:
    """SVD img2vid-xt's configs at a width: {"unet", "vae", "image_encoder"}."""
    full = configs.SVD_XT_UNET_CONFIG
    heads = full["num_attention_heads"]
    channels = [scaled(c, width, math.lcm(32, h)) for c, h in zip(full["block_out_channels"], heads, strict=True)]
    encoder = configs.SVD_XT_IMAGE_ENCODER_CONFIG
    projection = scaled(encoder["projection_dim"], width, 64)
    hidden = scaled(encoder["hidden_size"], width, 4 * encoder["num_attention_heads"])
    intermediate = scaled(encoder["intermediate_size"], width, 64)
    image_encoder = dict(encoder, hidden_size=hidden, intermediate_size=intermediate, projection_dim=projection)
    unet = dict(full, block_out_channels=channels, cross_attention_dim=projection)
    vae = dict(
        configs.SVD_XT_VAE_CONFIG,
        block_out_channels=[scaled(c, width, 32) for c in configs.SVD_XT_VAE_CONFIG["block_out_channels"]],
    )
    return dict(unet=unet, vae=vae, image_encoder=image_encoder)


# ---------------------------------------------------------------------------------------- writing
def _weight_name(stem: str, variant: str | None) -> str:
    return f"{stem}.{variant}.safetensors" if variant else f"{stem}.safetensors"


def _save_weights(module: torch.nn.Module, folder: Path, stem: str, variants: Sequence[str | None]) -> None:
    """The state dict once per variant: float32 as built, fp16 for the "fp16" variant."""
    state = module.state_dict()
    for variant in variants:
        dtype = torch.float16 if variant == "fp16" else None
        tensors = {
            k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().contiguous()
            for k, v in state.items()
        }
        save_file(tensors, str(folder / _weight_name(stem, variant)), metadata={"format": "pt"})


def _write_diffusers(module: Any, folder: Path, variants: Sequence[str | None]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    module.save_config(folder)
    _save_weights(module, folder, "diffusion_pytorch_model", variants)


def _write_transformers(module: Any, folder: Path, variants: Sequence[str | None]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    module.config.architectures = [type(module).__name__]
    module.config.save_pretrained(folder)
    _save_weights(module, folder, "model", variants)


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _feature_extractor(path: Path, modern: bool) -> None:
    """preprocessor_config.json as the repositories hold it (SD1.5's in the older plain-int form)."""
    data: dict[str, Any] = dict(
        crop_size=224, do_center_crop=True, do_convert_rgb=True, do_normalize=True, do_resize=True,
        feature_extractor_type="CLIPFeatureExtractor", image_mean=CLIP_MEAN, image_std=CLIP_STD, resample=3, size=224,
    )  # fmt: skip
    if modern:
        data.update(crop_size={"height": 224, "width": 224}, size={"shortest_edge": 224}, do_rescale=True,
                    rescale_factor=1 / 255, image_processor_type="CLIPImageProcessor")  # fmt: skip
    _write_json(path / "preprocessor_config.json", data)


# ---------------------------------------------------------------------------------------- tokenizer
def clip_bpe_file() -> Path | None:
    """CLIP's own BPE merges (`bpe_simple_vocab_16e6.txt.gz`) from an installed open_clip, if any.

    The package is located, not imported (importing open_clip needs torchvision).
    """
    spec = importlib.util.find_spec("open_clip")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "bpe_simple_vocab_16e6.txt.gz"
        if path.is_file():
            return path
    return None


def synthetic_merges() -> list[str]:
    """48894 valid BPE merges that join two byte symbols (lowercase letters and digits first).

    The stand-in for CLIP's merges when no package ships them: the vocabulary keeps CLIP's size
    and layout (bytes, bytes + </w>, merges, two specials) and any text still tokenizes.
    """
    first = list("abcdefghijklmnopqrstuvwxyz0123456789")
    order = first + [c for c in byte_level_alphabet() if c not in first]
    return [f"{a} {b}" for a in order for b in [*order, *(c + "</w>" for c in order)]][:CLIP_MERGES]


def clip_merges(bpe_file: Path | None = None) -> tuple[list[str], bool]:
    """(48894 merges, True) from CLIP's BPE file (given, or open_clip's); else (`synthetic_merges()`, False)."""
    bpe_file = bpe_file or clip_bpe_file()
    if bpe_file is None:
        return synthetic_merges(), False
    with gzip.open(bpe_file, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    return lines[1 : CLIP_MERGES + 1], True  # line 0 is a header, as CLIP's SimpleTokenizer reads it


def write_clip_tokenizer(folder: Path, bpe_file: Path | None = None) -> bool:
    """CLIP ViT-L/14's tokenizer files (vocab.json, merges.txt, tokenizer_config.json,
    special_tokens_map.json) as in SD1.5's `tokenizer/`; returns True when CLIP's real merges were used."""
    merges, real = clip_merges(bpe_file)
    alphabet = byte_level_alphabet()
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != CLIP_VOCAB_SIZE:  # duplicates would shift every id after them
        raise ValueError(f"tokenizer: {len(vocab)} distinct tokens, CLIP has {CLIP_VOCAB_SIZE}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")

    def special(text: str) -> dict:
        return {"content": text, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}

    specials = dict(bos_token=special("<|startoftext|>"), eos_token=special("<|endoftext|>"),
                    unk_token=special("<|endoftext|>"), pad_token="<|endoftext|>")  # fmt: skip
    _write_json(folder / "special_tokens_map.json", specials)
    _write_json(folder / "tokenizer_config.json", dict(
        specials, add_prefix_space=False, do_lower_case=True, errors="replace", model_max_length=77,
        name_or_path="openai/clip-vit-large-patch14", tokenizer_class="CLIPTokenizer",
    ))  # fmt: skip
    return real


# ---------------------------------------------------------------------------------------- kinds
def _sd15(folder: Path, width: float, variants: Sequence[str | None]) -> None:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPTextConfig, CLIPTextModel

    parts = sd15_configs(width)
    _write_diffusers(UNet2DConditionModel(**parts["unet"]), folder / "unet", variants)
    _write_diffusers(AutoencoderKL(**parts["vae"]), folder / "vae", variants)
    _write_transformers(CLIPTextModel(CLIPTextConfig(**parts["text_encoder"])), folder / "text_encoder", variants)
    checker_config = CLIPConfig(text_config=parts["text_encoder"], vision_config=parts["safety_vision"],
                                projection_dim=parts["safety_vision"]["projection_dim"])  # fmt: skip
    _write_transformers(StableDiffusionSafetyChecker(checker_config), folder / "safety_checker", variants)
    write_clip_tokenizer(folder / "tokenizer")
    # as on the hub: PNDM's config with DDIM's keys (clip_sample) that PNDM itself ignores
    _write_json(folder / "scheduler" / "scheduler_config.json", {
        "_class_name": configs.SD15_SCHEDULER_CLASS, "_diffusers_version": "0.6.0", **configs.SD15_SCHEDULER_CONFIG,
    })  # fmt: skip
    _feature_extractor(folder / "feature_extractor", modern=False)
    _write_json(folder / "model_index.json", {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.6.0",
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
        "scheduler": ["diffusers", configs.SD15_SCHEDULER_CLASS], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    })  # fmt: skip


def _pia(folder: Path, width: float, variants: Sequence[str | None]) -> None:
    from diffusers import MotionAdapter

    _write_diffusers(MotionAdapter(**sd15_configs(width)["motion_adapter"]), folder, variants)


def _svd_xt(folder: Path, width: float, variants: Sequence[str | None]) -> None:
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from ivcore.backends.svd import SVD_SCHEDULER_CONFIG

    parts = svd_xt_configs(width)
    _write_diffusers(UNetSpatioTemporalConditionModel(**parts["unet"]), folder / "unet", variants)
    _write_diffusers(AutoencoderKLTemporalDecoder(**parts["vae"]), folder / "vae", variants)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**parts["image_encoder"]))
    _write_transformers(encoder, folder / "image_encoder", variants)
    _feature_extractor(folder / "feature_extractor", modern=True)
    # the hub file carries DDIM/PNDM keys Euler ignores; kept, so the loader meets them too
    extra = dict(clip_sample=False, set_alpha_to_one=False, skip_prk_steps=True, trained_betas=None)
    version = {"_diffusers_version": "0.24.0.dev0"}
    scheduler = {"_class_name": "EulerDiscreteScheduler", **version, **SVD_SCHEDULER_CONFIG, **extra}
    _write_json(folder / "scheduler" / "scheduler_config.json", scheduler)
    index = dict(
        feature_extractor=["transformers", "CLIPImageProcessor"],
        image_encoder=["transformers", "CLIPVisionModelWithProjection"],
        scheduler=["diffusers", "EulerDiscreteScheduler"],
        unet=["diffusers", "UNetSpatioTemporalConditionModel"],
        vae=["diffusers", "AutoencoderKLTemporalDecoder"],
    )
    _write_json(folder / "model_index.json", {"_class_name": "StableVideoDiffusionPipeline", **version, **index})


def _lora(folder: Path, kind: str, width: float) -> None:
    """A LoRA over the SD1.5 UNet layers its recipe targets, in that file's key layout.

    "lcm-lora": kohya keys with diffusers' block names (`lora_unet_<module>.lora_down.weight`,
    `.lora_up.weight`, `.alpha`). "animatelcm-lora": diffusers' own peft layout
    (`unet.<module>.lora_A.weight`, `.lora_B.weight`) on the attention blocks.
    """
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    with init_empty_weights():  # shapes only
        unet = UNet2DConditionModel(**sd15_configs(width)["unet"])
    rank = scaled(LORA_RANK, width, 4)
    kohya = kind == "lcm-lora"
    targets = LCM_LORA_TARGETS if kohya else ATTENTION_TARGETS
    generator = torch.Generator().manual_seed(0)
    tensors: dict[str, torch.Tensor] = {}
    for name, module in unet.named_modules():
        if not isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)) or not name.endswith(targets):
            continue
        if isinstance(module, torch.nn.Linear):
            down_shape, up_shape = (rank, module.in_features), (module.out_features, rank)
        else:
            down_shape = (rank, module.in_channels, *module.kernel_size)
            up_shape = (module.out_channels, rank, 1, 1)
        down = torch.randn(down_shape, generator=generator) / math.sqrt(math.prod(down_shape[1:]))
        up = torch.randn(up_shape, generator=generator) * 0.01
        if kohya:
            key = "lora_unet_" + name.replace(".", "_")
            tensors.update({f"{key}.lora_down.weight": down, f"{key}.lora_up.weight": up,
                            f"{key}.alpha": torch.tensor(float(rank))})  # fmt: skip
        else:
            tensors.update({f"unet.{name}.lora_A.weight": down, f"unet.{name}.lora_B.weight": up})
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(torch.float16) for k, v in tensors.items()}, str(folder / LORA_FILES[kind]))


def mirror(
    folder: str | os.PathLike,
    kind: str,
    width: float = 1.0,
    *,
    variants: Sequence[str | None] | None = None,
    seed: int = 0,
) -> Path:
    """Write a random-init copy of a default repository's layout into `folder`; returns the folder.

    `kind`: one of KINDS (see the module docstring for the repositories). `width` in (0, 1]
    scales channel counts only. `variants`: which weight files to write, None for the plain
    float32 ones and "fp16" for `*.fp16.safetensors` (default: what the repository holds;
    `("fp16",)` gives an fp16-only folder). LoRA kinds write one fp16 file. Same seed, same weights.
    """
    check_choice(kind, "kind", KINDS)
    if kind in families.mirror_kinds():  # a DiT family's tiny model in its hub layout (the family's module)
        return families.write_mirror(kind, Path(folder), seed=seed)
    if kind in image_families.mirror_kinds():  # an image family's tiny model in its hub layout
        return image_families.write_mirror(kind, Path(folder), seed=seed)
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 1:
        raise InstructionError("width", width, "a number in (0, 1]")
    chosen = tuple(DEFAULT_VARIANTS.get(kind, (None,)) if variants is None else variants)
    if not chosen or any(v not in (None, "fp16") for v in chosen):
        raise InstructionError("variants", chosen, 'a non-empty sequence of None and "fp16"')
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if kind == "sd15":
        _sd15(folder, width, chosen)
    elif kind == "pia":
        _pia(folder, width, chosen)
    elif kind == "svd-xt":
        _svd_xt(folder, width, chosen)
    else:
        _lora(folder, kind, width)
    return folder


__all__ = ["KINDS", "REPOSITORIES", "mirror", "scaled", "sd15_configs", "svd_xt_configs", "write_clip_tokenizer"]
