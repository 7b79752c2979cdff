"""The OSC server: the address table of docs/gansynth-live.md over UDP (python-osc parsing).

One thread receives datagrams and handles them in order; handlers only validate and
call the engine, which never waits for rendering, so a flood of notes cannot stall
anything else. Bundles are unpacked and run at once (time tags are ignored: a far-future
tag must not hold the server).

Replies: `/fail <address> <reason>` for anything wrong (malformed packet, unknown
address, wrong argument count or type, value out of range); `/done <address> ...` when
an asynchronous command finished; `/status.reply name value ...` for /status. They go
to the ports the sender's host subscribed with `/notify 1 port` (Pd cannot receive on
the socket it sends from), or else back to the sending address.

Every integer argument also accepts an integral float (Pd sends every number as a
float). Listening beyond 127.0.0.1 needs an allow-list: datagrams from other hosts are
dropped without a reply.
"""
from __future__ import annotations

import ipaddress
import math
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import soundfile as sf
from pythonosc import osc_packet
from pythonosc.osc_message_builder import OscMessageBuilder

from gansynth_live.live.engine import Engine, _as_int
from gansynth_live.sustain import RenderedNote

MAX_DATAGRAM = 65535


class BadArguments(ValueError):
    pass


def _number(args: tuple, index: int, name: str) -> float:
    value = args[index]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadArguments(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise BadArguments(f"{name} must be finite, got {value}")
    return float(value)


def _integer(args: tuple, index: int, name: str) -> int:
    return _as_int(name, _number(args, index, name))


def _count(args: tuple, *allowed: int) -> None:
    if len(args) not in allowed:
        wanted = " or ".join(str(n) for n in allowed)
        raise BadArguments(f"expects {wanted} arguments, got {len(args)}")


class OscServer:
    """Serves `engine` on UDP `host`:`port` (port 0 picks a free one; see `.port`)."""

    def __init__(self, engine: Engine, *, host: str = "127.0.0.1", port: int = 57120,
                 allow: list[str] | None = None, render_dir: str | Path = "renders",
                 on_quit: Callable[[], None] = lambda: None,
                 extra_status: Callable[[], dict] = dict,
                 log: Callable[[str], None] = print):
        self.engine = engine
        self.render_dir = Path(render_dir).resolve()
        self.on_quit = on_quit
        self.extra_status = extra_status
        self.log = log
        self.allowed = self._allow_list(host, allow or [])
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        try:
            self.socket.bind((host, port))
        except OSError as e:
            self.socket.close()
            raise OSError(f"cannot listen for OSC on {host}:{port}: {e.strerror}") from None
        self.host, self.port = self.socket.getsockname()
        self.subscribers: dict[str, set[int]] = {}  # sender host -> reply ports
        self.counters = {"messages": 0, "failures": 0, "malformed": 0, "refused": 0}
        self._pending_ready: dict[str, tuple[tuple, tuple]] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="osc-server", daemon=True)
        self._closing = False
        self.handlers: dict[str, Callable[[tuple, tuple], None]] = {
            "/note_on": self._note_on, "/note_off": self._note_off, "/note": self._note,
            "/all_notes_off": self._all_notes_off, "/sustain": self._sustain,
            "/pitch_bend": self._pitch_bend, "/timbre/seed": self._seed, "/timbre/z": self._z,
            "/timbre/xy": self._xy, "/envelope": self._envelope, "/gain": self._gain,
            "/sustain_mode": self._sustain_mode,
            "/status": self._status, "/notify": self._notify, "/render": self._render,
            "/quit": self._quit,
        }

    @staticmethod
    def _allow_list(host: str, allow: list[str]) -> set[str] | None:
        """None = everyone (a loopback bind only hears this machine); else allowed hosts."""
        if ipaddress.ip_address(socket.gethostbyname(host)).is_loopback and not allow:
            return None
        return {"127.0.0.1", *(socket.gethostbyname(a) for a in allow)}

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closing = True
        try:
            self.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.socket.close()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(2.0)

    # Receiving -------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._closing:
            try:
                data, sender = self.socket.recvfrom(MAX_DATAGRAM)
            except OSError:
                return  # closed
            if self._closing or sender is None:  # shutdown() wakes recvfrom with nothing
                return
            try:
                self.handle_datagram(data, sender)
            except Exception as e:  # noqa: BLE001 - never let one datagram end the server
                self.log(f"osc: internal error on a datagram from {sender}: "
                         f"{type(e).__name__}: {e}")

    def handle_datagram(self, data: bytes, sender: tuple[str, int]) -> None:
        received = time.perf_counter()
        if self.allowed is not None and sender[0] not in self.allowed:
            self.counters["refused"] += 1
            return
        try:
            messages = [timed.message for timed in osc_packet.OscPacket(data).messages]
        except Exception as e:  # noqa: BLE001 - python-osc raises several kinds on junk
            self.counters["malformed"] += 1
            self.reply(sender, "/fail", "", f"malformed OSC packet ({len(data)} bytes): {e}")
            return
        for message in messages:
            self.counters["messages"] += 1
            address, args = message.address, tuple(message.params)
            handler = self.handlers.get(address)
            try:
                if handler is None:
                    raise BadArguments("unknown address; see /status and the docs' table")
                handler(sender, args, received)
            except ValueError as e:  # BadArguments, or the engine's checks
                self.counters["failures"] += 1
                self.reply(sender, "/fail", address, str(e))

    # Replying --------------------------------------------------------------------------

    def reply(self, sender: tuple[str, int], address: str, *args: Any) -> None:
        ports = self.subscribers.get(sender[0])
        targets = [(sender[0], p) for p in ports] if ports else [sender]
        builder = OscMessageBuilder(address)
        for arg in args:
            builder.add_arg(_osc_value(arg))
        dgram = builder.build().dgram
        for target in targets:
            try:
                self.socket.sendto(dgram, target)
            except OSError:
                pass  # the receiver went away; nothing to do

    def _when_ready(self, sender, address: str, args: tuple) -> None:
        """Answer `/done address args` once the timbre is playable (only the latest per address)."""
        with self._lock:
            self._pending_ready[address] = (sender, args)

        def answer():
            with self._lock:
                pending, self._pending_ready = self._pending_ready, {}
            for addr, (who, what) in pending.items():
                self.reply(who, "/done", addr, *what)
        self.engine.when_ready(answer)

    # Handlers: (sender address, OSC arguments, perf_counter time received) -------------------------------------------------

    def _note_on(self, sender, args, received):
        _count(args, 2)
        self.engine.note_on(_integer(args, 0, "pitch"), _integer(args, 1, "velocity"),
                            received=received)

    def _note(self, sender, args, received):
        _count(args, 3)
        self.engine.note_on(_integer(args, 0, "pitch"), _integer(args, 1, "velocity"),
                            duration=_number(args, 2, "duration"), received=received)

    def _note_off(self, sender, args, received):
        _count(args, 1)
        self.engine.note_off(_integer(args, 0, "pitch"))

    def _all_notes_off(self, sender, args, received):
        _count(args, 0)
        self.engine.all_notes_off()

    def _sustain(self, sender, args, received):
        _count(args, 1)
        self.engine.sustain(_number(args, 0, "sustain") >= 0.5)

    def _pitch_bend(self, sender, args, received):
        _count(args, 1)
        self.engine.pitch_bend(_number(args, 0, "semitones"))

    def _seed(self, sender, args, received):
        _count(args, 2)
        anchor, seed = _integer(args, 0, "anchor"), _integer(args, 1, "seed")
        self.engine.set_seed(anchor, seed)
        self._when_ready(sender, "/timbre/seed", (anchor, seed))

    def _z(self, sender, args, received):
        size = self.engine.model.latent_size
        _count(args, size + 1)
        anchor = _integer(args, 0, "anchor")
        z = [_number(args, i, f"z[{i - 1}]") for i in range(1, size + 1)]
        self.engine.set_z(anchor, z)
        self._when_ready(sender, "/timbre/z", (anchor,))

    def _xy(self, sender, args, received):
        _count(args, 2)
        x, y = _number(args, 0, "x"), _number(args, 1, "y")
        self.engine.set_xy(x, y)
        self._when_ready(sender, "/timbre/xy", (x, y))

    def _envelope(self, sender, args, received):
        _count(args, 4)
        self.engine.set_envelope(*(_number(args, i, name) for i, name in enumerate(
            ("attack_percent", "attack_slope", "release_percent", "release_slope"))))

    def _sustain_mode(self, sender, args, received):
        """One argument: "loop" or "natural", or a number (1 = loop, 0 = natural: a Pd
        toggle)."""
        _count(args, 1)
        mode = args[0]
        if not isinstance(mode, str):
            number = _number(args, 0, "sustain_mode")
            if number not in (0.0, 1.0):
                raise BadArguments(f"sustain_mode must be loop, natural, 1 or 0, got {number:g}")
            mode = "loop" if number else "natural"
        self.engine.set_sustain_mode(mode)

    def _gain(self, sender, args, received):
        _count(args, 1)
        self.engine.set_gain(_number(args, 0, "gain"))

    def _status(self, sender, args, received):
        _count(args, 0)
        status = {**self.engine.status(), **self.extra_status(),
                  "osc_messages": self.counters["messages"],
                  "osc_failures": self.counters["failures"],
                  "osc_malformed": self.counters["malformed"]}
        flat = [item for pair in status.items() for item in pair]
        self.reply(sender, "/status.reply", *flat)

    def _notify(self, sender, args, received):
        _count(args, 1, 2)
        on = _number(args, 0, "on") >= 0.5
        port = _integer(args, 1, "reply_port") if len(args) == 2 else sender[1]
        if not 1 <= port <= 65535:
            raise BadArguments(f"reply_port must be 1..65535, got {port}")
        ports = self.subscribers.setdefault(sender[0], set())
        if on:
            ports.add(port)
            self.reply(sender, "/done", "/notify", 1, port)
        else:
            self.reply(sender, "/done", "/notify", 0, port)
            ports.discard(port)
            if not ports:
                del self.subscribers[sender[0]]

    def _render(self, sender, args, received):
        _count(args, 2)
        pitch = self.engine.check_pitch(_integer(args, 0, "pitch"))
        path = self.render_path(args[1])
        rate = self.engine.sample_rate

        def deliver(note: RenderedNote) -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            try:
                sf.write(tmp, note.audio, rate, subtype="FLOAT", format="WAV")
                os.replace(tmp, path)
            except Exception as e:  # noqa: BLE001
                Path(tmp).unlink(missing_ok=True)
                self.reply(sender, "/fail", "/render", f"cannot write {path}: {e}")
                return
            self.reply(sender, "/done", "/render", str(path))

        self.engine.render_note(pitch, deliver,
                                lambda reason: self.reply(sender, "/fail", "/render", reason))

    def render_path(self, name) -> Path:
        """The WAV path for a /render filename: inside the render directory, or BadArguments."""
        if not isinstance(name, str) or not name.strip():
            raise BadArguments(f"filename must be a non-empty string, got {name!r}")
        if "\0" in name:
            raise BadArguments("filename contains a NUL character")
        path = (self.render_dir / name)
        if not path.suffix:
            path = path.with_suffix(".wav")
        if path.suffix.lower() != ".wav":
            raise BadArguments(f"filename must end in .wav (or have no extension), got {name!r}")
        resolved = path.resolve()
        if not resolved.is_relative_to(self.render_dir) or resolved == self.render_dir:
            raise BadArguments(f"filename {name!r} points outside the render directory "
                               f"{self.render_dir}")
        if resolved.is_dir():
            raise BadArguments(f"{resolved} is a directory")
        return resolved

    def _quit(self, sender, args, received):
        _count(args, 0)
        self.reply(sender, "/done", "/quit")
        self.on_quit()


def _osc_value(value: Any):
    """int32, float32 or string: what every OSC client (Pd's [oscparse] too) reads."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value) if -2**31 <= value < 2**31 else float(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return str(value)


__all__ = ["OscServer"]
