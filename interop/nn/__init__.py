"""Neural-network modules, functional forms and initialisers (PyTorch names and defaults)."""
