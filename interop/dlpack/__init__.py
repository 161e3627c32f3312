"""DLPack: zero-copy exchange with numpy, PyTorch, JAX, CuPy and ONNX Runtime."""
