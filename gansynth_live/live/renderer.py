"""Renderers: latent vectors + pitches in, notes at the device rate out.

`InProcessRenderer` runs the model in the calling thread: simple, used by tests and by
Python code that embeds an `Engine`.

`ProcessRenderer` runs it in a child process, and is what gansynth-live uses. Why: the
audio callback must take Python's GIL within its block. TensorFlow releases the GIL while
ops run, but the Python around them holds it, and when the operating system preempts a
thread that holds the GIL, the real-time audio thread waits for it (a priority
inversion). Measured on the 2-core development machine with JACK's dummy driver (5 s of
256-frame blocks): generation in the audio process, 15 to 29 underflows; the same
generation in another process, 0.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import traceback
from typing import Any, Sequence

import numpy as np
import soxr


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """(frames, channels) float32 from `from_rate` to `to_rate` (soxr, high quality)."""
    if from_rate == to_rate:
        return np.ascontiguousarray(audio, np.float32)
    out = soxr.resample(np.asarray(audio, np.float32), from_rate, to_rate, quality="HQ")
    return np.ascontiguousarray(out.reshape(-1, audio.shape[1]), np.float32)


class RenderError(RuntimeError):
    pass


class InProcessRenderer:
    """Renders with `model` in the calling thread."""

    def __init__(self, model, device_rate: int):
        self.model = model
        self.device_rate = int(device_rate)

    def __call__(self, z: np.ndarray, pitches: Sequence[int]) -> list[np.ndarray]:
        audio = self.model.generate(z, list(pitches))
        return [resample(note, self.model.sample_rate, self.device_rate) for note in audio]

    def close(self) -> None:
        pass


def _child(conn, model_path: str | None, device_rate: int, threads: int | None,
           model_options: dict[str, Any]) -> None:
    """The child process: load the model, then answer (z, pitches) requests until None."""
    try:
        os.nice(10)  # the audio process (and everything interactive) comes first
    except OSError:
        pass
    try:
        import tensorflow as tf
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        import gansynth_live as gl
        renderer = InProcessRenderer(gl.load_model(model_path, **model_options), device_rate)
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", renderer.model.name))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return  # the parent went away
        if request is None:
            return
        try:
            conn.send(("ok", renderer(*request)))
        except Exception as e:  # noqa: BLE001
            conn.send(("error", f"{type(e).__name__}: {e}"))


class ProcessRenderer:
    """Renders in a child process that loads the model from `model_path` (None = default).

    Calls are serialised (one render worker thread uses it). If the child dies, the call
    raises RenderError and the next call starts a new child.
    """

    def __init__(self, model_path: str | os.PathLike | None, device_rate: int, *,
                 threads: int | None = None, start_timeout: float = 300.0,
                 **model_options: Any):
        self.model_path = None if model_path is None else os.fspath(model_path)
        self.device_rate = int(device_rate)
        self.threads = threads
        self.start_timeout = start_timeout
        self.model_options = model_options
        self.restarts = 0
        self._lock = threading.Lock()
        self._process = None
        self._conn = None
        self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")  # no copy of the parent's threads
        parent, child = context.Pipe()
        self._process = context.Process(
            target=_child, name="gansynth-render", daemon=True,
            args=(child, self.model_path, self.device_rate, self.threads, self.model_options))
        self._process.start()
        child.close()
        self._conn = parent
        if not parent.poll(self.start_timeout):
            self.close()
            raise RenderError(f"the render process did not start within {self.start_timeout} s")
        status, detail = self._receive()
        if status != "ready":
            self.close()
            raise RenderError(f"the render process could not load the model: {detail}")

    def _receive(self):
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            code = self._process.exitcode if self._process else None
            self._process = None
            raise RenderError(f"the render process died (exit code {code})") from None

    def __call__(self, z: np.ndarray, pitches: Sequence[int]) -> list[np.ndarray]:
        with self._lock:
            if self._process is None or not self._process.is_alive():
                self.restarts += 1
                self._start()
            self._conn.send((np.asarray(z, np.float32), [int(p) for p in pitches]))
            status, result = self._receive()
        if status != "ok":
            raise RenderError(result)
        return result

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            self._conn.send(None)
        except (OSError, ValueError):
            pass
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join()
        self._conn.close()


__all__ = ["InProcessRenderer", "ProcessRenderer", "RenderError", "resample"]
