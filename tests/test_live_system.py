"""gansynth-live as a user runs it: the real CLI in a subprocess on a real JACK dummy
server, the embedded default model (real trained weights), OSC from python-osc and from
liblo's `oscsend`, MIDI over JACK, and the --record WAV checked sample by sample against
the model's own notes."""
from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf

import gansynth_live as gl
from gansynth_live.envelope import Envelope
from gansynth_live.latent import seeded_z
from gansynth_live.live.voices import velocity_gain
from gansynth_live.live.renderer import resample
from live_helpers import OscClient

RATE = 48000
GAIN = 0.5  # the server's default master gain


def free_port() -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m gansynth_live.live ...` with stdout/stderr collected line by line."""

    def __init__(self, env: dict, *args: str, ready_timeout: float = 180.0):
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.process = subprocess.Popen(  # its own process group, as a shell job has
            [sys.executable, "-m", "gansynth_live.live", *args], env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.ready_line = self.wait_for("ready: ", ready_timeout)

    def _read(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for(self, prefix: str, timeout: float) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
                continue
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no {prefix!r} line; server said:\n{''.join(self.output)}")

    def wait(self, timeout: float = 30.0) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def default_model():
    return gl.load_model()


def expected_note(model, pitch: int) -> np.ndarray:
    """The note at grid point (0, 0) = anchor 0 = seed 0, at the device rate (mono)."""
    z = seeded_z(0, model.latent_size)
    return resample(model.generate(z, pitch)[0], model.sample_rate, RATE)[:, 0]


def onsets(channel: np.ndarray, gap: float = 0.05) -> list[int]:
    """Indices where sound starts after at least `gap` seconds of exact silence."""
    nonzero = np.flatnonzero(channel != 0.0)
    if not len(nonzero):
        return []
    starts = [int(nonzero[0])]
    jumps = np.flatnonzero(np.diff(nonzero) > gap * RATE)
    starts += [int(nonzero[j + 1]) for j in jumps]
    return starts


def start_server(jack, tmp_path, *extra):
    port = free_port()
    wav = tmp_path / "played.wav"
    server = Server(jack.env, "--device", "system", "--osc-port", str(port), "--record",
                    str(wav), "--render-dir", str(tmp_path / "renders"), "--grid", "3",
                    "--cache-mb", "64", "--note-store", "off", *extra)
    return server, port, wav


@pytest.mark.parametrize("output", [[], ["--output-buffer", "50"]],
                         ids=["callback", "buffered"])
def test_osc_session_is_recorded_exactly(jack, tmp_path, default_model, output):
    server, port, wav = start_server(jack, tmp_path, *output)
    client = OscClient(port)
    try:
        assert f"OSC on 127.0.0.1:{port}" in server.ready_line
        assert client.status()["ready"] == 1
        # Only the render process runs the model: no TensorFlow library in this one.
        maps = open(f"/proc/{server.process.pid}/maps").read()
        assert "libtensorflow" not in maps and "_pywrap_tensorflow" not in maps
        client.send("/envelope", 0.0, 0.5, 10.0, 0.5)  # the shortest attack: 5 ms
        time.sleep(0.1)
        t60 = time.perf_counter()
        client.send("/note_on", 60.0, 127.0)            # Pd style: floats
        time.sleep(0.4)
        client.send("/note_off", 60)
        time.sleep(0.4)
        t67 = time.perf_counter()
        subprocess.run(["oscsend", "127.0.0.1", str(port), "/note", "iif", "67", "64", "0.2"],
                       check=True, timeout=10)       # a foreign client: liblo
        time.sleep(0.6)
        t72 = time.perf_counter()
        client.send("/note_on", 72, 100)
        time.sleep(0.2)
        client.send("/all_notes_off")
        time.sleep(0.6)
        status = client.status()
        client.send("/quit")
        assert client.expect("/done") == ["/quit"]
        assert server.wait(30) == 0, "".join(server.output)
    finally:
        client.close()
        server.kill()
    # A clean exit: the render process's shared memory removed, nothing left to warn about.
    assert not [line for line in server.output if "leaked" in line or "Traceback" in line]
    assert status["notes"] == 3 and status["cache_hits"] == 3 and status["osc_failures"] == 0
    # Late callbacks are a speed figure (bench/live_latency.py counts them): a loaded CI
    # machine can preempt a callback, so here they are only reported, not asserted away.
    assert status["callback_errors"] == 0 and status["device"] == "system"
    assert {"underflows", "late_callbacks", "skipped_ms"} <= set(status)
    # JACK's PortAudio layer: at least 3 periods and 50 ms, a power of two frames.
    assert status["output_buffer_ms"] == pytest.approx(4096 / 48 if output else 0.0)  # float32
    audio, rate = sf.read(wav, dtype="float32")
    assert rate == RATE and audio.shape[1] == 2
    left = audio[:, 0]
    np.testing.assert_array_equal(left, audio[:, 1])
    starts = [start - 1 for start in onsets(left)]  # an attack's first gain is exactly 0
    assert len(starts) == 3, starts
    # Note 60, velocity 127, attack 0 (5 ms): the first 0.3 s are the model's note times
    # the envelope (the loop of a held note begins later than that).
    n = int(0.3 * RATE)
    held = Envelope(0, 0.5, 10, 0.5).note_gain(n, RATE, RATE, loop=True)[:n]
    np.testing.assert_allclose(left[starts[0]:starts[0] + n],
                               GAIN * expected_note(default_model, 60)[:n] * held, atol=2e-3)
    # Note 67 from oscsend, velocity 64, /note with 0.2 s: sounds 0.2 s + release (0.1 s).
    want = GAIN * velocity_gain(64) * expected_note(default_model, 67)
    gain = Envelope(0, 0.5, 10, 0.5).note_gain(int(0.2 * RATE), RATE, RATE, loop=True)
    segment = left[starts[1]:starts[1] + len(gain)]
    np.testing.assert_allclose(segment, want[:len(gain)] * gain, atol=2e-3)
    assert not left[starts[1] + len(gain):starts[2]].any()
    # Timing: onsets as far apart as the messages were sent, within two blocks plus what
    # xruns dropped from the recorded timeline: the stretch the client missed (skipped_ms)
    # and a block per underflow (JACK's clock does not count a late dummy driver); and,
    # for oscsend, the time to start a process.
    # Buffered, the mixer may mix several blocks at once after a stall: up to a buffer.
    slack = ((2 + status["underflows"]) * 256 / RATE + status["skipped_ms"] / 1000
             + status["output_buffer_ms"] / 1000)
    assert abs((starts[2] - starts[0]) / RATE - (t72 - t60)) < slack + 0.01
    assert abs((starts[1] - starts[0]) / RATE - (t67 - t60)) < slack + 0.1
    # After /all_notes_off: a 5 ms fade, then silence to the end of the recording.
    end_of_72 = np.flatnonzero(left)[-1]
    assert (end_of_72 - starts[2]) / RATE < 0.2 + 0.05
    assert len(left) - end_of_72 > 0.3 * RATE


def test_a_second_start_plays_the_stored_first_point(jack, tmp_path, default_model):
    """The first start stores the first point's notes; the next loads them and is ready
    before its render process has loaded the model, and plays the same notes."""
    store = tmp_path / "store"
    for start in ("first", "second"):
        server, port, wav = start_server(jack, tmp_path, "--note-store", str(store),
                                         "--envelope", "0", "0.5", "10", "0.5")
        client = OscClient(port)
        try:
            assert client.status()["ready"] == 1
            client.send("/note_on", 60, 127)
            time.sleep(0.4)  # the note's length in the recording
            client.send("/note_off", 60)
            client.send("/quit")
            assert client.expect("/done") == ["/quit"]
            assert server.wait(30) == 0, "".join(server.output)
        finally:
            client.close()
            server.kill()
        loaded = [line for line in server.output if "first timbre point loaded from" in line]
        assert bool(loaded) == (start == "second"), "".join(server.output)
        left = sf.read(wav, dtype="float32")[0][:, 0]
        begin = onsets(left)[0] - 1  # an attack's first gain is exactly 0
        n = int(0.3 * RATE)
        held = Envelope(0, 0.5, 10, 0.5).note_gain(n, RATE, RATE, loop=True)[:n]
        np.testing.assert_allclose(left[begin:begin + n],
                                   GAIN * expected_note(default_model, 60)[:n] * held,
                                   atol=2e-3)
    assert len(list(store.glob("first-point-*.npz"))) == 1


STALLING_OUTPUT = r"""
import json, sys, time
from gansynth_live.live.audio import AudioOutput
calls = []
def process(out):
    calls.append(time.perf_counter())
    out.fill(0.0)
    if len(calls) in (100, 200, 300):
        time.sleep(0.05)  # three callbacks overrun by ~10 blocks each
audio = AudioOutput(process, sample_rate=48000, channels=2, blocksize=256, device="system")
audio.start()
time.sleep(2.5)
audio.stop()
status = audio.status()
status["span"] = calls[-1] - calls[0]
status["played"] = (len(calls) - 1) * 256 / 48000
print(json.dumps(status))
"""


BUFFERED_OUTPUT = r"""
import json, random, sys, threading, time
from gansynth_live.live.audio import AudioOutput
sys.setswitchinterval(0.0005)  # as the server sets it
buffer_ms, stalls, gil_holder = float(sys.argv[1]), sys.argv[2] == "1", sys.argv[3] == "1"
blocksize = int(sys.argv[4]) if len(sys.argv) > 4 else 256
blocks = []
def process(out):
    blocks.append(time.perf_counter())
    out.fill(0.1)
    if stalls and len(blocks) in (100, 200, 300):
        time.sleep(0.05)  # the mixer itself stalls for ~10 blocks, three times
stop = threading.Event()
def hold_the_gil():
    # Sorting a shuffled list is one C call that keeps the GIL: ~30 ms here, as a
    # thread of the server stuck in a long C call, or preempted while holding it, would.
    numbers = list(range(100_000))
    random.Random(0).shuffle(numbers)
    while not stop.is_set():
        sorted(numbers)
        time.sleep(0.01)
audio = AudioOutput(process, sample_rate=48000, channels=2, blocksize=blocksize,
                    device="system", buffer_ms=buffer_ms)
audio.start()
holder = threading.Thread(target=hold_the_gil, daemon=True)
if gil_holder:
    holder.start()
time.sleep(3.0)
stop.set()
audio.stop()
print(json.dumps(audio.status()))
"""


def run_output(jack, *args) -> dict:
    import json
    run = subprocess.run([sys.executable, "-c", BUFFERED_OUTPUT, *map(str, args)],
                         env=jack.env, text=True, capture_output=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_a_buffered_output_rides_out_stalls_shorter_than_its_buffer(jack):
    # 50 ms stalls of the mixer: a 170 ms buffer (100 ms asked, a power of two frames)
    # hides them; a 21 ms one (3 JACK periods) runs dry each time, and says so.
    long = run_output(jack, 100, 1, 0)
    assert long["output_buffer_ms"] == pytest.approx(8192 / 48)
    assert long["callbacks"] > 500 and long["late_callbacks"] >= 3  # a busy machine adds some
    assert long["underflows"] == 0 and long["skipped_ms"] < 1.0, long
    short = run_output(jack, 10, 1, 0)
    assert short["output_buffer_ms"] == pytest.approx(1024 / 48)
    assert short["underflows"] >= 3, short  # 3 measured; a busy machine may add some
    assert 40 < short["skipped_ms"] < 3 * 50, short  # 3 x (50 - 21) ms, give or take


def test_a_thread_holding_the_gil_breaks_the_callback_not_the_buffer(jack):
    # The reason for --output-buffer: in the callback the device waits for the GIL.
    callback = run_output(jack, 0, 0, 1)
    buffered = run_output(jack, 50, 0, 1)
    assert callback["underflows"] > 0, callback  # 98 measured in 3 s
    assert buffered["underflows"] == 0 and buffered["skipped_ms"] < 1.0, buffered


def test_the_buffer_is_measured_right_on_a_long_jack_period():
    # A 1024-frame period (jackd's default) frees the buffer every 21 ms, four of the
    # mixer's blocks at once; a block larger than the buffer must not make the device
    # read whole blocks with silence for the rest.
    from jack_helpers import jack_server
    with jack_server(rate=48000, period=1024) as long_period:
        stalls = run_output(long_period, 100, 1, 0)
        assert stalls["output_buffer_ms"] == pytest.approx(8192 / 48)  # 100 ms, 2^n frames
        assert stalls["underflows"] == 0 and stalls["skipped_ms"] < 1.0, stalls
        big_blocks = run_output(long_period, 10, 0, 0, 4096)
        assert big_blocks["output_buffer_ms"] == pytest.approx(4096 / 48)  # 3 periods
        assert big_blocks["underflows"] == 0, big_blocks
        assert big_blocks["callbacks"] >= 3.0 * 48000 / 4096 - 1  # blocks, played in time


def test_skipped_ms_is_the_stretch_no_callback_filled(jack):
    """An underflow flag says a gap happened; skipped_ms must say how long the gaps were,
    so that callbacks' frames plus skipped time add up to the time the stream ran."""
    import json
    run = subprocess.run([sys.executable, "-c", STALLING_OUTPUT], env=jack.env, text=True,
                         capture_output=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    status = json.loads(run.stdout.strip().splitlines()[-1])
    assert status["callbacks"] > 300 and status["callback_errors"] == 0
    assert status["skipped_ms"] > 100  # ~130 ms measured; 3 underflow flags alone say 16 ms
    unaccounted = status["span"] - status["played"] - status["skipped_ms"] / 1000
    assert abs(unaccounted) < 0.04, status  # 2-4 ms measured; a late dummy driver adds some


def test_midi_over_jack_then_ctrl_c(jack_env, tmp_path, default_model):
    from jack_helpers import jack_midi_backend
    name = f"gl-test-{os.getpid()}"
    server, port, wav = start_server(jack_env, tmp_path, "--midi-virtual", name,
                                     "--midi-api", "UNIX_JACK", "--envelope", "0", "0.5",
                                     "10", "0.5")
    client = OscClient(port)
    try:
        assert "MIDI in" in server.ready_line
        backend = jack_midi_backend()
        target = next(p for p in backend.get_output_names() if p.endswith(f":{name}"))
        import mido
        with backend.open_output(target) as out:
            time.sleep(0.3)
            out.send(mido.Message("note_on", note=64, velocity=100))
            time.sleep(0.3)
            out.send(mido.Message("note_off", note=64))
            time.sleep(0.4)
            out.send(mido.Message("control_change", control=1, value=127))  # x -> 1
            out.send(mido.Message("control_change", control=2, value=0))
            out.send(mido.Message("note_on", note=100, velocity=10))  # 16 from 84: too far
            time.sleep(0.3)
        status = client.status()
        assert status["notes"] == 1 and status["x"] == pytest.approx(1.0)
        assert status["grid_i"] == 2
        assert any("pitch 100 is more than 12 semitones" in line for line in server.output)
        os.killpg(server.process.pid, signal.SIGINT)  # Ctrl-C: the whole job, render process too
        assert server.wait(30) == 0, "".join(server.output)
    finally:
        client.close()
        server.kill()
    assert not [line for line in server.output if "Traceback" in line or "leaked" in line]
    audio, _ = sf.read(wav, dtype="float32")
    left = audio[:, 0]
    starts = [start - 1 for start in onsets(left)]  # an attack's first gain is exactly 0
    assert len(starts) == 1
    want = GAIN * velocity_gain(100) * expected_note(default_model, 64)
    n = int(0.25 * RATE)
    held = Envelope(0, 0.5, 10, 0.5).note_gain(n, RATE, RATE, loop=True)[:n]
    np.testing.assert_allclose(left[starts[0]:starts[0] + n], want[:n] * held, atol=2e-3)
    assert not left[-RATE // 10:].any()  # stopped in silence


def test_start_up_errors_are_one_clear_line(jack, tmp_path):
    def run(*args):
        r = subprocess.run([sys.executable, "-m", "gansynth_live.live", *args], env=jack.env,
                           capture_output=True, text=True, timeout=120)
        return r.returncode, r.stdout + r.stderr
    # Flags are checked before the model loads, and each error names its flag.
    code, out = run("--model", str(tmp_path / "nope"), "--device", "system")
    assert code == 2 and f"gansynth-live: error: --model {tmp_path / 'nope'}: no such directory" in out, out
    code, out = run("--device", "system", "--osc-host", "0.0.0.0", "--allow", "no-such-host.invalid")
    assert code == 2 and "gansynth-live: error: --allow: cannot resolve 'no-such-host.invalid'" in out, out
    code, out = run("--bend-range", "0")
    assert code == 2 and "argument --bend-range: must be above 0 and at most 96, got 0" in out, out
    code, out = run("--osc-port", "65536")
    assert code == 2 and "argument --osc-port: must be in 0..65535, got 65536" in out, out
    code, out = run("--device", "system", "--envelope", "1", "2", "25", "0.5")
    assert code == 2 and "gansynth-live: error: --envelope: attack_slope must be in 0..1" in out, out
    code, out = run("--device", "no-such-card")
    assert code == 1 and "gansynth-live: error: audio device no-such-card" in out, out
    assert "system, JACK Audio Connection Kit" in out  # the devices there are
    code, out = run("--device", "system", "--sample-rate", "44100")  # the server runs 48 kHz
    assert code == 1 and "gansynth-live: error: audio device system: " in out, out
    assert "Invalid sample rate" in out
    code, out = run("--grid", "1")
    assert code == 2 and "argument --grid: must be in 2..64, got 1" in out, out
    code, out = run("--latency", "soon")
    assert code == 2 and "argument --latency: not a number: 'soon'" in out, out
    code, out = run("--output-buffer", "2000")
    assert code == 2 and "argument --output-buffer: must be in 0..1000, got 2000" in out, out
    code, out = run("--device", "system", "--output-buffer", "50", "--channels", "1")
    assert code == 2 and ("gansynth-live: error: --output-buffer on JACK Audio Connection Kit "
                          "needs --channels 2") in out, out
    code, out = run("--list-devices")
    assert code == 0 and "system" in out


@pytest.mark.skipif(shutil.which("oscsend") is None, reason="liblo-tools not installed")
def test_oscsend_is_a_client_too(jack, tmp_path):
    """liblo's tools: a malformed-for-us message (wrong types) gets /fail, the server lives."""
    server, port, _ = start_server(jack, tmp_path)
    client = OscClient(port)
    try:
        subprocess.run(["oscsend", "127.0.0.1", str(port), "/note_on", "s", "sixty"],
                       check=True, timeout=10)
        subprocess.run(["oscsend", "127.0.0.1", str(port), "/timbre/xy", "ff", "0.9", "0.1"],
                       check=True, timeout=10)
        status = client.status()
        assert status["osc_failures"] == 1 and status["x"] == pytest.approx(0.9)
        client.send("/quit")
        assert server.wait(30) == 0
    finally:
        client.close()
        server.kill()
