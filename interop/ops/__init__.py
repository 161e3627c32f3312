"""Op families, one file each; importing a family registers its ops and attaches its Tensor methods."""

from . import attention, conv, elementwise, index, linalg, loss, nn, norm, pool, reduce, rnn, shape
