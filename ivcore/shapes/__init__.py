"""The shapes world: a world of coloured shapes and small diffusion models trained on it.

`world` draws scenes and clips and measures them; `models`, `recipe`, `data`, `checkpoint`,
`grow`, `start`, `train` and `export` train the models (`python -m ivcore train-shapes`);
`evaluate` scores a session on held-out scenes (`benchmarks/quality.py`); `preset` makes
`Session.shapes()`; the trained weights and their card ship beside these modules. The shapes
world is a client of the engine: ivcore's session and stages import nothing from here.
"""
