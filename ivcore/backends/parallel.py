"""One generate across several GPUs: diffusers' own context parallelism on the video transformer(s), passed through.

diffusers 0.42 splits a DiT's token sequence over the GPUs of a process group (`ContextParallelConfig`:
`ring_degree` for ring attention, `ulysses_degree` for Ulysses' head exchange) with
`transformer.enable_parallelism(config=...)`. Nothing here shards anything: `enable` checks what the
session can check (a config of diffusers' kinds, a DiT backend, a process group that has been started,
degrees that multiply to at most its world size) and hands the config to every denoiser of the video
backend (Wan 2.2 A14B: both experts). Every rank runs the same session with the same instructions and
seed, as `torchrun` starts them; rank 0 keeps the video. `benchmarks/parallel_generate.py` is the script.

Eq. 4 is untouched by this: the branches stay rows of each call, and the sequence of each row is what
is split. diffusers needs an accelerator per rank (it places rank r on device r), so it cannot run on a
CPU-only machine.
"""

from __future__ import annotations

from typing import Any

from ivcore.errors import InstructionError

FIELD = "parallelism"
ALLOWED = "a diffusers ContextParallelConfig (ring_degree / ulysses_degree), with torch.distributed started"


def denoisers(backend) -> list[Any]:
    from ivcore.backends.step_cache import denoisers as models

    return models(backend)


def enable(backend, config: Any) -> None:
    """Hand `config` to every denoiser of the video backend, after the checks the module docstring names."""
    import torch.distributed as dist
    from diffusers import ContextParallelConfig

    if not isinstance(config, ContextParallelConfig):
        raise InstructionError(FIELD, type(config).__name__, ALLOWED)
    models = denoisers(backend)
    if not all(hasattr(m, "enable_parallelism") for m in models) or getattr(backend, "pipe", None) is None:
        raise InstructionError(FIELD, type(backend).__name__, "a DiT video family (Wan, CogVideoX, LTX, Hunyuan)")
    if not (dist.is_available() and dist.is_initialized()):
        raise InstructionError(
            FIELD, "no process group", "launch with torchrun and call torch.distributed.init_process_group() first"
        )
    degree = int(config.ring_degree or 1) * int(config.ulysses_degree or 1)
    if degree < 2 or dist.get_world_size() % degree:
        raise InstructionError(
            FIELD, f"ring_degree x ulysses_degree = {degree}",
            f"at least 2 and a divisor of the world size {dist.get_world_size()}",
        )  # fmt: skip
    for model in models:
        model.enable_parallelism(config=config)
    backend.weights_version += 1  # the split changes rounding: cached denoising results are not reused


__all__ = ["enable"]
