"""Start a training run from trained models instead of from scratch (`train-shapes --init shipped`).

A fine-tune needs checkpoints to resume from, and the package ships exported model folders, not
training state. This writes first checkpoints from exported folders (the shipped ones or another
run's `--out`): the VAE as finished (the UNets' latents depend on it, so it is not retrained), the
image and video stages at step 0 with the models as both weights and EMA, so they train `steps`
more from there with a fresh optimizer, warm-up and cosine. From then on the run resumes like any.
"""

from __future__ import annotations

from pathlib import Path

from diffusers import AutoencoderKL, UNet2DConditionModel, UNetMotionModel
from transformers import CLIPTextModel

from ivcore.shapes import models as sm
from ivcore.shapes.checkpoint import Checkpoint, flat_state
from ivcore.shapes.recipe import TrainConfig


def init_folder(init: str) -> Path:
    """The exported models `init` names: "shipped" (the package's) or a folder with image/ and video/."""
    folder = sm.shipped_folder() if init == "shipped" else Path(init)
    missing = [name for name in ("image", "video") if not (folder / name / "model_index.json").is_file()]
    if missing:
        raise FileNotFoundError(
            f"init: {init!r} has no exported {' and '.join(missing)} models (model_index.json); "
            'allowed: "shipped" or a train-shapes --out folder with image/ and video/'
        )
    return folder


def _trainable(stage: str, folder: Path) -> dict:
    """The stage's trainable modules as the recipe builds them, holding the folder's weights.

    Loading into the recipe's own architectures (strictly) is what checks that the folder holds
    shapes-world models; the video UNet keeps the folder's depth and width (a run that asks for
    more grows it when it starts, `ivcore.shapes.grow`).
    """
    tokenizer = sm.shapes_tokenizer()
    if stage == "image":
        source, unet = UNet2DConditionModel.from_pretrained(folder / "image" / "unet"), sm.new_image_unet()
    else:
        source = UNetMotionModel.from_pretrained(folder / "video" / "unet")
        width = sm.width_of(source.config.block_out_channels[0])
        unet = sm.new_video_unet(source.config.layers_per_block, width)
    text_encoder = sm.new_text_encoder(tokenizer)
    pairs = ((unet, source), (text_encoder, CLIPTextModel.from_pretrained(folder / stage / "text_encoder")))
    for module, trained in pairs:
        try:
            module.load_state_dict(trained.float().state_dict())
        except RuntimeError as error:
            first = str(error).strip().splitlines()[0]
            raise ValueError(
                f"init: {folder / stage} does not hold shapes-world models ({type(module).__name__}: {first})"
            ) from None
    return {"unet": unet, "text_encoder": text_encoder}


def start_from_models(root: Path, cfg: TrainConfig) -> list[str]:
    """Write first checkpoints from `cfg.init` for the stages of `root` that have none; returns those stages."""
    folder = init_folder(cfg.init)
    started = []
    vae_ckpt = Checkpoint(root, "vae")
    if not (vae_ckpt.folder / "weights.safetensors").is_file():
        vae = AutoencoderKL.from_pretrained(folder / "video" / "vae").float()
        state = {"step": cfg.vae.steps, "losses": [], "wall_s": 0.0, "done": True,
                 "scaling_factor": float(vae.config.scaling_factor), "init": cfg.init}  # fmt: skip
        vae_ckpt.save({"vae": vae}, None, None, state)
        started.append("vae")
    for stage in ("image", "video"):
        ckpt = Checkpoint(root, stage)
        if (ckpt.folder / "weights.safetensors").is_file():
            continue
        modules = _trainable(stage, folder)
        ckpt.save(modules, flat_state(modules), None, {"step": 0, "losses": [], "wall_s": 0.0, "init": cfg.init})
        started.append(stage)
    return started
