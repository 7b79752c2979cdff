"""Checks made before opening a file a user handed us, so a bad one costs one line.

A FIFO blocks whoever opens it until a writer comes and a device never ends, so both
are refused from a stat() alone; a size limit keeps a huge file from being read whole;
an .npz file's arrays are sized from their .npy headers, because np.load allocates
each array from its header before reading a byte of it.
"""
from __future__ import annotations

import math
import os
import stat
import zipfile
from pathlib import Path

import numpy as np


def file_problem(file: os.PathLike | str, max_bytes: int | None = None) -> str | None:
    """Why `file` must not be opened (not a regular file, or over `max_bytes`), or None."""
    name = Path(file).name
    try:
        info = os.stat(file)
    except OSError as e:
        return f"{name} is unreadable ({e.strerror or e})"
    if not stat.S_ISREG(info.st_mode):
        return f"{name} is not a regular file"
    if max_bytes is not None and info.st_size > max_bytes:
        return f"{name} is {info.st_size:,} bytes; at most {max_bytes:,}"
    return None


def npz_array_bytes(path: os.PathLike | str) -> int:
    """Bytes the arrays of an .npz file take once loaded, read from their .npy headers."""
    total = 0
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            with archive.open(member) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"{member.filename}: .npy version {version} is not read")
            total += math.prod(shape) * dtype.itemsize
    return total
