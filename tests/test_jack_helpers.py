"""The JACK dummy server used by the live tests is real: it runs, it paces audio in real time,
PortAudio sees it, JACK MIDI flows through it."""
import json
import subprocess
import sys
import time

import mido
import pytest

from jack_helpers import JackStartError, jack_midi_backend, jack_server

# Runs in a fresh interpreter so that sounddevice (PortAudio) initialises while jackd is up.
PACING_PROBE = r"""
import json, sys, time
import sounddevice as sd
blocksize = int(sys.argv[1])
hostapis = [h["name"] for h in sd.query_hostapis()]
frames = [0]
sizes = set()
def callback(outdata, n, time_info, status):
    frames[0] += n
    sizes.add(n)
    outdata.fill(0)
stream = sd.OutputStream(device="system", samplerate=48000, channels=2, blocksize=blocksize,
                         callback=callback)
stream.start()
time.sleep(0.2)                      # settle
f0, t0 = frames[0], time.monotonic()
time.sleep(1.0)
f1, t1 = frames[0], time.monotonic()
stream.stop()
latency = stream.latency
stream.close()
print(json.dumps({"hostapis": hostapis, "device": sd.query_devices(stream.device)["name"],
                  "rate": (f1 - f0) / (t1 - t0), "sizes": sorted(sizes), "latency": latency}))
"""


def test_server_runs_and_lists_system_ports(jack):
    assert jack.alive()
    ports = jack.ports()
    assert {"system:playback_1", "system:playback_2", "system:capture_1"} <= set(ports)
    assert jack.env["JACK_DEFAULT_SERVER"] == jack.name
    assert (jack.rate, jack.period) == (48000, 256)


@pytest.mark.parametrize("blocksize", [256, 128])
def test_portaudio_stream_is_paced_in_real_time(jack, blocksize):
    r = subprocess.run([sys.executable, "-c", PACING_PROBE, str(blocksize)], env=jack.env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert "JACK Audio Connection Kit" in info["hostapis"]
    assert info["device"] == "system"
    assert info["sizes"] == [blocksize]
    # ~48000 frames per second of wall clock, not free-running.  The lower bound is loose:
    # on a loaded machine xruns skip whole stretches (100+ ms in a second has been seen).
    assert 30000 < info["rate"] < 56000, info
    assert info["latency"] == pytest.approx(jack.period / jack.rate)


def test_jack_midi_round_trip(jack_env):
    backend = jack_midi_backend()
    got = []
    inp = backend.open_input("probe-in", client_name="probe-in", callback=got.append)
    try:
        name = next(n for n in backend.get_output_names() if n.endswith(":probe-in"))
        with backend.open_output(name) as out:
            assert jack_env.connections()[name] == ["RtMidiOut Client:RtMidi output"]
            # a new connection takes effect at a later JACK cycle: resend until one arrives
            deadline = time.monotonic() + 5
            while not got and time.monotonic() < deadline:
                out.send(mido.Message("note_on", note=60, velocity=90))
                time.sleep(0.02)
        assert got and all((m.type, m.note, m.velocity) == ("note_on", 60, 90) for m in got)
    finally:
        inp.close()


def test_failed_start_reports_jackd_output():
    # jackd exits at once on an unknown option; the error carries its usage text
    with pytest.raises(JackStartError, match="jackd"):
        with jack_server(48000, 256, extra_args=("--no-such-option",), timeout=5):
            pass
