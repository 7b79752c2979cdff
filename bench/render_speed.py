"""Seconds to render a 60-second multi-track MIDI file with the hires architecture.

Builds the MIDI file itself (3 tracks: a bass note per second, a 3-note chord per
second, 4 melody notes per second: 8 notes/s, 480 notes in 60 s, pitches 36..84),
then renders it with `gansynth_live.render.render_midi` (generation, envelopes,
mixing: the whole `gansynth-generate` path minus the WAV write) on the full
`mel_prog_hires` generator with random weights, at several batch sizes. Prints one
table; the baseline row is batch 1. Tracing/compilation happens in a warm-up call
per batch size and is not counted.

    python bench/render_speed.py [--batches 1 8 16] [--seconds 60]

`--model default` renders with the embedded default model instead, and `--ganspace
C1,C2,...` (which needs its directions) also renders every batch size with those
coefficients editing each note (`gansynth-generate --ganspace`), `--rounds` times
alternating with the plain render, and prints a second table comparing the two:

    python bench/render_speed.py --model default --seconds 30 --batches 8 \\
        --ganspace 1.5,-1 --rounds 3
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import mido  # noqa: E402
import numpy as np  # noqa: E402

import gansynth_live as gl  # noqa: E402
from gansynth_live.midi import read_midi  # noqa: E402
from gansynth_live.render import render_midi  # noqa: E402
from gansynth_live.timbre_path import TimbrePath, parse_coefficients  # noqa: E402


def build_midi(path: str, seconds: int, seed: int = 0) -> None:
    """A type-1 file: tempo track + bass (1/s) + chords (3/s) + melody (4/s) at 120 bpm."""
    rng = np.random.default_rng(seed)
    tpb = 480  # 120 bpm: one beat = 0.5 s = 480 ticks
    midi = mido.MidiFile(type=1, ticks_per_beat=tpb)
    conductor = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120))])
    midi.tracks.append(conductor)

    def track(events):  # (abs_tick, msg) -> delta times
        t = mido.MidiTrack()
        now = 0
        for tick, msg in sorted(events, key=lambda e: (e[0], e[1].type == "note_on")):
            t.append(msg.copy(time=tick - now))
            now = tick
        midi.tracks.append(t)

    sec = 2 * tpb
    bass, chords, melody = [], [], []
    roots = [36, 41, 43, 38]
    for s in range(seconds):
        root = roots[s % 4]
        bass += [(s * sec, mido.Message("note_on", note=root, velocity=90, channel=1)),
                 (s * sec + sec - 40, mido.Message("note_off", note=root, channel=1))]
        for interval in (24, 28, 31):
            p = root + interval
            chords += [(s * sec, mido.Message("note_on", note=p, velocity=70, channel=2)),
                       (s * sec + sec // 2, mido.Message("note_off", note=p, channel=2))]
        for q in range(4):
            p = int(rng.integers(60, 85))
            t0 = s * sec + q * sec // 4
            melody += [(t0, mido.Message("note_on", note=p, velocity=int(rng.integers(60, 120)))),
                       (t0 + sec // 4 - 20, mido.Message("note_off", note=p))]
    for events in (bass, chords, melody):
        track(events)
    midi.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--model", choices=("hires", "default"), default="hires",
                        help="mel_prog_hires with random weights, or the embedded model")
    parser.add_argument("--ganspace", type=parse_coefficients, metavar="C1,C2,...",
                        help="also render with these coefficients (needs --model default)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="renders per batch size (and per kind with --ganspace)")
    args = parser.parse_args()
    if args.ganspace is not None and args.model != "default":
        parser.error("--ganspace needs a model with GANSpace directions: --model default")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.mid")
        build_midi(path, args.seconds)
        score = read_midi(path)
    notes = score.notes
    if args.model == "default":
        model, described = gl.load_model(), "the default model"
    else:
        model = gl.Model(gl.preset("mel_prog_hires"), range(24, 85))
        described = "mel_prog_hires (random weights)"
    print(f"{len(notes)} notes in {score.duration:.1f} s, {len({n.track for n in notes})} "
          f"tracks with notes; {described}, {os.cpu_count()} CPU cores")
    timbre = (None if args.ganspace is None
              else TimbrePath.from_points([(0.0, args.ganspace)]))

    def timed(batch: int, timbre: TimbrePath | None) -> tuple[float, float, int]:
        """Wall seconds, CPU seconds (all threads: less moved by other work on a shared
        machine) and notes of one render."""
        start, cpu = time.perf_counter(), time.process_time()
        result = render_midi(model, notes, seed=1, batch_size=batch, timbre=timbre)
        return time.perf_counter() - start, time.process_time() - cpu, len(result.notes)

    rows, compared = [], []
    for batch in args.batches:
        model.max_batch = batch
        model.generate(model.random_z(batch, 0), [60] * batch)  # warm-up: trace + primitives
        if timbre is not None:
            model.generate(model.random_z(batch, 0), [60] * batch, ganspace=args.ganspace)
        for round_ in range(args.rounds):
            kinds = {"plain": None} if timbre is None else {"plain": None, "ganspace": timbre}
            order = list(kinds)[::-1] if round_ % 2 else list(kinds)  # neither always second
            seconds = {}  # kind -> (wall, CPU)
            for kind in order:
                wall, cpu, n = timed(batch, kinds[kind])
                seconds[kind] = (wall, cpu)
            rows.append((batch, seconds["plain"][0], n))
            line = f"  batch {batch}, round {round_ + 1}: {seconds['plain'][0]:.1f} s"
            if timbre is not None:
                compared.append((batch, round_ + 1, *seconds["plain"], *seconds["ganspace"]))
                line += f", with --ganspace {seconds['ganspace'][0]:.1f} s"
            print(line, flush=True)

    base = rows[0][1]
    print()
    print(f"Render of a {args.seconds}-second 3-track MIDI file ({len(notes)} notes), "
          f"{described}, CPU")
    print(f"{'batch':>5} | {'seconds':>8} | {'notes/s':>7} | {'ms/note':>7} | "
          f"{'x real time':>11} | {'speed-up vs batch ' + str(rows[0][0]):>20}")
    print("-" * 76)
    for batch, elapsed, n in rows:
        print(f"{batch:>5} | {elapsed:>8.1f} | {n / elapsed:>7.2f} | {1000 * elapsed / n:>7.1f} | "
              f"{score.duration / elapsed:>11.3f} | {base / elapsed:>20.2f}")
    if compared:
        coefficients = ",".join(f"{c:g}" for c in args.ganspace)
        print()
        print(f"The same render with --ganspace {coefficients} (each note's latent edited), "
              f"in the same rounds (which goes first alternates)")
        print(f"{'batch':>5} | {'round':>5} | {'plain s':>7} | {'ganspace s':>10} | {'+%':>6} | "
              f"{'plain CPU s':>11} | {'ganspace CPU s':>14} | {'+%':>6}")
        print("-" * 83)
        for batch, round_, plain, plain_cpu, edited, edited_cpu in compared:
            print(f"{batch:>5} | {round_:>5} | {plain:>7.2f} | {edited:>10.2f} | "
                  f"{100 * (edited / plain - 1):>+6.1f} | {plain_cpu:>11.2f} | "
                  f"{edited_cpu:>14.2f} | {100 * (edited_cpu / plain_cpu - 1):>+6.1f}")


if __name__ == "__main__":
    main()
