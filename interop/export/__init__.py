"""The ONNX exporter: walks a recorded graph into a ModelProto."""
