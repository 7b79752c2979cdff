"""MIDI files -> notes: tracks, tempo maps, running status, overlaps, drums, bad files."""
import mido
import pytest

from gansynth_live.midi import MidiFileError, read_midi

TPB = 480


def _track(*events):
    """A track from (delta_ticks, message) pairs."""
    track = mido.MidiTrack()
    for delta, msg in events:
        track.append(msg.copy(time=delta))
    return track


def on(note, vel=100, ch=0):
    return mido.Message("note_on", note=note, velocity=vel, channel=ch)


def off(note, ch=0, as_note_on=False):
    if as_note_on:
        return mido.Message("note_on", note=note, velocity=0, channel=ch)
    return mido.Message("note_off", note=note, velocity=64, channel=ch)


def tempo(bpm):
    return mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))


def _save(tmp_path, tracks, type=1, name="song.mid"):
    midi = mido.MidiFile(type=type, ticks_per_beat=TPB)
    midi.tracks.extend(tracks)
    path = tmp_path / name
    midi.save(path)
    return path


def test_type1_tempo_map_on_track_0_applies_to_other_tracks(tmp_path):
    conductor = _track((0, tempo(120)), (4 * TPB, tempo(60)))  # 4 beats at 0.5 s, then 1 s
    melody = _track((0, on(60)), (TPB, off(60)),            # 0.0 .. 0.5
                    (4 * TPB, on(62)), (TPB, off(62)))      # beats 5..6 -> 3.0 .. 4.0
    score = read_midi(_save(tmp_path, [conductor, melody]))
    starts_ends = [(n.start, n.end, n.pitch, n.track) for n in score.notes]
    assert starts_ends == [(0.0, 0.5, 60, 1), (pytest.approx(3.0), pytest.approx(4.0), 62, 1)]
    assert score.duration == pytest.approx(4.0)


def test_type0_tempo_change_mid_file_and_running_status(tmp_path):
    track = _track((0, on(60)), (TPB, off(60, as_note_on=True)),  # 0 .. 0.5 at 120 bpm
                   (0, tempo(240)),
                   (0, on(64)), (TPB, on(67)), (TPB, off(64, as_note_on=True)),
                   (0, off(67, as_note_on=True)))
    path = _save(tmp_path, [track], type=0)
    raw = path.read_bytes()
    assert raw.count(b"\x90") < 6  # mido wrote running status; the reader must decode it
    notes = read_midi(path).notes
    assert [(n.pitch, n.start, n.end) for n in notes] == [
        (60, 0.0, 0.5), (64, 0.5, 1.0), (67, 0.75, 1.0)]  # 480 ticks = 0.25 s at 240 bpm


def test_type2_tracks_keep_their_own_tempo(tmp_path):
    a = _track((0, tempo(60)), (0, on(60)), (TPB, off(60)))
    b = _track((0, tempo(120)), (0, on(62)), (TPB, off(62)))
    notes = read_midi(_save(tmp_path, [a, b], type=2)).notes
    assert {n.pitch: n.end for n in notes} == {60: 1.0, 62: 0.5}


def test_velocity_program_channel_and_sorting(tmp_path):
    t1 = _track((0, mido.Message("program_change", program=40, channel=2)),
                (TPB, on(72, vel=33, ch=2)), (TPB, off(72, ch=2)))
    t2 = _track((0, on(48, vel=120)), (3 * TPB, off(48)))
    notes = read_midi(_save(tmp_path, [t1, t2])).notes
    assert [(n.pitch, n.velocity, n.channel, n.program, n.track) for n in notes] == [
        (48, 120, 0, 0, 1), (72, 33, 2, 40, 0)]


def test_overlapping_same_pitch_pairs_first_in_first_out(tmp_path):
    track = _track((0, on(60, vel=90)), (TPB, on(60, vel=50)),  # second starts at 0.5
                   (TPB, off(60)),                              # 1.0 ends the first
                   (TPB, off(60)))                              # 1.5 ends the second
    notes = read_midi(_save(tmp_path, [track])).notes
    assert [(n.start, n.end, n.velocity) for n in notes] == [(0.0, 1.0, 90), (0.5, 1.5, 50)]


def test_unterminated_notes_end_at_the_file_end_and_stray_offs_are_counted(tmp_path):
    a = _track((0, on(60)), (TPB, off(61)))  # 60 never ends; 61 was never on
    b = _track((0, on(64)), (4 * TPB, off(64)))  # the file ends at 2.0 s
    score = read_midi(_save(tmp_path, [a, b]))
    assert {n.pitch: n.end for n in score.notes} == {60: 2.0, 64: 2.0}
    assert score.unterminated_notes == 1 and score.unmatched_note_offs == 1


def test_drums_skipped_and_counted_unless_included(tmp_path):
    track = _track((0, on(36, ch=9)), (TPB, off(36, ch=9)), (0, on(38, ch=9)), (TPB, off(38, ch=9)),
                   (0, on(60)), (TPB, off(60)))
    path = _save(tmp_path, [track])
    score = read_midi(path)
    assert [n.pitch for n in score.notes] == [60] and score.drum_notes_skipped == 2
    score = read_midi(path, include_drums=True)
    assert [n.pitch for n in score.notes] == [36, 38, 60] and score.drum_notes_skipped == 0


def test_file_without_notes_gives_an_empty_list(tmp_path):
    score = read_midi(_save(tmp_path, [_track((0, tempo(100)))]))
    assert score.notes == [] and score.drum_notes_skipped == 0


@pytest.mark.parametrize("content,why", [
    (None, "no such file"),
    (b"", "not a valid MIDI file"),
    (b"this is not a midi file at all", "not a valid MIDI file"),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x01\x00\x00\x90", "not a valid"),
])
def test_bad_files_raise_naming_the_file(tmp_path, content, why):
    path = tmp_path / "bad.mid"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MidiFileError, match=why) as info:
        read_midi(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_directory_is_rejected(tmp_path):
    with pytest.raises(MidiFileError, match="directory"):
        read_midi(tmp_path)


def test_tempo_0_is_refused_naming_the_file(tmp_path):
    zero = mido.MetaMessage("set_tempo", tempo=0)
    path = _save(tmp_path, [_track((0, tempo(120)), (TPB, zero), (0, on(60)), (TPB, off(60)))])
    with pytest.raises(MidiFileError, match="tempo 0 \\(set_tempo at tick 480\\)") as info:
        read_midi(path)
    assert str(path) in str(info.value)


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path):
    from gansynth_live.midi import MAX_FILE_BYTES

    # A valid header and one track chunk that declares it holds the rest of the file.
    body = MAX_FILE_BYTES
    data = (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0" + b"MTrk" + body.to_bytes(4, "big")
            + b"\x00\x90\x3c\x40" * (body // 4))
    path = tmp_path / "big.mid"
    path.write_bytes(data)
    with pytest.raises(MidiFileError, match="larger than 4 MiB") as info:
        read_midi(path)
    assert str(path) in str(info.value)
    path.write_bytes(data[:MAX_FILE_BYTES])  # at the limit it is read (and found cut short)
    with pytest.raises(MidiFileError, match="not a valid MIDI file"):
        read_midi(path)
