"""ivcore: the InteractiveVideo engine (arXiv 2402.03040), free of widget code.

from ivcore import Session, Trajectory, Video
s = Session.tiny()
s.content, s.motion, s.lam = "a red fox in snow", "the fox runs", 0.5
video = s.generate(seed=0)
"""

from ivcore.errors import InstructionError, SessionBusy
from ivcore.session import Session
from ivcore.stages.denoise import Cancelled
from ivcore.trajectory import Trajectory
from ivcore.video import Video

__all__ = ["Cancelled", "InstructionError", "Session", "SessionBusy", "Trajectory", "Video"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """`from ivcore import world` keeps working for a while: the shapes world now lives in `ivcore.shapes`."""
    if name == "world":
        import warnings

        warnings.warn("ivcore.world moved to ivcore.shapes.world", DeprecationWarning, stacklevel=2)
        from ivcore.shapes import world

        return world
    raise AttributeError(f"module 'ivcore' has no attribute {name!r}")
