"""Turn a folder of note WAVs into an NSynth-style TFRecord dataset for GANSynth training.

    python training/make_dataset.py --in_dir mysamples --out_dir mydataset
    gansynth-make-dataset --in_dir mysamples --out_dir mydataset --channels stereo --fix

Input: top-level ``<instrument>_<pitch>.wav`` files, by default 16000 Hz, 16-bit signed
PCM, 64000 frames, mono, pitches 24..84 (see ``training.dataset`` for the naming rules
and ``--fix``). Every bad file is reported with its reason, then the run exits with
status 1 and writes nothing. Other files and subdirectories are listed as skipped.

Output (built in a hidden temp dir next to ``--out_dir`` and renamed into place at the
end, so an interrupted run leaves no half-made dataset):

- ``data.tfrecord`` (or ``data-00000-of-0000N.tfrecord`` with ``--shard_size``): one
  NSynth-style example per note (format in ``training.dataset``);
- ``meta.json``: SopiMlab's note metadata, ``"<instrument>_<pitch>" -> {...}``;
- ``dataset.json``: sample rate, length, channels, pitch range, counts, record files.
"""
from __future__ import annotations

import argparse
import math
import collections
import json
import os
import secrets
import shutil
import sys

from tqdm import tqdm

from gansynth_live.quiet_tensorflow import import_tensorflow
from training.dataset import (
    DATA_FILE, DEFAULT_LENGTH, DEFAULT_PITCH_RANGE, DEFAULT_SAMPLE_RATE, INFO_FILE,
    META_FILE, AudioSpec, DatasetError, Note, ScanResult, encode_note, instrument_index,
    meta_entry, read_note_audio, scan_folder,
)

EXIT_OK = 0
EXIT_ERROR = 1


# ----------------------------------------------------------------------------- arguments

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="gansynth-make-dataset",
        description="Build an NSynth-style TFRecord dataset from <instrument>_<pitch>.wav files.")
    p.add_argument("--in_dir", required=True, help="folder of <instrument>_<pitch>.wav files")
    p.add_argument("--out_dir", required=True,
                   help="dataset folder to create (must not exist, or be empty)")
    p.add_argument("--sample_rate", type=int, default=DEFAULT_SAMPLE_RATE,
                   help="sample rate in Hz (default %(default)s)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--length", type=int, default=None,
                      help=f"note length in samples (default {DEFAULT_LENGTH})")
    size.add_argument("--seconds", type=float, default=None,
                      help="note length in seconds (instead of --length)")
    p.add_argument("--channels", choices=["mono", "stereo"], default="mono",
                   help="channel layout of the dataset (default %(default)s)")
    p.add_argument("--pitch_range", type=int, nargs=2, metavar=("LO", "HI"),
                   default=list(DEFAULT_PITCH_RANGE),
                   help="allowed MIDI pitches, inclusive (default %d %d)" % DEFAULT_PITCH_RANGE)
    p.add_argument("--fix", action="store_true",
                   help="resample, trim/pad, convert channels and bit depth instead of rejecting")
    p.add_argument("--shard_size", type=int, default=None, metavar="N",
                   help="notes per TFRecord shard (default: one data.tfrecord)")
    args = p.parse_args(argv)
    if args.shard_size is not None and args.shard_size < 1:
        p.error("--shard_size must be at least 1")
    try:
        args.spec = spec_from_args(args)
    except ValueError as e:
        p.error(str(e))
    return args


def spec_from_args(args: argparse.Namespace) -> AudioSpec:
    """The dataset's AudioSpec; ValueError naming the flag that is out of range."""
    if args.seconds is not None:
        if not math.isfinite(args.seconds) or args.seconds <= 0:
            raise ValueError(f"--seconds {args.seconds} must be a positive number")
        length, flag = round(args.seconds * args.sample_rate), f"--seconds {args.seconds}"
    else:
        length = DEFAULT_LENGTH if args.length is None else args.length
        flag = f"--length {length}"
    channels = 2 if args.channels == "stereo" else 1
    try:
        return AudioSpec(args.sample_rate, length, channels, tuple(args.pitch_range))
    except ValueError as e:  # AudioSpec's messages start with the field's name
        name = str(e).split()[0]
        named = {"sample_rate": f"--sample_rate {args.sample_rate}", "length": flag,
                 "pitch_range": "--pitch_range"}.get(name)
        raise ValueError(f"{named}: {e}" if named else str(e)) from None


# ----------------------------------------------------------------------------- output dir

def out_dir_problem(out_dir: str) -> str | None:
    """Why ``out_dir`` may not be written (None when it is absent or an empty folder)."""
    if not os.path.lexists(out_dir):
        return None
    if not os.path.isdir(out_dir):
        return f"--out_dir {out_dir} exists and is not a folder"
    existing = os.listdir(out_dir)
    if not existing:
        return None
    held = [n for n in (DATA_FILE, META_FILE, INFO_FILE) if n in existing]
    what = f"already holds {', '.join(held)}" if held else "is not empty"
    return f"--out_dir {out_dir} {what}; refusing to overwrite (choose a new folder)"


def make_temp_dir(out_dir: str) -> str:
    """A hidden sibling of ``out_dir`` (same filesystem, so the final rename is atomic)."""
    parent, base = os.path.split(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{base}.partial-{os.getpid()}-{secrets.token_hex(4)}")
    os.mkdir(tmp)
    return tmp


# ----------------------------------------------------------------------------- writing

def shard_plan(notes: list[Note], shard_size: int | None) -> list[tuple[str, list[Note]]]:
    """(file name, notes) per TFRecord file."""
    if shard_size is None:
        return [(DATA_FILE, notes)]
    chunks = [notes[i:i + shard_size] for i in range(0, len(notes), shard_size)]
    stem = os.path.splitext(DATA_FILE)[0]
    return [(f"{stem}-{i:05d}-of-{len(chunks):05d}.tfrecord", chunk)
            for i, chunk in enumerate(chunks)]


def write_records(notes: list[Note], folder: str, spec: AudioSpec, fix: bool,
                  shard_size: int | None) -> list[str]:
    """Read every note and write the TFRecord file(s); returns their names."""
    tf = import_tensorflow()

    instruments = instrument_index(notes)
    plan = shard_plan(notes, shard_size)
    index = 0
    with tqdm(total=len(notes), unit="note", desc="writing", file=sys.stderr) as bar:
        for name, shard in plan:
            with tf.io.TFRecordWriter(os.path.join(folder, name)) as writer:
                for note in shard:
                    samples = read_note_audio(note.path, spec, fix)
                    writer.write(encode_note(note, samples, index=index,
                                             instrument=instruments[note.instrument],
                                             sample_rate=spec.sample_rate))
                    index += 1
                    bar.update()
    return [name for name, _ in plan]


def write_json(path: str, value) -> None:
    with open(path, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


def dataset_info(notes: list[Note], spec: AudioSpec, files: list[str]) -> dict:
    per_pitch = collections.Counter(n.pitch for n in notes)
    per_instrument = collections.Counter(n.instrument for n in notes)
    return {
        "sample_rate": spec.sample_rate,
        "length": spec.length,
        "channels": spec.channels,
        "pitch_range": list(spec.pitch_range),
        "num_notes": len(notes),
        "instruments": sorted(per_instrument),
        "notes_per_pitch": {str(p): per_pitch[p] for p in sorted(per_pitch)},
        "notes_per_instrument": {i: per_instrument[i] for i in sorted(per_instrument)},
        "fixed_files": sum(1 for n in notes if n.fixes),
        "tfrecord_files": files,
    }


def write_dataset(notes: list[Note], out_dir: str, spec: AudioSpec, fix: bool,
                  shard_size: int | None) -> list[str]:
    """Write everything into a temp dir, then rename it to ``out_dir``; returns file names."""
    tmp = make_temp_dir(out_dir)
    try:
        files = write_records(notes, tmp, spec, fix, shard_size)
        write_json(os.path.join(tmp, META_FILE), {n.note_str: meta_entry(n) for n in notes})
        write_json(os.path.join(tmp, INFO_FILE), dataset_info(notes, spec, files))
        problem = out_dir_problem(out_dir)  # someone may have written there meanwhile
        if problem is not None:
            raise DatasetError(problem)
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return files + [META_FILE, INFO_FILE]


# ----------------------------------------------------------------------------- reporting

def print_scan(scan: ScanResult, fix: bool) -> None:
    if scan.skipped:
        print(f"skipped {len(scan.skipped)} entr{'y' if len(scan.skipped) == 1 else 'ies'}:",
              file=sys.stderr)
        for s in scan.skipped:
            print(f"  {s}", file=sys.stderr)
    fixed = [n for n in scan.notes if n.fixes]
    if fix and fixed:
        print(f"--fix converts {len(fixed)} file(s):")
        for n in fixed:
            print(f"  {n.filename}: {', '.join(n.fixes)}")


def print_problems(problems, in_dir: str) -> None:
    bad = len({p.filename for p in problems})
    print(f"error: {bad} bad file(s) in {in_dir}:", file=sys.stderr)
    for p in problems:
        print(f"  {p}", file=sys.stderr)
    print("nothing written.", file=sys.stderr)


def print_summary(notes: list[Note], spec: AudioSpec, out_dir: str, files: list[str]) -> None:
    per_pitch = collections.Counter(n.pitch for n in notes)
    lo, hi = spec.pitch_range
    missing = [p for p in range(lo, hi + 1) if p not in per_pitch]
    instruments = sorted({n.instrument for n in notes})
    print(f"{len(notes)} notes, {len(instruments)} instrument(s), "
          f"{spec.sample_rate} Hz, {spec.length} samples, "
          f"{'stereo' if spec.channels == 2 else 'mono'}")
    for name in instruments:
        pitches = [n.pitch for n in notes if n.instrument == name]
        span = f"{min(pitches)}..{max(pitches)}" if len(pitches) > 1 else str(pitches[0])
        print(f"  {name}: {len(pitches)} note(s), pitch {span}")
    print("notes per pitch: " + " ".join(f"{p}:{per_pitch[p]}" for p in sorted(per_pitch)))
    if missing:
        print(f"{len(missing)} pitch(es) of {lo}..{hi} have no notes")
    print(f"wrote {out_dir}:")
    for name in files:
        size = os.path.getsize(os.path.join(out_dir, name))
        print(f"  {name} ({size / 1e6:.1f} MB)" if size >= 1e5 else f"  {name} ({size} bytes)")


# ----------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parse_args(argv)
    if not os.path.isdir(args.in_dir):
        print(f"error: --in_dir {args.in_dir} is not a folder", file=sys.stderr)
        return EXIT_ERROR
    refusal = out_dir_problem(args.out_dir)
    if refusal is not None:
        print(f"error: {refusal}", file=sys.stderr)
        return EXIT_ERROR
    scan = scan_folder(args.in_dir, args.spec, args.fix)
    print_scan(scan, args.fix)
    if scan.problems:
        print_problems(scan.problems, args.in_dir)
        return EXIT_ERROR
    if not scan.notes:
        print(f"error: no valid <instrument>_<pitch>.wav files in {args.in_dir}; "
              "nothing written.", file=sys.stderr)
        return EXIT_ERROR
    try:
        files = write_dataset(scan.notes, args.out_dir, args.spec, args.fix, args.shard_size)
    except (DatasetError, OSError) as e:
        print(f"error: {e}; nothing written.", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted; nothing written.", file=sys.stderr)
        return 130
    print_summary(scan.notes, args.spec, args.out_dir, files)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
