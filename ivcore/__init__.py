"""ivcore: the InteractiveVideo engine (arXiv 2402.03040), free of widget code.

from ivcore import Session, Trajectory, Video
s = Session.tiny()
s.content, s.motion, s.lam = "a red fox in snow", "the fox runs", 0.5
video = s.generate(seed=0)
"""

from ivcore.denoise import Cancelled
from ivcore.errors import InstructionError, SessionBusy
from ivcore.session import Session
from ivcore.trajectory import Trajectory
from ivcore.video import Video

__all__ = ["Cancelled", "InstructionError", "Session", "SessionBusy", "Trajectory", "Video"]
__version__ = "0.1.0"
