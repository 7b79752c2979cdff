"""Audio out: a sounddevice stream that runs the mixer, and the --record writer.

Two ways to feed the device (`buffer_ms`):

- 0, the default: the mixer runs in the device's callback. The lowest latency (one
  block), but the callback takes the GIL each block: when another thread of this
  process holds it and is kept off the CPU by other work, the block comes late and the
  device plays a gap.
- N > 0 (`--output-buffer N`): the mixer runs in a thread of its own, as far ahead as
  the buffer allows, and writes through PortAudio's blocking stream, whose buffer the
  device's thread reads with no Python in it. A stall shorter than the buffer is not
  heard; the price is the buffer's length in latency. Each time the thread has the GIL it fills all
  the free space, so it catches up in one go after a stall. PortAudio sizes the buffer:
  on JACK, the next power of two frames at or above both N ms and three periods.

The mixer (`Mixer.process`) only mixes pre-rendered buffers and copies the block into
the recorder's ring buffer; the WAV file is written by a separate thread. Underflows
(reported by PortAudio, or the buffer found empty), blocks whose mixing took longer than
their duration, the stretch of the device's timeline that no block filled
(`skipped_ms`), and mixing errors (the block is then silence, the stream goes on) are
counted, never hidden.
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
                 latency: float | str | None = None, record: str | Path | None = None,
                 buffer_ms: float = 0.0):
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
        self._previous_frames = self.blocksize  # mixed at the previous wake-up (buffered)
        # The device clock (PortAudio's DAC time, or the wall clock where the host API gives
        # 0; chosen at the first callback) in frames, less the frames handed out so far: it
        # rises by what the device skipped. Its lowest value is the baseline.
        self._dac_clock = True
        self._lowest_offset = 0.0
        self._frames_played = 0
        self.skipped_frames = 0
        self.last_error = ""
        self.realtime = False  # the callback thread has a real-time policy (set at its start)
        self.buffered = buffer_ms > 0
        self._requested_buffer_ms = buffer_ms
        self.buffer_frames = 0  # the blocking stream's buffer, measured at start
        self._device_step = 0  # frames the device takes from it at once (its period)
        self._writer: threading.Thread | None = None
        self._stopping = threading.Event()
        self._device_lost = False  # the buffered way's writer stopped on an error
        if self.buffered:
            check_buffered(device, self.channels)
            latency = buffer_ms / 1000.0
        self.recorder = Recorder(record, sample_rate, channels) if record else None
        try:
            # Buffered, the device takes what its period needs from the buffer (a block
            # size there would make PortAudio read whole blocks, silence for the rest).
            self.stream = sd.OutputStream(
                samplerate=self.sample_rate, channels=self.channels, dtype="float32",
                blocksize=0 if self.buffered else self.blocksize, device=device,
                latency=latency if latency is not None else "low",
                callback=None if self.buffered else self._callback)
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
        self._count_gap(start, frames)
        if status.output_underflow:
            self.underflows += 1
        self._mix(outdata, start)

    def _mix(self, block: np.ndarray, start: float) -> None:
        """One block: the mixer, the recorder, the timing (from `start`, perf_counter)."""
        self.callbacks += 1
        try:
            self.process(block)
        except Exception as e:  # noqa: BLE001 - a bug here must not stop the stream
            block.fill(0.0)
            self.callback_errors += 1
            self.last_error = f"{type(e).__name__}: {e}"
        if self.recorder is not None:
            self.recorder.write(block)
        elapsed = time.perf_counter() - start
        self.callback_seconds += elapsed
        if elapsed > self.max_callback_seconds:
            self.max_callback_seconds = elapsed
        if elapsed > len(block) / self.sample_rate:
            self.late_callbacks += 1

    # The buffered way ----------------------------------------------------------------

    def _measure_buffer(self, requested: float) -> None:
        """The blocking stream's buffer in frames (`buffer_frames`) and the device's
        period (`_device_step`): the buffer's free space once the silence it starts with
        has played (PortAudio's JACK layer starts full and frees a period at a time;
        ALSA's starts empty). Done when the free space has not grown for three times the
        longest wait between two periods seen, and 50 ms; at most 4 x `requested`
        seconds (PortAudio rounds the size up to at most twice it) + 1 s."""
        free = self.stream.write_available
        start, last_growth = time.perf_counter(), None
        longest_wait, step = 0.0, 0
        while True:
            time.sleep(0.002)
            now, grown = time.perf_counter(), self.stream.write_available
            if grown > free:
                step = min(step, grown - free) if step else grown - free
                if last_growth is not None:
                    longest_wait = max(longest_wait, now - last_growth)
                free, last_growth = grown, now
            quiet = now - (start if last_growth is None else last_growth)
            if free and quiet > max(3 * longest_wait, 0.05):
                break
            if now - start > 4 * requested + 1.0:
                break
        if not free:
            raise RuntimeError(f"the audio device took nothing from the output buffer in "
                               f"{now - start:.1f} s")
        self.buffer_frames = free
        self._device_step = step or self.blocksize

    def _buffer_and_clock(self) -> tuple[int, float]:
        """The buffer's free frames and the device's clock, read between the same two
        device periods (a period read in between would make them disagree by one)."""
        for _ in range(3):
            free = self.stream.write_available
            clock = self.stream.time
            if self.stream.write_available == free:
                break
        return free, clock

    def _write_loop(self) -> None:
        """The buffered way's thread, until stop(): an error of the device ends it and
        is reported (`audio_error` in status()), the counts stay."""
        try:
            self._fill_buffer()
        except Exception as e:  # noqa: BLE001 - the device went away: say so, stop
            self.last_error = f"{type(e).__name__}: {e}"
            self._device_lost = True

    def _fill_buffer(self) -> None:
        """Fill the free space with mixed blocks and write them (the write waits for
        room with the GIL released)."""
        self.realtime = realtime_thread()
        blocks = max(1, self.buffer_frames // self.blocksize)
        out = np.zeros((blocks * self.blocksize, self.channels), np.float32)
        jitter = max(self.blocksize, self._device_step)
        written = 0
        device_start = self.stream.time
        while not self._stopping.is_set():
            count = min(blocks, max(1, self.stream.write_available // self.blocksize))
            self._count_gap(time.perf_counter(), self._previous_frames)
            self._previous_frames = count * self.blocksize
            for i in range(count):
                self._mix(out[i * self.blocksize:(i + 1) * self.blocksize],
                          time.perf_counter())
            # Now, after the mixing (a stall may have happened there too): has the device
            # read everything (it plays silence), and if so, what has it played that we
            # did not write (its clock less our frames it read: written, less those still
            # in the buffer)? The clock runs smoothly, the buffer is read a period at a
            # time: a period of difference is jitter, and without the buffer running dry
            # no difference is a gap.
            free, clock = self._buffer_and_clock()
            dry = bool(written) and free >= self.buffer_frames
            self.underflows += dry
            played = (clock - device_start) * self.sample_rate
            self._count_offset(played - (written - (self.buffer_frames - free)), not written,
                               jitter=jitter, gap=dry)
            # ALSA reports the underflow it found in write_available again here: once.
            if self.stream.write(out[:count * self.blocksize]) and not dry:
                self.underflows += 1
            written += count * self.blocksize

    def _count_gap(self, start: float, frames: int) -> None:
        """A late wake-up: a block begun over 1.5 times the previous one's `frames` after
        it (perf_counter seconds)."""
        if self.callbacks:
            gap = start - self._previous_start
            if gap > self.max_gap_seconds:
                self.max_gap_seconds = gap
            if gap > 1.5 * frames / self.sample_rate:
                self.late_wakeups += 1
        self._previous_start = start

    def _count_skipped(self, dac_time: float, wall_time: float, frames: int) -> None:
        """Frames the device played that no callback filled: an underflow flag says that a
        gap happened, this says how long it was (one xrun can skip many blocks)."""
        if not self._frames_played:
            self._dac_clock = dac_time > 0.0
        clock = dac_time if self._dac_clock else wall_time
        if not math.isfinite(clock):
            return
        self._count_offset(clock * self.sample_rate - self._frames_played,
                           not self._frames_played)
        self._frames_played += frames

    def _count_offset(self, offset: float, first: bool, jitter: int = 0,
                      gap: bool = True) -> None:
        """`offset`: the device's clock in frames less the frames it was given. It rises
        by what the device played that no block filled; its lowest value is the
        baseline (a late `first` reading must not count as a skip); `jitter` frames
        above it are the clock's, not a gap; `gap` False: there was none."""
        if first or offset < self._lowest_offset:
            self._lowest_offset = offset
        if not gap:
            return
        behind = round(offset - self._lowest_offset) - jitter
        if behind > self.skipped_frames:  # a running maximum; clock jitter adds a few frames
            self.skipped_frames = behind

    def start(self) -> None:
        """Start the stream; buffered, return once the buffer is measured and the mixer
        thread runs (up to the buffer's length), so that what is played next is mixed."""
        self.stream.start()
        if self.buffered:
            self._measure_buffer(self._requested_buffer_ms / 1000.0)
            self._writer = threading.Thread(target=self._write_loop, name="audio-writer",
                                            daemon=True)
            self._writer.start()

    def stop(self) -> None:
        """Stop the stream (after the caller faded the voices; the buffered way plays
        what it wrote first) and close the recording."""
        if self._writer is not None:
            self._stopping.set()  # its write in flight returns within a device period
            self._writer.join(2.0)
        # A blocking stream's stop waits for its buffer to play: forever, with no device.
        if not (self._device_lost or self._writer is not None and self._writer.is_alive()):
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
                  "output_latency_ms": float(self.stream.latency) * 1000.0
                  + self.buffer_frames * 1000.0 / self.sample_rate,
                  "output_buffer_ms": self.buffer_frames * 1000.0 / self.sample_rate,
                  "audio_realtime": int(self.realtime),
                  "audio_error": self.last_error,
                  "device": self.device_name}
        if self.recorder is not None:
            status["record_dropped_frames"] = self.recorder.dropped_frames
        return status


def check_buffered(device: str | int | None, channels: int) -> None:
    """ValueError where the buffered way cannot run on `device`: PortAudio's JACK layer
    buffers two channels whatever the stream has (it would read past a mono block)."""
    import sounddevice as sd
    host_api = sd.query_hostapis(sd.query_devices(device, "output")["hostapi"])["name"]
    if "JACK" in host_api and channels != 2:
        raise ValueError(f"--output-buffer on {host_api} needs --channels 2 (PortAudio's "
                         f"JACK layer buffers two channels only)")


def list_devices() -> str:
    import sounddevice as sd
    return str(sd.query_devices())


__all__ = ["AudioOutput", "Recorder", "check_buffered", "list_devices"]
