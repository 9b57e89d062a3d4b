"""LoRAs on the transformer (and SDXL UNet) image families: `s.load_lora(path, target="image")`.

A tiny LoRA is written in diffusers' layout (`transformer.<module>.lora_A.weight` / `lora_B.weight`, the layout
`FluxLoraLoaderMixin.save_lora_weights` writes; for SDXL `unet.<module>...`) and in the kohya layout people
publish FLUX LoRAs in (`lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight`, converted by the family
pipeline's own `lora_state_dict`). Loading changes x~, a take records the adapter, and `unload_lora` gives x~
back bitwise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from image_helpers import image_folders, image_session

from ivcore import Session

VIDEO = "ltx-video-0.9.0-i2v"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    kinds = ("flux-dev", "sdxl", "flux2-klein", "qwen-image-edit", "z-image")
    return image_folders(tmp_path_factory, "image_lora", kinds, video=VIDEO)


def make_session(folders, kind: str) -> Session:
    s = image_session(folders[kind], folders[VIDEO])
    s.content_strength, s.image_steps = 0.8, 4
    return s


def lora_tensors(model: torch.nn.Module, prefix: str, names: list[str], rank: int = 4) -> dict[str, torch.Tensor]:
    """lora_A / lora_B for each linear layer `names` of `model`, strong enough to move a random-init model."""
    generator = torch.Generator().manual_seed(0)
    tensors = {}
    for name in names:
        layer = model.get_submodule(name)
        tensors[f"{prefix}.{name}.lora_A.weight"] = torch.randn(rank, layer.in_features, generator=generator)
        tensors[f"{prefix}.{name}.lora_B.weight"] = torch.randn(layer.out_features, rank, generator=generator)
    return tensors


def linear_names(model: torch.nn.Module, suffixes: tuple[str, ...]) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n.endswith(suffixes)]


def check_lora_round_trip(s: Session, path) -> None:
    before = np.asarray(s.intermediate(edited=False))
    name = s.load_lora(path, target="image")
    with_lora = np.asarray(s.intermediate(edited=False))
    assert np.abs(with_lora.astype(int) - before).mean() > 0.5  # the LoRA reached P_img
    s.generate(seed=0, num_frames=9, steps=2, progress=False)
    assert [entry["name"] for entry in s.takes[-1].models["loras"]] == [name]
    s.unload_lora(name)
    s.cache.clear()  # recomputed, not read back
    assert np.array_equal(np.asarray(s.intermediate(edited=False)), before)


@pytest.mark.parametrize("kind", ["flux-dev", "flux2-klein", "qwen-image-edit", "z-image"])
def test_a_diffusers_layout_lora_on_the_transformer_changes_x_tilde_and_unloads_bitwise(folders, kind, tmp_path):
    from safetensors.torch import save_file

    s = make_session(folders, kind)
    transformer = s.image_backend.transformer
    projections = ("to_q", "to_k", "to_v", "to_out.0")
    suffixes = tuple(f"{a}.{p}" for a in ("attn", "attention") for p in projections)  # Z-Image: `attention`
    names = linear_names(transformer, suffixes)
    assert names
    save_file(lora_tensors(transformer, "transformer", names), tmp_path / "lora.safetensors")
    check_lora_round_trip(s, tmp_path / "lora.safetensors")


def test_a_kohya_layout_flux_lora_goes_through_the_pipelines_converter(folders, tmp_path):
    """kohya's names for FLUX.1 (`lora_unet_double_blocks_0_img_attn_qkv`, fused q/k/v) become diffusers' ones
    only through `FluxPipeline.lora_state_dict`."""
    from safetensors.torch import save_file

    s = make_session(folders, "flux-dev")
    transformer = s.image_backend.transformer
    generator = torch.Generator().manual_seed(0)
    inner = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    tensors = {}
    for block in ("img_attn_qkv", "txt_attn_qkv"):
        key = f"lora_unet_double_blocks_0_{block}"
        tensors[f"{key}.lora_down.weight"] = torch.randn(4, inner, generator=generator)
        tensors[f"{key}.lora_up.weight"] = torch.randn(3 * inner, 4, generator=generator)
        tensors[f"{key}.alpha"] = torch.tensor(4.0)
    save_file(tensors, tmp_path / "kohya.safetensors")
    check_lora_round_trip(s, tmp_path / "kohya.safetensors")


def test_a_diffusers_layout_lora_on_the_sdxl_unet(folders, tmp_path):
    from safetensors.torch import save_file

    s = make_session(folders, "sdxl")
    unet = s.image_backend.unet
    names = linear_names(unet, ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn2.to_q"))
    save_file(lora_tensors(unet, "unet", names), tmp_path / "sdxl_lora.safetensors")
    check_lora_round_trip(s, tmp_path / "sdxl_lora.safetensors")
