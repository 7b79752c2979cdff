"""Renderers: latent vectors + pitches in, notes at the device rate out.

Each note comes out as a `sustain.RenderedNote`: resampled to the device rate, with its
loop (found at the model's rate, where the search is 3x cheaper than at 48 kHz) and its
seam, so that a held note can sound for as long as it is held.

`InProcessRenderer` runs the model in the calling thread: simple, used by tests and by
Python code that embeds an `Engine`.

`ProcessRenderer` runs it in a child process, and is what gansynth-live uses: the
audio process never imports TensorFlow, and learns the model's facts (`facts.py`) from
the child's ready message. Why a child: the
audio callback must take Python's GIL within its block. TensorFlow releases the GIL while
ops run, but the Python around them holds it, and when the operating system preempts a
thread that holds the GIL, the real-time audio thread waits for it (a priority
inversion). Measured on the 2-core development machine with JACK's dummy driver (5 s of
256-frame blocks): generation in the audio process, 15 to 29 underflows; the same
generation in another process, 0.

The notes come back through shared memory, not the pipe: the child writes them into an
arena it owns and sends only their places. Unpickling them from the pipe held the GIL
in the audio process for long enough to cost 91-120 underflows (0.6-1.1 s of audio
skipped) per 30 s of dense playing (bench/live_latency.py).
The arena is a batch of notes (8 x 192 kB for the default model), well within the
64 MB /dev/shm that containers get by default.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from multiprocessing import shared_memory
from typing import Any, Sequence

import numpy as np
import soxr

from gansynth_live.live.facts import ModelFacts
from gansynth_live.quiet_tensorflow import import_tensorflow
from gansynth_live.sustain import Loop, RenderedNote, find_loop, make_note


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """(frames, channels) float32 from `from_rate` to `to_rate` (soxr, high quality)."""
    if from_rate == to_rate:
        return np.ascontiguousarray(audio, np.float32)
    out = soxr.resample(np.asarray(audio, np.float32), from_rate, to_rate, quality="HQ")
    return np.ascontiguousarray(out.reshape(-1, audio.shape[1]), np.float32)


class RenderError(RuntimeError):
    pass


def playable_note(audio: np.ndarray, pitch: float, model_rate: int, device_rate: int
                  ) -> RenderedNote:
    """A model's note (frames, channels) at `model_rate` -> a looped note at `device_rate`."""
    loop = find_loop(audio, model_rate, pitch)
    if model_rate != device_rate:
        audio = resample(audio, model_rate, device_rate)
        loop = loop.scaled(device_rate / model_rate, len(audio))
    return make_note(audio, loop)


class InProcessRenderer:
    """Renders with `model` in the calling thread; `facts` are the model's."""

    def __init__(self, model, device_rate: int):
        self.model = model
        self.device_rate = int(device_rate)
        self.facts = ModelFacts.of(model)

    def __call__(self, z: np.ndarray, pitches: Sequence[int],
                 ganspace: Sequence[Sequence[float]] | None = None) -> list[RenderedNote]:
        """One note per latent and pitch. `ganspace`: None, or per note the GANSpace
        coefficients that edit its latent; a note with () is the latent's own, rendered
        without the edit (bit for bit the note it was before GANSpace, so cached and
        stored notes stay valid)."""
        z, pitches = np.asarray(z, np.float32), list(pitches)
        if ganspace is not None and len(ganspace) != len(pitches):
            raise ValueError(f"ganspace has {len(ganspace)} entries for {len(pitches)} notes")
        edited = [i for i, c in enumerate(ganspace or ()) if len(c)]
        if not edited:
            audio = self.model.generate(z, pitches)
        else:
            plain = [i for i, c in enumerate(ganspace) if not len(c)]
            audio = np.empty((len(pitches), self.model.num_samples, self.model.channels),
                             np.float32)
            if plain:
                audio[plain] = self.model.generate(z[plain], [pitches[i] for i in plain])
            width = max(len(ganspace[i]) for i in edited)
            coefficients = np.array([[*ganspace[i], *[0.0] * (width - len(ganspace[i]))]
                                     for i in edited], np.float32)
            audio[edited] = self.model.generate(z[edited], [pitches[i] for i in edited],
                                                ganspace=coefficients)
        return [playable_note(note, pitch, self.model.sample_rate, self.device_rate)
                for note, pitch in zip(audio, pitches)]

    def close(self) -> None:
        pass


class _Arena:
    """The child's shared memory for rendered notes; grows (a new block) when a batch
    does not fit. The parent copies a batch out before it sends the next request."""

    def __init__(self):
        self.memory: shared_memory.SharedMemory | None = None

    def store(self, notes: list[RenderedNote]) -> tuple[str, list[tuple]]:
        """Write the notes' samples one after another;
        (block name, [(offset, shape, length, loop)])."""
        size = sum(note.nbytes for note in notes)
        if self.memory is None or self.memory.size < size:
            self.release()
            self.memory = shared_memory.SharedMemory(create=True, size=max(size, 1))
        places, offset = [], 0
        for note in notes:
            view = np.ndarray(note.samples.shape, np.float32, self.memory.buf, offset)
            view[...] = note.samples
            del view  # a live view would keep the block from closing
            places.append((offset, note.samples.shape, note.length, tuple(note.loop)))
            offset += note.nbytes
        return self.memory.name, places

    def release(self) -> None:
        if self.memory is not None:
            self.memory.close()
            self.memory.unlink()
            self.memory = None


def _child(conn, model_path: str | None, device_rate: int, threads: int | None,
           model_options: dict[str, Any]) -> None:
    """The child process: load the model, then answer (z, pitches, ganspace) requests
    until None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; it stops us
    try:
        # The audio process (and everything interactive) comes first. Set, not added: a
        # child restarted by the audio process's render worker inherits its nice -10.
        os.setpriority(os.PRIO_PROCESS, 0, max(10, os.getpriority(os.PRIO_PROCESS, 0)))
    except OSError:
        pass
    try:
        tf = import_tensorflow()
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        import gansynth_live as gl
        renderer = InProcessRenderer(gl.load_model(model_path, **model_options), device_rate)
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", renderer.facts))
    arena = _Arena()
    try:
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                return  # the parent went away
            if request is None:
                return
            try:
                conn.send(("ok", arena.store(renderer(*request))))
            except Exception as e:  # noqa: BLE001
                conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        arena.release()


class ProcessRenderer:
    """Renders in a child process that loads the model from `model_path` (None = default).

    `facts` are the model's, from the child's ready message: this process never loads
    the model (nor imports TensorFlow).

    Calls are serialised (one render worker thread uses it). If the child dies during a
    call, the call raises RenderError; the next call starts a new child. What a dead child
    leaves (its shared memory, the pipe) is removed either way.
    """

    def __init__(self, model_path: str | os.PathLike | None, device_rate: int, *,
                 threads: int | None = None, start_timeout: float = 300.0,
                 wait: bool = True, **model_options: Any):
        """`wait=False` starts the child in the background: `facts` is None until it is
        ready, and calls wait for it (a child that failed to start raises RenderError
        at the first call, which tries again)."""
        self.model_path = None if model_path is None else os.fspath(model_path)
        self.device_rate = int(device_rate)
        self.threads = threads
        self.start_timeout = start_timeout
        self.model_options = model_options
        self.restarts = 0
        self._lock = threading.Lock()
        self._process = None
        self._conn = None
        self._arena: shared_memory.SharedMemory | None = None  # the child's, mapped here
        self.facts: ModelFacts | None = None
        self._closed = False
        self._starting = not wait  # in the background
        if wait:
            self.facts = self._start()
        else:
            self._lock.acquire()  # released by the starting thread: calls wait for it
            threading.Thread(target=self._start_in_background, name="render-start",
                             daemon=True).start()

    def _start_in_background(self) -> None:
        try:
            if not self._closed:
                self.facts = self._start()
        except Exception:  # noqa: BLE001 - the first call starts it again and raises
            pass
        finally:
            self._starting = False
            self._lock.release()

    def _start(self) -> ModelFacts:
        context = multiprocessing.get_context("spawn")  # no copy of the parent's threads
        parent, child = context.Pipe()
        process = context.Process(
            target=_child, name="gansynth-render", daemon=True,
            args=(child, self.model_path, self.device_rate, self.threads, self.model_options))
        process.start()
        child.close()
        self._conn = parent
        # Published only once started, so close() can always kill it; a close() that
        # came while it was starting found nothing to kill, so this does.
        self._process = process
        if self._closed:
            process.kill()
        if not parent.poll(self.start_timeout):
            self._stop_child()
            raise RenderError(f"the render process did not start within {self.start_timeout} s")
        status, detail = self._receive()
        if status != "ready":
            self._stop_child()
            raise RenderError(f"the render process could not load the model: {detail}")
        return detail

    def _receive(self):
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            raise self._died() from None

    def _died(self) -> RenderError:
        code = self._stop_child()
        return RenderError(f"the render process died (exit code {code})")

    def _stop_child(self) -> int | None:
        """Stop the child (a dead one too), close the pipe, remove the arena; its exit code."""
        process, self._process = self._process, None
        code = None
        if process is not None:
            try:
                self._conn.send(None)
            except (OSError, ValueError):
                pass  # already gone
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
            self._conn.close()
            code = process.exitcode
        self._drop_arena()
        return code

    def _copy_out(self, name: str, places: list[tuple]) -> list[RenderedNote]:
        if self._arena is None or self._arena.name != name:
            self._drop_arena(unlink=False)  # the child unlinked the old one when it grew
            self._arena = shared_memory.SharedMemory(name=name)
        return [RenderedNote(np.ndarray(shape, np.float32, self._arena.buf, offset).copy(),
                             length, Loop(*loop))
                for offset, shape, length, loop in places]

    def _drop_arena(self, unlink: bool = True) -> None:
        """Unmap the arena; `unlink` also removes it, for a child that can no longer."""
        arena, self._arena = self._arena, None
        if arena is None:
            return
        arena.close()
        if unlink:
            try:
                arena.unlink()
            except FileNotFoundError:
                pass  # the child removed it as it exited

    def __call__(self, z: np.ndarray, pitches: Sequence[int],
                 ganspace: Sequence[Sequence[float]] | None = None) -> list[RenderedNote]:
        """As `InProcessRenderer`, in the child."""
        if ganspace is not None:
            ganspace = [tuple(float(c) for c in coefficients) for coefficients in ganspace]
        with self._lock:
            if self._closed:
                raise RenderError("the renderer is closed")
            if self._process is None or not self._process.is_alive():
                self._stop_child()  # one that died between calls leaves its arena behind
                self.restarts += 1
                self._start()
            try:
                self._conn.send((np.asarray(z, np.float32), [int(p) for p in pitches],
                                 ganspace))
            except OSError:
                raise self._died() from None
            status, result = self._receive()
            if status == "ok":
                return self._copy_out(*result)
        raise RenderError(result)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def close(self, timeout: float = 60.0) -> None:
        """Stop the child after the render in progress; one still running after `timeout`
        seconds, or still starting in the background, is killed (the call rendering gets
        RenderError, and every later call)."""
        self._closed = True
        process = self._process
        if self._starting and process is not None:
            process.kill()  # loading a model nobody will use any more
        if not self._lock.acquire(timeout=timeout):
            process = self._process
            if process is not None:
                process.kill()
            self._lock.acquire()
        try:
            self._stop_child()
        finally:
            self._lock.release()


__all__ = ["InProcessRenderer", "ProcessRenderer", "RenderError", "playable_note", "resample"]
