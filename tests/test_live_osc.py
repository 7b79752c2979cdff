"""The OSC server over real UDP on 127.0.0.1: the address table, replies, /notify, /render,
and bad input of every kind (each answered with /fail, nothing changed, server alive).
The engine is real (tiny model); the mixer is run block by block instead of a device."""
from __future__ import annotations

import math
import socket
import struct
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from gansynth_live.live.osc import OscServer
from live_helpers import PITCHES, RATE, OscClient, make_engine, play, tiny_model, wait_for  # noqa: F401,E501


@pytest.fixture
def served(tiny_model, tmp_path):  # noqa: F811
    engine = make_engine(tiny_model)
    quit_called = threading.Event()
    server = OscServer(engine, port=0, render_dir=tmp_path / "renders",
                       on_quit=quit_called.set, log=lambda message: None)
    server.start()
    client = OscClient(server.port)
    yield engine, server, client, quit_called
    client.close()
    server.close()
    engine.stop()


def test_notes_from_pd_style_floats_play(served):
    engine, server, client, _ = served
    client.send("/note_on", 60.0, 100.0)
    client.send("/note", 62.0, 80.0, 0.1)
    wait_for(lambda: len(engine.mixer.commands) == 2, what="two note commands")
    play(engine, 0.05)
    status = client.status()
    assert status["voices"] == 2 and status["notes"] == 2
    client.send("/note_off", 60)
    client.send("/all_notes_off")
    wait_for(lambda: len(engine.mixer.commands) == 2, what="the note-offs")
    play(engine, 0.05)
    assert client.status()["voices"] == 0


def test_status_reply_names_every_field(served):
    _, _, client, _ = served
    status = client.status()
    for field in ("voices", "polyphony", "cache_entries", "cache_bytes", "pending_renders",
                  "ready", "render_errors", "sample_rate", "blocksize", "model", "x", "y",
                  "latency_ms_median", "osc_messages", "osc_failures", "attack_percent"):
        assert field in status, field
    assert status["model"] == "tiny-live" and status["sample_rate"] == RATE
    assert status["ready"] == 1 and isinstance(status["cache_bytes"], int)


def test_notify_sends_replies_to_the_named_port(served):
    _, server, client, _ = served
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(5)
    port = listener.getsockname()[1]
    client.send("/notify", 1.0, float(port))
    from pythonosc.osc_message import OscMessage
    message = OscMessage(listener.recvfrom(65535)[0])
    assert (message.address, message.params) == ("/done", ["/notify", 1, port])
    client.send("/status")
    assert OscMessage(listener.recvfrom(65535)[0]).address == "/status.reply"
    client.send("/notify", 0, port)
    assert OscMessage(listener.recvfrom(65535)[0]).params == ["/notify", 0, port]
    assert client.status()["voices"] == 0  # unsubscribed: replies come back to the sender
    listener.close()


def test_timbre_commands_answer_done_when_playable(served):
    engine, _, client, _ = served
    client.send("/timbre/seed", 2.0, 1234.0)
    assert client.expect("/done", timeout=30) == ["/timbre/seed", 2, 1234]
    assert engine.timbre.anchor_sources[2] == "seed 1234"
    client.send("/timbre/xy", 1.0, 0.5)
    params = client.expect("/done", timeout=30)
    assert params[0] == "/timbre/xy" and params[1:] == pytest.approx([1.0, 0.5])
    assert engine.status()["ready"] == 1 and engine.timbre.current_point().i == 2
    z = np.random.default_rng(5).standard_normal(16).astype(np.float32)
    client.send("/timbre/z", 3, *[float(v) for v in z])
    assert client.expect("/done", timeout=30) == ["/timbre/z", 3]
    np.testing.assert_allclose(engine.timbre.anchors[3], z)


def test_envelope_and_bend_and_sustain(served):
    engine, _, client, _ = served
    client.send("/envelope", 10.0, 0.3, 50.0, 0.7)
    client.send("/pitch_bend", -1.5)
    client.send("/sustain", 1.0)
    wait_for(lambda: engine.envelope.attack_percent == 10.0, what="the envelope")
    assert engine.envelope.params() == pytest.approx(
        {"attack_percent": 10, "attack_slope": 0.3, "release_percent": 50, "release_slope": 0.7})
    wait_for(lambda: len(engine.mixer.commands) == 2, what="bend and sustain")
    play(engine, 0.01)
    assert engine.mixer.sustain and engine.mixer.bend == pytest.approx(2 ** (-1.5 / 12))


def test_sustain_mode_by_name_or_number(served):
    engine, _, client, _ = served
    assert engine.status()["sustain_mode"] == "loop"
    for value, mode in (("natural", "natural"), (1.0, "loop"), (0, "natural"), ("loop", "loop")):
        client.send("/sustain_mode", value)
        assert client.status()["sustain_mode"] == mode, value


def test_render_writes_inside_the_render_dir_only(served, tmp_path):
    engine, server, client, _ = served
    client.send("/render", 61.0, "piano/take1")
    params = client.expect("/done", timeout=30)
    path = tmp_path / "renders" / "piano" / "take1.wav"
    assert params == ["/render", str(path)]
    audio, rate = sf.read(path)
    assert rate == RATE and len(audio) == RATE and np.abs(audio).max() > 0
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left
    for bad in ("../escape.wav", "/etc/passwd.wav", "notes.txt", "", "a/../../b"):
        client.send("/render", 61, bad)
        params = client.expect("/fail")
        assert params[0] == "/render" and ("outside the render directory" in params[1]
                                           or "must" in params[1]), (bad, params)
    assert not (tmp_path / "escape.wav").exists()


@pytest.mark.parametrize("args, reason", [
    (("/note_on", 60), "expects 2 arguments, got 1"),
    (("/note_on", 60, 100, 1), "expects 2 arguments, got 3"),
    (("/note_on", "sixty", 100), "pitch must be a number, got str 'sixty'"),
    (("/note_on", 60.5, 100), "pitch must be a whole number"),
    (("/note_on", 200, 100), "pitch must be 0..127, got 200"),
    (("/note_on", 40, 100), "pitch 40 is more than 12 semitones from the model's pitches"),
    (("/note_on", 60, 300), "velocity must be 0..127, got 300"),
    (("/note_on", 60, math.nan), "velocity must be finite, got nan"),
    (("/note_on", math.inf, 100), "pitch must be finite, got inf"),
    (("/note", 60, 100, -2.0), "duration must be 0..3600 seconds"),
    (("/note_off", 130), "pitch must be 0..127, got 130"),
    (("/timbre/seed", 7, 1), "anchor must be 0..3, got 7"),
    (("/timbre/seed", 1, -5), "seed must be in 0.."),
    (("/timbre/xy", 0.5, 2.0), "y must be in 0..1, got 2"),
    (("/timbre/z", 0, 1.0, 2.0), "expects 17 arguments, got 3"),
    (("/envelope", 1, 0.5, 25), "expects 4 arguments, got 3"),
    (("/envelope", 1, 0.5, 250, 0.5), "release_percent must be in 0..100"),
    (("/pitch_bend", 5.0), "pitch bend must be within +-2 semitones"),
    (("/sustain_mode", "forever"), "sustain mode must be one of loop, natural, got 'forever'"),
    (("/sustain_mode", 0.5), "sustain_mode must be loop, natural, 1 or 0, got 0.5"),
    (("/sustain_mode",), "expects 1 arguments, got 0"),
    (("/notify", 1, 70000), "reply_port must be 1..65535"),
    (("/status", 1), "expects 0 arguments, got 1"),
    (("/no/such/thing", 1), "unknown address"),
    (("/note_on", *range(1000)), "expects 2 arguments, got 1000"),
])
def test_bad_messages_get_fail_and_change_nothing(served, args, reason):
    engine, _, client, _ = served
    before = engine.status()
    client.send(*args)
    params = client.expect("/fail")
    assert params[0] == args[0] and reason in params[1], params
    after = client.status()
    for key in ("voices", "notes", "x", "y", "anchors_generation", "release_percent",
                "sustain_mode"):
        assert before[key] == after[key], key
    assert not engine.mixer.commands


@pytest.mark.parametrize("data", [
    b"", b"\x00" * 7, b"garbage!", b"/note_on\x00\x00\x00\x00,ii\x00\x00\x00\x00",
    b"/note_on\x00\x00\x00\x00,ii\x00\x00\x00\x00\x3c", b"#bundle\x00\xff\xff",
    b"/x\x00\x00,s\x00\x00abc", np.random.default_rng(0).bytes(3000),
])
def test_malformed_packets_are_answered_and_survived(served, data):
    _, server, client, _ = served
    client.send_raw(data)
    if data:  # an empty datagram cannot even be parsed as something to refuse
        params = client.expect("/fail")
        assert params[0] == "" and "malformed OSC packet" in params[1]
    assert client.status()["osc_malformed"] >= (1 if data else 0)


def test_a_bundle_runs_at_once_whatever_its_time_tag(served):
    engine, _, client, _ = served
    bundle = OscBundleBuilder(time.time() + 3600)  # an hour ahead: must not hold the server
    for pitch in (58, 60):
        builder = OscMessageBuilder("/note_on")
        builder.add_arg(pitch)
        builder.add_arg(90)
        bundle.add_content(builder.build())
    client.send_raw(bundle.build().dgram)
    wait_for(lambda: len(engine.mixer.commands) == 2, timeout=5, what="the bundled notes")


def test_a_flood_of_notes_does_not_stop_the_server(served):
    engine, server, client, _ = served
    stop = threading.Event()

    def audio():  # the mixer keeps running as the callback would
        while not stop.is_set():
            play(engine, 256 / RATE)
    thread = threading.Thread(target=audio)
    thread.start()
    try:
        for i in range(5000):
            client.send("/note_on", PITCHES[i % 5], 1 + i % 127)
            if i % 2:
                client.send("/note_off", PITCHES[(i - 1) % 5])
        # A datagram sent while the server's receive buffer is full is dropped (that is
        # UDP): ask again until the server, still working through the flood, answers.
        for attempt in range(6):
            try:
                client.send("/status")
                params = client.expect("/status.reply", timeout=5)
                break
            except (TimeoutError, AssertionError):  # no reply within 5 s
                continue
        else:
            raise AssertionError("the server stopped answering after the flood")
        status = dict(zip(params[::2], params[1::2]))
    finally:
        stop.set()
        thread.join()
    assert status["osc_messages"] > 1000  # UDP may drop some under a flood; most arrive
    assert status["voices"] <= status["polyphony"]
    assert status["osc_failures"] == 0


def test_other_hosts_are_dropped_when_an_allow_list_is_set(tiny_model):  # noqa: F811
    engine = make_engine(tiny_model)
    server = OscServer(engine, host="127.0.0.1", port=0, allow=["127.0.0.3"],
                       log=lambda message: None)
    server.start()
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.2", 0))
    stranger.settimeout(0.5)
    try:
        builder = OscMessageBuilder("/status")
        stranger.sendto(builder.build().dgram, ("127.0.0.1", server.port))
        with pytest.raises(socket.timeout):
            stranger.recvfrom(65535)
        assert server.counters["refused"] == 1
        friend = OscClient(server.port)  # 127.0.0.1 is always allowed
        assert friend.status()["ready"] == 1
        friend.close()
    finally:
        stranger.close()
        server.close()
        engine.stop()


def test_quit_answers_then_calls_back(served):
    _, _, client, quit_called = served
    client.send("/quit")
    assert client.expect("/done") == ["/quit"]
    assert quit_called.wait(5)


def test_a_taken_port_is_a_clear_error(served):
    engine, server, _, _ = served
    with pytest.raises(OSError, match=f"cannot listen for OSC on 127.0.0.1:{server.port}"):
        OscServer(engine, port=server.port)


def test_status_values_fit_every_osc_client(served):
    """int32/float32/string only: Pd's [oscparse] reads no int64 or double."""
    _, _, client, _ = served
    client.send("/status")
    client.sock.settimeout(5)
    data, _ = client.sock.recvfrom(65535)
    tags = data[data.index(b",") + 1:].split(b"\x00")[0]
    assert set(tags.decode()) <= {"i", "f", "s"}, tags
    assert struct.calcsize(">i") == 4
