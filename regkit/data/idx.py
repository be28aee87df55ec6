"""A small reader for the IDX files of MNIST and Fashion-MNIST (optionally gzip-compressed).

Convention
----------
The IDX format is a big-endian header ``0, 0, type, ndim``, then ``ndim`` 32-bit sizes, then the
values in C order. MNIST-style files hold ``uint8`` images ``N,28,28`` (``*-idx3-ubyte``) and
``uint8`` labels ``N`` (``*-idx1-ubyte``). A name ending in ``.gz`` is decompressed on the fly.

Example
-------
>>> import gzip, io, numpy as np
>>> raw = bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + bytes([7, 8, 9])
>>> parse_idx(raw).tolist()
[7, 8, 9]
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

__all__ = ["read_idx", "parse_idx", "write_idx"]

_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def parse_idx(data: bytes, name: str = "data") -> np.ndarray:
    """Decode the bytes of one IDX file into a NumPy array (native byte order).

    Raises ``ValueError`` naming ``name`` when the header is not IDX or the payload is short
    or long (a truncated download, say).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{name} is not an IDX file (bad magic number)")
    code, ndim = data[2], data[3]
    if code not in _TYPES:
        raise ValueError(f"{name} is not an IDX file: unknown type code 0x{code:02x}")
    if ndim == 0 or len(data) < 4 + 4 * ndim:
        raise ValueError(f"{name} is not a valid IDX file: truncated header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = _TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(data) - 4 - 4 * ndim
    if payload != expected:
        raise ValueError(
            f"{name} is truncated or corrupt: header says shape {shape} ({expected} bytes), "
            f"found {payload} bytes"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def read_idx(path) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain) into a NumPy array.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a corrupt one.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"IDX file not found: {path}")
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{os.path.basename(path)} is corrupt or truncated: {err}") from None
    return parse_idx(data, os.path.basename(path))


def write_idx(path, array: np.ndarray) -> None:
    """Write a ``uint8`` array as an IDX file (gzip-compressed when ``path`` ends in ``.gz``).

    Used by the tests to build small fake data roots.
    """
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"array must be uint8, got {array.dtype}")
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    blob = header + array.tobytes()
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(blob)
