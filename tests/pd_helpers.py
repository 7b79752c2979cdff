"""Run real Pure Data (headless) against OSC peers: helpers for the Pd patch tests.

The pieces, all usable with the real live server as well as with `FakeOscServer`:

- `PD`: the `pd` binary (None when Pure Data is not installed; tests then skip).
- `free_udp_port()`: a free UDP port on 127.0.0.1.
- `PdSession`: starts `pd -nogui -nosound -nomidi -stderr` with a harness patch (written into a
  temporary folder) and optionally other patches; collects Pd's stderr lines in a thread.
  The harness listens for FUDI text on a UDP control port:
    `gs <message>`          -> the inlet of the harness's own [gansynth host port reply_port]
    `to <receiver> <args>`  -> [send <receiver>] (e.g. `to #key 97` is a computer key press,
                               `to #notein 60 100 1` a MIDI note, `to xypad-x 0.3` a slider)
    `click <receiver>`      -> a bang to [send <receiver>] (what a click on a toggle does)
    `arraysize <name>`      -> prints `ARRAY: <name> size <n>`
    `tabread <name> <i>`    -> prints `TAB: <name> <i> <value>`
  and everything the [gansynth] outlet emits is printed as `GS: <message>`.
- `FakeOscServer`: a UDP OSC peer on 127.0.0.1 that records every message (address, args) and
  answers like the live server (/status.reply, /done /render <path> with a real WAV file).
- `run_pd_harness(commands, server_port, reply_port)`: one call that starts Pd with the
  harness, sends `commands` (FUDI strings, optionally ("sleep", seconds)), and returns the
  `GS:` outlet messages plus all of Pd's stderr.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

PD = shutil.which("pd")
PD_DIR = Path(__file__).resolve().parent.parent / "pd"
ERROR_RE = re.compile(r"error|couldn't create|bad arguments|no method|can't", re.IGNORECASE)


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _PatchText:
    """Minimal writer of Pd patch text with named boxes."""

    def __init__(self):
        self.lines = ["#N canvas 0 0 700 500 12;"]
        self.index = {}
        self.conns = []

    def box(self, name, kind, x, y, text):
        self.index[name] = len(self.index)
        self.lines.append(f"#X {kind} {x} {y} {text};")

    def connect(self, a, outlet, b, inlet=0):
        self.conns.append(f"#X connect {self.index[a]} {outlet} {self.index[b]} {inlet};")

    def text(self):
        return "\n".join(self.lines + self.conns) + "\n"


def harness_patch(control_port: int, server_port: int | None = None,
                  reply_port: int | None = None, host: str = "127.0.0.1") -> str:
    """Text of the harness patch. With server_port it holds [gansynth host server_port reply_port]."""
    p = _PatchText()
    p.box("nr", "obj", 10, 10, f"netreceive -u {control_port}")
    p.box("route", "obj", 10, 40, "route gs to arraysize tabread quit click")
    p.connect("nr", 0, "route")
    # to <receiver> args...: set [s]'s target (right inlet) first, then send the rest
    p.box("to_l", "obj", 200, 70, "list append")
    p.box("to_t", "obj", 200, 100, "t a a")
    p.box("to_name", "obj", 280, 130, "list split 1")
    p.box("to_sym", "obj", 280, 160, "symbol")
    p.box("to_rest", "obj", 200, 190, "list split 1")
    p.box("to_s", "obj", 200, 220, "s")
    p.connect("route", 1, "to_l")
    p.connect("to_l", 0, "to_t")
    p.connect("to_t", 1, "to_name")
    p.connect("to_name", 0, "to_sym")
    p.connect("to_sym", 0, "to_s", 1)
    p.connect("to_t", 0, "to_rest")
    p.connect("to_rest", 1, "to_s")
    p.connect("to_rest", 2, "to_s")
    # arraysize <name> -> "ARRAY: <name> size <n>"
    p.box("as_sym", "obj", 350, 70, "symbol")
    p.box("as_t", "obj", 350, 100, "t b s")
    p.box("as_size", "obj", 350, 130, "array size")
    p.box("as_p1", "obj", 350, 160, "list prepend size")
    p.box("as_p2", "obj", 350, 190, "list prepend")
    p.box("as_trim", "obj", 350, 220, "list trim")
    p.box("as_print", "obj", 350, 250, "print ARRAY")
    p.connect("route", 2, "as_sym")
    p.connect("as_sym", 0, "as_t")
    p.connect("as_t", 1, "as_size", 1)
    p.connect("as_t", 1, "as_p2", 1)
    p.connect("as_t", 0, "as_size")
    p.connect("as_size", 0, "as_p1")
    p.connect("as_p1", 0, "as_p2")
    p.connect("as_p2", 0, "as_trim")
    p.connect("as_trim", 0, "as_print")
    # tabread <name> <i> -> "TAB: <name> <i> <value>"
    p.box("tr_l", "obj", 500, 70, "list append")
    p.box("tr_t", "obj", 500, 100, "t a a")
    p.box("tr_name", "obj", 580, 130, "list split 1")
    p.box("tr_sym", "obj", 580, 160, "symbol")
    p.box("tr_set", "msg", 580, 190, "set \\$1")
    p.box("tr_rest", "obj", 500, 130, "list split 1")
    p.box("tr_ft", "obj", 500, 160, "t f f")
    p.box("tr_tab", "obj", 500, 220, "tabread")
    p.box("tr_pack", "obj", 500, 250, "pack f f")
    p.box("tr_swap", "msg", 500, 280, "\\$2 \\$1")
    p.box("tr_pre", "obj", 500, 310, "list prepend")
    p.box("tr_trim", "obj", 500, 340, "list trim")
    p.box("tr_print", "obj", 500, 370, "print TAB")
    p.connect("route", 3, "tr_l")
    p.connect("tr_l", 0, "tr_t")
    p.connect("tr_t", 1, "tr_name")
    p.connect("tr_name", 0, "tr_sym")
    p.connect("tr_sym", 0, "tr_set")
    p.connect("tr_sym", 0, "tr_pre", 1)
    p.connect("tr_set", 0, "tr_tab")
    p.connect("tr_t", 0, "tr_rest")
    p.connect("tr_rest", 1, "tr_ft")
    p.connect("tr_ft", 1, "tr_pack", 1)
    p.connect("tr_ft", 0, "tr_tab")
    p.connect("tr_tab", 0, "tr_pack")
    p.connect("tr_pack", 0, "tr_swap")
    p.connect("tr_swap", 0, "tr_pre")
    p.connect("tr_pre", 0, "tr_trim")
    p.connect("tr_trim", 0, "tr_print")
    # quit
    p.box("quit", "msg", 600, 40, "\\; pd quit")
    p.connect("route", 4, "quit")
    # click <receiver>: set [s]'s target, then bang it
    p.box("cl_sym", "obj", 650, 70, "symbol")
    p.box("cl_t", "obj", 650, 100, "t b s")
    p.box("cl_s", "obj", 650, 130, "s")
    p.connect("route", 5, "cl_sym")
    p.connect("cl_sym", 0, "cl_t")
    p.connect("cl_t", 1, "cl_s", 1)
    p.connect("cl_t", 0, "cl_s")
    # ready marker
    p.box("lb", "obj", 10, 400, "loadbang")
    p.box("ready", "msg", 10, 430, "HARNESS-READY")
    p.box("print", "obj", 10, 460, "print")
    p.connect("lb", 0, "ready")
    p.connect("ready", 0, "print")
    if server_port is not None:
        rp = reply_port if reply_port is not None else 0
        p.box("gs", "obj", 10, 250, f"gansynth {host} {server_port} {rp}")
        p.box("gsprint", "obj", 10, 280, "print GS")
        p.connect("route", 0, "gs")
        p.connect("gs", 0, "gsprint")
    return p.text()


class PdSession:
    """A headless Pd process running the harness (and optionally other patches)."""

    def __init__(self, workdir: str | os.PathLike | None = None, server_port: int | None = None,
                 reply_port: int | None = None, open_patches=(), extra_paths=(), host="127.0.0.1"):
        if PD is None:
            raise RuntimeError("pd is not installed")
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="pdharness-")
            workdir = self._tmp.name
        self.workdir = Path(workdir)
        self.control_port = free_udp_port()
        self.harness = self.workdir / "harness.pd"
        self.harness.write_text(harness_patch(self.control_port, server_port, reply_port, host))
        self.lines: list[str] = []
        self._cond = threading.Condition()
        cmd = [PD, "-nogui", "-nosound", "-nomidi", "-stderr", "-noprefs",
               "-path", str(PD_DIR)]
        for p in extra_paths:
            cmd += ["-path", str(p)]
        for p in open_patches:
            cmd += ["-open", str(p)]
        cmd += ["-open", str(self.harness)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, cwd=str(self.workdir), text=True,
                                     errors="replace")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if not self.wait_for(lambda l: "HARNESS-READY" in l, timeout=10):
            self.close()
            raise RuntimeError("Pd did not start the harness:\n" + "\n".join(self.lines))

    def _read(self):
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def send(self, fudi: str):
        """Send one FUDI message (without the trailing ';') to the harness."""
        self._sock.sendto((fudi.rstrip(";") + ";\n").encode(), ("127.0.0.1", self.control_port))

    def wait_for(self, pred, timeout=5.0, start=0) -> str | None:
        """Wait for a stderr line (from index `start`) matching pred; return it or None."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    if pred(line):
                        return line
                left = end - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return None
                self._cond.wait(min(left, 0.1))

    def outlet(self) -> list[str]:
        """Messages the harness's [gansynth] outlet emitted, in order ("GS: " stripped)."""
        with self._cond:
            return [l[4:] for l in self.lines if l.startswith("GS: ")]

    def errors(self) -> list[str]:
        """Pd's own error lines. What the patches print (`GS: ...` from the harness,
        `gansynth-status: ...` from the examples, e.g. `status render_errors 0`) is data."""
        with self._cond:
            return [l for l in self.lines if ERROR_RE.search(l)
                    and not l.startswith(("GS: ", "gansynth-status: "))]

    def array_size(self, name: str, timeout=3.0) -> int | None:
        start = len(self.lines)
        self.send(f"arraysize {name}")
        line = self.wait_for(lambda l: l.startswith(f"ARRAY: {name} size"), timeout, start)
        return int(float(line.split()[-1])) if line else None

    def tabread(self, name: str, index: int, timeout=3.0) -> float | None:
        start = len(self.lines)
        self.send(f"tabread {name} {index}")
        line = self.wait_for(lambda l: l.startswith(f"TAB: {name} {index} "), timeout, start)
        return float(line.split()[-1]) if line else None

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(timeout=2)
            except Exception:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._reader.join(timeout=2)
        self._sock.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_sine_wav(path, seconds=0.5, freq=440.0, sample_rate=16000, amplitude=0.5):
    import soundfile as sf
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    audio = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    sf.write(str(path), audio, sample_rate, subtype="FLOAT")
    return audio


class FakeOscServer:
    """A UDP OSC peer standing in for the live server: records messages, answers some.

    - `/notify 1 port` subscribes 127.0.0.1:port, `/notify 0` unsubscribes;
    - `/status` -> `/status.reply voices 2 cache_entries 61 sample_rate 48000 model default`;
    - `/render pitch name` writes a 440 Hz sine WAV `render_dir/name` and answers
      `/done /render <full path>`.
    Set `answer=False` to only record.
    """

    def __init__(self, render_dir=None, answer=True):
        from pythonosc.osc_message import OscMessage
        self._parse = OscMessage
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.messages: list[tuple[str, list]] = []
        self.reply_port: int | None = None
        self.render_dir = Path(render_dir) if render_dir else None
        self.answer = answer
        self._stop = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop:
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            msg = self._parse(data)
            with self._cond:
                self.messages.append((msg.address, list(msg.params)))
                self._cond.notify_all()
            if self.answer:
                self._handle(msg.address, list(msg.params))

    def reply(self, address, *args):
        from pythonosc.osc_message_builder import OscMessageBuilder
        if self.reply_port is None:
            return
        b = OscMessageBuilder(address)
        for a in args:
            b.add_arg(a)
        self.sock.sendto(b.build().dgram, ("127.0.0.1", self.reply_port))

    def _handle(self, address, args):
        if address == "/notify":
            self.reply_port = int(args[1]) if args and args[0] and len(args) > 1 else None
        elif address == "/status":
            self.reply("/status.reply", "voices", 2, "cache_entries", 61,
                       "sample_rate", 48000, "model", "default")
        elif address == "/render" and self.render_dir is not None:
            path = self.render_dir / str(args[1])
            write_sine_wav(path)
            self.reply("/done", "/render", str(path))

    def wait_for(self, address, timeout=5.0, count=1):
        end = time.monotonic() + timeout
        with self._cond:
            while sum(1 for a, _ in self.messages if a == address) < count:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
            return True

    def without_polling(self):
        """The recorded messages minus the abstraction's /notify and /status polls."""
        with self._cond:
            return [(a, p) for a, p in self.messages if a not in ("/notify", "/status")]

    def close(self):
        self._stop = True
        self.sock.close()
        self._thread.join(timeout=2)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_pd_harness(commands, server_port: int, reply_port: int | None = None,
                   settle: float = 0.5, host: str = "127.0.0.1"):
    """Start Pd with [gansynth host server_port reply_port], send FUDI `commands` to the harness
    (strings like "gs note_on 60 100"; ("sleep", s) pauses), wait `settle` seconds, quit.

    Returns (outlet_messages, stderr_lines). Works against the real live server as well.
    """
    with PdSession(server_port=server_port, reply_port=reply_port, host=host) as pd:
        for c in commands:
            if isinstance(c, tuple) and c[0] == "sleep":
                time.sleep(c[1])
            else:
                pd.send(c)
        time.sleep(settle)
        return pd.outlet(), list(pd.lines)


GANSYNTH_BOX = re.compile(r"^(#X obj -?\d+ -?\d+ gansynth)((?: [^;,]*)?)(;|,)", re.MULTILINE)


def example_copy(name: str, dest_dir, server_port: int, reply_port: int) -> Path:
    """Copy pd/<name> into dest_dir with its [gansynth ...] box pointed at 127.0.0.1:server_port
    and reply_port (so tests use free ports); the abstraction is still found through -path pd/."""
    text = (PD_DIR / name).read_text()
    new, n = GANSYNTH_BOX.subn(rf"\g<1> 127.0.0.1 {server_port} {reply_port}\g<3>", text)
    if n != 1:
        raise ValueError(f"{name}: expected one [gansynth] box, found {n}")
    out = Path(dest_dir) / name
    out.write_text(new)
    return out
