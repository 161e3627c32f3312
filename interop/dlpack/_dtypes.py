"""numpy dtypes <-> DLPack (code, bits), and the dtypes numpy/cupy cannot exchange themselves.

numpy 2.4 and cupy exchange bool, integers, IEEE floats and complex; bfloat16 and the float8 family (ml_dtypes) travel
as unsigned integers of the same width ("carriers") whose DLPack code is patched in the capsule.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

INT, UINT, FLOAT, OPAQUE, BFLOAT, COMPLEX, BOOL = range(7)
_FLOAT8 = ("float8_e3m4", "float8_e4m3", "float8_e4m3b11fnuz", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2",
           "float8_e5m2fnuz", "float8_e8m0fnu")  # codes 7..14
_CODE_NAMES = {INT: "int", UINT: "uint", FLOAT: "float", OPAQUE: "opaque handle", BFLOAT: "bfloat",
               COMPLEX: "complex", BOOL: "bool", 15: "float6_e2m3fn", 16: "float6_e3m2fn", 17: "float4_e2m1fn",
               **{7 + i: n for i, n in enumerate(_FLOAT8)}}

_NATIVE = [np.dtype(np.bool_)] + [np.dtype(f"{k}{b}") for k in "iu" for b in (1, 2, 4, 8)] + \
    [np.dtype(f"f{b}") for b in (2, 4, 8)] + [np.dtype("c8"), np.dtype("c16")]
_CODE = {"b": BOOL, "i": INT, "u": UINT, "f": FLOAT, "c": COMPLEX}
TO_DL: dict[np.dtype, tuple[int, int]] = {d: (_CODE[d.kind], 8 * d.itemsize) for d in _NATIVE}
CARRIER: dict[np.dtype, np.dtype] = {np.dtype(ml_dtypes.bfloat16): np.dtype(np.uint16)}
TO_DL[np.dtype(ml_dtypes.bfloat16)] = (BFLOAT, 16)
for _i, _n in enumerate(_FLOAT8):
    _d = np.dtype(getattr(ml_dtypes, _n))
    TO_DL[_d], CARRIER[_d] = (7 + _i, 8), np.dtype(np.uint8)
FROM_DL: dict[tuple[int, int], np.dtype] = {v: k for k, v in TO_DL.items()}


def dl_name(code: int, bits: int, lanes: int = 1) -> str:
    """A readable name for a DLPack dtype, for error messages ("complex32", "float32x4", "code 99")."""
    base = _CODE_NAMES.get(code)
    if base is None:
        return f"unknown type code {code} ({bits} bits)"
    name = FROM_DL[code, bits].name if (code, bits) in FROM_DL else (base if code > BOOL else f"{base}{bits}")
    return name if lanes == 1 else f"{name}x{lanes} (lanes={lanes})"


def to_dl(dtype: np.dtype) -> tuple[int, int]:
    """(code, bits) of a dtype; BufferError naming it when DLPack cannot carry it."""
    dl = TO_DL.get(dtype)
    if dl is not None:
        return dl
    if not dtype.isnative:
        raise BufferError(f"DLPack only supports native byte order, got dtype {dtype.name} in byte order "
                          f"{dtype.byteorder!r} ({dtype.str}); convert it with .astype({dtype.name!r}) first")
    raise BufferError(f"dtype {dtype} is not supported by DLPack (supported: "
                      f"{', '.join(sorted(d.name for d in TO_DL))})")


def from_dl(code: int, bits: int, lanes: int) -> np.dtype:
    """The numpy dtype of a DLPack dtype; BufferError naming it when we have none."""
    dtype = FROM_DL.get((code, bits)) if lanes == 1 else None
    if dtype is None:
        raise BufferError(f"DLPack dtype {dl_name(code, bits, lanes)} is not supported (code={code}, bits={bits}, "
                          f"lanes={lanes})")
    return dtype
