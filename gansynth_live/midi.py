"""MIDI files to note lists (mido), with every timing rule of the Standard MIDI File spec.

- Any number of tracks. Type 0 and 1 files share one tempo map, built from the
  set_tempo events of all tracks (type-1 files keep it on track 0); type 2 files
  (independent sequences) use each track's own tempo events.
- Tempo changes: tick -> seconds with `mido.tick2second`, segment by segment through
  the tempo map (default 120 bpm until the first set_tempo).
- Running status is decoded by mido; note_on with velocity 0 is a note-off.
- Overlapping notes of the same pitch (same track and channel) pair first-in
  first-out: each note-off ends the oldest sounding note of that pitch.
- Notes still sounding at the end of the file end at the file's end (the last event of
  any track); note-offs without a note-on are ignored (counted).
- Channel index 9 (MIDI channel 10, General MIDI drums) is skipped unless asked for.
- Bounded: a file over `MAX_FILE_BYTES` is refused before it is parsed (mido keeps every
  event in memory, about 400 bytes each), and so is a tempo of 0 (every later event
  would fall at the same instant).
"""
from __future__ import annotations

import bisect
import dataclasses
import io
import os
from collections import defaultdict, deque
from typing import Sequence

import mido

DRUM_CHANNEL = 9  # 0-based index of MIDI channel 10
DEFAULT_TEMPO = 500000  # microseconds per beat (120 bpm)
# Real MIDI files are kilobytes to a few megabytes; 4 MiB of the densest events (3 bytes
# each) is 1.4 M events, which mido holds in about 600 MB.
MAX_FILE_BYTES = 4 * 2**20


class MidiFileError(ValueError):
    """A MIDI file is missing, unreadable or malformed; the message names the file."""

    def __init__(self, path: os.PathLike | str, reason: str):
        super().__init__(f"cannot read MIDI file {os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Note:
    """One note: times in seconds from the start of the file, MIDI numbers 0..127.

    `channel` is 0-based (9 = drums); `program` is the channel's program (0..127) at
    the note's start, 0 when none was set; `track` is the track index in the file.
    """

    start: float
    end: float
    pitch: int
    velocity: int
    channel: int = 0
    track: int = 0
    program: int = 0

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclasses.dataclass
class MidiScore:
    """The notes of a MIDI file (sorted by start, then pitch) and what was left out.

    Attributes:
        notes: the kept notes.
        duration: seconds to the last event of the file (>= every note's end).
        drum_notes_skipped: notes on channel index 9 left out (0 with include_drums).
        unmatched_note_offs: note-offs that had no sounding note to end.
        unterminated_notes: notes never switched off, ended at the end of the file.
        path: the file read.
    """

    notes: list[Note]
    duration: float
    drum_notes_skipped: int = 0
    unmatched_note_offs: int = 0
    unterminated_notes: int = 0
    path: str = ""


class TempoMap:
    """Ticks to seconds through a list of (tick, tempo) changes."""

    def __init__(self, ticks_per_beat: int, changes: list[tuple[int, int]]):
        self.ticks_per_beat = ticks_per_beat
        at_tick = {0: DEFAULT_TEMPO}
        for tick, tempo in sorted(changes, key=lambda c: c[0]):  # stable: file order kept
            at_tick[tick] = tempo  # the last change at a tick wins
        self._ticks = sorted(at_tick)
        self._tempos = [at_tick[t] for t in self._ticks]
        self._seconds = [0.0]
        for i in range(1, len(self._ticks)):
            self._seconds.append(self._seconds[-1] + mido.tick2second(
                self._ticks[i] - self._ticks[i - 1], ticks_per_beat, self._tempos[i - 1]))

    def seconds(self, tick: int) -> float:
        i = bisect.bisect_right(self._ticks, tick) - 1
        return self._seconds[i] + mido.tick2second(tick - self._ticks[i], self.ticks_per_beat,
                                                   self._tempos[i])


def _absolute(track: mido.MidiTrack):
    tick = 0
    for msg in track:
        tick += msg.time
        yield tick, msg


def read_midi(path: os.PathLike | str, *, include_drums: bool = False) -> MidiScore:
    """Read the notes of the Standard MIDI File at `path`.

    Returns a `MidiScore`; raises `MidiFileError` (naming the file) when the file is
    missing, unreadable, not a MIDI file or malformed. A readable file without notes
    gives an empty note list (the caller decides whether that is an error).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MidiFileError(path, "no such file")
    if os.path.isdir(path):
        raise MidiFileError(path, "is a directory")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)  # at most that much, also from a pipe
    except OSError as e:
        raise MidiFileError(path, f"unreadable ({e.strerror or e})") from None
    if len(data) > MAX_FILE_BYTES:
        raise MidiFileError(path, f"larger than {MAX_FILE_BYTES // 2**20} MiB, the most "
                                  f"this program reads")
    try:
        midi = mido.MidiFile(file=io.BytesIO(data), clip=True)
    except Exception as e:  # noqa: BLE001 - a corrupt file can make mido raise anything
        reason = str(e) or type(e).__name__
        if isinstance(e, EOFError):
            reason = "file ends early (truncated or empty)"
        raise MidiFileError(path, f"not a valid MIDI file ({reason})") from None
    if midi.type not in (0, 1, 2):
        raise MidiFileError(path, f"unknown MIDI file type {midi.type}")
    if midi.ticks_per_beat <= 0:
        raise MidiFileError(path, f"unsupported time division {midi.ticks_per_beat}")
    if not midi.tracks:
        raise MidiFileError(path, "the file has no tracks")

    def tempo_changes(tracks):
        changes = [(tick, msg.tempo) for track in tracks for tick, msg in _absolute(track)
                   if msg.type == "set_tempo"]
        for tick, tempo in changes:
            if tempo <= 0:
                raise MidiFileError(path, f"tempo 0 (set_tempo at tick {tick}): a beat "
                                          f"cannot last 0 microseconds")
        return changes

    shared = TempoMap(midi.ticks_per_beat, tempo_changes(midi.tracks)) if midi.type != 2 else None
    notes: list[Note] = []
    open_notes: list[Note] = []
    drums = unmatched = 0
    duration = 0.0
    for track_index, track in enumerate(midi.tracks):
        tempo = shared or TempoMap(midi.ticks_per_beat, tempo_changes([track]))
        sounding: dict[tuple[int, int], deque] = defaultdict(deque)
        programs = [0] * 16
        last_tick = 0
        for tick, msg in _absolute(track):
            last_tick = tick
            kind = msg.type
            if kind == "program_change":
                programs[msg.channel] = msg.program
            elif kind == "note_on" and msg.velocity > 0:
                sounding[(msg.channel, msg.note)].append((tick, msg.velocity,
                                                          programs[msg.channel]))
            elif kind == "note_off" or kind == "note_on":
                queue = sounding.get((msg.channel, msg.note))
                if not queue:
                    unmatched += 1
                    continue
                start_tick, velocity, program = queue.popleft()
                notes.append(Note(tempo.seconds(start_tick), tempo.seconds(tick), msg.note,
                                  velocity, msg.channel, track_index, program))
        duration = max(duration, tempo.seconds(last_tick))
        for (channel, pitch), queue in sounding.items():
            for start_tick, velocity, program in queue:
                open_notes.append(Note(tempo.seconds(start_tick), 0.0, pitch, velocity,
                                       channel, track_index, program))
    unterminated = len(open_notes)
    notes += [dataclasses.replace(n, end=duration) for n in open_notes]
    kept = []
    for note in notes:
        if note.channel == DRUM_CHANNEL and not include_drums:
            drums += 1
        else:
            kept.append(note)
    kept.sort(key=lambda n: (n.start, n.pitch, n.end, n.track, n.channel))
    return MidiScore(kept, duration, drum_notes_skipped=drums, unmatched_note_offs=unmatched,
                     unterminated_notes=unterminated, path=path)


MAX_RESAMPLE = 12  # semitones a pitch a model lacks may be played from its nearest pitch


def nearest_pitch(pitch: int, vocabulary: Sequence[int], max_distance: int = MAX_RESAMPLE
                  ) -> int | None:
    """The pitch of `vocabulary` nearest to `pitch` (ties: the lower, played faster), or
    None when it is more than `max_distance` semitones away. The live server and
    gansynth-generate both play a pitch a model lacks from this one, resampled."""
    nearest = min(vocabulary, key=lambda p: (abs(p - pitch), p))
    return int(nearest) if abs(nearest - pitch) <= max_distance else None


__all__ = ["DRUM_CHANNEL", "MAX_FILE_BYTES", "MAX_RESAMPLE", "MidiFileError", "MidiScore",
           "Note", "TempoMap", "nearest_pitch", "read_midi"]
