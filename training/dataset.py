"""Training data: validating a folder of note WAVs, and the NSynth-style record format.

A note folder holds top-level WAV files named ``<instrument>_<pitch>.wav``: the
instrument is everything before the last ``_<digits>``, the pitch is those digits as a
MIDI note number (``x_062.wav`` and ``x_62.wav`` are the same note, and a clash).
By default every file must be a 16-bit signed PCM WAV at the dataset's sample rate,
length and channel count; with ``fix=True`` files are resampled (soxr), trimmed (the
end is cut, the attack kept) or padded (Magenta's even split: right = floor(pad/2),
left = the rest), downmixed or duplicated to the wanted channels, and quantised to
16 bits instead of being rejected. Two things are refused even with ``fix``: an entry that
is not a regular file (a FIFO would block the reader, a device never ends; it is never
opened) and a float WAV holding NaN or infinite samples (quantising them gives silence
or full-scale clicks, not the note).

Two ways to feed training, both yielding ``(audio float32 [length, channels], pitch int32)``:

- ``read_dataset(path)``: the TFRecords written by ``training/make_dataset.py``;
- ``load_wav_folder(path, ...)``: a plain folder of WAVs (GANSynth-Stereo style),
  validated with the same code as make_dataset before anything is read.

Record format (one ``tf.train.Example`` per note, NSynth feature names and types, so
NSynth readers parse it):

  note (int64, index of the note in the dataset), note_str (bytes, ``<instrument>_<pitch>``
  with the pitch as a plain integer), pitch (int64), velocity (int64, 100),
  sample_rate (int64), audio (float32 list: int16 / 32767), instrument (int64, index of
  the instrument in the sorted instrument names), instrument_str (bytes),
  instrument_source (int64, 0) and instrument_source_str (b"acoustic"),
  instrument_family (int64, 0) and instrument_family_str (b"unknown"),
  qualities (int64[10], zeros), qualities_str (empty bytes list),
  channels (int64: 1 or 2; not an NSynth feature, ignored by NSynth readers).

instrument_source / instrument_family 0 are the values the SopiMlab fork writes (its
trainer filters on instrument_source, default [0]). The family of a user's sound is not
known, so the int stays the placeholder 0 while instrument_family_str says "unknown"
rather than claiming NSynth's family 0, "bass".

Stereo: ``audio`` holds ``length * 2`` floats in channel-interleaved order (L0 R0 L1 R1 ...)
and ``channels`` is 2. Readers that expect a fixed ``[64000]`` audio (Magenta's) reject such
records loudly rather than misreading them; ``read_dataset`` reshapes them to ``[length, 2]``.
"""
from __future__ import annotations

import json
import os
import re
import stat
import struct
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

from gansynth_live.quiet_tensorflow import import_tensorflow

DATA_FILE = "data.tfrecord"
META_FILE = "meta.json"
INFO_FILE = "dataset.json"

DEFAULT_SAMPLE_RATE = 16000
DEFAULT_LENGTH = 64000
DEFAULT_PITCH_RANGE = (24, 84)
MAX_SAMPLE_RATE = 96_000  # as a model config allows (gansynth_live.config)
MAX_NOTE_SECONDS = 60  # GANSynth's notes are 4 s; one minute bounds a dataset's notes
INT16_SCALE = 32767.0
REQUIRED_SUBTYPE = "PCM_16"
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")  # the sample formats that can hold NaN and infinity

VELOCITY = 100
INSTRUMENT_SOURCE = 0
INSTRUMENT_SOURCE_STR = b"acoustic"
INSTRUMENT_FAMILY = 0
INSTRUMENT_FAMILY_STR = b"unknown"
NUM_QUALITIES = 10

CHANNEL_NAMES = {1: "mono", 2: "stereo"}
_NOTE_NAME = re.compile(r"^(?P<instrument>.+)_(?P<pitch>\d+)$")


class DatasetError(Exception):
    """A note folder or dataset that cannot be used; ``problems`` lists every reason."""

    def __init__(self, message: str, problems: list["Problem"] | None = None):
        self.problems = list(problems or [])
        lines = [message] + [f"  {p}" for p in self.problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class AudioSpec:
    """What every note of a dataset must be."""
    sample_rate: int = DEFAULT_SAMPLE_RATE
    length: int = DEFAULT_LENGTH
    channels: int = 1
    pitch_range: tuple[int, int] = DEFAULT_PITCH_RANGE

    def __post_init__(self):
        if not 0 < self.sample_rate <= MAX_SAMPLE_RATE:
            raise ValueError(f"sample_rate must be 1..{MAX_SAMPLE_RATE:,} Hz, "
                             f"not {self.sample_rate:,}")
        if not 0 < self.length <= MAX_NOTE_SECONDS * self.sample_rate:
            raise ValueError(f"length must be 1..{MAX_NOTE_SECONDS * self.sample_rate:,} "
                             f"samples ({MAX_NOTE_SECONDS} s at {self.sample_rate:,} Hz), "
                             f"not {self.length:,}")
        if self.channels not in CHANNEL_NAMES:
            raise ValueError(f"channels must be 1 or 2, not {self.channels}")
        lo, hi = self.pitch_range
        if not 0 <= lo <= hi <= 127:
            raise ValueError(f"pitch_range must satisfy 0 <= lo <= hi <= 127, not {lo} {hi}")


@dataclass(frozen=True)
class Problem:
    """Why one file is rejected (or skipped)."""
    filename: str
    reason: str

    def __str__(self) -> str:
        return f"{self.filename}: {self.reason}"


@dataclass(frozen=True)
class Note:
    """One valid note file; ``fixes`` says what ``--fix`` will change when reading it."""
    path: str
    instrument: str
    pitch: int
    fixes: tuple[str, ...] = ()

    @property
    def filename(self) -> str:
        return os.path.basename(self.path)

    @property
    def note_str(self) -> str:
        return f"{self.instrument}_{self.pitch}"


@dataclass
class ScanResult:
    notes: list[Note] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)


# ----------------------------------------------------------------------------- names

def parse_note_name(filename: str) -> tuple[str, int] | None:
    """``"cello_060.wav"`` -> ``("cello", 60)``; None when the name has no ``_<pitch>``."""
    stem = os.path.splitext(os.path.basename(filename))[0]
    match = _NOTE_NAME.match(stem)
    if match is None:
        return None
    return match.group("instrument"), int(match.group("pitch"))


def is_wav_name(filename: str) -> bool:
    return filename.lower().endswith(".wav")


# ----------------------------------------------------------------------------- checks

def wav_container_problem(path: str) -> str | None:
    """Check the RIFF/WAVE container by hand; libsndfile silently reads truncated files short."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RF64"):
                return "not a WAV file (no RIFF/WAVE header)"
            if head[:4] == b"RF64":
                return None  # 64-bit sizes live in a ds64 chunk; libsndfile checks the rest
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return "truncated or corrupt WAV: no data chunk"
                chunk_id, chunk_size = struct.unpack("<4sI", chunk)
                if chunk_id == b"data":
                    available = size - f.tell()
                    if chunk_size > available:
                        return (f"truncated WAV: data chunk declares {chunk_size} bytes, "
                                f"only {available} present")
                    return None
                f.seek(chunk_size + (chunk_size & 1), os.SEEK_CUR)
    except OSError as e:
        return f"unreadable: {e.strerror or e}"


def format_problems(info, spec: AudioSpec, fix: bool) -> tuple[list[str], list[str]]:
    """Compare a file's header with the spec: (reasons to reject, fixes --fix would apply)."""
    problems: list[str] = []
    fixes: list[str] = []

    def mismatch(reason: str, fixing: str, fixable: bool = True) -> None:
        if fix and fixable:
            fixes.append(fixing)
        else:
            problems.append(reason + ("" if fix else "; --fix would convert it"))

    if info.subtype != REQUIRED_SUBTYPE:
        mismatch(f"wrong bit depth: {info.subtype} ({info.subtype_info}), "
                 f"need {REQUIRED_SUBTYPE} (16-bit signed PCM)",
                 f"{info.subtype} -> {REQUIRED_SUBTYPE}")
    if info.samplerate != spec.sample_rate:
        mismatch(f"wrong sample rate: {info.samplerate} Hz, need {spec.sample_rate} Hz",
                 f"resample {info.samplerate} -> {spec.sample_rate} Hz")
    if info.channels != spec.channels:
        want = CHANNEL_NAMES[spec.channels]
        fixable = info.channels > 0 and (spec.channels == 1 or info.channels <= 2)
        reason = f"wrong channel count: {info.channels}, need {spec.channels} ({want})"
        if fix and not fixable:
            reason += "; --fix converts only mono <-> stereo and downmixes to mono"
        verb = "downmix" if info.channels > spec.channels else "duplicate"
        mismatch(reason, f"{verb} {info.channels} -> {spec.channels} channels", fixable)
    # Judge the length after resampling, so a 4 s note at 44.1 kHz is not also "too long".
    frames = round(info.frames * spec.sample_rate / info.samplerate)
    if frames != spec.length:
        need = f"need {spec.length}"
        if info.samplerate != spec.sample_rate:
            need += (f" at {spec.sample_rate} Hz ({spec.length / spec.sample_rate:g} s; "
                     f"this file is {info.frames / info.samplerate:g} s)")
        verb = "trim" if frames > spec.length else "pad"
        mismatch(f"wrong length: {info.frames} frames, {need}",
                 f"{verb} {frames} -> {spec.length} frames")
    return problems, fixes


def not_regular_problem(path: str) -> str | None:
    """Why ``path`` must not be opened: it is not a regular file. Only stat()s it (a FIFO
    blocks whoever opens it until a writer comes; /dev/zero never ends)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        return f"unreadable: {e.strerror or e}"
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    kind = next((name for test, name in kinds if test(mode)), "not a file")
    return f"not a regular file ({kind}); only regular files are read"


def nonfinite_problem(samples: np.ndarray) -> str | None:
    """Why float samples cannot become a note: NaN or infinite values, which --fix cannot
    repair (quantised, they turn into silence or full-scale clicks)."""
    bad = int(np.count_nonzero(~np.isfinite(samples)))
    if bad == 0:
        return None
    return (f"{bad} of {samples.size} samples are NaN or infinite (a broken float WAV); "
            f"refused even with --fix")


def check_wav_file(path: str, spec: AudioSpec, fix: bool = False) -> tuple[list[str], list[str]]:
    """All reasons one WAV file is unusable (empty when fine), and the fixes it needs."""
    problem = not_regular_problem(path) or wav_container_problem(path)  # stat, then open
    if problem is not None:
        return [problem], []
    try:
        info = sf.info(path)
    except Exception as e:  # libsndfile's error types differ between soundfile versions
        return [f"unreadable WAV: {e}"], []
    if info.format not in ("WAV", "WAVEX", "RF64"):
        return [f"not a WAV file (libsndfile reads it as {info.format})"], []
    problems, fixes = format_problems(info, spec, fix)
    if fix and not problems and info.subtype in FLOAT_SUBTYPES:
        # Only float files can hold NaN; read them now so that the problem is listed with
        # the others, before anything is written.
        try:
            nonfinite = nonfinite_problem(sf.read(path, dtype="float64", always_2d=True)[0])
        except Exception as e:  # noqa: BLE001 - libsndfile's error types vary
            nonfinite = f"unreadable WAV: {e}"
        if nonfinite is not None:
            problems.append(nonfinite)
    return problems, fixes


def name_problems(filename: str, spec: AudioSpec) -> tuple[tuple[str, int] | None, list[str]]:
    parsed = parse_note_name(filename)
    if parsed is None:
        return None, ["name has no pitch: expected <instrument>_<pitch>.wav, e.g. cello_60.wav"]
    instrument, pitch = parsed
    lo, hi = spec.pitch_range
    if not lo <= pitch <= hi:
        return parsed, [f"pitch {pitch} outside the pitch range {lo}..{hi}"]
    return parsed, []


def skip_reason(path: str, filename: str) -> str | None:
    """Why a directory entry is not a candidate note at all (it is listed as skipped)."""
    if os.path.isdir(path):
        return "subdirectory (only top-level files are read)"
    if filename.startswith("."):
        return "hidden file"
    if not is_wav_name(filename):
        return "not a .wav file"
    return None


def scan_folder(in_dir: str, spec: AudioSpec, fix: bool = False) -> ScanResult:
    """Validate every top-level entry of ``in_dir``; nothing is read past the headers
    (but float WAVs that ``fix`` would convert, to find NaN), nor opened unless it is a
    regular file."""
    result = ScanResult()
    first_file_of: dict[tuple[str, int], str] = {}
    for filename in sorted(os.listdir(in_dir)):
        path = os.path.join(in_dir, filename)
        skip = skip_reason(path, filename)
        if skip is not None:
            result.skipped.append(Problem(filename, skip))
            continue
        parsed, reasons = name_problems(filename, spec)
        audio_reasons, fixes = check_wav_file(path, spec, fix)
        reasons += audio_reasons
        if parsed is not None:
            if parsed in first_file_of:
                reasons.append(f"duplicate of {first_file_of[parsed]} "
                               f"(instrument {parsed[0]!r}, pitch {parsed[1]})")
            else:
                first_file_of[parsed] = filename
        if reasons:
            result.problems.extend(Problem(filename, r) for r in reasons)
        else:
            result.notes.append(Note(path, parsed[0], parsed[1], tuple(fixes)))
    result.notes.sort(key=lambda n: (n.instrument, n.pitch))
    return result


def validate_folder(in_dir: str, spec: AudioSpec, fix: bool = False) -> ScanResult:
    """``scan_folder`` that raises ``DatasetError`` on any problem or an empty folder."""
    if not os.path.isdir(in_dir):
        raise DatasetError(f"input folder not found: {in_dir}")
    result = scan_folder(in_dir, spec, fix)
    if result.problems:
        bad = len({p.filename for p in result.problems})
        raise DatasetError(f"{bad} bad file(s) in {in_dir}:", result.problems)
    if not result.notes:
        raise DatasetError(f"no valid <instrument>_<pitch>.wav files in {in_dir}", result.skipped)
    return result


# ----------------------------------------------------------------------------- audio

def round_to_int16(units: np.ndarray) -> np.ndarray:
    """Values in int16 units (float) -> int16: round half to even, clip to the range."""
    return np.clip(np.round(units), -32768, 32767).astype(np.int16)


def quantize_int16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] -> int16 with the 32767 scale used for the records."""
    return round_to_int16(x * INT16_SCALE)


def int16_to_float(x: np.ndarray) -> np.ndarray:
    """The stored sample value: int16 / 32767 as float32 (SopiMlab's scaling)."""
    return x.astype(np.float32) / np.float32(INT16_SCALE)


def convert_channels(x: np.ndarray, channels: int) -> np.ndarray:
    if x.shape[1] == channels:
        return x
    if channels == 1:
        return x.mean(axis=1, keepdims=True)
    if x.shape[1] == 1:
        return np.repeat(x, channels, axis=1)
    raise ValueError(f"cannot convert {x.shape[1]} channels to {channels}")


def fit_length(x: np.ndarray, length: int) -> np.ndarray:
    """Trim the end, or pad evenly as Magenta does (right = floor(pad/2), left = rest)."""
    if len(x) >= length:
        return x[:length]
    pad = length - len(x)
    right = pad // 2
    return np.pad(x, ((pad - right, right), (0, 0)))


def read_note_audio(path: str, spec: AudioSpec, fix: bool = False) -> np.ndarray:
    """A note's samples as int16 ``[length, channels]``; with ``fix`` converted to the spec."""
    info = sf.info(path)
    pcm16 = info.subtype == REQUIRED_SUBTYPE
    data, rate = sf.read(path, dtype="int16" if pcm16 else "float64", always_2d=True)
    if len(data) != info.frames:
        raise DatasetError(f"{os.path.basename(path)}: read {len(data)} of {info.frames} frames")
    as_is = pcm16 and rate == spec.sample_rate and data.shape == (spec.length, spec.channels)
    if as_is:
        return data
    if not fix:
        raise DatasetError(f"{os.path.basename(path)}: does not match the dataset format "
                           f"({info.subtype}, {rate} Hz, {data.shape[1]} ch, {len(data)} frames)")
    if not pcm16:
        nonfinite = nonfinite_problem(data)
        if nonfinite is not None:
            raise DatasetError(f"{os.path.basename(path)}: {nonfinite}")
    # Work in int16 units so that padding, duplicating and mono downmixes of 16-bit input
    # stay exact (a downmix's halves round to even).
    x = data.astype(np.float64) if pcm16 else data * INT16_SCALE
    x = convert_channels(x, spec.channels)
    if rate != spec.sample_rate:
        import soxr
        x = soxr.resample(x, rate, spec.sample_rate, quality="HQ").reshape(-1, spec.channels)
    return round_to_int16(fit_length(x, spec.length))


# ----------------------------------------------------------------------------- records

def instrument_index(notes: list[Note]) -> dict[str, int]:
    return {name: i for i, name in enumerate(sorted({n.instrument for n in notes}))}


def encode_note(note: Note, samples: np.ndarray, *, index: int, instrument: int,
                sample_rate: int) -> bytes:
    """One note as a serialized NSynth-style ``tf.train.Example`` (see the module doc)."""
    tf = import_tensorflow()

    def ints(*v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(v)))

    def strs(*v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(v)))

    audio = int16_to_float(samples).reshape(-1)  # frames x channels, C order: interleaved
    features = {
        "note": ints(index),
        "note_str": strs(note.note_str.encode()),
        "pitch": ints(note.pitch),
        "velocity": ints(VELOCITY),
        "sample_rate": ints(sample_rate),
        "audio": tf.train.Feature(float_list=tf.train.FloatList(value=audio.tolist())),
        "instrument": ints(instrument),
        "instrument_str": strs(note.instrument.encode()),
        "instrument_source": ints(INSTRUMENT_SOURCE),
        "instrument_source_str": strs(INSTRUMENT_SOURCE_STR),
        "instrument_family": ints(INSTRUMENT_FAMILY),
        "instrument_family_str": strs(INSTRUMENT_FAMILY_STR),
        "qualities": ints(*([0] * NUM_QUALITIES)),
        "qualities_str": strs(),
        "channels": ints(samples.shape[1]),
    }
    example = tf.train.Example(features=tf.train.Features(feature=features))
    # `features` is a protobuf map: without deterministic=True its wire order follows a
    # per-process hash seed, so the same note would serialize to different bytes per run.
    return example.SerializeToString(deterministic=True)


def meta_entry(note: Note) -> dict:
    """The SopiMlab meta.json value for one note."""
    return {"instrument_str": note.instrument, "pitch": note.pitch,
            "instrument_source": INSTRUMENT_SOURCE, "instrument_family": INSTRUMENT_FAMILY,
            "qualities": [0] * NUM_QUALITIES}


def _record_files(path: str) -> tuple[list[str], dict]:
    """The TFRecord files of a dataset dir (via dataset.json), a file, or a list of files.
    A local one that is not a regular file is refused (TensorFlow would block on a FIFO);
    a name that is not on this disk (gs://...) is left to TensorFlow."""
    info: dict = {}
    if isinstance(path, (list, tuple)):
        files = [os.fspath(p) for p in path]
    elif not os.path.isdir(os.fspath(path)):
        files = [os.fspath(path)]
    else:
        path = os.fspath(path)
        info_path = os.path.join(path, INFO_FILE)
        if os.path.exists(info_path):
            _refuse_irregular(info_path)
            with open(info_path) as f:
                info = json.load(f)
            files = [os.path.join(path, name) for name in info["tfrecord_files"]]
        else:
            files = sorted(os.path.join(path, n) for n in os.listdir(path)
                           if n.endswith(".tfrecord"))
            if not files:
                raise DatasetError(f"no .tfrecord files in {path}")
    for file in files:
        _refuse_irregular(file)
    return files, info


def _refuse_irregular(path: str) -> None:
    if os.path.lexists(path):
        problem = not_regular_problem(path)
        if problem is not None:
            raise DatasetError(f"{path}: {problem}")


def read_dataset(path, *, length: int | None = None, channels: int | None = None):
    """Parse NSynth-style TFRecords into ``(audio float32 [length, channels], pitch int32)``.

    ``path``: a dataset dir written by make_dataset (its dataset.json gives the files, the
    length and the channel count), a single .tfrecord file, or a list of them. Records
    without a ``channels`` feature (e.g. NSynth's own) are read as mono.
    """
    tf = import_tensorflow()

    files, info = _record_files(path)
    length = length or info.get("length")
    channels = channels or info.get("channels")
    spec = {
        "audio": tf.io.VarLenFeature(tf.float32),
        "pitch": tf.io.FixedLenFeature([], tf.int64),
        "channels": tf.io.FixedLenFeature([], tf.int64, default_value=1),
    }

    def parse(serialized):
        ex = tf.io.parse_single_example(serialized, spec)
        audio = tf.sparse.to_dense(ex["audio"])
        audio = tf.reshape(audio, [-1, tf.cast(ex["channels"], tf.int32)])
        audio.set_shape([length, channels])
        return audio, tf.cast(ex["pitch"], tf.int32)

    return tf.data.TFRecordDataset(files).map(parse, num_parallel_calls=tf.data.AUTOTUNE)


def load_wav_folder(path: str, sample_rate: int = DEFAULT_SAMPLE_RATE,
                    length: int = DEFAULT_LENGTH, channels: int = 1,
                    pitch_range: tuple[int, int] = DEFAULT_PITCH_RANGE, *, fix: bool = False):
    """A validated folder of note WAVs as ``(audio float32 [length, channels], pitch int32)``.

    Every file is checked first (same rules as make_dataset; ``DatasetError`` lists all
    problems) before the dataset is returned; the audio is then read lazily, one file per
    element, in (instrument, pitch) order. ``scan_folder`` lists the notes themselves.
    """
    tf = import_tensorflow()

    spec = AudioSpec(sample_rate, length, channels, tuple(pitch_range))
    notes = validate_folder(path, spec, fix).notes

    def generate():
        for note in notes:
            yield int16_to_float(read_note_audio(note.path, spec, fix)), note.pitch

    signature = (tf.TensorSpec([length, channels], tf.float32), tf.TensorSpec([], tf.int32))
    return tf.data.Dataset.from_generator(generate, output_signature=signature)
