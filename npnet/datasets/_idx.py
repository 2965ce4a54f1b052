"""A small reader for the IDX file format used by MNIST and Fashion-MNIST.

An IDX file is a header followed by the raw array, big-endian::

    bytes 0-1   zero
    byte  2     element type: 0x08 unsigned byte, 0x09 signed byte, 0x0B int16,
                0x0C int32, 0x0D float32, 0x0E float64
    byte  3     number of dimensions, ndim
    then ndim   big-endian uint32 sizes, one per dimension
    then        prod(sizes) elements, row-major (C order)

So the "magic number" ``0x00000803`` means a 3-d array of unsigned bytes (images,
``(n, 28, 28)``) and ``0x00000801`` a 1-d array of unsigned bytes (labels, ``(n,)``).

Files are usually distributed gzip-compressed (``*.gz``); :func:`read_file`
decompresses them and turns the gzip module's assorted exceptions into one
:class:`IDXError` with a readable reason.
"""

import gzip
import os
import struct
import zlib

import numpy as np

#: IDX element-type code -> NumPy dtype (IDX data is big-endian).
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

GZIP_MAGIC = b"\x1f\x8b"


class IDXError(ValueError):
    """The bytes are not a well-formed IDX file; ``str(error)`` says why."""


def magic_number(dtype_code, ndim):
    """The 32-bit magic number that starts an IDX file, e.g. ``0x00000803``."""
    return (dtype_code << 8) | ndim


def read_file(path, max_bytes=None):
    """Return the IDX bytes stored in ``path``, decompressing gzip if needed.

    A file is treated as gzip when it starts with the gzip signature, whatever
    its name. With ``max_bytes`` (the size the caller expects), no more than
    ``max_bytes + 1`` bytes are ever read or decompressed: a longer content, a
    gzip bomb for instance, raises :class:`IDXError` instead of filling memory.
    Raises :class:`IDXError` for a truncated or corrupted gzip stream.
    """
    limit = -1 if max_bytes is None else max_bytes + 1
    with open(path, "rb") as raw:
        is_gzip = raw.read(len(GZIP_MAGIC)) == GZIP_MAGIC
        raw.seek(0)
        data = _inflate(raw, limit) if is_gzip else raw.read(limit)
    if max_bytes is not None and len(data) > max_bytes:
        where = "decompresses to" if is_gzip else "holds"
        raise IDXError(
            f"too long: the file {where} more than the {max_bytes:,} bytes expected "
            f"(stopped reading there)"
        )
    return data


def _inflate(raw, limit):
    """Decompress at most ``limit`` bytes (-1: all) of the gzip file object ``raw``."""
    try:
        with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
            return stream.read(limit)
    except EOFError:
        size = os.fstat(raw.fileno()).st_size
        raise IDXError(
            f"truncated gzip file ({size:,} bytes): the compressed stream ends early"
        ) from None
    except (gzip.BadGzipFile, zlib.error) as error:
        raise IDXError(f"corrupted gzip file: {error}") from None


def read_header(data):
    """Parse the IDX header of ``data``.

    Returns ``(dtype_code, shape)``, e.g. ``(0x08, (60000, 28, 28))``.
    Raises :class:`IDXError` if the header is malformed.
    """
    if len(data) < 4:
        raise IDXError(f"too short for an IDX header ({len(data)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code not in IDX_DTYPES:
        raise IDXError(f"not an IDX file: magic number 0x{data[:4].hex().upper()}")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IDXError(f"header cut short: {ndim} dimensions need {header_size} bytes")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    return dtype_code, shape


def header_size(shape):
    """Number of header bytes for an array of ``shape``: 4 + 4 * ndim."""
    return 4 + 4 * len(shape)


def parse(data):
    """Turn the IDX bytes ``data`` into a new, writeable, C-contiguous array.

    The array has the dtype and shape given by the header (native byte order).
    Raises :class:`IDXError` if the header is malformed or the body is not
    exactly as long as the header says.
    """
    dtype_code, shape = read_header(data)
    dtype = IDX_DTYPES[dtype_code]
    offset = header_size(shape)
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise IDXError(
            f"wrong length: the header promises {expected:,} bytes, "
            f"the file holds {len(data):,}"
        )
    # frombuffer views the (read-only) bytes; astype copies into memory we own.
    flat = np.frombuffer(data, dtype=dtype, offset=offset)
    return flat.astype(dtype.newbyteorder("="), copy=True).reshape(shape)
