"""ONNX Runtime sessions, the onnx.backend adapter and the inference server."""

from .session import IOInfo, Session, Stats

__all__ = ["IOInfo", "Session", "Stats"]
