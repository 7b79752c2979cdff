"""Render NSynth-style notes from a General MIDI soundfont and build a training dataset.

This is the recipe for the embedded default model's training set:

    python training/render_soundfont_dataset.py --out_dir data/fluidr3_1s

renders every (instrument, pitch) of the default program set (16 acoustic GM
programs x pitches 24..84 = 976 notes) from FluidR3 GM with FluidSynth, one second at
16 kHz, held for 75 % of the clip and then released as NSynth notes are (3 s held of
4 s), writes them as 16-bit mono ``<instrument>_<pitch>.wav`` files (default folder:
``<out_dir>.wavs``), and then runs ``training/make_dataset.py`` on that folder: exactly
the path a user's own samples take. Rendering is deterministic (no reverb, chorus or
dither), so the WAVs and the ``data.tfrecord`` are reproduced byte for byte from the
same soundfont.

Notes that render (near) silent, e.g. a pitch the soundfont has no sample for, are
skipped and listed rather than fed to training as silence.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import secrets
import shutil
import sys
import time
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from tqdm import tqdm

from training import make_dataset
from training.dataset import REQUIRED_SUBTYPE, quantize_int16
from training.soundfont import FLUIDR3_GM, render_note

# The default program set (0-based General MIDI program numbers): sixteen acoustic
# instruments covering NSynth's acoustic families with clearly pitched, different
# timbres: struck (piano), mallets (marimba), organ (reed organ), plucked (nylon and
# steel guitar, acoustic bass), bowed (violin, cello, string ensemble), brass (trumpet,
# trombone, French horn), reeds (alto sax, oboe, clarinet) and flute. Every one of
# their 976 notes (FluidR3, 1 s, 24..84) reads as its own pitch with the pitch metric
# of training/evaluate_model.py, so the data's pitch labels are clean. Left out after
# measuring them the same way: vibraphone (11; its lowest FluidR3 zone, 24..32, is ~53
# cents sharp), church organ (19; octave-doubling stops: 21 of 61 notes read an octave
# off) and drawbar organ (16; the 16' drawbar reads two octaves low). Electric, synth,
# percussive and effect programs are not acoustic or not clearly pitched.
DEFAULT_PROGRAMS: dict[str, int] = {
    "piano": 0,
    "marimba": 12,
    "reed_organ": 20,
    "nylon_guitar": 24,
    "steel_guitar": 25,
    "acoustic_bass": 32,
    "violin": 40,
    "cello": 42,
    "strings": 48,
    "trumpet": 56,
    "trombone": 57,
    "french_horn": 60,
    "alto_sax": 65,
    "oboe": 68,
    "clarinet": 71,
    "flute": 73,
}

DEFAULT_PITCHES = (24, 84)
DEFAULT_SECONDS = 1.0
DEFAULT_SAMPLE_RATE = 16000
DEFAULT_VELOCITY = 100
HOLD_FRACTION = 0.75          # NSynth: 3 s held of 4 s
SILENCE_DBFS = -60.0          # a note whose peak is below this is skipped as silent

_INSTRUMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class NoteJob:
    instrument: str
    program: int
    pitch: int

    @property
    def filename(self) -> str:
        return f"{self.instrument}_{self.pitch}.wav"


@dataclass(frozen=True)
class Rendered:
    job: NoteJob
    peak: float
    written: bool


# ----------------------------------------------------------------------------- arguments

def parse_program(text: str) -> tuple[str, int]:
    """``"violin=40"`` -> ``("violin", 40)`` (0-based GM program)."""
    name, sep, number = text.partition("=")
    if not sep or not number.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected name=program (e.g. violin=40), got {text!r}")
    name, program = name.strip(), int(number)
    if not _INSTRUMENT_NAME.match(name):
        raise argparse.ArgumentTypeError(
            f"instrument name {name!r}: use letters, digits, '_' or '-' (it becomes the "
            "<instrument> part of <instrument>_<pitch>.wav)")
    if not 0 <= program <= 127:
        raise argparse.ArgumentTypeError(f"GM program must be 0..127 (0-based), got {program}")
    return name, program


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Render NSynth-style notes from a GM soundfont with FluidSynth and build "
                    "a training dataset from them with make_dataset.")
    p.add_argument("--out_dir", required=True, help="dataset folder to create (must not exist)")
    p.add_argument("--wav_dir", default=None,
                   help="where the rendered WAVs go (default: <out_dir>.wavs; must not exist)")
    p.add_argument("--soundfont", default=FLUIDR3_GM, help="SF2 file (default %(default)s)")
    p.add_argument("--programs", nargs="+", type=parse_program, metavar="NAME=PROGRAM",
                   default=None,
                   help="instruments as name=0-based GM program (default: "
                        + " ".join(f"{k}={v}" for k, v in DEFAULT_PROGRAMS.items()) + ")")
    p.add_argument("--pitches", type=int, nargs=2, metavar=("LO", "HI"),
                   default=list(DEFAULT_PITCHES),
                   help="MIDI pitch range, inclusive (default %d %d)" % DEFAULT_PITCHES)
    p.add_argument("--pitch_step", type=int, default=1,
                   help="render every Nth pitch from LO (default %(default)s)")
    p.add_argument("--seconds", type=float, default=DEFAULT_SECONDS,
                   help="note length in seconds (default %(default)s)")
    p.add_argument("--sample_rate", type=int, default=DEFAULT_SAMPLE_RATE,
                   help="sample rate in Hz (default %(default)s)")
    p.add_argument("--velocity", type=int, default=DEFAULT_VELOCITY,
                   help="MIDI velocity 1..127 (default %(default)s)")
    p.add_argument("--gain", type=float, default=1.0,
                   help="FluidSynth master gain (default %(default)s; FluidR3 peaks ~0.1-0.4)")
    p.add_argument("--silence_dbfs", type=float, default=SILENCE_DBFS,
                   help="skip notes whose peak is below this level (default %(default)s dBFS)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="notes rendered in parallel (default: CPU count, %(default)s)")
    args = p.parse_args(argv)
    lo, hi = args.pitches
    if not 0 <= lo <= hi <= 127:
        p.error(f"--pitches must satisfy 0 <= LO <= HI <= 127, got {lo} {hi}")
    if args.pitch_step < 1:
        p.error("--pitch_step must be at least 1")
    if args.seconds <= 0 or args.sample_rate <= 0:
        p.error("--seconds and --sample_rate must be positive")
    if not 1 <= args.velocity <= 127:
        p.error("--velocity must be 1..127")
    if args.jobs < 1:
        p.error("--jobs must be at least 1")
    programs = args.programs if args.programs is not None else list(DEFAULT_PROGRAMS.items())
    names = [name for name, _ in programs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        p.error(f"--programs names each instrument once; repeated: {', '.join(dupes)}")
    args.program_map = dict(programs)
    args.num_samples = round(args.seconds * args.sample_rate)
    args.wav_dir = args.wav_dir or os.path.normpath(args.out_dir) + ".wavs"
    return args


def note_jobs(programs: dict[str, int], lo: int, hi: int, step: int) -> list[NoteJob]:
    return [NoteJob(name, program, pitch)
            for name, program in programs.items() for pitch in range(lo, hi + 1, step)]


# ----------------------------------------------------------------------------- rendering

def render_job(job: NoteJob, folder: str, *, soundfont: str, sample_rate: int,
               num_samples: int, velocity: int, gain: float, silence: float) -> Rendered:
    """Render one note; write it as 16-bit PCM unless it is silent."""
    audio = render_note(job.program, job.pitch, velocity=velocity, sample_rate=sample_rate,
                        num_samples=num_samples, hold_fraction=HOLD_FRACTION, gain=gain,
                        soundfont=soundfont)
    pcm = quantize_int16(audio)
    peak = float(np.abs(pcm.astype(np.int32)).max()) / 32767.0
    if peak < silence:
        return Rendered(job, peak, False)
    sf.write(os.path.join(folder, job.filename), pcm, sample_rate, subtype=REQUIRED_SUBTYPE,
             format="WAV")
    return Rendered(job, peak, True)


def render_all(jobs: list[NoteJob], folder: str, args: argparse.Namespace) -> list[Rendered]:
    """Render `jobs` into `folder`, `args.jobs` at a time, with a progress bar.

    Each note is its own FluidSynth process, so a pool of threads that launch and wait
    for them keeps `jobs` cores busy; the Python work per note (quantising, writing
    one small WAV) is negligible.
    """
    silence = 10.0 ** (args.silence_dbfs / 20.0)
    options = dict(soundfont=args.soundfont, sample_rate=args.sample_rate,
                   num_samples=args.num_samples, velocity=args.velocity, gain=args.gain,
                   silence=silence)
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool, \
            tqdm(total=len(jobs), unit="note", desc="rendering", file=sys.stderr) as bar:
        futures = [pool.submit(render_job, job, folder, **options) for job in jobs]
        try:
            for future in concurrent.futures.as_completed(futures):
                results.append(future.result())
                bar.update()
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    order = {job: i for i, job in enumerate(jobs)}
    return sorted(results, key=lambda r: order[r.job])


def dir_problem(path: str, flag: str) -> str | None:
    if not os.path.lexists(path):
        return None
    if not os.path.isdir(path):
        return f"{flag} {path} exists and is not a folder"
    if os.listdir(path):
        return f"{flag} {path} is not empty; refusing to overwrite (choose a new folder)"
    return None


def render_folder(jobs: list[NoteJob], wav_dir: str, args) -> list[Rendered]:
    """Render into a hidden sibling of `wav_dir`, renamed into place when complete."""
    parent, base = os.path.split(os.path.abspath(wav_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{base}.partial-{os.getpid()}-{secrets.token_hex(4)}")
    os.mkdir(tmp)
    try:
        results = render_all(jobs, tmp, args)
        if os.path.isdir(wav_dir) and not os.listdir(wav_dir):
            os.rmdir(wav_dir)
        os.rename(tmp, wav_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return results


# ----------------------------------------------------------------------------- main

def dbfs(peak: float) -> str:
    return "-inf dBFS" if peak <= 0 else f"{20 * np.log10(peak):.1f} dBFS"


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    if not os.path.exists(args.soundfont):
        print(f"error: soundfont not found: {args.soundfont}", file=sys.stderr)
        return 1
    if shutil.which("fluidsynth") is None:
        print("error: fluidsynth is not installed (Debian/Ubuntu: apt install fluidsynth)",
              file=sys.stderr)
        return 1
    for problem in (make_dataset.out_dir_problem(args.out_dir),
                    dir_problem(args.wav_dir, "--wav_dir")):
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            return 1
    lo, hi = args.pitches
    jobs = note_jobs(args.program_map, lo, hi, args.pitch_step)
    print(f"rendering {len(jobs)} notes ({len(args.program_map)} instruments x "
          f"{len(jobs) // len(args.program_map)} pitches {lo}..{hi} step {args.pitch_step}) "
          f"from {args.soundfont}: {args.seconds:g} s at {args.sample_rate} Hz, "
          f"velocity {args.velocity}, held {HOLD_FRACTION:.0%}, {args.jobs} jobs")
    start = time.monotonic()
    try:
        results = render_folder(jobs, args.wav_dir, args)
    except KeyboardInterrupt:
        print("\ninterrupted; nothing written.", file=sys.stderr)
        return 130
    render_s = time.monotonic() - start
    silent = [r for r in results if not r.written]
    kept = [r for r in results if r.written]
    if silent:
        print(f"skipped {len(silent)} silent note(s) (peak below {args.silence_dbfs:g} dBFS):")
        for r in silent:
            print(f"  {r.job.instrument}_{r.job.pitch} (program {r.job.program}, "
                  f"peak {dbfs(r.peak)})")
    if not kept:
        print("error: every note rendered silent; nothing to build a dataset from",
              file=sys.stderr)
        return 1
    print(f"rendered {len(kept)} notes into {args.wav_dir} in {render_s:.1f} s")
    code = make_dataset.main([
        "--in_dir", args.wav_dir, "--out_dir", args.out_dir,
        "--sample_rate", str(args.sample_rate), "--length", str(args.num_samples),
        "--pitch_range", str(lo), str(hi)])
    if code != 0:
        return code
    total_s = time.monotonic() - start
    instruments = sorted({r.job.instrument for r in kept})
    print(f"summary: {len(kept)} notes ({len(silent)} silent skipped), "
          f"{len(instruments)} instruments, {len(kept) * args.seconds:g} s of audio; "
          f"rendering {render_s:.1f} s, total {total_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
