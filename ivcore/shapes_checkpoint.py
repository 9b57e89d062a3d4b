"""Checkpoints of the shapes-world training: resumable state of a stage, and its EMA.

Split from `ivcore.shapes_train` so the training loop and its file format each have one module.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across runs and platforms): what a resumed run draws
    at a step follows from (seed, stage, step) alone."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class Checkpoint:
    """One stage's resumable state: trainable weights, EMA, optimizer, step, losses, wall time.

    Weights are safetensors; the optimizer state is loaded with `weights_only=True` (tensors and
    numbers only, never arbitrary pickles). Writes go to a temporary folder renamed into place,
    so a run killed mid-write leaves the previous checkpoint intact.
    """

    def __init__(self, root: Path, stage: str):
        self.folder = Path(root) / "train_state" / stage

    @property
    def state(self) -> dict:
        path = self.folder / "state.json"
        return json.loads(path.read_text()) if path.is_file() else {"step": 0, "losses": [], "wall_s": 0.0}

    def save(self, modules: dict, ema: dict | None, optimizer, state: dict) -> None:
        tmp = self.folder.with_name(self.folder.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        save_file(flat_state(modules), str(tmp / "weights.safetensors"))
        if ema:
            save_file({k: v.contiguous() for k, v in ema.items()}, str(tmp / "ema.safetensors"))
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(state))
        old = self.folder.with_name(self.folder.name + ".old")
        if self.folder.exists():
            self.folder.rename(old)
        tmp.rename(self.folder)
        if old.exists():
            for f in old.iterdir():
                f.unlink()
            old.rmdir()

    def load(self, modules: dict, optimizer=None) -> dict | None:
        """Restore weights (and optimizer); returns the EMA tensors or None."""
        weights = self.folder / "weights.safetensors"
        if not weights.is_file():
            return None
        load_flat_state(modules, load_file(str(weights)))
        if optimizer is not None and (self.folder / "optimizer.pt").is_file():
            optimizer.load_state_dict(torch.load(self.folder / "optimizer.pt", weights_only=True))
        ema = self.folder / "ema.safetensors"
        return load_file(str(ema)) if ema.is_file() else {}


def flat_state(modules: dict) -> dict[str, torch.Tensor]:
    """Every module's state in one dict, keys prefixed with the module's name (the checkpoint layout)."""
    return {f"{name}.{k}": v.detach().contiguous() for name, m in modules.items() for k, v in m.state_dict().items()}


def load_flat_state(modules: dict, flat: dict[str, torch.Tensor]) -> None:
    """The inverse of `flat_state`: each module loads the entries under its name."""
    for name, module in modules.items():
        prefix = name + "."
        module.load_state_dict({k[len(prefix) :]: v for k, v in flat.items() if k.startswith(prefix)})


class EMA:
    """Exponential moving average of parameters with the usual warm-up (1 + s) / (10 + s)."""

    def __init__(self, modules: dict, decay: float, saved: dict | None = None):
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in flat_state(modules).items()}
        if saved:
            self.shadow.update(saved)

    @torch.no_grad()
    def update(self, modules: dict, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in flat_state(modules).items():
            if v.dtype.is_floating_point:
                self.shadow[k].lerp_(v.float(), 1 - d)
            else:
                self.shadow[k].copy_(v)

    def copy_to(self, modules: dict) -> None:
        load_flat_state(modules, self.shadow)
