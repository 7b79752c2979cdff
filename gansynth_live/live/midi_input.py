"""MIDI input for the live server: a python-rtmidi input port feeding the engine.

    note_on  (velocity 1..127)          -> target.note_on(pitch, velocity)
    note_on velocity 0, note_off        -> target.note_off(pitch)      (running-status convention)
    control_change cc_x / cc_y          -> target.set_xy(value / 127, None) / set_xy(None, value / 127)
    control_change cc_pca[n]            -> target.set_pca_component(n + 1, pca_coefficient(value))
    control_change 64 (sustain pedal)   -> target.sustain(value >= 64)
    control_change 120, 123             -> target.all_notes_off()    (all sound off, all notes off)
    control_change 121 (reset ctrls)    -> target.pitch_bend(0.0) and target.sustain(False)
    pitchwheel -8192..8191              -> target.pitch_bend(semitones)
    anything else (program change, aftertouch, clock, sysex, ...) is ignored.

cc_x / cc_y / cc_pca are checked first, so mapping a CC number that has a meaning above
(e.g. 64) to one of them takes it over; a GANSpace CC drives nothing else (cc_x and cc_y
may share one, moving the position along the diagonal).  With `channel`
set (0..15) only that channel's messages are used.

Pitch bend is symmetric at both ends: negative values are scaled by 1/8192 and positive ones
by 1/8191, so -8192 -> -bend_range, 0 -> 0 and 8191 -> exactly +bend_range.

The target's methods may raise (ValueError for a pitch too far from the model's, ...): the
error goes to `on_error(message)` (stderr when none is given) and the next message is handled
as usual -- nothing raised by the target ever stops the input.

Threading: no Python runs on rtmidi's thread.  rtmidi queues incoming messages in C++ (ring
buffer of 4096) and one Python thread, "gansynth-midi", takes them out (`get_message`, sleeping
`poll_interval` = 1 ms when the queue is empty), parses them with mido and calls the target,
one message at a time in arrival order.  Why not mido's/rtmidi's callback mode: with JACK MIDI
rtmidi runs the callback inside its JACK client's process cycle, where a Python callback must
take the GIL.  Measured on the dummy JACK server (2 loaded cores): a callback that blocks
(engine lock, GIL held by the render thread) makes the whole graph miss its cycle ("XRun:
client = PortAudio was not finished", a PortAudio stream's underflow flags 4 -> 58 per second
with a 20 ms callback), and even a trivial Python callback, when late, read events from the
sender's buffer while the sender was already rewriting it for the next cycle: bursts of 20
messages arrived as 20 copies of one message in about 1 round in 300 (never with the polling
design; a jack_midi_dump listening to the same sender saw the right events).  Polling costs
at most `poll_interval` of latency and ~1000 wake-ups a second.

Ports.  `virtual=True` creates a port other programs connect to, named `port` (default
"gansynth-live"); its client gets the same name, so with JACK MIDI it appears as
"gansynth-live:gansynth-live" (JACK renames a second client with the same name to
"gansynth-live-01").  Otherwise `port` names another program's MIDI output: the exact name
first, then a unique substring (case-sensitive, then case-insensitive), e.g. "keyboard" for
"Keyboard:midi_out" (JACK) or "Keyboard:Keyboard MIDI 1 20:0" (ALSA); an unknown or ambiguous
name raises ValueError listing the available ports.

APIs.  `api` is an rtmidi API name as mido spells them ("LINUX_ALSA", "UNIX_JACK",
"MACOSX_CORE", "WINDOWS_MM"; rtmidi's short names "alsa", "jack", "core", "winmm" work too).
None lets rtmidi choose (ALSA on Linux) and, should that fail (no ALSA sequencer, e.g. in
containers), falls back to JACK MIDI.  If every API fails, OSError says why.  With JACK the
server is the one named by JACK_DEFAULT_SERVER (read when the port is opened).
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Sequence

from gansynth_live.ganspace import COEFFICIENT_RANGE
from gansynth_live.live.ratelimit import RateLimit
from gansynth_live.validation import MAX_BEND_RANGE, MIDI_CC, distinct_ccs, integer, number

DEFAULT_NAME = "gansynth-live"
FALLBACK_API = "UNIX_JACK"
QUEUE_SIZE = 4096
# Messages handled per second, burst: a MIDI cable carries at most ~1000 (31250 baud);
# beyond that it is a flood (or garbage) and is dropped, counted in `dropped`.
MIDI_RATE = (1000.0, 1000)

CC_SUSTAIN = 64
CC_ALL_SOUND_OFF = 120
CC_RESET_CONTROLLERS = 121
CC_ALL_NOTES_OFF = 123

_CHANNEL_TYPES = ("note_on", "note_off", "control_change", "pitchwheel")


def pca_coefficient(value: int) -> float:
    """A CC value 0..127 as a GANSpace coefficient: linear, 64 -> 0 (the centre detent of a
    knob is the plain timbre), 127 -> +3, 1 -> -3 and 0 clipped to -3."""
    low, high = COEFFICIENT_RANGE
    return min(high, max(low, (value - 64) / 63 * high))


def _api_id(api: str | None) -> int:
    import rtmidi
    if api is None:
        return rtmidi.API_UNSPECIFIED
    value = getattr(rtmidi, "API_" + api.upper(), None)
    if value is None:
        value = rtmidi.get_compiled_api_by_name(api.lower())
        if value == rtmidi.API_UNSPECIFIED:
            value = None
    compiled = rtmidi.get_compiled_api()
    if value is None or value not in compiled:
        names = ", ".join(_api_name(a) for a in compiled)
        raise ValueError(f"unknown or unavailable MIDI API {api!r}; this python-rtmidi has: "
                         f"{names}")
    return value


def _api_name(api_id: int) -> str:
    import rtmidi
    for name in dir(rtmidi):
        if name.startswith("API_") and getattr(rtmidi, name) == api_id:
            return name[4:]
    return str(api_id)


def _midi_in(api: str | None, client_name: str | None = None):
    """An rtmidi.MidiIn on `api` (with the JACK fallback for api None); raises OSError."""
    import rtmidi
    kwargs = {"queue_size_limit": QUEUE_SIZE}
    if client_name:
        kwargs["name"] = client_name
    errors = (rtmidi.RtMidiError, OSError, RuntimeError)
    try:
        return rtmidi.MidiIn(_api_id(api), **kwargs)
    except errors as err:
        if api is not None:
            raise OSError(f"MIDI ({api}): {err}") from err
        try:
            return rtmidi.MidiIn(_api_id(FALLBACK_API), **kwargs)
        except errors as err2:
            raise OSError(f"MIDI: the default API failed ({err}) and so did "
                          f"{FALLBACK_API} ({err2})") from err2


def _delete(rt) -> None:
    try:
        rt.close_port()
    finally:
        rt.delete()


def _find_port(wanted: str, names: list[str]) -> int:
    if wanted in names:
        return names.index(wanted)
    matches = [n for n in names if wanted in n]
    if not matches:
        matches = [n for n in names if wanted.lower() in n.lower()]
    if len(matches) == 1:
        return names.index(matches[0])
    if matches:
        raise ValueError(f"MIDI input {wanted!r} is ambiguous: it matches "
                         f"{', '.join(repr(n) for n in matches)}")
    listing = ", ".join(repr(n) for n in names) or "none"
    raise ValueError(f"no MIDI input {wanted!r}; available: {listing}")


class MidiInput:
    """Feeds MIDI messages from an input port to the engine (target calls run on the
    "gansynth-midi" thread; see the module docstring)."""

    def __init__(self, target, port: str | None = None, *, virtual: bool = False,
                 api: str | None = None, channel: int | None = None,
                 cc_x: int = 1, cc_y: int = 2, cc_pca: Sequence[int] = (),
                 bend_range: float = 2.0,
                 on_error: Callable[[str], None] | None = None,
                 poll_interval: float = 0.001, clock: Callable[[], float] = time.monotonic):
        if channel is not None:
            channel = integer("MIDI channel (0..15, or None for omni)", channel, 0, 15)
        cc_x, cc_y = integer("cc_x", cc_x, *MIDI_CC), integer("cc_y", cc_y, *MIDI_CC)
        cc_pca = [integer(f"cc_pca[{n}]", cc, *MIDI_CC) for n, cc in enumerate(cc_pca)]
        distinct_ccs({"cc_x": cc_x, "cc_pca": cc_pca})
        distinct_ccs({"cc_y": cc_y, "cc_pca": cc_pca})
        bend_range = number("bend_range", bend_range, above=0.0, high=MAX_BEND_RANGE)
        poll_interval = number("poll_interval", poll_interval, above=0.0, high=0.1)
        if not virtual and not port:
            raise ValueError("give a MIDI input port name, or virtual=True; available: "
                             + (", ".join(repr(n) for n in self.list_ports(api)) or "none"))
        if api is not None:
            _api_id(api)   # ValueError for an unknown API name before touching any driver
        self.target = target
        self.channel = channel
        self.cc_x, self.cc_y = cc_x, cc_y
        self.pca_directions = {cc: n + 1 for n, cc in enumerate(cc_pca)}  # CC -> direction
        self.bend_range = bend_range
        self.on_error = on_error
        self.poll_interval = poll_interval
        self.virtual = virtual
        self.errors = 0          # messages whose handling raised
        self.received = 0        # messages taken from the port (before channel filtering)
        self.dropped = 0         # messages beyond MIDI_RATE, not handled
        self._limit = RateLimit(*MIDI_RATE, clock)
        self._stop = threading.Event()
        self._closed = False
        self._close_lock = threading.Lock()

        if virtual:
            self.name = port or DEFAULT_NAME
            rt = _midi_in(api, client_name=self.name)
            try:
                rt.open_virtual_port(self.name)
            except Exception as err:
                _delete(rt)
                raise OSError(f"MIDI: cannot create virtual port {self.name!r}: {err}") from err
        else:
            rt = _midi_in(api)
            try:
                names = rt.get_ports()
                index = _find_port(port, names)
                self.name = names[index]
                rt.open_port(index)
            except ValueError:
                _delete(rt)
                raise
            except Exception as err:
                _delete(rt)
                raise OSError(f"MIDI: cannot open input {port!r}: {err}") from err
        rt.ignore_types(sysex=True, timing=True, active_sense=True)
        self._rt = rt
        self.api = _api_name(rt.get_current_api())
        self._thread = threading.Thread(target=self._run, name="gansynth-midi", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------------------------

    @staticmethod
    def list_ports(api: str | None = None) -> list[str]:
        """Names of the MIDI outputs of other programs that can be opened as input."""
        rt = _midi_in(api)
        try:
            return list(rt.get_ports())
        finally:
            rt.delete()

    def close(self) -> None:
        """Stop receiving and remove the port (idempotent).  No target call starts after
        close() returns (unless close() is called from a target method)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(5.0)
        if self._thread.is_alive():
            # stuck in (or called from) a target method: it may still poll the port, so
            # only close it; rtmidi's object is freed with this MidiInput
            self._rt.close_port()
            return
        _delete(self._rt)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def status(self) -> dict[str, int]:
        """The /status fields of the MIDI input."""
        return {"midi_received": self.received, "midi_errors": self.errors,
                "midi_dropped_rate": self.dropped}

    def __repr__(self) -> str:
        kind = "virtual " if self.virtual else ""
        return f"<MidiInput {kind}{self.name!r} ({self.api})>"

    # The "gansynth-midi" thread ----------------------------------------------------------

    def _run(self) -> None:
        import mido
        # time.sleep, not Event.wait: ~1000 wake-ups a second, each holding the GIL that
        # the audio callback needs; a sleep holds it for the least Python.
        get, sleep, interval = self._rt.get_message, time.sleep, self.poll_interval
        while not self._stop.is_set():
            event = get()
            if event is None:
                sleep(interval)
                continue
            self.received += 1
            if not self._limit.allow():
                self.dropped += 1
                continue
            try:
                msg = mido.Message.from_bytes(event[0])
            except (ValueError, TypeError, IndexError):
                continue   # incomplete or invalid bytes: not for us
            try:
                self.handle(msg)
            except Exception as err:   # noqa: BLE001 -- nothing may stop the input
                self.errors += 1
                self._report(f"{msg}: {err}")

    def _report(self, text: str) -> None:
        try:
            if self.on_error is not None:
                self.on_error(text)
            else:
                print(f"gansynth-live: MIDI: {text}", file=sys.stderr, flush=True)
        except Exception:   # noqa: BLE001 -- a broken reporter must not stop the input either
            pass

    def handle(self, msg) -> None:
        """Apply one mido message to the target (the input thread calls this; public so that
        messages from elsewhere, e.g. a MIDI file, can be fed the same way)."""
        kind = msg.type
        if kind not in _CHANNEL_TYPES:
            return
        if self.channel is not None and msg.channel != self.channel:
            return
        t = self.target
        if kind == "note_on":
            if msg.velocity == 0:
                t.note_off(msg.note)
            else:
                t.note_on(msg.note, msg.velocity)
        elif kind == "note_off":
            t.note_off(msg.note)
        elif kind == "pitchwheel":
            p = msg.pitch
            t.pitch_bend(p / (8192.0 if p < 0 else 8191.0) * self.bend_range)
        else:
            cc, value = msg.control, msg.value
            if cc == self.cc_x:
                t.set_xy(value / 127.0, None)
            elif cc == self.cc_y:
                t.set_xy(None, value / 127.0)
            elif cc in self.pca_directions:
                t.set_pca_component(self.pca_directions[cc], pca_coefficient(value))
            elif cc == CC_SUSTAIN:
                t.sustain(value >= 64)
            elif cc in (CC_ALL_SOUND_OFF, CC_ALL_NOTES_OFF):
                t.all_notes_off()
            elif cc == CC_RESET_CONTROLLERS:
                t.pitch_bend(0.0)
                t.sustain(False)
