"""The image families P_img can be, found by the diffusers pipeline class a model folder names.

The image side is independent of the video side (any image family with any video family), so it
has a registry of its own: one class can be both an image model and a video base (an SD1.5 folder
is P_img, and the base PIA's motion adapter runs on). As for the video families, each image family
is one module of `ivcore.backends` with a loader, imported only when a model of its family loads.

A loader is `load(model, *, device, dtype) -> backend`; the backend has `encode_prompt(prompt)` (what
its `img2img` takes as cond / uncond; the session's text stage caches it as it is), `img2img(image,
cond, uncond, *, strength, steps, guidance, seed)`, diffusers' component names (`unet`, `vae`,
`scheduler`, ...), `native_size`, `size_multiple` or what `ivcore.sizes.backend_multiple` reads,
and `defaults`: the session settings the family ships with (`image_steps`, `image_guidance`).
"""

from __future__ import annotations

from ivcore.backends.families import Family, Registry

IMAGE = Registry("image_model")
register, families, supported = IMAGE.register, IMAGE.families, IMAGE.supported
family_of, mirror_kinds, write_mirror = IMAGE.family_of, IMAGE.mirror_kinds, IMAGE.write_mirror


# ------------------------------------------------------------------------------------ the families
register(Family(
    "sd15",
    ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "LatentConsistencyModelPipeline",
     "LatentConsistencyModelImg2ImgPipeline", ""),
    "ivcore.backends.image:load_sd15_backend",
    doc="SD1.5 and its fine-tunes (DreamBooth, LCM, sd-turbo style): img2img over the UNet, VAE and CLIP",
))  # fmt: skip
register(Family(
    "sdxl", ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline"), "ivcore.backends.sdxl:load_sdxl_backend",
    mirrors={"sdxl": "ivcore.backends.sdxl:write_sdxl_mirror", "sdxl-turbo": "ivcore.backends.sdxl:write_sdxl_mirror"},
    doc="SDXL base, SDXL-Turbo and other SDXL folders: img2img over StableDiffusionXLImg2ImgPipeline's own methods",
))  # fmt: skip
register(Family(
    "flux", ("FluxPipeline", "FluxImg2ImgPipeline"), "ivcore.backends.flux:load_flux_backend",
    mirrors={kind: "ivcore.backends.flux:write_flux_mirror" for kind in ("flux-dev", "flux-schnell")},
    doc="FLUX.1 dev and schnell: img2img over FluxImg2ImgPipeline's own methods (distilled guidance, true CFG)",
))  # fmt: skip
register(Family(
    "flux-kontext", ("FluxKontextPipeline",), "ivcore.backends.flux:load_kontext_backend",
    mirrors={"flux-kontext": "ivcore.backends.flux:write_flux_mirror"},
    doc="FLUX.1 Kontext: an edit family (the content text is the instruction, x + paint the reference tokens)",
))  # fmt: skip
register(Family(
    "flux2-klein", ("Flux2KleinPipeline",), "ivcore.backends.flux2:load_klein_backend",
    mirrors={"flux2-klein": "ivcore.backends.flux2:write_klein_mirror"},
    doc="FLUX.2 klein: a distilled edit family (Qwen3 text, the reference image's latents as tokens of their own)",
))  # fmt: skip
register(Family(
    "qwen-image-edit", ("QwenImageEditPipeline",), "ivcore.backends.qwen_image:load_qwen_edit_backend",
    mirrors={"qwen-image-edit": "ivcore.backends.qwen_image:write_qwen_edit_mirror"},
    doc="Qwen-Image-Edit: an edit family (Qwen2.5-VL sees the reference image and the instruction; true CFG)",
))  # fmt: skip
register(Family(
    "z-image", ("ZImagePipeline", "ZImageImg2ImgPipeline"), "ivcore.backends.zimage:load_zimage_backend",
    mirrors={"z-image": "ivcore.backends.zimage:write_zimage_mirror"},
    doc="Z-Image (Turbo): img2img over ZImageImg2ImgPipeline's own methods (Qwen3 text, CFG above guidance 0)",
))  # fmt: skip


__all__ = ["IMAGE", "families", "family_of", "mirror_kinds", "register", "supported", "write_mirror"]
