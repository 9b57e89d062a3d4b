"""Loading one model component from a hub id or a local folder: safetensors only, fp16 variants.

Hub repositories keep the same weights twice: `diffusion_pytorch_model.safetensors` /
`model.safetensors` (float32) and the `fp16` variant `*.fp16.safetensors` (half the download).
SD1.5 and SVD img2vid-xt ship both; many copies and fine-tunes ship only one of them (a folder
saved with `variant="fp16"` has no plain file at all). `from_pretrained` without `variant` fails
on an fp16-only folder, and with `variant="fp16"` fails on a folder without it, so the loader
picks the variant from what is there: in float16 the fp16 files first (no float32 round trip,
half the bytes), otherwise the plain ones first, and the other one when the first is missing.
Local folders are inspected (nothing is tried that is not there); hub ids are tried in order.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import diffusers
import torch

# the weight file stem of each library's save_pretrained
_STEMS = ("diffusion_pytorch_model", "model")
FP16 = "fp16"


def _present(folder: Path, variant: str | None) -> bool:
    """Whether a folder holds safetensors weights of one variant (single file or sharded index)."""
    infix = f".{variant}" if variant else ""
    for stem in _STEMS:
        if (folder / f"{stem}{infix}.safetensors").is_file():
            return True
        if (folder / f"{stem}.safetensors.index{infix}.json").is_file():
            return True
        if (folder / f"{stem}{infix}.safetensors.index.json").is_file():
            return True
    return False


def variant_order(model: str | os.PathLike, subfolder: str | None, dtype: torch.dtype | None) -> list[str | None]:
    """The variants to try, best first: fp16 files first for float16, plain files first otherwise.

    For a local folder only the variants present are listed (an empty folder gives [None], so
    that diffusers reports the missing file in its own words); a hub id lists both.
    """
    order: list[str | None] = [FP16, None] if dtype == torch.float16 else [None, FP16]
    folder = Path(model) / subfolder if subfolder else Path(model)
    if Path(model).is_dir():
        present = [v for v in order if _present(folder, v)]
        return present or [None]
    return order


def load_component(
    cls: Any,
    model: str | os.PathLike,
    subfolder: str | None,
    dtype: torch.dtype | None,
    **kwargs: Any,
) -> Any:
    """`cls.from_pretrained` (diffusers or transformers), safetensors only, with the variant chosen above.

    Only `use_safetensors=True` is ever passed, so no variant choice can fall back to a pickle.
    The first error is raised when no variant loads.
    """
    options: dict[str, Any] = dict(use_safetensors=True, **kwargs)
    if dtype is not None:
        options["torch_dtype"] = dtype
    if subfolder:
        options["subfolder"] = subfolder
    first: Exception | None = None
    for variant in variant_order(model, subfolder, dtype):
        try:
            return cls.from_pretrained(str(model), variant=variant, **options)
        except (OSError, ValueError) as error:  # missing file of this variant: try the next one
            first = first or error
    assert first is not None
    raise first


def load_scheduler(model: str, **overrides):
    """The model's own scheduler class and config (DDIM, LCM, Euler, ...), from its `scheduler` folder."""
    config = diffusers.DDIMScheduler.load_config(model, subfolder="scheduler")
    cls = getattr(diffusers, config.get("_class_name", "DDIMScheduler"), diffusers.DDIMScheduler)
    return cls.from_config({**config, **overrides})


def sd_parts(model: str, dtype: torch.dtype, device) -> dict:
    """An SD1.5-layout model's VAE, CLIP text encoder and tokenizer (what P_img and PIA share)."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer

    vae = load_component(AutoencoderKL, model, "vae", dtype)
    text_encoder = load_component(CLIPTextModel, model, "text_encoder", dtype)
    tokenizer = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer")
    return dict(vae=vae.to(device).eval(), text_encoder=text_encoder.to(device).eval(), tokenizer=tokenizer)


__all__ = ["FP16", "load_component", "load_scheduler", "sd_parts", "variant_order"]
