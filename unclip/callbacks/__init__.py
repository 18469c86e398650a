"""Lightning callbacks shared by every training stage."""

from unclip.callbacks.nonfinite import NonFiniteGuard
from unclip.callbacks.sigterm import CheckpointOnSigterm

__all__ = ["CheckpointOnSigterm", "NonFiniteGuard"]
