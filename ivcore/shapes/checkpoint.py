"""Checkpoints of the shapes-world training: resumable state of a stage, and its EMA.

Split from `ivcore.shapes.train` so the training loop and its file format each have one module.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ivcore.shapes.models import new_vae


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


def stage_weights(root: Path, name: str, modules: dict, use_ema: bool = True) -> dict:
    """Load a stage's trained (EMA when there is one) weights into `modules`; returns its state."""
    ckpt = Checkpoint(root, name)
    ema = ckpt.load(modules)
    if ema is None:
        raise FileNotFoundError(f"train-shapes: stage {name!r} has no checkpoint in {ckpt.folder}; run it first")
    if ema and use_ema:
        shadow = EMA(modules, 1.0, ema)
        shadow.copy_to(modules)
    for m in modules.values():
        m.eval()
    return ckpt.state


def trained_vae(root: Path):
    """The trained VAE with its scaling factor and a deterministic posterior (see `deterministic_posterior`)."""
    vae = new_vae()
    state = stage_weights(root, "vae", {"vae": vae})
    if "scaling_factor" in state:
        vae.register_to_config(scaling_factor=state["scaling_factor"])
    return deterministic_posterior(vae)


@torch.no_grad()
def deterministic_posterior(vae):
    """Fix the encoder's log-variance at -30 (std 3e-7): `latent_dist.sample()` becomes the mean.

    With a KL weight of 1e-6 the latent channels the decoder does not need drift to the prior,
    N(0, 1): sampled latents then carry noise no diffusion model can predict (a v-loss stuck near
    1.3 measured it). The decoder was trained on noisy samples, so it decodes the means at least
    as well (31.7 dB held-out), and the pipelines' `latent_dist.sample(generator)` keeps working.
    """
    channels = vae.config.latent_channels
    vae.quant_conv.weight[channels:] = 0
    vae.quant_conv.bias[channels:] = -30.0
    return vae
