"""gansynth-live: play a GANSynth model live over OSC and MIDI.

    gansynth-live                                   # the embedded default model
    gansynth-live --model my_model --osc-port 57120 --midi-virtual --record set.wav

Start-up: load the model, render the first timbre point's whole pitch range, open the
audio stream, then listen for OSC (and MIDI). It prints one "ready: ..." line when it is
playable. Ctrl-C, SIGTERM or the OSC message /quit fade the notes out and stop cleanly
(the --record WAV is closed properly). Flags: docs/gansynth-live.md.
"""
from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading
import time
from pathlib import Path

from gansynth_live.live.ratelimit import LimitedLog
from gansynth_live.sustain import DEFAULT_SUSTAIN_MODE, SUSTAIN_MODES
from gansynth_live.validation import (MAX_BEND_RANGE, MAX_SEED, MIDI_CC, MIDI_CHANNEL,
                                      distinct_ccs, flag, integer, number)


MAX_OUTPUT_BUFFER_MS = 1000.0  # beyond a second a player hears the delay as an echo


def _integer(low: int | None = None, high: int | None = None):
    return flag(integer, int, low=low, high=high)


def _number(low: float | None = None, high: float | None = None, above: float | None = None):
    return flag(number, float, low=low, high=high, above=above)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gansynth-live", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model directory (gansynth-live or Magenta); default: "
                                   "the embedded default model")
    g = p.add_argument_group("OSC")
    g.add_argument("--osc-host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 = all interfaces)")
    g.add_argument("--osc-port", type=_integer(0, 65535), default=57120,
                   help="UDP port (default 57120; 0 = any free port)")
    g.add_argument("--allow", action="append", default=[], metavar="HOST",
                   help="a client host allowed when listening beyond 127.0.0.1 (repeatable)")
    g.add_argument("--render-dir", default="renders", type=Path,
                   help="where /render writes WAV files (default ./renders)")
    g = p.add_argument_group("MIDI")
    g.add_argument("--midi-in", metavar="NAME", help="open this MIDI input port (exact name "
                   "or a unique part of it; see --list-midi)")
    g.add_argument("--midi-virtual", nargs="?", const="gansynth-live", metavar="NAME",
                   help="create a virtual MIDI input port (default name gansynth-live)")
    g.add_argument("--midi-api", help="rtmidi API: LINUX_ALSA, UNIX_JACK, MACOSX_CORE, "
                                      "WINDOWS_MM (default: mido's choice)")
    g.add_argument("--midi-channel", type=_integer(*MIDI_CHANNEL), metavar="1..16",
                   help="listen to one channel only (default: all)")
    g.add_argument("--midi-cc-x", type=_integer(*MIDI_CC), default=1, help="CC number moving timbre x "
                                                            "(default 1, the mod wheel)")
    g.add_argument("--midi-cc-y", type=_integer(*MIDI_CC), default=2, help="CC number moving timbre y "
                                                            "(default 2)")
    g.add_argument("--midi-cc-pca", type=_integer(*MIDI_CC), nargs="+", default=[],
                   metavar="N", help="CC numbers driving GANSpace directions 1, 2, ... "
                                     "(value 64 = 0, 0..127 -> -3..3; default: none)")
    g.add_argument("--bend-range", type=_number(above=0.0, high=MAX_BEND_RANGE),
                   default=2.0, help="pitch-bend range in semitones (default 2)")
    g = p.add_argument_group("audio")
    g.add_argument("--device", help="output device name or index (default: the system's)")
    g.add_argument("--blocksize", type=_integer(16, 8192), default=256,
                   help="frames per block (default 256)")
    g.add_argument("--latency", type=_latency, help="PortAudio output latency: seconds, "
                                                    "'low' (default) or 'high'")
    g.add_argument("--output-buffer", type=_number(0.0, MAX_OUTPUT_BUFFER_MS), default=0.0,
                   metavar="MS", help="0 (default): mix in the device's callback, the lowest "
                   "latency; MS: mix ahead in a thread of its own into a buffer of at least "
                   "MS milliseconds that the device reads without Python, so that stalls "
                   "of this process shorter than it are not heard, at the buffer's latency "
                   "(PortAudio may round it up; /status output_buffer_ms)")
    g.add_argument("--sample-rate", type=_integer(8000, 384000),
                   help="default: the device's default rate")
    g.add_argument("--channels", type=int, default=2, choices=(1, 2))
    g.add_argument("--record", type=Path, metavar="WAV",
                   help="also write exactly what is played to this WAV file")
    g.add_argument("--gain", type=_number(0.0, 4.0), default=0.5,
                   help="master gain (default 0.5)")
    g = p.add_argument_group("instrument")
    g.add_argument("--grid", type=_integer(2, 64), default=9,
                   help="timbre grid resolution per side (default 9: 81 cached points)")
    g.add_argument("--cache-mb", type=_number(1.0), default=1024.0,
                   help="memory budget of the note cache in MiB (default 1024)")
    g.add_argument("--polyphony", type=_integer(1, 256), default=32,
                   help="voices (default 32)")
    g.add_argument("--batch-size", type=_integer(1, 256), default=8,
                   help="notes per render batch")
    g.add_argument("--render-threads", type=_integer(1, 1024),
                   help="CPU threads TensorFlow may use to render (default: all cores but "
                        "one, which is left to the audio thread)")
    g.add_argument("--seeds", type=_integer(0, MAX_SEED), nargs=4, default=[0, 1, 2, 3],
                   metavar="SEED",
                   help="seeds of the four anchor timbres (default 0 1 2 3)")
    g.add_argument("--velocity-curve", type=_number(0.0, 16.0), default=2.0,
                   help="gain = (velocity/127) ** curve (default 2; 0 = no velocity)")
    g.add_argument("--envelope", type=float, nargs=4, metavar=("A%", "AS", "R%", "RS"),
                   default=[1.0, 0.5, 25.0, 0.5],
                   help="attack_percent attack_slope release_percent release_slope")
    g.add_argument("--sustain", choices=SUSTAIN_MODES, default=DEFAULT_SUSTAIN_MODE,
                   help="held notes: 'loop' sounds until released (default), 'natural' "
                        "plays the rendered note once, so it decays as the model made it")
    g = p.add_argument_group("information")
    g.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    g.add_argument("--list-midi", action="store_true", help="list MIDI inputs and exit")
    g.add_argument("--note-store", metavar="DIR|off",
                   help="keep the first timbre point's rendered notes here, so that the "
                        "next start is ready in seconds (default: "
                        "$XDG_CACHE_HOME/gansynth-live or ~/.cache/gansynth-live)")
    g.add_argument("--ready-timeout", type=_number(1.0), default=900.0,
                   help="seconds to wait for the first timbre to render (default 900)")
    return p.parse_args(argv)


class FlagError(ValueError):
    """A flag's value that cannot work; the message names the flag."""


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except FlagError as e:  # as argparse reports its own: usage error, status 2
        print(f"gansynth-live: error: {e}", file=sys.stderr, flush=True)
        return 2
    except Exception as e:  # noqa: BLE001 - one clear line, not a traceback
        print(f"gansynth-live: error: {e}", file=sys.stderr, flush=True)
        return 1


def _print(message: str) -> None:
    print(f"gansynth-live: {message}", file=sys.stderr, flush=True)


# Lines a second on stderr at most (bursts of 20): bad MIDI or render errors in a flood
# must not grow the log without limit. The lines dropped are counted in the next one.
log = LimitedLog(_print, rate=2.0, burst=20)


def check_flags(args: argparse.Namespace):
    """Everything the flags name, checked before the model loads (which takes seconds):
    (sample rate, the bound OSC socket, the render directory). FlagError names the flag."""
    from gansynth_live.envelope import Envelope
    from gansynth_live.live.osc import allow_list, bind_udp
    from gansynth_live.live.render_files import RenderDir

    if args.model is not None and not Path(args.model).is_dir():
        raise FlagError(f"--model {args.model}: no such directory")
    try:
        Envelope(*args.envelope)
    except ValueError as e:
        raise FlagError(f"--envelope: {e}") from None
    for cc_flag, cc in (("--midi-cc-x", args.midi_cc_x), ("--midi-cc-y", args.midi_cc_y)):
        try:
            distinct_ccs({cc_flag: cc, "--midi-cc-pca": args.midi_cc_pca})
        except ValueError as e:
            raise FlagError(str(e)) from None
    if args.midi_api is not None:
        from gansynth_live.live.midi_input import _api_id
        try:
            _api_id(args.midi_api)
        except ValueError as e:
            raise FlagError(f"--midi-api: {e}") from None
    if args.record is not None and not args.record.parent.is_dir():
        raise FlagError(f"--record {args.record}: no directory {args.record.parent}")
    try:
        allow_list(args.osc_host, args.allow)
    except ValueError as e:
        raise FlagError(str(e)) from None
    sample_rate = check_device(args.device, args.sample_rate, args.channels)
    if args.output_buffer > 0:
        from gansynth_live.live.audio import check_buffered
        try:
            check_buffered(_device(args.device), args.channels)
        except ValueError as e:
            raise FlagError(str(e)) from None
    try:
        render_dir = RenderDir(args.render_dir)
    except OSError as e:
        raise FlagError(f"--render-dir: {e}") from None
    try:
        sock = bind_udp(args.osc_host, args.osc_port)
    except (OSError, ValueError) as e:
        render_dir.close()
        raise FlagError(f"--osc-host/--osc-port: {e}") from None
    return sample_rate, sock, render_dir


def run(args: argparse.Namespace) -> int:
    if args.list_devices:
        from gansynth_live.live.audio import list_devices
        print(list_devices())
        return 0
    if args.list_midi:
        from gansynth_live.live.midi_input import MidiInput
        print("\n".join(MidiInput.list_ports(args.midi_api)) or "(no MIDI inputs)")
        return 0

    # The audio callback needs the GIL within a block (5 ms at 256 frames / 48 kHz);
    # Python's default switch interval (5 ms) would let another thread keep it that long.
    sys.setswitchinterval(0.0005)
    from gansynth_live.live.audio import AudioOutput
    from gansynth_live.live.engine import Engine
    from gansynth_live.live.note_store import NoteStore, default_directory
    from gansynth_live.live.osc import OscServer
    from gansynth_live.live.realtime import favour_threads
    from gansynth_live.live.renderer import ProcessRenderer

    started = time.perf_counter()
    sample_rate, sock, render_dir = check_flags(args)
    audio = osc = midi = engine = renderer = None
    try:
        store = stored = None
        if args.note_store != "off":
            store = NoteStore(args.note_store or default_directory(), args.model, sample_rate,
                              args.seeds[0])
            stored = store.load()
        # The model (and TensorFlow) lives in the render process only; its facts come
        # back from it, or with the stored first point (then it starts in the background).
        renderer = ProcessRenderer(args.model, sample_rate, threads=args.render_threads
                                   or max(1, (os.cpu_count() or 2) - 1),
                                   wait=stored is None)
        # Every thread started from here on shares the audio callback's GIL: first in line
        # for a CPU (realtime.py). The render process, started already, keeps its nice 10.
        control_nice = favour_threads()
        facts = renderer.facts if stored is None else stored[0]
        log(f"model {facts.name}: {facts.sample_rate} Hz, "
            f"{facts.num_samples / facts.sample_rate:g} s notes, pitches {facts.pitch_range}")
        if len(args.midi_cc_pca) > facts.ganspace_components:
            raise FlagError(f"--midi-cc-pca: {len(args.midi_cc_pca)} CCs, but the model has "
                            f"{facts.ganspace_components} GANSpace directions")
        engine = Engine(facts, renderer, sample_rate=sample_rate, channels=args.channels,
                        blocksize=args.blocksize, grid=args.grid,
                        cache_bytes=int(args.cache_mb * 2**20), polyphony=args.polyphony,
                        seeds=args.seeds, velocity_curve=args.velocity_curve, gain=args.gain,
                        bend_range=args.bend_range, batch_size=args.batch_size,
                        sustain_mode=args.sustain, log=log)
        engine.set_envelope(*args.envelope)
        if stored is not None:
            engine.preload(stored[1])
            log(f"first timbre point loaded from {store.path}")
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        engine.start()
        while not engine.wait_ready(0.2):
            if stop.is_set():
                return 130
            if time.perf_counter() - started > args.ready_timeout:
                raise TimeoutError(f"the first timbre did not render within "
                                   f"{args.ready_timeout:g} s")
        log(f"first timbre playable {time.perf_counter() - started:.1f} s after start")
        if store is not None and stored is None:
            save_first_point(engine, store)
        # What exists now lives as long as the server: keep it out of the collector's
        # full passes, which walk every tracked object with the GIL held.
        gc.collect()
        gc.freeze()
        audio = AudioOutput(engine.mixer.process, sample_rate=sample_rate,
                            channels=args.channels, blocksize=args.blocksize,
                            device=_device(args.device), latency=args.latency,
                            buffer_ms=args.output_buffer,
                            record=args.record)
        if args.midi_in or args.midi_virtual:
            from gansynth_live.live.midi_input import MidiInput
            midi = MidiInput(engine, args.midi_in or args.midi_virtual,
                             virtual=bool(args.midi_virtual and not args.midi_in),
                             api=args.midi_api,
                             channel=None if args.midi_channel is None else args.midi_channel - 1,
                             cc_x=args.midi_cc_x, cc_y=args.midi_cc_y,
                             cc_pca=args.midi_cc_pca,
                             bend_range=args.bend_range, on_error=lambda m: log(f"midi: {m}"))
        inputs = midi
        osc = OscServer(engine, host=args.osc_host, sock=sock, allow=args.allow,
                        render_dir=render_dir, on_quit=stop.set,
                        extra_status=lambda: {**audio.status(), "control_nice": control_nice,
                                              **(inputs.status() if inputs else {})},
                        log=log)
        sock = render_dir = None  # the server's now
        audio.start()
        osc.start()
        print(f"ready: OSC on {osc.host}:{osc.port}, audio {audio.device_name!r} at "
              f"{sample_rate} Hz, blocksize {args.blocksize}"
              + (f", MIDI in {args.midi_in or args.midi_virtual!r}" if midi else ""), flush=True)
        while not stop.wait(0.5):
            pass
        engine.all_notes_off()  # fade every voice, then let the fade play out
        time.sleep(engine.mixer.fade_frames / sample_rate + 4 * args.blocksize / sample_rate
                   + 0.05)
    finally:
        if sock is not None:
            sock.close()
        if render_dir is not None:
            render_dir.close()
        if midi is not None:
            midi.close()
        if osc is not None:
            osc.close()
        if audio is not None:
            audio.stop()
            status = audio.status()
            log(f"stopped: {status['callbacks']} blocks, {status['underflows']} underflows "
                f"({status['skipped_ms']:.0f} ms skipped), "
                f"{status['late_callbacks']} late callbacks, "
                f"{status['callback_errors']} callback errors"
                + (f"; audio error: {status['audio_error']}" if status["audio_error"] else ""))
            if status["underflows"] and not args.output_buffer:
                log("the audio broke up: on a machine busy with other work, --output-buffer "
                    "10 plays without the Python of this process in the device's thread, "
                    "at the latency of a buffer of three device periods (docs/gansynth-live.md)")
        if engine is not None:
            engine.stop()  # and its renderer
        elif renderer is not None:
            renderer.close()
    return 0


def save_first_point(engine, store) -> None:
    """Store the first point's notes for the next start (a failure only costs that)."""
    point = engine.timbre.current_point()
    notes = {pitch: engine.cache.get(point, pitch) for pitch in engine.facts.pitches}
    try:
        store.save(engine.facts, notes)
    except OSError as e:
        log(f"could not store the first timbre point in {store.directory}: {e}")


def _device(device: str | None):
    return int(device) if device is not None and device.isdigit() else device


def _latency(text: str) -> float | str:
    """--latency: 'low', 'high' or seconds (0..10)."""
    if text in ("low", "high"):
        return text
    return flag(number, float, low=0.0, high=10.0)(text)


def check_device(device: str | None, sample_rate: int | None, channels: int) -> int:
    """The sample rate to use, after checking the device takes it (before the slow start-up)."""
    import sounddevice as sd
    try:
        info = sd.query_devices(_device(device), "output")
        sample_rate = sample_rate or int(info["default_samplerate"])
        sd.check_output_settings(_device(device), channels=channels, dtype="float32",
                                 samplerate=sample_rate)
    except (ValueError, sd.PortAudioError) as e:
        raise RuntimeError(f"audio device {device or '(default)'}: {e}. Available devices:\n"
                           f"{sd.query_devices()}") from None
    return sample_rate


if __name__ == "__main__":
    sys.exit(main())
