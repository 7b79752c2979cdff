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

from gansynth_live.sustain import DEFAULT_SUSTAIN_MODE, SUSTAIN_MODES


def _at_least(minimum: float, kind=int):
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value >= minimum:  # also rejects NaN
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {text}")
        return value
    return convert


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gansynth-live", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model directory (gansynth-live or Magenta); default: "
                                   "the embedded default model")
    g = p.add_argument_group("OSC")
    g.add_argument("--osc-host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 = all interfaces)")
    g.add_argument("--osc-port", type=_at_least(0), default=57120, help="UDP port (default 57120)")
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
    g.add_argument("--midi-channel", type=int, choices=range(1, 17), metavar="1..16",
                   help="listen to one channel only (default: all)")
    g.add_argument("--midi-cc-x", type=int, default=1, help="CC number moving timbre x "
                                                            "(default 1, the mod wheel)")
    g.add_argument("--midi-cc-y", type=int, default=2, help="CC number moving timbre y "
                                                            "(default 2)")
    g.add_argument("--bend-range", type=_at_least(0, float), default=2.0,
                   help="pitch-bend range in semitones (default 2)")
    g = p.add_argument_group("audio")
    g.add_argument("--device", help="output device name or index (default: the system's)")
    g.add_argument("--blocksize", type=_at_least(1), default=256, help="frames per block (default 256)")
    g.add_argument("--latency", help="PortAudio output latency: seconds, 'low' (default) "
                                     "or 'high'")
    g.add_argument("--sample-rate", type=_at_least(1000), help="default: the device's default rate")
    g.add_argument("--channels", type=int, default=2, choices=(1, 2))
    g.add_argument("--record", type=Path, metavar="WAV",
                   help="also write exactly what is played to this WAV file")
    g.add_argument("--gain", type=_at_least(0, float), default=0.5, help="master gain (default 0.5)")
    g = p.add_argument_group("instrument")
    g.add_argument("--grid", type=_at_least(2), default=9,
                   help="timbre grid resolution per side (default 9: 81 cached points)")
    g.add_argument("--cache-mb", type=_at_least(1, float), default=1024.0,
                   help="memory budget of the note cache in MiB (default 1024)")
    g.add_argument("--polyphony", type=_at_least(1), default=32, help="voices (default 32)")
    g.add_argument("--batch-size", type=_at_least(1), default=8, help="notes per render batch")
    g.add_argument("--render-threads", type=_at_least(1),
                   help="CPU threads TensorFlow may use to render (default: all cores but "
                        "one, which is left to the audio thread)")
    g.add_argument("--seeds", type=_at_least(0), nargs=4, default=[0, 1, 2, 3], metavar="SEED",
                   help="seeds of the four anchor timbres (default 0 1 2 3)")
    g.add_argument("--velocity-curve", type=_at_least(0, float), default=2.0,
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
    g.add_argument("--ready-timeout", type=_at_least(1, float), default=900.0,
                   help="seconds to wait for the first timbre to render (default 900)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - one clear line, not a traceback
        print(f"gansynth-live: error: {e}", file=sys.stderr, flush=True)
        return 1


def log(message: str) -> None:
    print(f"gansynth-live: {message}", file=sys.stderr, flush=True)


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
    import gansynth_live as gl
    from gansynth_live.live.audio import AudioOutput
    from gansynth_live.live.engine import Engine
    from gansynth_live.live.osc import OscServer
    from gansynth_live.live.renderer import ProcessRenderer

    sample_rate = check_device(args.device, args.sample_rate, args.channels)
    model = gl.load_model(args.model)  # here for its facts; the render process runs it
    renderer = ProcessRenderer(args.model, sample_rate, threads=args.render_threads
                               or max(1, (os.cpu_count() or 2) - 1))
    log(f"model {model.name}: {model.sample_rate} Hz, {model.num_samples / model.sample_rate:g} s "
        f"notes, pitches {model.pitches[0]}..{model.pitches[-1]}")
    engine = Engine(model, sample_rate=sample_rate, channels=args.channels,
                    blocksize=args.blocksize, grid=args.grid,
                    cache_bytes=int(args.cache_mb * 2**20), polyphony=args.polyphony,
                    seeds=args.seeds, velocity_curve=args.velocity_curve, gain=args.gain,
                    bend_range=args.bend_range, batch_size=args.batch_size,
                    sustain_mode=args.sustain, renderer=renderer, log=log)
    engine.set_envelope(*args.envelope)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    started = time.perf_counter()
    engine.start()
    audio = osc = midi = None
    try:
        while not engine.wait_ready(0.2):
            if stop.is_set():
                return 130
            if time.perf_counter() - started > args.ready_timeout:
                raise TimeoutError(f"the first timbre did not render within "
                                   f"{args.ready_timeout:g} s")
        log(f"first timbre rendered in {time.perf_counter() - started:.1f} s")
        # A full garbage collection walks every object of this process (TensorFlow's
        # modules make that millions) with the GIL held: 100 ms and more that the audio
        # callback would wait. Freeze what exists now; what comes later is little.
        gc.collect()
        gc.freeze()
        audio = AudioOutput(engine.mixer.process, sample_rate=sample_rate,
                            channels=args.channels, blocksize=args.blocksize,
                            device=_device(args.device), latency=_latency(args.latency),
                            record=args.record)
        osc = OscServer(engine, host=args.osc_host, port=args.osc_port, allow=args.allow,
                        render_dir=args.render_dir, on_quit=stop.set,
                        extra_status=audio.status, log=log)
        if args.midi_in or args.midi_virtual:
            from gansynth_live.live.midi_input import MidiInput
            midi = MidiInput(engine, args.midi_in or args.midi_virtual,
                             virtual=bool(args.midi_virtual and not args.midi_in),
                             api=args.midi_api,
                             channel=None if args.midi_channel is None else args.midi_channel - 1,
                             cc_x=args.midi_cc_x, cc_y=args.midi_cc_y,
                             bend_range=args.bend_range, on_error=lambda m: log(f"midi: {m}"))
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
                f"{status['callback_errors']} callback errors")
        engine.stop()
    return 0


def _device(device: str | None):
    return int(device) if device is not None and device.isdigit() else device


def _latency(latency: str | None):
    if latency is None or latency in ("low", "high"):
        return latency
    return float(latency)


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
