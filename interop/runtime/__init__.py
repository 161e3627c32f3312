"""ONNX Runtime sessions, the onnx.backend adapter and the inference server."""
