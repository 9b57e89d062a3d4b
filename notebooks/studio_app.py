# ---
# jupyter:
#   colab:
#     provenance: []
#     toc_visible: true
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   language_info:
#     name: python
# ---

# %% [markdown]
# # InteractiveVideo Studio
#
# Make a short video from a picture with four instructions, as in the paper:
#
# 1. **Paint** on the picture (left): the colours you paint become part of the image instruction.
# 2. **Drag** on the intermediate picture x̃ (right) from a shape to where it should go: a trajectory.
# 3. **Type** what the picture shows (Content) and how it moves (Motion), e.g. "the red circle follows the path".
# 4. Set **λ**: at 1 the video grows from x̃ alone, at 0 from the dragged picture x̃′; in
#    between it blends the two (Eq. 4 of the paper).
#
# Press **Generate**; the video plays below when it is ready. The models here are small ones trained
# on a world of coloured shapes, small enough for a CPU.

# %%
from ivcore import Session
from ivcore.backends.build import tiny_requested
from ivwidgets import Studio

# IVCORE_TINY=1 (tests): the tiny random models, faster still; otherwise the trained shapes models
s = Session.tiny(seed=0) if tiny_requested() else Session.shapes(seed=0)
studio = Studio(s)
studio
