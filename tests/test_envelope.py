"""Bezier attack/release envelopes: curve shapes, note geometry, the live block API."""
import math
import tracemalloc

import bezier
import numpy as np
import pytest

from gansynth_live.envelope import TABLE_SIZE, BlockGain, Envelope, expand_slope, fade_frames

L = 16000  # rendered note length used below (the tiny model's 1 s at 16 kHz)
RATE = 16000  # its sample rate: the shortest fade (5 ms) is 80 samples


def test_slope_mapping_matches_gansynth_stereo():
    assert [expand_slope(s) for s in (0.0, 0.25, 0.5, 0.75, 1.0)] == [0.0, 0.125, 0.5, 0.875, 1.0]


def test_slope_half_is_exactly_linear():
    env = Envelope(attack_slope=0.5, release_slope=0.5)
    x = np.linspace(0.0, 1.0, 1001)
    np.testing.assert_allclose(env.attack_curve(x), x, atol=1e-12)
    np.testing.assert_allclose(env.release_curve(x), 1.0 - x, atol=1e-12)
    np.testing.assert_allclose(env.attack_table, np.linspace(0, 1, TABLE_SIZE), atol=1e-12)


@pytest.mark.parametrize("slope", [0.0, 0.1, 0.3, 0.7, 0.9, 1.0])
def test_tables_are_the_bezier_curves_as_functions_of_x(slope):
    env = Envelope(attack_slope=slope, release_slope=slope)
    a, r = expand_slope(slope), expand_slope(1.0 - slope)
    t = np.linspace(0.0, 1.0, 257)
    attack = bezier.Curve(np.asfortranarray([[0.0, 1 - a, 1.0], [0.0, a, 1.0]]), degree=2)
    release = bezier.Curve(np.asfortranarray([[0.0, r, 1.0], [1.0, r, 0.0]]), degree=2)
    for curve, lookup in ((attack, env.attack_curve), (release, env.release_curve)):
        x, y = curve.evaluate_multi(t)
        # Linear interpolation of an 8193-point table; steepest near an end for slopes 0/1.
        np.testing.assert_allclose(lookup(x), y, atol=2e-2 if slope in (0.0, 1.0) else 1e-4)
        inner = (x > 0.05) & (x < 0.95)
        np.testing.assert_allclose(lookup(x[inner]), y[inner], atol=1e-5)
    assert np.all(np.diff(env.attack_table) >= 0) and np.all(np.diff(env.release_table) <= 0)
    assert env.attack_table[0] == 0 and env.attack_table[-1] == 1
    assert env.release_table[0] == 1 and env.release_table[-1] == 0


def test_higher_slope_changes_faster():
    mid = [Envelope(attack_slope=s, release_slope=s) for s in (0.2, 0.5, 0.8)]
    attack = [float(e.attack_curve(0.5)) for e in mid]
    release = [float(e.release_curve(0.5)) for e in mid]
    assert attack[1] == pytest.approx(0.5) and release[1] == pytest.approx(0.5)
    assert attack[0] < attack[1] < attack[2]  # higher slope: quicker rise
    assert release[0] > release[1] > release[2]  # higher slope: quicker fall


@pytest.mark.parametrize("name,value", [("attack_percent", 150), ("attack_percent", -1),
                                        ("release_percent", 100.5), ("attack_slope", 1.5),
                                        ("release_slope", -0.1), ("release_slope", math.nan),
                                        ("attack_percent", "abc")])
def test_bad_parameters_name_the_parameter_and_range(name, value):
    with pytest.raises(ValueError, match=name) as info:
        Envelope(**{name: value})
    assert ".." in str(info.value)


def test_envelope_is_immutable_and_comparable():
    env = Envelope(2, 0.6, 30, 0.4)
    with pytest.raises(AttributeError):
        env.attack_percent = 5
    assert env == Envelope(2, 0.6, 30, 0.4) and env != Envelope()
    assert env.params() == {"attack_percent": 2.0, "attack_slope": 0.6,
                            "release_percent": 30.0, "release_slope": 0.4}


def test_note_geometry_short_note():
    env = Envelope(attack_percent=1, release_percent=25)  # A = 160, R = 4000 samples
    assert env.segment_lengths(L, RATE) == (160, 4000)
    held = 3000
    for loop in (True, False):
        gain = env.note_gain(held, L, RATE, loop)
        assert len(gain) == held + 4000 == env.sounding_length(held, L, RATE, loop)
        assert gain[0] == 0.0
        assert gain[80] == pytest.approx(0.5)  # linear attack, halfway
        assert gain[159] < 1.0 and np.all(gain[160:held + 1] == 1.0)  # attack ends at A
        assert gain[held] == 1.0 and gain[held + 1] < 1.0  # release starts at the note's end
        assert gain[held + 2000] == pytest.approx(0.5)  # linear release, halfway
        assert gain[-1] == pytest.approx(1 / 4000)  # one step before 0


def test_a_looping_note_sounds_until_its_release_ends_however_long_it_is_held():
    env = Envelope(attack_percent=1, release_percent=25)
    for held in (L - 100, L, 5 * L):
        gain = env.note_gain(held, L, RATE, loop=True)
        assert len(gain) == held + 4000
        assert np.all(gain[160:held + 1] == 1.0)
        assert gain[held + 2000] == pytest.approx(0.5)


def test_a_natural_note_ends_with_its_audio_and_a_short_fade():
    env = Envelope(attack_percent=1, release_percent=25)
    fade = fade_frames(RATE)
    for held in (L - 1000, L, 5 * L):
        gain = env.note_gain(held, L, RATE, loop=False)
        assert len(gain) == L  # never longer than the rendered audio
        if held >= L:  # held to the end: full gain, then the fade
            np.testing.assert_allclose(gain[L - fade:], np.arange(fade, 0, -1) / fade)
        else:  # released: the release runs until the fade cuts it short at the audio's end
            assert gain[held + 50] == pytest.approx(env.release_curve(50 / 4000))
            assert gain[-1] < 0.1 * gain[L - fade - 1]


@pytest.mark.parametrize("loop", [True, False])
@pytest.mark.parametrize("attack,release", [(0, 0), (0, 100), (100, 0), (100, 100), (0, 25),
                                            (50, 100)])
def test_every_allowed_value_plays_and_fades(attack, release, loop):
    """No setting silences a note, and every start and stop takes at least 5 ms."""
    env = Envelope(attack_percent=attack, release_percent=release)
    fade = fade_frames(RATE)
    assert fade == 80
    for held in (0, 500, L // 2, L, 3 * L):
        gain = env.note_gain(held, L, RATE, loop)
        if held >= 2 * fade:  # held long enough to be heard
            assert gain.max() > 0.01, (held, gain.max())
        assert gain[0] == 0.0
        # A ramp, never a jump: at most 1/fade per sample (linear slopes).
        assert np.max(np.abs(np.diff(gain))) <= 1.0 / fade + 1e-9


def test_zero_percents_mean_the_shortest_clickless_fades():
    fade = fade_frames(RATE)
    gain = Envelope(attack_percent=0, release_percent=0).note_gain(1000, L, RATE, True)
    assert len(gain) == 1000 + fade
    np.testing.assert_allclose(gain[:fade], np.arange(fade) / fade)
    assert np.all(gain[fade:1001] == 1.0)



@pytest.mark.parametrize("held", [0, 1, 100])
def test_a_note_released_at_once_is_held_through_a_short_attack(held):
    """A drum pad's note-off comes with its note-on: the note is held H = min(A, 50 ms)
    (here A = 160 samples), reaches full level and releases from it, instead of being
    silent (released at 0, from the level 0 its attack had reached)."""
    gain = Envelope().note_gain(held, L, RATE, True)  # A = 160, R = 4000 samples
    assert len(gain) == 160 + 4000
    assert gain[80] == pytest.approx(0.5) and gain[160] == pytest.approx(1.0)
    assert np.all(np.diff(gain[160:]) <= 0)


def test_release_during_attack_starts_from_the_level_reached():
    env = Envelope(attack_percent=10, release_percent=10)  # A = R = 1600 (100 ms)
    gain = env.note_gain(1000, L, RATE, True)  # released 5/8 into the attack
    assert len(gain) == 1000 + 1600
    assert gain[999] == pytest.approx(999 / 1600)
    assert gain[1000] == pytest.approx(0.625)  # no jump
    assert gain[1000 + 800] == pytest.approx(0.3125)
    assert np.all(np.diff(gain[1000:]) <= 0)
    # Sooner than 50 ms (800 samples), the note is held 50 ms: 0.5 of this attack.
    early = env.note_gain(400, L, RATE, True)
    assert len(early) == 800 + 1600 and early[800] == pytest.approx(0.5)


def test_full_percent_attack_and_release_overlap():
    env = Envelope(attack_percent=100, release_percent=50)
    gain = env.note_gain(L // 2, L, RATE, True)  # released in the middle of the attack
    assert len(gain) == L
    assert gain[L // 2] == pytest.approx(0.5)
    assert gain[L // 2 + L // 4] == pytest.approx(0.25)


def _blockwise(env, held, rendered, block, loop, audio_end_known):
    attack, release = env.segment_lengths(rendered, RATE)
    bg = BlockGain(env, block, fade_frames(RATE))
    out = np.empty(block)
    chunks, pos, rel = [], 0, None
    # A live voice learns the release time only in the block where the note-off comes.
    while True:
        if pos + block > held:
            rel = env.release_start(held, attack, RATE)
        end = None if loop or not audio_end_known else rendered
        n = bg.fill(out, pos, block, attack, rel, release, audio_end=end)
        chunks.append(out[:n].copy())
        assert np.all(out[n:] == 0.0)
        if n < block:
            break
        pos += block
    return np.concatenate(chunks)


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("held,block", [(3000, 256), (200, 64), (20000, 1000), (0, 128),
                                        (14000, 512), (15990, 256)])
def test_block_gain_matches_the_whole_note(held, block, loop):
    env = Envelope(attack_percent=3, attack_slope=0.8, release_percent=20, release_slope=0.3)
    np.testing.assert_array_equal(_blockwise(env, held, L, block, loop, True),
                                  env.note_gain(held, L, RATE, loop))


def test_block_gain_allocates_nothing():
    env = Envelope(attack_percent=5, release_percent=30, attack_slope=0.7)
    attack, release = env.segment_lengths(L, RATE)
    bg = BlockGain(env, 4096, fade_frames(RATE))
    out = np.empty(4096)
    bg.fill(out, 100, 4096, attack, 3000, release, audio_end=L)  # warm-up
    tracemalloc.start()
    try:
        for pos in range(0, L, 4096):
            bg.fill(out, pos, 4096, attack, None, release)
            bg.fill(out, pos, 4096, attack, 3000, release, audio_end=L - 0.5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4096  # one 4096-frame float64 temporary alone would be 32 KiB


def test_block_gain_rejects_oversized_blocks():
    bg = BlockGain(Envelope(), 64, 80)
    with pytest.raises(ValueError, match="max_frames"):
        bg.fill(np.empty(128), 0, 128, 10, None, 10)
