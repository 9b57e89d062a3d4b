"""What a session's models are, as JSON data: LoRAs, checkpoints, samplers, few-step state.

`Session.save` writes it, `Session.load` checks it, and every take records it so that `restore`
can refuse a take made with other models (`ivcore.takes`).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from ivcore.backends.weights import adapter_sources, adapter_weights, checkpoint_sources


def backends_of(session) -> dict[str, Any]:
    return {"image": session.image_backend, "video": session.video_backend}


def plain(value: Any) -> Any:
    """JSON data as it reads back (tuples become lists, numpy scalars and arrays plain numbers)."""

    def default(v: Any) -> Any:
        if isinstance(v, (np.ndarray, np.generic)):
            return v.tolist()
        if isinstance(v, os.PathLike):
            return os.fspath(v)
        raise TypeError(f"{type(v).__name__} is not JSON data")

    return json.loads(json.dumps(value, default=default))


def scheduler_state(scheduler) -> dict[str, Any]:
    """A scheduler as data: its diffusers class name and public config."""
    config = {k: v for k, v in dict(scheduler.config).items() if not k.startswith("_")}
    return {"class": type(scheduler).__name__, "config": plain(config)}


def weights_state(session) -> dict[str, Any]:
    """LoRAs (per target, in load order, with scale and source), checkpoints, samplers, few-step."""
    from ivcore.backends.fewstep import _SAVED

    loras, checkpoints = [], []
    for label, backend in backends_of(session).items():
        sources = adapter_sources(backend.denoiser)
        for name, scale in adapter_weights(backend.denoiser).items():
            record = sources.get(name, {})
            loras.append(
                {"name": name, "target": label, "scale": scale, "source": record.get("source"),
                 "weight_name": record.get("weight_name"), "sha256": record.get("sha256")}
            )  # fmt: skip
        checkpoints += [{"target": label, "source": source} for source in checkpoint_sources(backend)]
    saved = _SAVED.get(session)
    few_step = None
    if saved is not None:
        few_step = {"steps": saved.steps, "guidance": saved.guidance, "adapter": saved.adapter,
                    "scheduler": scheduler_state(saved.scheduler)}  # fmt: skip
    schedulers = {label: scheduler_state(b.scheduler) for label, b in backends_of(session).items()}
    return plain({"loras": loras, "checkpoints": checkpoints, "schedulers": schedulers, "few_step": few_step})
