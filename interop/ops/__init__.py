"""Op families, one file each; importing a family registers its ops and attaches its Tensor methods."""

from . import elementwise, index, linalg, reduce, shape  # noqa: F401
