"""A real JACK server for tests: `jackd --no-realtime -d dummy`, one private server per use.

    from jack_helpers import jack_server
    with jack_server(rate=48000, period=256) as srv:   # srv.name, srv.env, srv.rate, srv.period
        subprocess.run([...], env=srv.env)

Fixtures (tests/conftest.py imports them: `from jack_helpers import jack, jack_env  # noqa`):
    jack      session-scoped: one dummy server (48 kHz, period 256) for the whole test session
    jack_env  function-scoped: `jack`, with its environment also set in this process's os.environ
              (monkeypatch), for in-process JACK clients (mido/rtmidi JACK MIDI)

What was found out (jackd2 1.9.21, libportaudio2 19.6, sounddevice 0.5.6, python-rtmidi 1.5.8,
Debian bookworm, in a sandbox without audio hardware and without an ALSA sequencer):

Server and naming
  * `jackd -n NAME --no-realtime -d dummy -r RATE -p PERIOD` runs a named server; every JACK
    client (libjack: PortAudio, rtmidi, jack_lsp, jack_connect ...) picks the server named in
    the JACK_DEFAULT_SERVER environment variable, read when the client is opened (so setting
    os.environ in-process before opening the client works for rtmidi).  The CLI tools also take
    `-s NAME`.  JACK_NO_START_SERVER=1 stops clients from auto-starting a stray default server;
    JACK_NO_AUDIO_RESERVATION=1 stops jackd from asking D-Bus to reserve an audio card.
  * jackd2 ships jack_lsp, jack_connect, jack_disconnect, jack_wait, jack_midi_dump ...
    Readiness is polled with `jack_lsp -s NAME system:playback_1` (exit 0 and the port listed);
    `jack_wait -c` always exits 0, so it is no good for scripting.
  * The dummy driver paces in real time even with --no-realtime: its wait between cycles
    follows the period (-w defaults to period/rate), measured 47.6k..48.4k frames/s at
    48 kHz with -p 128 and -p 256 on a loaded 2-core machine.  It logs "JackTimedDriver::Process
    XRun" lines under load; harmless.

PortAudio / sounddevice
  * PortAudio scans host APIs once, at initialisation = `import sounddevice`.  With no server
    reachable the "JACK Audio Connection Kit" host API is simply absent (libjack prints "Cannot
    connect to server socket ..." on stderr).  So the JACK server must be running (and
    JACK_DEFAULT_SERVER set) BEFORE the process imports sounddevice -- or rescan in-process with
    `sd._terminate(); sd._initialize()` (works; private API).
  * Device: the JACK host API has ONE device, named "system" ("system, JACK Audio Connection
    Kit (2 in, 2 out)" in sd.query_devices()).  sounddevice matches substrings of
    "<device name>, <host API name>", so device="system", device="JACK Audio Connection Kit" and
    device="system, JACK" all open it.
  * The stream's sample rate must equal the server's (-r): 44100 on a 48000 server ->
    "Invalid sample rate [PaErrorCode -9997]".  default_samplerate reports the server rate.
  * Pacing: the callback runs in real time (measured ~48000 frames/s requested over 1 s).
  * blocksize vs JACK period (period 256): blocksize=0 or 256 -> one callback of 256 frames
    every 5.33 ms.  blocksize=128 -> callbacks of 128 frames, but TWO back to back per JACK
    period (interval histogram: half ~0 ms, half ~5.3 ms), so it does not lower latency; the
    JACK period decides latency.  blocksize=512 -> one callback every 10.7 ms.  Odd sizes (100)
    work too (PortAudio buffers).  For real 128-frame blocks run the server with -p 128:
    then blocksize 0/128 give one 128-frame callback every 2.67 ms.
  * latency= ('low', 'high', 0.001, 0.1) changes nothing with JACK: stream.latency is always
    period/rate (5.33 ms at -p 256, 2.67 ms at -p 128).
  * If jackd goes away while a process still has PortAudio initialised, that process aborts at
    exit (pa_jack.c Terminate: Assertion `err == 0' failed).  Stop JACK clients (or call
    sd._terminate()) before stopping the server; subprocess clients avoid the problem.

MIDI (python-rtmidi JACK API through mido: jack_midi_backend())
  * The default rtmidi API on Linux is ALSA, which fails here (no /dev/snd/seq): always pass
    the 'UNIX_JACK' API explicitly.  Without a server, opening raises rtmidi SystemError
    (an OSError) "MidiInJack::initialize: JACK server not running?".
  * Every rtmidi port is its own JACK client.  A virtual input opened as
    `backend.open_input('gansynth-live', client_name='gansynth-live')` is the JACK port
    "gansynth-live:gansynth-live" (without client_name: "RtMidiIn Client:gansynth-live").
    A second client with the same name is renamed by JACK ("gansynth-live-01:gansynth-live").
  * rtmidi's JACK name lists are from the other side's view: a MidiOut's port names
    (backend.get_output_names()) are the JACK MIDI *input* ports, i.e. where one can send to;
    our virtual input appears there.  `backend.open_output('gansynth-live:gansynth-live')`
    creates a client "RtMidiOut Client:RtMidi output" and connects it to that port at once
    (a JACK connection, visible with `jack_lsp -c`); messages sent right after arrive within a
    JACK period.  Likewise backend.get_input_names() lists JACK MIDI output ports (e.g. another
    program's virtual output), which an input port opened by name connects from.  `jack_connect
    SRC DST` (with JACK_DEFAULT_SERVER set, or -s NAME) connects ports by hand.
  * A new connection takes effect at a later JACK cycle: messages sent right after
    open_output() are sometimes lost (all 9 of a burst, in ~1 run of 6).  Tests resend a
    probe until one arrives (see test_midi_input._handshake).
  * On the loaded 2-core sandbox the --no-realtime server now and then drops a whole cycle of a
    sender's events (~1 burst in 300..1000; a jack_midi_dump on the same sender misses them
    too).  Tests confirm each message and resend (test_midi_input._reliable_send).
  * rtmidi's JACK input callback (mido's callback mode) runs inside the JACK process cycle and
    must take the GIL there.  A slow callback stalls the whole graph (PortAudio underflows,
    "XRun: client = PortAudio was not finished"), and a late one read garbled events (a burst
    of 20 arrived as 20 copies of one message, ~1 burst in 300).  MidiInput therefore polls
    rtmidi's C++ queue from its own thread (0 garbled in 1000 bursts; send -> target call
    3.6 ms mean, 5.8 ms p95 with period 256).  The mido callback in test_jack_helpers is only
    a smoke test.
  * jackd's own log is kept in a temp file while it runs (JackServer.log()), e.g. to look for
    "XRun" lines after a failure.
"""
from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

JACKD = "jackd"
JACK_LSP = "jack_lsp"

_counter = itertools.count()


class JackStartError(RuntimeError):
    """jackd did not come up; the message holds its command line and output."""


@dataclass
class JackServer:
    name: str
    rate: int
    period: int
    env: dict[str, str] = field(repr=False)
    process: subprocess.Popen = field(repr=False)
    log_path: Path = field(repr=False)

    def log(self) -> str:
        """jackd's stdout+stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def ports(self, *filters: str) -> list[str]:
        """Active JACK port names (jack_lsp), optionally filtered like jack_lsp's arguments."""
        r = subprocess.run([JACK_LSP, "-s", self.name, *filters], env=self.env,
                           capture_output=True, text=True, timeout=10)
        return [line for line in r.stdout.splitlines() if line and not line[0].isspace()]

    def connections(self) -> dict[str, list[str]]:
        """{port: [connected ports]} from `jack_lsp -c`."""
        r = subprocess.run([JACK_LSP, "-s", self.name, "-c"], env=self.env,
                           capture_output=True, text=True, timeout=10)
        out: dict[str, list[str]] = {}
        current = None
        for line in r.stdout.splitlines():
            if not line.strip():
                continue
            if line[0].isspace():
                if current is not None:
                    out[current].append(line.strip())
            else:
                current = line.strip()
                out[current] = []
        return out

    def connect(self, src: str, dst: str) -> None:
        """jack_connect src dst (raises CalledProcessError with the tool's message)."""
        subprocess.run(["jack_connect", "-s", self.name, src, dst], env=self.env,
                       check=True, capture_output=True, text=True, timeout=10)

    def alive(self) -> bool:
        return self.process.poll() is None


def make_jack_env(name: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of os.environ (or base) that makes JACK clients use the server `name`."""
    env = dict(os.environ if base is None else base)
    env["JACK_DEFAULT_SERVER"] = name
    env["JACK_NO_START_SERVER"] = "1"        # never auto-start a stray default server
    env["JACK_NO_AUDIO_RESERVATION"] = "1"   # no D-Bus device reservation
    return env


def _ready(name: str, env: dict[str, str]) -> bool:
    try:
        r = subprocess.run([JACK_LSP, "-s", name, "system:playback_1"], env=env,
                           capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0 and "system:playback_1" in r.stdout


def _remove_stale_shm(name: str) -> None:
    """jackd removes its /dev/shm files on a clean exit; a killed one (or clients killed along
    with it) leaves some behind.  Only files carrying this unique server name are touched."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        return
    for pattern in (f"jack_{name}_*", f"jack_sem.*_{name}_*"):
        for p in shm.glob(pattern):
            try:
                p.unlink()
            except OSError:
                pass


def _die_with_parent() -> None:
    """preexec_fn: jackd gets SIGTERM when the process that started it dies (Linux prctl
    PR_SET_PDEATHSIG), so a crashed test run leaves no server behind."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)   # 1 = PR_SET_PDEATHSIG
    except Exception:   # noqa: BLE001 -- not Linux: cleanup relies on the context manager
        pass


def _stop(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


@contextmanager
def jack_server(rate: int = 48000, period: int = 256, *, name: str | None = None,
                timeout: float = 15.0, extra_args: tuple[str, ...] = ()):
    """Start a private `jackd --no-realtime -d dummy -r rate -p period`, wait until its
    system ports exist, yield a JackServer, stop it afterwards (SIGTERM, then SIGKILL).

    Raises JackStartError with jackd's output if it exits or is not up within `timeout`."""
    if shutil.which(JACKD) is None or shutil.which(JACK_LSP) is None:
        raise JackStartError("jackd / jack_lsp not found: install the Debian package jackd2")
    if name is None:
        name = f"gansynth-test-{os.getpid()}-{next(_counter)}"
    env = make_jack_env(name)
    cmd = [JACKD, "-n", name, "--no-realtime", *extra_args,
           "-d", "dummy", "-r", str(int(rate)), "-p", str(int(period))]
    log_fd, log_name = tempfile.mkstemp(prefix=f"{name}-", suffix=".log")
    log_path = Path(log_name)
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log_fd,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    os.close(log_fd)
    server = JackServer(name=name, rate=int(rate), period=int(period), env=env,
                        process=proc, log_path=log_path)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise JackStartError(f"jackd exited with status {proc.returncode} at start: "
                                     f"{' '.join(cmd)}\n{server.log()}")
            if _ready(name, env):
                break
            if time.monotonic() > deadline:
                raise JackStartError(f"jackd not up after {timeout:.0f} s: {' '.join(cmd)}\n"
                                     f"{server.log()}")
            time.sleep(0.05)
        yield server
    finally:
        _stop(proc)
        _remove_stale_shm(name)
        try:
            log_path.unlink()
        except OSError:
            pass


def jack_midi_backend():
    """mido's rtmidi backend on the JACK MIDI API (the server comes from JACK_DEFAULT_SERVER,
    read when each port is opened)."""
    import mido
    return mido.Backend("mido.backends.rtmidi/UNIX_JACK")


# Fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def jack():
    """One dummy JACK server (48 kHz, period 256) for the test session; skips when jackd2 is
    not installed (`make test` installs it)."""
    if shutil.which(JACKD) is None or shutil.which(JACK_LSP) is None:
        pytest.skip("jackd2 not installed (Debian package jackd2)")
    with jack_server(48000, 256) as server:
        yield server


@pytest.fixture
def jack_env(jack, monkeypatch):
    """The session's JACK server, its environment also set in os.environ for this test, so
    in-process clients (rtmidi JACK MIDI) find it."""
    for key in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER", "JACK_NO_AUDIO_RESERVATION"):
        monkeypatch.setenv(key, jack.env[key])
    return jack
