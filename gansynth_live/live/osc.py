"""The OSC server: the address table of docs/gansynth-live.md over UDP.

One thread receives datagrams and handles them in order; handlers only validate and
call the engine, which never waits for rendering. Datagrams are decoded strictly
(`oscwire`: a cut-short argument, an unknown type tag or a broken bundle is refused,
never guessed at). Bundles run at once (time tags are ignored: a far-future tag must
not hold the server).

Replies (`replies.Replier`, its own thread): `/fail <address> <reason>` for anything
wrong, one per datagram (a bundle's first failure, with how many more there were);
`/done <address> ...` when an asynchronous command finished; `/status.reply name value
...`; `/synced id` for `/sync id`. Each goes to the client (host and port) that asked,
or to the ports it subscribed with `/notify 1 port` (`clients.Clients`).

Bounded work: messages beyond their class's rate (`RATES`: playing and shaping,
queries, subscriptions, each its own budget so that a flood of one leaves the others
answered) are dropped unread and counted, as are datagrams from hosts not allowed and
/fail replies beyond `FAIL_RATE`; see `counters` and /status.

Every integer argument also accepts an integral float (Pd sends every number as a
float). Listening beyond the loopback interface needs an allow-list: datagrams from
other hosts are dropped without a reply.
"""
from __future__ import annotations

import collections
import ipaddress
import socket
import threading
import time
from pathlib import Path
from typing import Callable

from gansynth_live.live.clients import Address, Clients
from gansynth_live.live.engine import Engine
from gansynth_live.live.oscwire import OscError, decode_message, peek_address, split_packet
from gansynth_live.live.ratelimit import RateLimit
from gansynth_live.live.render_files import RenderDir
from gansynth_live.live.replies import Replier
from gansynth_live.sustain import RenderedNote
from gansynth_live.validation import UDP_PORT, integer, number

MAX_DATAGRAM = 65535
CONTROL_RATE = (1000.0, 1000)  # messages per second, burst: playing and shaping
RATES = {"control": CONTROL_RATE, "query": (50.0, 50), "notify": (50.0, 50)}
CLASSES = {"/status": "query", "/sync": "query", "/quit": "query", "/notify": "notify"}
FAIL_RATE = (50.0, 50)         # /fail replies
MAX_SYNCS_WAITING = 64         # /sync ids one client may have waiting


class BadArguments(ValueError):
    pass


def _count(args: tuple, *allowed: int) -> None:
    if len(args) not in allowed:
        wanted = " or ".join(str(n) for n in allowed)
        raise BadArguments(f"expects {wanted} arguments, got {len(args)}")


def resolve(host: str, what: str) -> str:
    """The numeric address of `host` (IPv4 or IPv6); ValueError naming `what`."""
    try:
        return socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)[0][4][0]
    except (socket.gaierror, UnicodeError) as e:
        raise ValueError(f"{what}: cannot resolve {host!r}: {getattr(e, 'strerror', e)}") from None


def bind_udp(host: str, port: int) -> socket.socket:
    """A UDP socket bound to `host`:`port` (port 0 picks a free one); OSError naming both."""
    address = resolve(host, "--osc-host")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    try:
        sock.bind((address, port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen for OSC on {host}:{port}: {e.strerror}") from None
    return sock


def allow_list(host: str, allow: list[str]) -> set[str] | None:
    """None = everyone (a loopback bind only hears this machine); else the allowed hosts
    (the loopback addresses always among them). ValueError naming a host not resolved."""
    address = resolve(host, "--osc-host")
    if ipaddress.ip_address(address.split("%")[0]).is_loopback and not allow:
        return None
    return {"127.0.0.1", "::1", *(resolve(a, "--allow") for a in allow)}


class OscServer:
    """Serves `engine` on UDP `host`:`port` (port 0 picks a free one; see `.port`), or on
    `sock`, already bound (`bind_udp`). `clock` (monotonic seconds) is injectable."""

    def __init__(self, engine: Engine, *, host: str = "127.0.0.1", port: int = 57120,
                 sock: socket.socket | None = None, allow: list[str] | None = None,
                 render_dir: str | Path | RenderDir = "renders",
                 on_quit: Callable[[], None] = lambda: None,
                 extra_status: Callable[[], dict] = dict,
                 log: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.monotonic):
        self.engine = engine
        self.on_quit = on_quit
        self.extra_status = extra_status
        self.log = log
        self.allowed = allow_list(host, allow or [])
        self.render_files = (render_dir if isinstance(render_dir, RenderDir)
                             else RenderDir(render_dir))
        self.render_dir = self.render_files.path
        self.socket = sock or bind_udp(host, port)
        self.host, self.port = self.socket.getsockname()[:2]
        self.clients = Clients(clock)
        self.replier = Replier(self.socket, self.clients, log)
        self.limits = {name: RateLimit(*rate, clock) for name, rate in RATES.items()}
        self._fail_limit = RateLimit(*FAIL_RATE, clock)
        self.counters = collections.Counter(messages=0, failures=0, malformed=0,
                                            dropped_host=0, dropped_rate=0, dropped_fails=0)
        self._lock = threading.Lock()  # the async bookkeeping: OSC, worker, reply threads
        self._pending_ready: dict[str, tuple[Address, tuple]] = {}
        self._ready_waiting: list[Address] = []
        self._async: collections.Counter[Address] = collections.Counter()
        self._syncs: dict[Address, list[int]] = {}
        self._thread = threading.Thread(target=self._serve, name="osc-server", daemon=True)
        self._closing = False
        self.handlers: dict[str, Callable[[Address, tuple, float], None]] = {
            "/note_on": self._note_on, "/note_off": self._note_off, "/note": self._note,
            "/all_notes_off": self._all_notes_off, "/sustain": self._sustain,
            "/pitch_bend": self._pitch_bend, "/timbre/seed": self._seed, "/timbre/z": self._z,
            "/timbre/xy": self._xy, "/timbre/pca": self._pca,
            "/envelope": self._envelope, "/gain": self._gain,
            "/sustain_mode": self._sustain_mode,
            "/status": self._status, "/notify": self._notify, "/sync": self._sync,
            "/render": self._render, "/quit": self._quit,
        }

    def start(self) -> None:
        self.replier.start()
        self._thread.start()

    def close(self) -> None:
        self._closing = True
        try:
            self.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(2.0)
        self.replier.close()
        self.socket.close()
        self.render_files.close()

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
                self.handle_datagram(data, sender[:2])
            except Exception as e:  # noqa: BLE001 - never let one datagram end the server
                self.log(f"osc: internal error on a datagram from {sender}: "
                         f"{type(e).__name__}: {e}")

    def handle_datagram(self, data: bytes, sender: Address) -> None:
        """Handle one datagram from `sender` (host, port); public for tests and tools."""
        received = time.perf_counter()
        if self.allowed is not None and sender[0] not in self.allowed:
            self.counters["dropped_host"] += 1
            return
        self.clients.heard(sender)
        try:
            frames = split_packet(data)
        except OscError as e:
            self.counters["malformed"] += 1
            self._fail(sender, "", f"malformed OSC packet ({len(data)} bytes): {e}")
            return
        first_failure, failures = None, 0
        for frame in frames:
            address = peek_address(frame)
            if not self.limits[CLASSES.get(address, "control")].allow():
                self.counters["dropped_rate"] += 1
                continue
            try:
                message = decode_message(frame)
            except OscError as e:
                self.counters["malformed"] += 1
                failure = (e.address, f"malformed OSC message: {e}")
            else:
                self.counters["messages"] += 1
                failure = self._run(message.address, message.args, sender, received)
            if failure is not None:
                failures += 1
                first_failure = first_failure or failure
        if first_failure is not None:
            address, reason = first_failure
            if failures > 1:
                reason += f" (and {failures - 1} more failures in this bundle)"
            self._fail(sender, address, reason)

    def _run(self, address: str, args: tuple, sender: Address, received: float
             ) -> tuple[str, str] | None:
        """Run one message; (address, reason) if it failed."""
        handler = self.handlers.get(address)
        try:
            if handler is None:
                raise BadArguments("unknown address; see /status and the docs' table")
            handler(sender, args, received)
        except ValueError as e:  # BadArguments, or the engine's checks
            self.counters["failures"] += 1
            return address, str(e)
        return None

    # Replying --------------------------------------------------------------------------

    def reply(self, sender: Address, address: str, *args) -> None:
        self.replier.reply(sender, address, *args)

    def _fail(self, sender: Address, address: str, reason: str) -> None:
        if self._fail_limit.allow():
            self.replier.fail(sender, address, reason)
        else:
            self.counters["dropped_fails"] += 1

    def _async_started(self, sender: Address) -> None:
        with self._lock:
            self._async[sender] += 1

    def _async_finished(self, sender: Address) -> None:
        """An asynchronous command of `sender` is answered: its waiting /syncs may be too
        (queued after that answer, so they arrive after it)."""
        with self._lock:
            self._async[sender] -= 1
            if self._async[sender] > 0:
                return
            del self._async[sender]
            ids = self._syncs.pop(sender, [])
        for sync_id in ids:
            self.reply(sender, "/synced", sync_id)

    def _when_ready(self, sender: Address, address: str, args: tuple) -> None:
        """Answer `/done address args` once the timbre is playable (only the latest per
        address is answered; every one counts as finished for /sync)."""
        self._async_started(sender)
        with self._lock:
            self._pending_ready[address] = (sender, args)
            self._ready_waiting.append(sender)

        def answer():
            with self._lock:
                pending, self._pending_ready = self._pending_ready, {}
                waiting, self._ready_waiting = self._ready_waiting, []
            for addr, (who, what) in pending.items():
                self.reply(who, "/done", addr, *what)
            for who in waiting:
                self._async_finished(who)
        self.engine.when_ready(answer)

    # Handlers: (sender (host, port), OSC arguments, perf_counter time received) ---------

    def _note_on(self, sender, args, received):
        _count(args, 2)
        self.engine.note_on(integer("pitch", args[0]), integer("velocity", args[1]),
                            received=received)

    def _note(self, sender, args, received):
        _count(args, 3)
        self.engine.note_on(integer("pitch", args[0]), integer("velocity", args[1]),
                            duration=number("duration", args[2]), received=received)

    def _note_off(self, sender, args, received):
        _count(args, 1)
        self.engine.note_off(integer("pitch", args[0]))

    def _all_notes_off(self, sender, args, received):
        _count(args, 0)
        self.engine.all_notes_off()

    def _sustain(self, sender, args, received):
        _count(args, 1)
        self.engine.sustain(number("sustain", args[0]) >= 0.5)

    def _pitch_bend(self, sender, args, received):
        _count(args, 1)
        self.engine.pitch_bend(number("semitones", args[0]))

    def _seed(self, sender, args, received):
        _count(args, 2)
        anchor, seed = integer("anchor", args[0]), integer("seed", args[1])
        self.engine.set_seed(anchor, seed)
        self._when_ready(sender, "/timbre/seed", (anchor, seed))

    def _z(self, sender, args, received):
        size = self.engine.facts.latent_size
        _count(args, size + 1)
        anchor = integer("anchor", args[0])
        z = [number(f"z[{i - 1}]", args[i]) for i in range(1, size + 1)]
        self.engine.set_z(anchor, z)
        self._when_ready(sender, "/timbre/z", (anchor,))

    def _xy(self, sender, args, received):
        _count(args, 2)
        x, y = number("x", args[0]), number("y", args[1])
        self.engine.set_xy(x, y)
        self._when_ready(sender, "/timbre/xy", (x, y))

    def _pca(self, sender, args, received):
        """c1 .. ck: the GANSpace coefficients (the rest 0; none resets them)."""
        self.engine.set_pca(args)
        self._when_ready(sender, "/timbre/pca", tuple(float(c) for c in args))

    def _envelope(self, sender, args, received):
        _count(args, 4)
        self.engine.set_envelope(*(number(name, args[i]) for i, name in enumerate(
            ("attack_percent", "attack_slope", "release_percent", "release_slope"))))

    def _sustain_mode(self, sender, args, received):
        """One argument: "loop" or "natural", or a number (1 = loop, 0 = natural: a Pd
        toggle)."""
        _count(args, 1)
        mode = args[0]
        if not isinstance(mode, str):
            value = number("sustain_mode", mode)
            if value not in (0.0, 1.0):
                raise BadArguments(f"sustain_mode must be loop, natural, 1 or 0, got {value:g}")
            mode = "loop" if value else "natural"
        self.engine.set_sustain_mode(mode)

    def _gain(self, sender, args, received):
        _count(args, 1)
        self.engine.set_gain(number("gain", args[0]))

    def _status(self, sender, args, received):
        _count(args, 0)
        status = {**self.engine.status(), **self.extra_status(), **self.status()}
        flat = [item for pair in status.items() for item in pair]
        self.reply(sender, "/status.reply", *flat)

    def status(self) -> dict[str, int]:
        """The server's own /status fields."""
        c = self.counters
        return {"osc_messages": c["messages"], "osc_failures": c["failures"],
                "osc_malformed": c["malformed"], "osc_dropped_host": c["dropped_host"],
                "osc_dropped_rate": c["dropped_rate"], "osc_dropped_fails": c["dropped_fails"],
                "osc_dropped_replies": self.replier.dropped,
                "osc_subscriptions": len(self.clients),
                "osc_subscriptions_expired": self.clients.expired}

    def _notify(self, sender, args, received):
        _count(args, 1, 2)
        on = number("on", args[0]) >= 0.5
        port = integer("reply_port", args[1], *UDP_PORT) if len(args) == 2 else sender[1]
        if on:
            self.clients.subscribe(sender, port)
            self.reply(sender, "/done", "/notify", 1, port)
        else:
            self.reply(sender, "/done", "/notify", 0, port)
            self.replier.run(lambda: self.clients.unsubscribe(sender, port))

    def _sync(self, sender, args, received):
        """/sync id -> /synced id once every asynchronous command this client sent before
        it is answered (as scsynth's /sync)."""
        _count(args, 1)
        sync_id = integer("id", args[0], -2**31, 2**31 - 1)
        with self._lock:
            if self._async[sender] <= 0:
                self._async.pop(sender, None)
                waiting = None
            else:
                waiting = self._syncs.setdefault(sender, [])
                if len(waiting) >= MAX_SYNCS_WAITING:
                    raise BadArguments(f"{MAX_SYNCS_WAITING} /sync ids are already waiting")
                waiting.append(sync_id)
        if waiting is None:
            self.reply(sender, "/synced", sync_id)

    def _render(self, sender, args, received):
        _count(args, 2)
        pitch = self.engine.check_pitch(integer("pitch", args[0]))
        parts = self.render_files.parts(args[1])
        rate = self.engine.sample_rate

        def write(note: RenderedNote) -> None:  # on the reply thread
            try:
                path = self.render_files.write_wav(parts, note.audio, rate)
            except OSError as e:
                self.replier.send(sender, "/fail", "/render", f"cannot write "
                                  f"{self.render_files.full_path(parts)}: {e.strerror or e}")
            else:
                self.replier.send(sender, "/done", "/render", path)
            self._async_finished(sender)

        def fail(reason: str) -> None:
            self.replier.fail(sender, "/render", reason)
            self.replier.run(lambda: self._async_finished(sender))

        self._async_started(sender)
        try:
            self.engine.render_note(pitch, lambda note: self.replier.run(lambda: write(note)),
                                    fail)
        except ValueError:
            self._async_finished(sender)
            raise

    def _quit(self, sender, args, received):
        _count(args, 0)
        self.reply(sender, "/done", "/quit")
        self.on_quit()


__all__ = ["OscServer", "allow_list", "bind_udp", "resolve"]
