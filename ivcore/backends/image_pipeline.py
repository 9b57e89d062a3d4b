"""What the image families written over one diffusers pipeline share (SDXL, FLUX.1).

Such a family keeps its modules as plain attributes under diffusers' names (users and tests reach them,
swap the scheduler, load LoRAs) and runs the pipeline's own methods (`encode_prompt`, `prepare_latents`,
the image processor, ...) on one pipeline of its class built over those very modules: `PipelineOver`
builds it, and builds it again when a module was swapped. Only the loop of `__call__` and its decode are
the family's own, so that a diffusers update that changes one of those methods changes ours with it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch


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


__all__ = ["PipelineOver", "PooledText", "shifted_timesteps"]
