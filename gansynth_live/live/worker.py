"""The render worker: a thread that has notes rendered in batches and hands them over.

It pulls work instead of draining a queue: `next_jobs(n)` (the engine's planner) says
what matters most right now, so requests made stale by a timbre move never pile up.
The rendering itself is a renderer's (`renderer.py`: in this process, or in a child
process as gansynth-live does). The worker never holds a lock that the audio or control
threads need.
"""
from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass
from typing import Callable

import numpy as np

from gansynth_live.sustain import RenderedNote


@dataclass
class RenderJob:
    """One note to render; `deliver(note)` gets the `RenderedNote` at the device rate,
    `fail(reason)` is called instead when rendering fails. `key` is the caller's label;
    `ganspace` the GANSpace coefficients that edit `z` (() = none: `z`'s own note)."""
    z: np.ndarray
    pitch: int
    deliver: Callable[[RenderedNote], None]
    fail: Callable[[str], None] = lambda reason: None
    key: object = None
    ganspace: tuple[float, ...] = ()


class RenderWorker:
    """Runs `next_jobs` -> renderer -> job.deliver until stopped.

    `renderer(z, pitches)` returns one `RenderedNote` per note, at the device rate;
    a batch with GANSpace edits is `renderer(z, pitches, ganspace=[per note])`.
    """

    def __init__(self, renderer: Callable[..., list[RenderedNote]],
                 next_jobs: Callable[[int], list[RenderJob]], *, batch_size: int = 8,
                 on_error: Callable[[str], None] = print):
        self.renderer = renderer
        self.next_jobs = next_jobs
        self.batch_size = int(batch_size)
        self.on_error = on_error
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="render-worker", daemon=True)
        self.notes_rendered = 0
        self.batches = 0
        self.errors = 0
        self.busy_seconds = 0.0
        self.busy = False

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """There may be new work (called by the control thread; never blocks)."""
        self._wake.set()

    def stop(self, timeout: float = 30.0, wait: bool = True) -> None:
        """Stop after the batch in progress; `wait` for it (at most `timeout` seconds)."""
        self._stop.set()
        self._wake.set()
        if wait and self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                jobs = self.next_jobs(self.batch_size)
            except Exception:  # noqa: BLE001 - a planner bug must not end the worker
                self.errors += 1
                self.on_error(f"render planner failed: {traceback.format_exc(limit=3)}")
                self._wake.wait(1.0)
                continue
            if not jobs:
                self._wake.wait(0.5)
                continue
            self.render(jobs)

    def render(self, jobs: list[RenderJob]) -> None:
        """Render `jobs` as one batch; every job gets deliver() or fail()."""
        start = time.perf_counter()
        self.busy = True
        try:
            z = np.stack([job.z for job in jobs]).astype(np.float32)
            pitches = [job.pitch for job in jobs]
            if any(job.ganspace for job in jobs):
                notes = self.renderer(z, pitches, ganspace=[job.ganspace for job in jobs])
            else:  # as before GANSpace, so renderers without it keep working
                notes = self.renderer(z, pitches)
        except Exception as e:  # noqa: BLE001 - reported, the server plays on
            self.errors += 1
            reason = f"rendering {len(jobs)} notes failed: {type(e).__name__}: {e}"
            if not self._stop.is_set():  # a renderer closed under a stopping worker is no news
                self.on_error(reason)
            for job in jobs:
                job.fail(reason)
            return
        finally:
            self.busy = False
            self.busy_seconds += time.perf_counter() - start
        self.batches += 1
        for job, note in zip(jobs, notes):
            try:
                job.deliver(note)
                self.notes_rendered += 1
            except Exception as e:  # noqa: BLE001
                self.errors += 1
                self.on_error(f"storing pitch {job.pitch} failed: {type(e).__name__}: {e}")
                job.fail(f"{type(e).__name__}: {e}")


__all__ = ["RenderJob", "RenderWorker"]
