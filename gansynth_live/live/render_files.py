"""The /render directory: WAV files written inside it and nowhere else, whatever races.

Checking a path and then opening it is a race: between the two, a directory inside the
render dir can be replaced by a symbolic link to anywhere. So nothing here resolves a
path. The render dir is opened once, when the server starts; each name is walked from
that directory's file descriptor one part at a time, every part opened with O_NOFOLLOW
(a symbolic link anywhere on the way is refused, not followed), and the file is written
under a temporary name and renamed into place relative to its directory's descriptor.

Names: relative, parts separated by "/", none of them empty, "." or "..", each at most
`MAX_PART_BYTES` bytes and at most `MAX_PARTS` parts; ".wav" is added when the last part
has no extension, and any other extension is refused.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

MAX_PART_BYTES = 255  # NAME_MAX of Linux file systems
MAX_PARTS = 8

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class RenderDir:
    """A directory that WAV files are written into (created if missing)."""

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
            self.path = path.resolve()
            self.fd = os.open(self.path, _DIR_FLAGS)
        except OSError as e:
            raise OSError(f"render directory {path}: {e.strerror}") from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def parts(self, name) -> tuple[str, ...]:
        """The checked parts of a /render filename (ValueError naming what is wrong)."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"filename must be a non-empty string, got {name!r:.80}")
        if "\0" in name:
            raise ValueError("filename contains a NUL character")
        if name.startswith("/"):
            raise ValueError(f"filename {name[:80]!r} is absolute: it must be relative to "
                             f"the render directory")
        parts = name.split("/")
        if len(parts) > MAX_PARTS:
            raise ValueError(f"filename has {len(parts)} parts, at most {MAX_PARTS} are allowed")
        for part in parts:
            if part in ("", ".", ".."):
                raise ValueError(f"filename {name[:80]!r} points outside the render directory "
                                 f"or is not plain: parts may not be empty, '.' or '..'")
        stem, dot, extension = parts[-1].rpartition(".")
        if not dot or not stem:
            parts[-1] += ".wav"
        elif extension.lower() != "wav":
            raise ValueError(f"filename must end in .wav (or have no extension), "
                             f"got {name[:80]!r}")
        for part in parts:
            if len(part.encode("utf-8", "surrogatepass")) > MAX_PART_BYTES:
                raise ValueError(f"filename part {part[:40]!r}... is longer than "
                                 f"{MAX_PART_BYTES} bytes")
        return tuple(parts)

    def full_path(self, parts: tuple[str, ...]) -> str:
        return str(self.path.joinpath(*parts))

    def write_wav(self, parts: tuple[str, ...], audio: np.ndarray, sample_rate: int) -> str:
        """Write `audio` as a 32-bit float WAV at `parts`; its path. OSError if a part is a
        symbolic link, or the file cannot be written."""
        fds = []
        try:
            directory = self.fd
            for part in parts[:-1]:
                directory = _open_subdir(directory, part)
                fds.append(directory)
            _write_replace(directory, parts[-1], audio, sample_rate)
        finally:
            for fd in fds:
                os.close(fd)
        return self.full_path(parts)


def _open_subdir(parent: int, name: str) -> int:
    try:
        os.mkdir(name, 0o755, dir_fd=parent)
    except FileExistsError:
        pass  # a directory (or a link: refused just below)
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as e:
        raise OSError(e.errno, f"{name!r} is not a directory (symbolic links are not "
                               f"followed): {e.strerror}") from None


def _write_replace(directory: int, name: str, audio: np.ndarray, sample_rate: int) -> None:
    temporary = f".{name}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                 | getattr(os, "O_CLOEXEC", 0), 0o644, dir_fd=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            sf.write(file, audio, sample_rate, subtype="FLOAT", format="WAV")
        # rename() replaces a link at `name` itself, never what it points to
        os.replace(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
    except BaseException:
        try:
            os.unlink(temporary, dir_fd=directory)
        except OSError:
            pass
        raise


__all__ = ["MAX_PARTS", "MAX_PART_BYTES", "RenderDir"]
