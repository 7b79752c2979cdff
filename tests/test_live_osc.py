"""The OSC server over real UDP on 127.0.0.1: the address table, replies, /notify, /render,
and bad input of every kind (each answered with /fail, nothing changed, server alive).
The engine is real (tiny model); the mixer is run block by block instead of a device."""
from __future__ import annotations

import math
import select
import shutil
import socket
import struct
import subprocess
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from gansynth_live.live.clients import EXPIRE_SECONDS, MAX_CLIENTS, MAX_PORTS
from gansynth_live.live.planner import MAX_PENDING_RENDERS
from gansynth_live.live.osc import CONTROL_RATE, FAIL_RATE, OscServer
from live_helpers import (PITCHES, RATE, FakeClock, GatedRenderer, OscClient,  # noqa: F401
                          free_port, make_engine, play, tiny_model, wait_for)


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
    (("/note_on", 200, 100), "pitch must be in 0..127, got 200"),
    (("/note_on", 40, 100), "pitch 40 is more than 12 semitones from the model's pitches"),
    (("/note_on", 60, 300), "velocity must be in 0..127, got 300"),
    (("/note_on", 60, math.nan), "velocity must be finite, got nan"),
    (("/note_on", math.inf, 100), "pitch must be finite, got inf"),
    (("/note", 60, 100, -2.0), "duration must be in 0..3600 seconds"),
    (("/note_off", 130), "pitch must be in 0..127, got 130"),
    (("/timbre/seed", 7, 1), "anchor must be in 0..3, got 7"),
    (("/timbre/seed", 1, -5), "seed must be in 0..9223372036854775807"),
    (("/timbre/xy", 0.5, 2.0), "y must be in 0..1, got 2"),
    (("/timbre/z", 0, 1.0, 2.0), "expects 17 arguments, got 3"),
    (("/envelope", 1, 0.5, 25), "expects 4 arguments, got 3"),
    (("/envelope", 1, 0.5, 250, 0.5), "release_percent must be in 0..100"),
    (("/pitch_bend", 5.0), "pitch bend must be within +-2 semitones"),
    (("/sustain_mode", "forever"), "sustain mode must be one of loop, natural, got 'forever'"),
    (("/sustain_mode", 0.5), "sustain_mode must be loop, natural, 1 or 0, got 0.5"),
    (("/sustain_mode",), "expects 1 arguments, got 0"),
    (("/notify", 1, 70000), "reply_port must be in 1..65535"),
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


def message(address: str, *args) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


def bundle(*messages: bytes) -> bytes:
    builder = OscBundleBuilder(0)
    for dgram in messages:
        builder.add_content(OscMessage(dgram))
    return builder.build().dgram


ENVELOPE = message("/envelope", 1.0, 0.5, 25.0, 0.5)


@pytest.mark.parametrize("data, address, reason", [
    (b"", "", "malformed OSC packet (0 bytes): empty datagram"),
    (b"\x00" * 7, "", "neither a message"),
    (b"garbage!", "", "neither a message"),
    (b"/note_on\x00\x00\x00\x00,ii\x00\x00\x00\x00", "/note_on",
     "malformed OSC message: argument 1 ('i') is cut short"),
    (b"/note_on\x00\x00\x00\x00,ii\x00\x00\x00\x00\x3c", "/note_on", "argument 2 ('i') is cut short"),
    (ENVELOPE[:-2], "/envelope", "argument 4 ('f') is cut short"),
    (ENVELOPE + b"\x00\x00\x00\x00", "/envelope", "4 bytes left after the last argument"),
    (b"/all_notes_off\x00\x00,Q\x00\x00", "/all_notes_off",
     "argument 1 ('Q'): unsupported type tag"),
    (b"#bundle\x00\xff\xff", "", "malformed OSC packet (10 bytes): bundle shorter than"),
    (bundle(message("/note_on", 60, 100))[:-4], "", "claims 24 bytes, 20 are left"),
    (b"/x\x00\x00,s\x00\x00abc", "/x", "argument 1 ('s') has no terminating NUL"),
    (b"/\xff\x00\x00,\x00\x00\x00", "", "address is not UTF-8"),
    (np.random.default_rng(0).bytes(3000), "", "malformed OSC packet (3000 bytes)"),
])
def test_malformed_packets_are_answered_and_survived(served, data, address, reason):
    engine, _, client, _ = served
    before = client.status()
    client.send_raw(data)
    params = client.expect("/fail")
    assert params[0] == address and reason in params[1], params
    after = client.status()
    assert after["osc_malformed"] == before["osc_malformed"] + 1
    assert after["attack_percent"] == before["attack_percent"]
    assert not engine.mixer.commands


def test_64_bit_integers_are_taken_exactly(served):
    engine, _, client, _ = served
    for seed in (2**53 + 1, 2**63 - 1):  # python-osc sends both as int64 ('h')
        client.send("/timbre/seed", 1, seed)
        assert client.expect("/done", timeout=30)[:2] == ["/timbre/seed", 1]
        assert engine.timbre.anchor_sources[1] == f"seed {seed}"
    client.send_raw(message("/timbre/seed", 1, 2.0**63).replace(b",if", b",id")[:-4]
                    + struct.pack(">d", 2.0**63))  # a double, one past int64
    params = client.expect("/fail")
    assert params[0] == "/timbre/seed" and "seed must be in 0..9223372036854775807" in params[1]


def test_a_bundle_of_bad_messages_gets_one_fail(served):
    engine, server, client, _ = served
    bad = [message("/no/such/thing", i) for i in range(300)]
    client.send_raw(bundle(message("/note_on", 60, 100), *bad))
    params = client.expect("/fail")
    assert params == ["/no/such/thing", "unknown address; see /status and the docs' table "
                                        "(and 299 more failures in this bundle)"]
    assert client.status()["osc_failures"] == 300
    assert len(engine.mixer.commands) == 1  # the good message in it ran
    assert_nothing_more(client.sock)


def assert_nothing_more(sock: socket.socket) -> None:
    """Nothing is waiting on `sock`. Replies leave in order from one thread and loopback
    delivers at once, so after a later /status.reply every earlier reply would be here."""
    sock.setblocking(False)
    try:
        with pytest.raises(BlockingIOError):
            sock.recvfrom(65535)
    finally:
        sock.setblocking(True)


def test_an_over_long_file_name_is_refused_by_name(served, tmp_path):
    _, _, client, _ = served
    client.send("/render", 60, "a" * 300)
    params = client.expect("/fail")
    assert params[0] == "/render" and "is longer than 255 bytes" in params[1]
    client.send("/render", 60, "/".join(["d"] * 9))
    assert "at most 8 are allowed" in client.expect("/fail")[1]
    assert not any((tmp_path / "renders").iterdir())


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


@pytest.fixture
def clocked(tiny_model, tmp_path):  # noqa: F811
    """A server whose rate limits and subscriptions run on a FakeClock, its renders
    held back at will (renderer.gate)."""
    clock = FakeClock()
    renderer = GatedRenderer(tiny_model)
    engine = make_engine(tiny_model, renderer=renderer)
    server = OscServer(engine, port=0, render_dir=tmp_path / "renders",
                       log=lambda message: None, clock=clock)
    server.start()
    client = OscClient(server.port)
    yield engine, server, client, clock, renderer
    renderer.gate.set()
    client.close()
    server.close()
    engine.stop()


def test_messages_beyond_the_rate_are_dropped_and_counted(clocked):
    engine, server, client, clock, _ = clocked
    rate, burst = CONTROL_RATE
    notes = [message("/note_on", PITCHES[i % 5], 100) for i in range(burst + 500)]
    for start in range(0, len(notes), 500):  # bundles: UDP keeps them all
        client.send_raw(bundle(*notes[start:start + 500]))
    status = client.status()  # queries have their own budget: answered in a flood
    assert status["osc_messages"] == burst + 1 and status["osc_dropped_rate"] == 500  # +/status
    assert status["notes"] == burst and status["osc_failures"] == 0
    clock.advance(0.1)  # the budget refills at `rate` per second
    client.send_raw(bundle(*notes[:200]))
    status = client.status()
    assert status["osc_messages"] == burst + rate * 0.1 + 2
    assert status["osc_dropped_rate"] == 500 + 200 - rate * 0.1


def test_fail_replies_beyond_their_rate_are_dropped_and_counted(clocked):
    _, _, client, _, _ = clocked
    rate, burst = FAIL_RATE
    for _ in range(burst + 5):
        client.send_raw(b"junk")
    for _ in range(burst):
        assert client.expect("/fail")[0] == ""
    status = client.status()  # came after every /fail that was sent: none beyond
    assert status["osc_malformed"] == burst + 5 and status["osc_dropped_fails"] == 5


def test_replies_go_to_the_client_that_asked_or_where_it_subscribed(clocked):
    engine, server, pd, clock, _ = clocked
    listener = OscClient(server.port)  # Pd's [netreceive]: where Pd's replies go
    tool = OscClient(server.port)  # a second client on the same host
    try:
        pd.send("/notify", 1.0, float(listener.port))
        assert listener.expect("/done") == ["/notify", 1, listener.port]
        tool.send("/sync", 5)
        assert tool.expect("/synced") == [5]
        pd.send("/sync", 6)
        assert listener.expect("/synced") == [6]
        assert tool.status()["osc_subscriptions"] == 1
        # A subscription lapses after EXPIRE_SECONDS without a message from its client...
        clock.advance(EXPIRE_SECONDS - 1)
        pd.send("/sync", 7)  # ...and any message renews it
        assert listener.expect("/synced") == [7]
        clock.advance(EXPIRE_SECONDS + 1)
        pd.send("/sync", 8)
        assert pd.expect("/synced") == [8]  # lapsed: back to the sending socket
        assert tool.status()["osc_subscriptions"] == 0
        pd.send("/notify", 1, listener.port)
        listener.expect("/done")
        pd.send("/notify", 0, listener.port)
        assert listener.expect("/done") == ["/notify", 0, listener.port]
        pd.send("/sync", 9)
        assert pd.expect("/synced") == [9]
    finally:
        listener.close()
        tool.close()


@pytest.mark.skipif(shutil.which("oscdump") is None, reason="liblo-tools not installed")
def test_oscdump_gets_the_replies_of_the_client_that_subscribed_it(served):
    _, server, client, _ = served
    port = free_port()
    dump = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE, text=True)
    other = OscClient(server.port)
    try:
        for attempt in range(50):  # until oscdump listens: it prints what it hears
            client.send("/notify", 1, port)
            line = ""
            if select.select([dump.stdout], [], [], 0.1)[0]:
                line = dump.stdout.readline()
            if "/done" in line:
                break
        else:
            raise AssertionError("oscdump heard nothing")
        # oscdump prints: time tag, address, type tags, arguments
        assert line.split()[1:] == ["/done", "sii", '"/notify"', "1", str(port)], line
        client.send("/sync", 42)
        other.send("/sync", 43)
        assert other.expect("/synced") == [43]  # the other client's reply is its own
        line = dump.stdout.readline()
        while "/synced" not in line:
            line = dump.stdout.readline()
        assert line.split()[1:] == ["/synced", "i", "42"]
    finally:
        other.close()
        dump.kill()
        dump.wait()


def test_subscriptions_are_bounded(clocked):
    _, server, client, _, _ = clocked
    listeners = [OscClient(server.port) for _ in range(MAX_PORTS)]
    others = [OscClient(server.port) for _ in range(MAX_CLIENTS)]
    try:
        for listener in listeners:
            client.send("/notify", 1, listener.port)
        client.send("/notify", 1, 50000)
        for listener in listeners:  # every subscribed port gets the /fail
            assert listener.expect("/fail") == [
                "/notify", f"a client may subscribe at most {MAX_PORTS} reply ports"]
        for other in others[:-1]:
            other.send("/notify", 1)  # subscribes its own sending port
            assert other.expect("/done")[0] == "/notify"
        others[-1].send("/notify", 1)
        params = others[-1].expect("/fail")
        assert params[0] == "/notify" and f"too many subscribed clients ({MAX_CLIENTS})" \
            in params[1]
        assert others[-1].status()["osc_subscriptions"] == MAX_PORTS + MAX_CLIENTS - 1
    finally:
        for other in listeners + others:
            other.close()


def test_sync_answers_after_the_clients_renders(clocked, tmp_path):
    engine, _, client, _, renderer = clocked
    renderer.gate.clear()
    client.send("/render", 60, "a")
    client.send("/sync", 1)
    assert renderer.waiting.wait(30)
    client.send("/status")
    assert client.receive()[0] == "/status.reply"
    assert_nothing_more(client.sock)  # /synced waits for the render
    renderer.gate.set()
    assert client.receive(30) == ("/done", ["/render", str(tmp_path / "renders" / "a.wav")])
    assert client.receive(5) == ("/synced", [1])


def test_the_render_queue_is_bounded(clocked, tmp_path):
    engine, _, client, _, renderer = clocked
    renderer.gate.clear()
    for i in range(MAX_PENDING_RENDERS):
        client.send("/render", 60, f"n{i}")
    client.send("/render", 60, "one-too-many")
    params = client.expect("/fail")
    assert params[0] == "/render" and "render queue full (8 renders pending)" in params[1]
    assert client.status()["render_requests_pending"] == MAX_PENDING_RENDERS
    renderer.gate.set()
    done = sorted(client.expect("/done", timeout=30)[1] for _ in range(MAX_PENDING_RENDERS))
    assert done == sorted(str(tmp_path / "renders" / f"n{i}.wav")
                          for i in range(MAX_PENDING_RENDERS))
    assert not (tmp_path / "renders" / "one-too-many.wav").exists()


def test_a_directory_swapped_for_a_link_while_renders_wait_is_not_followed(clocked, tmp_path):
    engine, _, client, _, renderer = clocked
    race, outside = tmp_path / "renders" / "race", tmp_path / "outside"
    race.mkdir(parents=True)
    outside.mkdir()
    renderer.gate.clear()
    for i in range(MAX_PENDING_RENDERS):
        client.send("/render", 60, f"race/take{i}")
    assert renderer.waiting.wait(30)
    assert client.status()["render_requests_pending"] == MAX_PENDING_RENDERS
    race.rmdir()  # checked, queued: now the directory becomes a link out of the render dir
    race.symlink_to(outside, target_is_directory=True)
    renderer.gate.set()
    for _ in range(MAX_PENDING_RENDERS):
        params = client.expect("/fail", timeout=30)
        assert params[0] == "/render" and "symbolic links are not followed" in params[1]
    assert not list(outside.iterdir())


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
    # What arrived was either handled or dropped over the rate; nothing failed.
    assert status["osc_messages"] >= CONTROL_RATE[1] and status["osc_dropped_rate"] > 0
    assert status["osc_messages"] + status["osc_dropped_rate"] <= 7500 + attempt + 1  # /status
    assert status["voices"] <= status["polyphony"]
    assert status["osc_failures"] == 0


def test_other_hosts_are_dropped_when_an_allow_list_is_set(tiny_model):  # noqa: F811
    engine = make_engine(tiny_model)
    server = OscServer(engine, host="127.0.0.1", port=0, allow=["127.0.0.3"],
                       log=lambda message: None)
    server.start()
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.2", 0))
    friend = OscClient(server.port)  # 127.0.0.1 is always allowed
    try:
        stranger.sendto(message("/status"), ("127.0.0.1", server.port))
        status = friend.status()  # handled after the stranger's datagram
        assert status["ready"] == 1 and status["osc_dropped_host"] == 1
        assert_nothing_more(stranger)
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
