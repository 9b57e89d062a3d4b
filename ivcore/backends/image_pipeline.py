"""What the image families written over one diffusers pipeline share (SDXL, FLUX.1, FLUX.2 klein, Qwen-Image-Edit,
Z-Image).

Such a family keeps its modules as plain attributes under diffusers' names (users and tests reach them,
swap the scheduler, load LoRAs) and runs the pipeline's own methods (`encode_prompt`, `prepare_latents`,
the image processor, ...) on one pipeline of its class built over those very modules: `PipelineOver`
builds it, and builds it again when a module was swapped. Only the loop of `__call__` and its decode are
the family's own, so that a diffusers update that changes one of those methods changes ours with it.

The transformer families (all but SDXL) also share their setup and the backend properties the session reads
(`TransformerImageBackend`), and every family's loader and tiny-mirror writer share `load_pipeline_parts`,
`check_kind` and `save_mirror`: written once, so that a fix to one (the bfloat16 rule, safetensors only) is a
fix to all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ivcore.backends.device_facts import compute_dtype, execution_device


class PooledText(NamedTuple):
    """One prompt as such a pipeline's `encode_prompt` gives it: what the session's text stage caches and
    `img2img` takes as cond / uncond."""

    embeds: torch.Tensor  # (1, L, D): the token embeddings the denoiser cross-attends to
    pooled: torch.Tensor  # (1, P): the pooled projection (SDXL's `text_embeds`, FLUX's `pooled_projections`)
    empty: bool  # the prompt was "": as a negative prompt, the session's "no negative prompt"


class PipelineOver:
    """A diffusers pipeline of `pipeline_class` over the backend's current `component_names` attributes.

    `pipeline_options()` gives the constructor's other arguments (model_index.json flags, ...).
    """

    pipeline_class: str = ""
    component_names: tuple[str, ...] = ()

    def pipeline_options(self) -> dict[str, Any]:
        return {}

    def _components(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.component_names}

    def pipeline(self):
        """The pipeline over the backend's modules as they are now (rebuilt when one was swapped)."""
        import diffusers

        parts = self._components()
        key = tuple(id(module) for module in parts.values())
        if self.__dict__.get("_pipe") is None or key != self.__dict__.get("_pipe_parts"):
            pipe = getattr(diffusers, self.pipeline_class)(**parts, **self.pipeline_options())
            pipe.set_progress_bar_config(disable=True)
            self._pipe, self._pipe_parts = pipe, key
        return self._pipe


class TransformerImageBackend(PipelineOver):
    """A transformer image family over one pipeline (FLUX.1, FLUX.2 klein, Qwen-Image-Edit, Z-Image).

    Sets what the session reads of every P_img backend: `name`, `weights_version` (LoRAs bump it),
    `vae_scale_factor`, `size_multiple` (the VAE's factor times the 2 x 2 packing of the latents), the native
    size (`default_sample_size` latents a side, as the pipelines' default) and `defaults` (`family_defaults()`,
    called last, so that a subclass may read what it set before `super().__init__`). The subclass sets its text
    modules itself, under the pipeline's names.
    """

    default_sample_size = 128  # the pipelines' default latent side (1024 pixels)
    family_settings: dict[str, Any] = {}  # the session's image settings when `family_defaults` is not overridden

    def __init__(self, transformer, vae, scheduler, *, name: str = ""):
        self.transformer, self.vae, self.scheduler = transformer, vae, scheduler
        self.name = name
        self.weights_version = 0
        self.vae_scale_factor = self.vae_factor(vae)
        self.size_multiple = self.vae_scale_factor * 2  # latents packed into 2 x 2 patches
        side = self.default_sample_size * self.vae_scale_factor
        self.native_size = (side, side)
        self.defaults = dict(self.family_defaults())

    @staticmethod
    def vae_factor(vae) -> int:
        """The VAE's spatial downsampling: one halving per block after the first (2D VAEs)."""
        return 2 ** (len(vae.config.block_out_channels) - 1)

    def family_defaults(self) -> dict[str, Any]:
        return self.family_settings

    @property
    def denoiser(self):
        """The network the sampler calls (where LoRAs go): the transformer."""
        return self.transformer

    @property
    def size(self) -> int:
        return max(self.native_size)

    @property
    def device(self) -> torch.device:
        return execution_device(self, self.pipeline(), self.transformer)

    @property
    def dtype(self) -> torch.dtype:
        return compute_dtype(self, self.transformer)


def load_pipeline_parts(pipeline_class: str, model: str, device, dtype: torch.dtype, names) -> tuple[Any, dict]:
    """A family's pipeline from a folder or hub id (safetensors only) on `device`, and its `names` components
    (the torch modules in eval mode). These families ship in bfloat16: a float16 request loads bfloat16
    (float16 overflows in their activations); float32 stays float32 (the CPU)."""
    import diffusers

    if dtype == torch.float16:
        dtype = torch.bfloat16
    pipe = getattr(diffusers, pipeline_class).from_pretrained(str(model), dtype=dtype, use_safetensors=True)
    pipe.to(device)
    parts = {name: pipe.components[name] for name in names}
    for module in parts.values():
        if isinstance(module, torch.nn.Module):
            module.eval()
    return pipe, parts


def check_kind(kind: str, kinds) -> None:
    """A tiny mirror's `kind` must be one the family writes (its `MIRROR_KINDS`)."""
    if kind not in kinds:
        raise ValueError(f"kind: {kind!r}; one of {sorted(kinds)}")


def save_mirror(pipe, folder: str | os.PathLike) -> Path:
    """A tiny pipeline saved in the hub layout (model_index.json and one folder a component), safetensors, for
    `from_pretrained(folder)`."""
    folder = Path(folder)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def shifted_timesteps(pipe, steps: int, tokens: int, device, sigmas=None) -> torch.Tensor:
    """The schedule `__call__` of a flow-matching family (FLUX.1, Qwen-Image, Z-Image) sets: `sigmas` (default
    linspace(1, 1 / steps)) shifted by `mu` for `tokens` image tokens, through the pipeline module's own
    `calculate_shift` and `retrieve_timesteps` and the scheduler's config (its dynamic shifting, if any)."""
    import sys

    import numpy as np

    module, config = sys.modules[type(pipe).__module__], pipe.scheduler.config
    mu = module.calculate_shift(
        tokens, config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096),
        config.get("base_shift", 0.5), config.get("max_shift", 1.15),
    )  # fmt: skip
    sigmas = np.linspace(1.0, 1 / steps, steps) if sigmas is None else sigmas
    return module.retrieve_timesteps(pipe.scheduler, steps, device, sigmas=sigmas, mu=mu)[0]


__all__ = [
    "PipelineOver", "PooledText", "TransformerImageBackend", "check_kind", "load_pipeline_parts", "save_mirror",
    "shifted_timesteps",
]  # fmt: skip
