"""Prompt encoding shared by the image and the video backend (CLIP, as in SD1.5)."""

from __future__ import annotations

import torch


@torch.no_grad()
def encode_prompt(text_encoder, tokenizer, prompt: str, device: torch.device | str) -> torch.Tensor:
    """CLIP hidden states (1, 77, D) for one prompt, tokenized exactly as diffusers' SD pipelines do.

    Padding to the model's max length matters: the UNet's cross-attention sees all 77 tokens,
    so any other padding changes the result compared to the stock pipelines.
    """
    ids = tokenizer(
        prompt,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    mask = None
    if getattr(text_encoder.config, "use_attention_mask", False):
        mask = ids.attention_mask.to(device)
    hidden = text_encoder(ids.input_ids.to(device), attention_mask=mask)[0]
    return hidden.to(dtype=text_encoder.dtype, device=device)
