"""MidiInput over real JACK MIDI (the dummy JACK server from jack_helpers): messages sent from
another rtmidi JACK client arrive at the target as engine calls.

On a loaded machine the --no-realtime dummy server now and then drops a whole JACK cycle of the
*sender's* events (a jack_midi_dump on the same sender misses them too), so `send` confirms
each message through MidiInput.received and sends it again when it did not arrive."""
import threading
import time

import mido
import pytest

from gansynth_live.live.midi_input import MidiInput
from jack_helpers import jack_midi_backend

API = "UNIX_JACK"


class Recorder:
    """Stands in for the live Engine: records the calls MidiInput makes."""

    def __init__(self, fail_pitches=()):
        self.calls = []
        self.fail_pitches = set(fail_pitches)
        self.threads = set()
        self.changed = threading.Condition()

    def _add(self, *call):
        with self.changed:
            self.calls.append(call)
            self.threads.add(threading.current_thread().name)
            self.changed.notify_all()

    def note_on(self, pitch, velocity):
        if pitch in self.fail_pitches:
            raise ValueError(f"pitch {pitch} is outside the model's range")
        self._add("note_on", pitch, velocity)

    def note_off(self, pitch):
        self._add("note_off", pitch)

    def sustain(self, on):
        self._add("sustain", on)

    def pitch_bend(self, semitones):
        self._add("pitch_bend", semitones)

    def set_xy(self, x, y):
        self._add("set_xy", x, y)

    def all_notes_off(self):
        self._add("all_notes_off")

    def wait_for(self, n, timeout=3.0):
        with self.changed:
            self.changed.wait_for(lambda: len(self.calls) >= n, timeout)
            return list(self.calls)


def _reliable_send(midi, send, msg, tries=5, timeout=0.5):
    for _ in range(tries):
        before = midi.received
        send(msg)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if midi.received > before:
                return
            time.sleep(0.002)
    raise AssertionError(f"{msg} never arrived ({tries} tries)")


def _handshake(midi, send):
    """A fresh JACK connection takes effect at a later process cycle; what is sent before that
    is lost.  Send an ignored message until the input has received one."""
    deadline = time.monotonic() + 5
    while midi.received == 0:
        assert time.monotonic() < deadline, "no MIDI got through the JACK connection"
        send(mido.Message("program_change", program=0))
        time.sleep(0.01)
    time.sleep(0.02)    # let stray handshake messages drain (they are ignored anyway)


def _jack_name(backend, name):
    """The JACK port name of our virtual input as a sender sees it."""
    names = backend.get_output_names()
    hits = [n for n in names if n.split(":", 1)[-1] == name]
    assert hits, f"{name!r} not among {names}"
    return hits[0]


@pytest.fixture
def backend(jack_env):
    return jack_midi_backend()


@pytest.fixture
def play(backend):
    """play(target, **MidiInput kwargs) -> (send, midi): a virtual MidiInput and a JACK MIDI
    output connected to it; send(*messages) sends them."""
    opened = []

    def make(target, name="gansynth-live", **kwargs):
        midi = MidiInput(target, name, virtual=True, api=API, **kwargs)
        opened.append(midi)
        out = backend.open_output(_jack_name(backend, name))
        opened.append(out)

        _handshake(midi, out.send)

        def send(*messages):
            for m in messages:
                _reliable_send(midi, out.send, m)
        send.burst = out.send
        return send, midi

    yield make
    for p in reversed(opened):
        p.close()


def on(note, vel=100, ch=0):
    return mido.Message("note_on", note=note, velocity=vel, channel=ch)


def off(note, ch=0):
    return mido.Message("note_off", note=note, channel=ch)


def cc(control, value, ch=0):
    return mido.Message("control_change", control=control, value=value, channel=ch)


def bend(pitch, ch=0):
    return mido.Message("pitchwheel", pitch=pitch, channel=ch)


def test_messages_become_engine_calls(play):
    target = Recorder()
    send, midi = play(target, bend_range=2.0)
    assert midi.virtual and midi.api == API
    send(on(60, 100), off(60), on(62, 90), on(62, 0),            # velocity 0 = note-off
         cc(1, 127), cc(2, 0), cc(1, 64),
         cc(64, 127), cc(64, 63),
         bend(8191), bend(-8192), bend(0), bend(4096),
         cc(123, 0), cc(120, 0), cc(121, 0),
         mido.Message("program_change", program=5),               # ignored
         mido.Message("aftertouch", value=3),                     # ignored
         cc(7, 100),                                              # unmapped CC: ignored
         on(64, 1))
    calls = target.wait_for(18)
    assert calls == [
        ("note_on", 60, 100), ("note_off", 60), ("note_on", 62, 90), ("note_off", 62),
        ("set_xy", 1.0, None), ("set_xy", None, 0.0), ("set_xy", 64 / 127, None),
        ("sustain", True), ("sustain", False),
        ("pitch_bend", 2.0), ("pitch_bend", -2.0), ("pitch_bend", 0.0),
        ("pitch_bend", pytest.approx(4096 / 8191 * 2.0)),
        ("all_notes_off",), ("all_notes_off",), ("pitch_bend", 0.0), ("sustain", False),
        ("note_on", 64, 1)]
    # the target is called on the dispatch thread, never on rtmidi's (JACK process) thread
    assert target.threads == {"gansynth-midi"}
    assert midi.errors == 0


def test_custom_ccs_bend_range_and_channel_filter(play):
    target = Recorder()
    send, _ = play(target, channel=3, cc_x=20, cc_y=21, bend_range=12)
    send(on(60, ch=0), cc(20, 127, ch=5), bend(8191, ch=15),     # other channels: ignored
         on(61, 80, ch=3), cc(1, 127, ch=3),                      # CC1 is not x any more
         cc(20, 127, ch=3), cc(21, 0, ch=3), bend(-8192, ch=3), off(61, ch=3))
    calls = target.wait_for(5)
    time.sleep(0.05)    # nothing else arrives
    assert target.calls == calls == [
        ("note_on", 61, 80), ("set_xy", 1.0, None), ("set_xy", None, 0.0),
        ("pitch_bend", -12.0), ("note_off", 61)]


def test_omni_takes_every_channel(play):
    target = Recorder()
    send, _ = play(target)
    send(*[on(40 + ch, 50, ch=ch) for ch in range(16)])
    assert target.wait_for(16) == [("note_on", 40 + ch, 50) for ch in range(16)]


def test_target_errors_are_reported_and_later_messages_still_arrive(play):
    target = Recorder(fail_pitches={10})
    errors = []
    send, midi = play(target, on_error=errors.append)
    send(on(10), on(60), off(60))
    assert target.wait_for(2) == [("note_on", 60, 100), ("note_off", 60)]
    assert len(errors) == 1 and "outside the model's range" in errors[0], errors
    assert midi.errors == 1


def test_a_failing_error_reporter_does_not_stop_the_input(play):
    def broken(_):
        raise RuntimeError("reporter broke")
    target = Recorder(fail_pitches={10})
    send, midi = play(target, on_error=broken)
    send(on(10), on(60))
    assert target.wait_for(1) == [("note_on", 60, 100)]


def test_bursts_arrive_complete_and_in_order(play):
    """Many messages within one JACK cycle: all arrive, in order, none garbled.  (A Python
    callback on rtmidi's JACK thread got ~1 burst in 300 as copies of one message.)"""
    target = Recorder()
    send, midi = play(target)
    for burst in range(10):
        sent = [on(20 + i, 1 + burst) for i in range(30)]
        for attempt in range(3):
            target.calls.clear()
            for m in sent:
                send.burst(m)
            calls = target.wait_for(30, timeout=1.0)
            time.sleep(0.01)
            calls = list(target.calls)
            expected = [("note_on", m.note, m.velocity) for m in sent]
            # a dropped sender cycle loses messages, but what arrives is never garbled
            assert all(c in expected for c in calls), calls
            assert calls == sorted(calls, key=expected.index), calls
            if calls == expected:
                break
        else:
            pytest.fail(f"burst {burst} incomplete three times")
    assert midi.errors == 0


def test_open_existing_port_by_exact_and_substring_name(backend):
    # another program's MIDI output (a "keyboard"), which MidiInput connects from
    keyboard = backend.open_output("Keys out", client_name="TestKeyboard", virtual=True)
    try:
        ports = MidiInput.list_ports(API)
        full = next(p for p in ports if p.endswith(":Keys out"))
        assert full.startswith("TestKeyboard")
        for name in (full, "Keys out", "testkeyboard"):          # exact, substring, any case
            target = Recorder()
            with MidiInput(target, name, api=API) as midi:
                assert midi.name == full and not midi.virtual
                _handshake(midi, keyboard.send)   # rtmidi connected it when opening
                _reliable_send(midi, keyboard.send, on(70, 33))
                assert target.wait_for(1) == [("note_on", 70, 33)], name
    finally:
        keyboard.close()


def test_unknown_and_ambiguous_port_names(backend):
    a = backend.open_output("pad", client_name="DupSynthA", virtual=True)
    b = backend.open_output("pad", client_name="DupSynthB", virtual=True)
    try:
        with pytest.raises(ValueError, match=r"no MIDI input 'nosuch'.*DupSynthA:pad"):
            MidiInput(Recorder(), "nosuch", api=API)
        with pytest.raises(ValueError, match="ambiguous.*DupSynthA:pad.*DupSynthB:pad"):
            MidiInput(Recorder(), "DupSynth", api=API)
        with pytest.raises(ValueError, match="port name, or virtual=True"):
            MidiInput(Recorder(), None, api=API)
    finally:
        a.close()
        b.close()


def test_bad_arguments():
    for kwargs, match in [({"channel": 16}, "channel"), ({"cc_x": 128}, "cc_x"),
                          ({"cc_y": -1}, "cc_y"), ({"bend_range": 0}, "bend_range"),
                          ({"bend_range": float("nan")}, "bend_range")]:
        with pytest.raises(ValueError, match=match):
            MidiInput(Recorder(), virtual=True, api=API, **kwargs)


def test_close_is_idempotent_and_removes_the_port(jack_env, backend):
    midi = MidiInput(Recorder(), "closing-port", virtual=True, api=API)
    assert any(n.endswith(":closing-port") for n in jack_env.ports())
    midi.close()
    midi.close()
    assert not any(n.endswith(":closing-port") for n in jack_env.ports())
    assert not midi._thread.is_alive()


def test_handle_filters_and_ignores(jack_env):
    target = Recorder()
    with MidiInput(target, "handle-port", virtual=True, api=API, channel=2) as midi:
        midi.handle(on(50, 60, ch=2))
        midi.handle(on(51, 60, ch=1))      # other channel
        midi.handle(mido.Message("sysex", data=[1, 2]))
    assert target.calls == [("note_on", 50, 60)]


def test_default_api_falls_back_to_jack_midi(jack_env):
    # without an ALSA sequencer (as in these sandboxes) api=None must still work, on JACK MIDI
    with MidiInput(Recorder(), "fallback-port", virtual=True) as midi:
        if midi.api == API:
            assert any(n.endswith(":fallback-port") for n in jack_env.ports())
        else:
            assert midi.api == "LINUX_ALSA"


def test_api_names():
    with pytest.raises(ValueError, match="unknown or unavailable MIDI API 'NOPE'.*UNIX_JACK"):
        MidiInput(Recorder(), virtual=True, api="NOPE")


def test_short_api_name_and_list_ports(jack_env, backend):
    with MidiInput(Recorder(), "short-api", virtual=True, api="jack") as midi:
        assert midi.api == API
    keyboard = backend.open_output("lp out", client_name="ListPorts", virtual=True)
    try:
        assert "ListPorts:lp out" in MidiInput.list_ports("UNIX_JACK")
    finally:
        keyboard.close()
