"""Which settings fit which card: the tables of docs/memory.md, computed from `ivcore.memory`'s plans.

Two cards: a Colab T4 (15 GiB usable) and a 24 GB card (RTX 3090/4090, A10G: 24 GiB). A plan fits
when its estimated peak leaves `RESERVE` for what the plan does not count (the CUDA context,
cuDNN/cuBLAS workspaces, allocator fragmentation). Each row is a full-size plan on the meta
device (seconds of CPU each, no GPU, no weights); `python -m ivcore.memory_cards` prints the
Markdown that docs/memory.md holds, and tests/test_memory.py checks the two agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ivcore import memory, memory_dit

GiB = 2**30
CARDS = {"T4": 15 * GiB, "24 GB": 24 * GiB}
RESERVE = 1 * GiB  # kept free on every card for what the plan does not count

# (plan function, {column: keywords}, {row: keywords}); every row's keywords go with every column's
PIA_TABLE: tuple[Callable[..., dict[str, int]], dict[str, dict], dict[str, dict]] = (
    memory.sd15_pia_plan,
    {"768 x 512, 16 frames": {"size": (768, 512), "num_frames": 16}},
    {
        "defaults (every row in one UNet call, every frame decoded at once)": {},
        "`max_decode_frames = 4`": {"max_decode_frames": 4},
        "`max_decode_frames = 4`, `max_rows = 2`": {"max_decode_frames": 4, "max_rows": 2},
        "`max_decode_frames = 4`, `max_rows = 1`": {"max_decode_frames": 4, "max_rows": 1},
        "`max_decode_frames = 4`, `max_rows = 1`, P_img's UNet on the CPU": {
            "max_decode_frames": 4, "max_rows": 1, "offload_image": True,
        },
    },
)  # fmt: skip
SVD_TABLE: tuple[Callable[..., dict[str, int]], dict[str, dict], dict[str, dict]] = (
    memory.svd_xt_plan,
    {"1024 x 576, 14 frames": {"num_frames": 14}, "1024 x 576, 25 frames": {"num_frames": 25}},
    {
        "defaults (every row in one UNet call, every frame decoded at once)": {},
        "`decode_chunk_size = 8`": {"decode_chunk_size": 8},
        "`decode_chunk_size = 4`, `max_rows = 2`": {"decode_chunk_size": 4, "max_rows": 2},
        "`decode_chunk_size = 2`, `max_rows = 1`": {"decode_chunk_size": 2, "max_rows": 1},
        "`decode_chunk_size = 2`, `max_rows = 1`, forward chunking": {
            "decode_chunk_size": 2, "max_rows": 1, "forward_chunking": True,
        },
        "`decode_chunk_size = 2`, `max_rows = 1`, forward chunking, P_img on the CPU": {
            "decode_chunk_size": 2, "max_rows": 1, "forward_chunking": True, "offload_image": True,
        },
    },
)  # fmt: skip
TABLES = {"SD1.5 + PIA": PIA_TABLE, "SVD-XT": SVD_TABLE}

# The cards people run the DiT families on, by the memory nvidia-smi reports (MiB): Colab's T4, Colab's and
# the clouds' L4, the A100s and the H100 of Colab Pro, Lambda and the like
DIT_CARDS = {
    "T4": 15360 * 2**20, "L4": 23034 * 2**20, "A100 40": 40960 * 2**20, "A100 80": 81920 * 2**20,
    "H100 80": 81559 * 2**20,
}  # fmt: skip
DIT_TABLE: tuple[Callable[..., dict[str, int]], dict[str, dict], dict[str, dict]] = (
    memory_dit.full_size_plan,
    {
        "Wan 2.1 I2V 14B 480P, 832 x 480, 81 frames": {"kind": "wan2.1-i2v-14b-480p"},
        "Wan 2.2 TI2V-5B, 1280 x 704, 121 frames": {"kind": "wan2.2-ti2v-5b"},
        "CogVideoX-5B I2V, 720 x 480, 49 frames": {"kind": "cogvideox-5b-i2v"},
        "LTX-Video 0.9, 768 x 512, 121 frames": {"kind": "ltx-video-0.9", "size": (768, 512), "num_frames": 121},
        "LTX-Video 0.9.7 13B distilled, 768 x 512, 121 frames": {
            "kind": "ltx-video-0.9.7-distilled", "size": (768, 512), "num_frames": 121,
        },
        "HunyuanVideo 1.5 I2V 480p, 848 x 480, 121 frames": {"kind": "hunyuanvideo-1.5-480p-i2v"},
    },
    {
        "defaults (every module on the device, every row in one call, no tiles)": {},
        "`vae_tiling`": {"vae_tiling": True},
        '`offload="model"`, `vae_tiling`': {"offload": "model", "vae_tiling": True},
        '`offload="model"`, `fp8`, `vae_tiling`': {"offload": "model", "fp8": True, "vae_tiling": True},
        '`offload="group"`, `vae_tiling`': {"offload": "group", "vae_tiling": True},
        '`offload="group"`, `fp8`, `vae_tiling`, `max_rows = 1`': {
            "offload": "group", "fp8": True, "vae_tiling": True, "max_rows": 1,
        },
    },
)  # fmt: skip
# issue 37's pairs: P_img and P_video on one card (P_img at the video's size)
PAIR_TABLE: tuple[Callable[..., dict[str, int]], dict[str, dict], dict[str, dict]] = (
    memory_dit.full_size_plan,
    {
        "SDXL + Wan 2.2 TI2V-5B, 1280 x 704, 121 frames": {"kind": "wan2.2-ti2v-5b", "image_model": "sdxl"},
        "FLUX.1 Kontext + Wan 2.1 I2V 14B 480P, 832 x 480, 81 frames": {
            "kind": "wan2.1-i2v-14b-480p", "image_model": "flux-kontext",
        },
        "FLUX.2 klein 4B + LTX-Video 0.9, 768 x 512, 121 frames": {
            "kind": "ltx-video-0.9", "image_model": "flux2-klein", "size": (768, 512), "num_frames": 121,
        },
    },
    {
        "defaults (both models on the device, every row in one call, no tiles)": {},
        '`offload="model"`, `vae_tiling`': {"offload": "model", "vae_tiling": True},
        '`offload="model"`, `fp8`, `vae_tiling`': {"offload": "model", "fp8": True, "vae_tiling": True},
        '`offload="group"`, `vae_tiling`': {"offload": "group", "vae_tiling": True},
        '`offload="group"`, `fp8`, `vae_tiling`, `max_rows = 1`': {
            "offload": "group", "fp8": True, "vae_tiling": True, "max_rows": 1,
        },
    },
)  # fmt: skip
DIT_TABLES = {"DiT video families": DIT_TABLE, "Image + video pairs": PAIR_TABLE}


def fits(total: int, cards: dict[str, int] = CARDS) -> list[str]:
    """The cards a plan's total fits on, keeping `RESERVE` free."""
    return [card for card, budget in cards.items() if total <= budget - RESERVE]


def table_totals(table: tuple) -> dict[str, dict[str, int]]:
    """{row: {column: total bytes}} of one table (each cell one full-size plan)."""
    function, columns, rows = table
    return {row: {col: function(**ckw, **rkw)["total"] for col, ckw in columns.items()} for row, rkw in rows.items()}


def first_fit(totals: dict[str, dict[str, int]], column: str, card: str, cards: dict[str, int] = CARDS) -> str | None:
    """The first row (the table's rows go from fastest to leanest) whose plan fits `card`; None if none."""
    return next((row for row, cells in totals.items() if card in fits(cells[column], cards)), None)


def markdown(name: str, totals: dict[str, dict[str, int]], cards: dict[str, int] = CARDS, dtype: str = "fp16") -> str:
    """One table as Markdown: the estimated peak in GiB per cell and the cards it fits, then the cheapest fits."""
    columns = list(next(iter(totals.values())))
    nothing = "neither" if len(cards) == 2 else "none"
    lines = [f"| {name}, {dtype}, 0 < lam < 1 with an edit | " + " | ".join(columns) + " |"]
    lines.append("|---|" + "---|" * len(columns))
    for row, cells in totals.items():
        shown = [f"{cells[c] / GiB:.2f} ({', '.join(fits(cells[c], cards)) or nothing})" for c in columns]
        lines.append(f"| {row} | " + " | ".join(shown) + " |")
    lines.append("")
    for column in columns:
        for card in cards:
            row = first_fit(totals, column, card, cards)
            lines.append(f"- {name} at {column} on the {card} card: {row or 'does not fit with these settings'}")
    return "\n".join(lines)


def all_markdown() -> str:
    """Every table of docs/memory.md's SD1.5 + PIA / SVD card section, as the doc holds it."""
    torch.set_num_threads(1)
    return "\n\n".join(markdown(name, table_totals(table)) for name, table in TABLES.items())


def dit_markdown() -> str:
    """The DiT families' card table of docs/memory.md (bf16, the video side alone), as the doc holds it."""
    torch.set_num_threads(1)
    return "\n\n".join(markdown(name, table_totals(table), DIT_CARDS, "bf16") for name, table in DIT_TABLES.items())


def main(argv: Any = None) -> None:
    """Print the tables (meta device: any machine, a few minutes on a busy 2-core CPU); `--dit`: the DiT table."""
    import sys

    args = sys.argv[1:] if argv is None else list(argv)
    print(dit_markdown() if "--dit" in args else all_markdown())


__all__ = [
    "CARDS", "DIT_CARDS", "DIT_TABLES", "RESERVE", "TABLES", "all_markdown", "dit_markdown", "first_fit", "fits",
    "markdown", "table_totals",
]  # fmt: skip

if __name__ == "__main__":
    main()
