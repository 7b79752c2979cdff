"""Audio out: a sounddevice callback stream that runs the mixer, and the --record writer.

The callback only mixes pre-rendered buffers (`Mixer.process`) and copies the block into
the recorder's ring buffer; the WAV file is written by a separate thread. Underflows
reported by PortAudio, callbacks that took longer than their block, the stretch of the
device's timeline that no callback filled (`skipped_ms`), and callback errors (the block
is then silence, the stream goes on) are counted, never hidden.
"""
from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from gansynth_live.live.realtime import realtime_thread


class Recorder:
    """Writes what the callback played to a WAV file (32-bit float), from a writer thread.

    `write` (audio thread) copies into a preallocated ring buffer; frames that do not fit
    because the disk fell behind are counted in `dropped_frames`.
    """

    def __init__(self, path: str | Path, sample_rate: int, channels: int,
                 ring_seconds: float = 20.0):
        self.path = Path(path)
        self._file = sf.SoundFile(self.path, "w", samplerate=sample_rate, channels=channels,
                                  subtype="FLOAT", format="WAV")
        self._ring = np.zeros((int(ring_seconds * sample_rate), channels), np.float32)
        self._written = 0  # frames put into the ring (audio thread only)
        self._saved = 0    # frames taken out (writer thread only)
        self.dropped_frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain_loop, name="recorder", daemon=True)
        self._thread.start()

    def write(self, block: np.ndarray) -> None:
        frames, size = block.shape[0], self._ring.shape[0]
        if self._written + frames - self._saved > size:
            self.dropped_frames += frames
            return
        start = self._written % size
        first = min(frames, size - start)
        self._ring[start:start + first] = block[:first]
        if first < frames:
            self._ring[:frames - first] = block[first:]
        self._written += frames

    def _drain(self) -> None:
        size = self._ring.shape[0]
        written = self._written
        while self._saved < written:
            start = self._saved % size
            count = min(written - self._saved, size - start)
            self._file.write(self._ring[start:start + count])
            self._saved += count

    def _drain_loop(self) -> None:
        while not self._stop.wait(0.05):
            self._drain()

    def close(self) -> None:
        """Write what is left and close the file (a valid WAV header)."""
        self._stop.set()
        self._thread.join()
        self._drain()
        self._file.close()

    @property
    def frames_written(self) -> int:
        return self._saved


class AudioOutput:
    """A sounddevice OutputStream whose callback calls `process(outdata)`."""

    def __init__(self, process: Callable[[np.ndarray], None], *, sample_rate: int,
                 channels: int, blocksize: int, device: str | int | None = None,
                 latency: float | str | None = None, record: str | Path | None = None):
        import sounddevice as sd  # PortAudio scans devices on import; import when needed

        self.process = process
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.blocksize = int(blocksize)
        self.underflows = 0
        self.late_callbacks = 0
        self.callback_errors = 0
        self.callbacks = 0
        self.max_callback_seconds = 0.0
        self.callback_seconds = 0.0  # the time spent in callbacks, all together
        self.late_wakeups = 0  # callbacks that began over 1.5 blocks after the previous one
        self.max_gap_seconds = 0.0
        self._previous_start = 0.0
        # The device clock (PortAudio's DAC time, or the wall clock where the host API gives
        # 0; chosen at the first callback) in frames, less the frames handed out so far: it
        # rises by what the device skipped. Its lowest value is the baseline.
        self._dac_clock = True
        self._lowest_offset = 0.0
        self._frames_played = 0
        self.skipped_frames = 0
        self.last_error = ""
        self.realtime = False  # the callback thread has a real-time policy (set at its start)
        self._budget = self.blocksize / self.sample_rate
        self.recorder = Recorder(record, sample_rate, channels) if record else None
        try:
            self.stream = sd.OutputStream(
                samplerate=self.sample_rate, channels=self.channels, dtype="float32",
                blocksize=self.blocksize, device=device,
                latency=latency if latency is not None else "low", callback=self._callback)
        except Exception:
            if self.recorder:
                self.recorder.close()
            raise
        self.device_name = sd.query_devices(self.stream.device)["name"]

    def _callback(self, outdata: np.ndarray, frames: int, time_info, status) -> None:
        start = time.perf_counter()
        if not self.callbacks:
            self.realtime = realtime_thread()
        self._count_skipped(time_info.outputBufferDacTime, start, frames)
        if self.callbacks:
            gap = start - self._previous_start
            if gap > self.max_gap_seconds:
                self.max_gap_seconds = gap
            if gap > 1.5 * frames / self.sample_rate:
                self.late_wakeups += 1
        self._previous_start = start
        self.callbacks += 1
        if status.output_underflow:
            self.underflows += 1
        try:
            self.process(outdata)
        except Exception as e:  # noqa: BLE001 - a bug here must not stop the stream
            outdata.fill(0.0)
            self.callback_errors += 1
            self.last_error = f"{type(e).__name__}: {e}"
        if self.recorder is not None:
            self.recorder.write(outdata)
        elapsed = time.perf_counter() - start
        self.callback_seconds += elapsed
        if elapsed > self.max_callback_seconds:
            self.max_callback_seconds = elapsed
        if elapsed > frames / self.sample_rate:
            self.late_callbacks += 1

    def _count_skipped(self, dac_time: float, wall_time: float, frames: int) -> None:
        """Frames the device played that no callback filled: an underflow flag says that a
        gap happened, this says how long it was (one xrun can skip many blocks)."""
        if not self._frames_played:
            self._dac_clock = dac_time > 0.0
        clock = dac_time if self._dac_clock else wall_time
        if not math.isfinite(clock):
            return
        offset = clock * self.sample_rate - self._frames_played
        if not self._frames_played or offset < self._lowest_offset:
            self._lowest_offset = offset  # a late first reading must not count as a skip
        behind = round(offset - self._lowest_offset)
        if behind > self.skipped_frames:  # a running maximum; clock jitter adds a few frames
            self.skipped_frames = behind
        self._frames_played += frames

    def start(self) -> None:
        self.stream.start()

    def stop(self) -> None:
        """Stop the stream (after the caller faded the voices) and close the recording."""
        self.stream.stop()
        self.stream.close()
        if self.recorder is not None:
            self.recorder.close()

    def status(self) -> dict[str, int | float | str]:
        status = {"underflows": self.underflows, "late_callbacks": self.late_callbacks,
                  "callback_errors": self.callback_errors, "callbacks": self.callbacks,
                  "max_callback_ms": self.max_callback_seconds * 1000.0,
                  "callback_ms_total": self.callback_seconds * 1000.0,
                  "late_wakeups": self.late_wakeups,
                  "max_callback_gap_ms": self.max_gap_seconds * 1000.0,
                  "skipped_ms": self.skipped_frames * 1000.0 / self.sample_rate,
                  "output_latency_ms": float(self.stream.latency) * 1000.0,
                  "audio_realtime": int(self.realtime),
                  "device": self.device_name}
        if self.recorder is not None:
            status["record_dropped_frames"] = self.recorder.dropped_frames
        return status


def list_devices() -> str:
    import sounddevice as sd
    return str(sd.query_devices())


__all__ = ["AudioOutput", "Recorder", "list_devices"]
