"""Live server benchmark: note-on latency, underflows under dense playing, new-timbre time.

    python bench/live_latency.py [--notes 1000] [--dense-seconds 120] [--model DIR]
                                 [--output-buffer 50] [--skip PHASE ...]

Runs the real `gansynth-live` (a subprocess, the embedded default model unless --model)
on a private JACK dummy server (realtime when the system allows it, as a musician's JACK
runs; the table says which) and drives it over OSC (UDP 127.0.0.1) and JACK MIDI:

1. Note-on latency, measured by the server itself: message received (OSC: datagram read;
   MIDI: rtmidi callback) -> the audio callback mixing the note's first sample. Median,
   p99 and max over --notes notes, at blocksize 128 (JACK period 128) and 256 (period
   256), with the render worker idle and busy (a new anchor seed every second keeps it
   rendering). Target: within one block.
2. Underflows: --idle-seconds of silence (the baseline, same server: the cache is
   filling) then --dense-seconds of random playing at 10 notes/s while the timbre moves
   and the anchors change; on an idle machine, then with a CPU hog (a busy loop process)
   on one core. Target: 0. Phases 2 and 2b run twice: the mixer in the device's
   callback, then with --output-buffer MS (default 50; --output-buffer 0 skips it).
2b. Floods from a local sender (a separate process): 6,000 note messages/s, then ten bad
   65,500-byte bundles/s (5,457 messages each), each for --flood-seconds, then 1,000
   /notify requests each naming its own port; /status every 0.5 s all along, timed.
   Targets: no underflows beyond the idle baseline; /status within 50 ms.
2c. Start-up: seconds to "ready", the audio process's RSS, threads and whether
   TensorFlow is loaded in it; with --before DIR also for an earlier source tree.
3. A new timbre point: seconds from /timbre/seed until the point's whole pitch range is
   playable (/done), and the cache bytes per point.
4. Sustain: 16 notes played once each (sustain natural, struck again every 0.9 s) for
   --sustain-seconds, then 16 notes held for --sustain-seconds (sustain loop), same
   server: mean and max callback time per block, underflows, skipped audio, voices and
   cache bytes per note (a 1 s note at 48 kHz mono is 192,000 bytes without its seam).
"""
from __future__ import annotations

import argparse
import os
import queue
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pythonosc import osc_message
from pythonosc.osc_message_builder import OscMessageBuilder

ROOT = Path(__file__).resolve().parents[1]


# A private JACK dummy server ----------------------------------------------------------

class Jack:
    def __init__(self, period: int, rate: int = 48000):
        self.name = f"gl-bench-{os.getpid()}-{period}"
        self.env = dict(os.environ, JACK_DEFAULT_SERVER=self.name, JACK_NO_START_SERVER="1",
                        JACK_NO_AUDIO_RESERVATION="1")
        self.realtime = True
        for realtime in (True, False):
            flags = ["-R", "-P", "70"] if realtime else ["--no-realtime"]
            self.process = subprocess.Popen(
                ["jackd", "-n", self.name, *flags, "-d", "dummy", "-r", str(rate), "-p",
                 str(period)], env=self.env, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            if self._wait_up():
                self.realtime = realtime
                return
            self.process.kill()
            self.process.wait()
        raise RuntimeError("jackd did not start (install the Debian package jackd2)")

    def _wait_up(self) -> bool:
        for _ in range(100):
            if self.process.poll() is not None:
                return False
            r = subprocess.run(["jack_lsp", "-s", self.name, "system:playback_1"],
                               env=self.env, capture_output=True, text=True)
            if r.returncode == 0:
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


# The server and an OSC client -----------------------------------------------------------

class Server:
    def __init__(self, jack: Jack, blocksize: int, model: str | None, extra=(),
                 code: Path = ROOT):
        """`code`: the source tree whose gansynth_live runs (python -m puts it first)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.midi_name = f"gl-bench-midi-{self.port}"
        self.jack_name = jack.name
        args = [sys.executable, "-m", "gansynth_live.live", "--device", "system",
                "--blocksize", str(blocksize), "--osc-port", str(self.port),
                "--midi-virtual", self.midi_name, "--midi-api", "UNIX_JACK", *extra]
        if model:
            args += ["--model", model]
        self.process = subprocess.Popen(args, env=jack.env, cwd=code, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.started = time.perf_counter()
        for line in self.process.stdout:
            if line.startswith("ready: "):
                break
        else:
            raise RuntimeError(f"server did not start:\n{self.process.stderr.read()}")
        self.ready_seconds = time.perf_counter() - self.started
        threading.Thread(target=self.process.stderr.read, daemon=True).start()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._receive, daemon=True).start()

    def _receive(self) -> None:
        while True:
            try:
                data, _ = self.sock.recvfrom(65535)
            except OSError:
                return
            message = osc_message.OscMessage(data)
            self.replies.put((time.perf_counter(), message.address, message.params))

    def send(self, address: str, *args) -> None:
        builder = OscMessageBuilder(address)
        for arg in args:
            builder.add_arg(arg)
        self.sock.sendto(builder.build().dgram, ("127.0.0.1", self.port))

    def expect(self, address: str, first=None, timeout: float = 300.0):
        end = time.monotonic() + timeout
        while True:
            when, got, params = self.replies.get(timeout=max(0.01, end - time.monotonic()))
            if got == address and (first is None or (params and params[0] == first)):
                return when, params

    def status(self) -> dict:
        self.send("/status")
        _, params = self.expect("/status.reply")
        return dict(zip(params[::2], params[1::2]))

    def timed_status(self) -> tuple[float, dict]:
        """(seconds from sending /status to its reply, the status)."""
        sent = time.perf_counter()
        self.send("/status")
        when, params = self.expect("/status.reply", timeout=30)
        return when - sent, dict(zip(params[::2], params[1::2]))

    def process_facts(self) -> dict:
        """The audio process's resident memory (MiB), threads, and whether TensorFlow's
        library is mapped into it."""
        status = Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
        fields = dict(line.split(":", 1) for line in status if ":" in line)
        maps = Path(f"/proc/{self.process.pid}/maps").read_text()
        return {"rss_mib": int(fields["VmRSS"].split()[0]) / 1024,
                "threads": int(fields["Threads"]), "tensorflow": "tensorflow" in maps}

    def stop(self) -> None:
        self.send("/quit")
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.sock.close()


# Measurements ----------------------------------------------------------------------------

def keep_worker_busy(server: Server, stop: threading.Event) -> None:
    seed = 1000
    while not stop.wait(1.0):
        seed += 1
        server.send("/timbre/seed", 1, seed)
        server.send("/timbre/xy", random.random(), random.random())


def play_notes(server: Server, count: int, via: str, pitches: list[int]) -> None:
    midi_out = None
    if via == "midi":
        import mido
        os.environ.update(JACK_DEFAULT_SERVER=server.jack_name, JACK_NO_START_SERVER="1")
        backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK")
        target = next(p for p in backend.get_output_names()
                      if p.endswith(f":{server.midi_name}"))
        midi_out = backend.open_output(target)
        time.sleep(0.3)
    rng = random.Random(0)
    for i in range(count):
        pitch = rng.choice(pitches)
        if midi_out is not None:
            import mido
            midi_out.send(mido.Message("note_on", note=pitch, velocity=100))
        else:
            server.send("/note", pitch, 100, 0.05)
        time.sleep(0.02 + rng.random() * 0.01)  # ~40 notes/s, off the block grid
        if midi_out is not None:
            midi_out.send(mido.Message("note_off", note=pitch))
    if midi_out is not None:
        midi_out.close()


def latency_row(model, blocksize: int, via: str, busy: bool, notes: int) -> dict:
    jack = Jack(blocksize)
    try:
        server = Server(jack, blocksize, model)
        try:
            pitches = list(range(36, 85))
            stop = threading.Event()
            if busy:
                threading.Thread(target=keep_worker_busy, args=(server, stop),
                                 daemon=True).start()
                time.sleep(1.5)
            play_notes(server, notes, via, pitches)
            stop.set()
            time.sleep(0.3)
            status = server.status()
        finally:
            server.stop()
    finally:
        jack.stop()
    block_ms = blocksize / 48.0
    return {"blocksize": blocksize, "via": via, "worker": "busy" if busy else "idle",
            "notes": status["notes"], "median": status["latency_ms_median"],
            "p99": status["latency_ms_p99"], "max": status["latency_ms_max"],
            "block": block_ms, "underflows": status["underflows"],
            "misses": status["cache_misses"], "jack_rt": jack.realtime,
            "late_wakeups": status["late_wakeups"], "max_gap": status["max_callback_gap_ms"]}


HOG = "while True: pass"


def cpu_hog() -> subprocess.Popen:
    """A busy loop pinned to the last core: another job on the machine."""
    hog = subprocess.Popen([sys.executable, "-c", HOG])
    os.sched_setaffinity(hog.pid, {max(os.sched_getaffinity(0))})
    return hog


def dense_run(model, idle_seconds: float, dense_seconds: float, hog: bool = False,
              extra=()) -> dict:
    jack = Jack(256)
    hogger = None
    try:
        server = Server(jack, 256, model, extra)
        hogger = cpu_hog() if hog else None
        try:
            time.sleep(idle_seconds)
            idle = server.status()
            rng = random.Random(1)
            start = time.perf_counter()
            next_seed = start + 10.0
            n = 0
            while time.perf_counter() - start < dense_seconds:
                server.send("/note", rng.randrange(36, 85), rng.randrange(40, 128),
                            rng.uniform(0.05, 0.8))
                if n % 5 == 0:
                    server.send("/timbre/xy", rng.random(), rng.random())
                if time.perf_counter() > next_seed:
                    server.send("/timbre/seed", rng.randrange(4), rng.randrange(10**6))
                    next_seed += 10.0
                n += 1
                time.sleep(0.1)
            dense = server.status()
        finally:
            server.stop()
    finally:
        if hogger is not None:
            hogger.kill()
            hogger.wait()
        jack.stop()
    return {"idle": idle, "dense": dense, "notes": n, "jack_rt": jack.realtime,
            "idle_seconds": idle_seconds, "dense_seconds": dense_seconds, "hog": hog}


# Floods from a local sender (its own process, as a hostile program would be) ----------

FLOOD = r"""
import socket, struct, sys, time
port, kind, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
target = ("127.0.0.1", port)
def msg(address, *ints):
    def pad(b): return b + b"\0" * (4 - len(b) % 4)
    return pad(address.encode()) + pad(("," + "i" * len(ints)).encode()) + b"".join(
        struct.pack(">i", i) for i in ints)
if kind == "notes":      # 6,000 note messages a second: note-on and note-off pairs
    rate, batch = 6000, 60
    datagrams = [msg("/note_on", 48 + i % 24, 100) if i % 2 == 0 else
                 msg("/note_off", 48 + (i - 1) % 24) for i in range(batch)]
elif kind == "bundles":  # ten 65,500-byte bundles a second of 5,457 bad messages each
    rate, batch = 10, 1
    bad = msg("/x")
    datagrams = [b"#bundle\0" + b"\0" * 8 + (struct.pack(">i", len(bad)) + bad) * 5457]
start = time.perf_counter()
sent = 0
while time.perf_counter() - start < seconds:
    for d in datagrams:
        try:
            sock.sendto(d, target)
        except OSError:
            pass
    sent += len(datagrams)
    delay = start + sent / rate - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
print(sent)
"""


def notify_ports(server: Server, ports: int) -> None:
    """`ports` /notify requests, each from its own socket naming its own reply port."""
    for i in range(ports):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            builder = OscMessageBuilder("/notify")
            builder.add_arg(1)
            builder.add_arg(20000 + i)
            s.sendto(builder.build().dgram, ("127.0.0.1", server.port))


def poll_status(server: Server, seconds: float, every: float = 0.5) -> tuple[list, dict]:
    """/status round trips every `every` seconds for `seconds`; (their times, the last)."""
    times, status = [], {}
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        took, status = server.timed_status()
        times.append(took)
        time.sleep(every)
    return times, status


def flood_run(model, idle_seconds: float, seconds: float, extra=()) -> dict:
    jack = Jack(256)
    rows = {}
    try:
        server = Server(jack, 256, model, extra)
        try:
            times, before = poll_status(server, idle_seconds)
            rows["idle (baseline)"] = (before, times, 0, dict(before))
            first = before
            for name, kind in (("6,000 note msg/s", "notes"),
                               ("10 bad 64 KB bundles/s", "bundles")):
                sender = subprocess.Popen(
                    [sys.executable, "-c", FLOOD, str(server.port), kind, str(seconds)],
                    stdout=subprocess.PIPE, text=True)
                times, after = poll_status(server, seconds)
                sent = int(sender.communicate()[0])
                rows[name] = (before, times, sent, after)
                before = after
            notify_ports(server, 1000)
            times, after = poll_status(server, seconds)
            rows["1,000 /notify ports"] = (before, times, 1000, after)
            server.send("/all_notes_off")
        finally:
            server.stop()
    finally:
        jack.stop()
    return {"rows": rows, "first": first, "seconds": seconds, "jack_rt": jack.realtime}


def startup_run(model, code: Path, extra=()) -> dict:
    jack = Jack(256)
    try:
        server = Server(jack, 256, model, extra, code=code)
        try:
            facts = server.process_facts()
        finally:
            server.stop()
    finally:
        jack.stop()
    return {"ready_seconds": server.ready_seconds, **facts}


def new_point_run(model, repeats: int) -> dict:
    jack = Jack(256)
    try:
        server = Server(jack, 256, model)
        try:
            times = []
            for i in range(repeats):
                sent = time.perf_counter()
                server.send("/timbre/seed", 0, 5000 + i)
                when, _ = server.expect("/done", "/timbre/seed")
                times.append(when - sent)
            status = server.status()
        finally:
            server.stop()
    finally:
        jack.stop()
    per_note = status["cache_bytes"] / max(1, status["cache_entries"])
    return {"seconds": times, "bytes_per_note": per_note, "ready_seconds": server.ready_seconds,
            "bytes_per_point": per_note * status["pitches"]}


def sustain_run(model, seconds: float) -> dict:
    """Phase 1: 16 notes in sustain natural, struck again every 0.9 s (each plays its 1 s
    rendered note once); phase 2: the same 16 pitches held in sustain loop. Both keep
    about 16 voices sounding: what differs is reading through the loop."""
    pitches = list(range(36, 84, 3))  # 16 pitches, C2..A5
    jack = Jack(256)
    try:
        server = Server(jack, 256, model)
        try:
            time.sleep(2.0)  # let the first neighbours render
            phases = {}
            server.send("/sustain_mode", "natural")
            before = server.status()
            end = time.perf_counter() + seconds
            voices = []
            while time.perf_counter() < end:
                for pitch in pitches:
                    server.send("/note_on", pitch, 100)
                time.sleep(0.45)
                voices.append(server.status()["voices"])
                time.sleep(0.45)
            phases["16 notes, natural, struck every 0.9 s"] = (before, server.status(), voices)
            server.send("/all_notes_off")
            server.send("/sustain_mode", "loop")
            time.sleep(1.0)
            before = server.status()
            for pitch in pitches:
                server.send("/note_on", pitch, 100)
            end = time.perf_counter() + seconds
            voices = []
            while time.perf_counter() < end:
                time.sleep(0.9)
                voices.append(server.status()["voices"])
            phases["16 notes held, loop"] = (before, server.status(), voices)
            server.send("/all_notes_off")
        finally:
            server.stop()
    finally:
        jack.stop()
    return {"phases": phases, "seconds": seconds, "jack_rt": jack.realtime}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model directory (default: the embedded default model)")
    p.add_argument("--notes", type=int, default=1000)
    p.add_argument("--idle-seconds", type=float, default=30.0)
    p.add_argument("--dense-seconds", type=float, default=120.0)
    p.add_argument("--repeats", type=int, default=5, help="new-timbre measurements")
    p.add_argument("--sustain-seconds", type=float, default=60.0)
    p.add_argument("--flood-seconds", type=float, default=10.0)
    p.add_argument("--before", type=Path, metavar="DIR",
                   help="also measure start-up from this source tree (an export of an "
                        "earlier commit: git archive COMMIT | tar -x -C DIR)")
    p.add_argument("--output-buffer", type=float, default=50.0, metavar="MS",
                   help="also run the dense, hog and flood phases with --output-buffer MS "
                        "(default 50; 0: only the callback)")
    p.add_argument("--skip", nargs="*", default=[],
                   choices=["latency", "dense", "hog", "flood", "startup", "timbre",
                            "sustain"])
    args = p.parse_args()
    print(f"machine: {os.cpu_count()} cores; model: {args.model or 'embedded default'}")

    if "latency" not in args.skip:
        rows = [latency_row(args.model, block, via, busy, args.notes)
                for block in (128, 256) for via in ("osc", "midi") for busy in (False, True)]
        print(f"\n## Note-on latency (ms; message received -> first sample mixed; "
              f"JACK realtime: {rows[0]['jack_rt']})\n")
        print("| blocksize (1 block) | input | render worker | notes | median | p99 | max "
              "| within 1 block | cache misses | underflows | late callback wake-ups "
              "| max gap between callbacks |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            ok = "yes" if r["max"] <= r["block"] else f"p99 {'yes' if r['p99'] <= r['block'] else 'no'}"
            print(f"| {r['blocksize']} ({r['block']:.2f} ms) | {r['via']} | {r['worker']} "
                  f"| {r['notes']} | {r['median']:.2f} | {r['p99']:.2f} | {r['max']:.2f} "
                  f"| {ok} | {r['misses']} | {r['underflows']} | {r['late_wakeups']} "
                  f"| {r['max_gap']:.1f} |")

    outputs = [("callback", ())]
    if args.output_buffer > 0:
        outputs.append((f"buffer {args.output_buffer:g} ms",
                        ("--output-buffer", f"{args.output_buffer:g}")))
    dense_runs = [(hog, output) for hog in (False, True) for output in outputs
                  if ("hog" if hog else "dense") not in args.skip]
    if dense_runs:
        print("\n## Underflows under dense playing (blocksize 256)\n")
        print("| machine | output | phase | seconds | notes | underflows | skipped ms "
              "| late callbacks | max callback ms | renders | render errors | cache misses "
              "| output latency ms | audio thread real-time | JACK realtime |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for hog, (output, extra) in dense_runs:
        d = dense_run(args.model, args.idle_seconds, args.dense_seconds, hog, extra)
        idle, dense = d["idle"], d["dense"]
        machine = "CPU hog on one core" if hog else "idle"
        rt = f"{dense.get('audio_realtime', '-')} | {d['jack_rt']}"
        latency = f"{dense['output_latency_ms']:.1f}"
        print(f"| {machine} | {output} | baseline: cache filling | {d['idle_seconds']:g} | 0 "
              f"| {idle['underflows']} | {idle['skipped_ms']:.1f} | {idle['late_callbacks']} "
              f"| {idle['max_callback_ms']:.2f} | {idle['renders']} "
              f"| {idle['render_errors']} | 0 | {latency} | {rt} |")
        print(f"| {machine} | {output} | dense: 10 notes/s, timbre moving "
              f"| {d['dense_seconds']:g} | {d['notes']} "
              f"| {dense['underflows'] - idle['underflows']} "
              f"| {dense['skipped_ms'] - idle['skipped_ms']:.1f} "
              f"| {dense['late_callbacks'] - idle['late_callbacks']} "
              f"| {dense['max_callback_ms']:.2f} | {dense['renders'] - idle['renders']} "
              f"| {dense['render_errors']} | {dense['cache_misses']} | {latency} | {rt} |")

    for output, extra in (outputs if "flood" not in args.skip else []):
        f = flood_run(args.model, args.flood_seconds, args.flood_seconds, extra)
        print(f"\n## Floods from a local sender ({output}, blocksize 256, {f['seconds']:g} s "
              f"each, JACK realtime: {f['jack_rt']})\n")
        print("| phase | sent | underflows | skipped ms | late callbacks | /status replies "
              "| /status median ms | max ms | messages handled | dropped over the rate "
              "| malformed | /fail dropped | subscriptions |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name, (before, times, sent, after) in f["rows"].items():
            d = {k: after.get(k, 0) - before.get(k, 0) for k in after
                 if isinstance(after.get(k), (int, float))}
            if name.startswith("idle"):
                d = {k: after.get(k, 0) - f["first"].get(k, 0) for k in d}
            print(f"| {name} | {sent} | {d['underflows']} | {d['skipped_ms']:.1f} "
                  f"| {d['late_callbacks']} | {len(times)} "
                  f"| {statistics.median(times) * 1000:.1f} | {max(times) * 1000:.1f} "
                  f"| {d['osc_messages']} | {d['osc_dropped_rate']} | {d['osc_malformed']} "
                  f"| {d['osc_dropped_fails']} | {after['osc_subscriptions']} |")

    if "startup" not in args.skip:
        store = tempfile.mkdtemp(prefix="gl-bench-store-")
        trees = [("this tree, first start (renders the first point)", ROOT,
                  ("--note-store", store)),
                 ("this tree, next start (first point stored)", ROOT, ("--note-store", store))]
        if args.before:
            trees.append(("--before tree", args.before, ()))
        print("\n## Start-up (JACK dummy server, blocksize 256)\n")
        print("| code | start to ready (s) | audio-process RSS (MiB) | threads "
              "| TensorFlow in the audio process |")
        print("|---|---|---|---|---|")
        for name, code, extra in trees:
            r = startup_run(args.model, code, extra)
            print(f"| {name} | {r['ready_seconds']:.1f} | {r['rss_mib']:.0f} "
                  f"| {r['threads']} | {'yes' if r['tensorflow'] else 'no'} |")

    if "timbre" not in args.skip:
        t = new_point_run(args.model, args.repeats)
        print("\n## A new timbre point\n")
        print("| start-up to ready (s) | new point playable: median (s) | min | max "
              "| cache bytes per note | per point |")
        print("|---|---|---|---|---|---|")
        print(f"| {t['ready_seconds']:.1f} | {statistics.median(t['seconds']):.2f} "
              f"| {min(t['seconds']):.2f} | {max(t['seconds']):.2f} "
              f"| {t['bytes_per_note']:,.0f} | {t['bytes_per_point'] / 2**20:.1f} MiB |")

    if "sustain" not in args.skip:
        r = sustain_run(args.model, args.sustain_seconds)
        print(f"\n## Sustain: held notes against short ones (blocksize 256, "
              f"{r['seconds']:g} s each, JACK realtime: {r['jack_rt']})\n")
        print("| phase | voices (min-max) | mean callback ms | max callback ms (so far) "
              "| underflows | skipped ms | cache bytes per note |")
        print("|---|---|---|---|---|---|---|")
        for name, (before, after, voices) in r["phases"].items():
            calls = max(1, after["callbacks"] - before["callbacks"])
            mean = (after["callback_ms_total"] - before["callback_ms_total"]) / calls
            print(f"| {name} | {min(voices)}-{max(voices)} | {mean:.3f} "
                  f"| {after['max_callback_ms']:.2f} "
                  f"| {after['underflows'] - before['underflows']} "
                  f"| {after['skipped_ms'] - before['skipped_ms']:.1f} "
                  f"| {after['cache_bytes'] / max(1, after['cache_entries']):,.0f} |")


if __name__ == "__main__":
    main()
