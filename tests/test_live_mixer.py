"""Real-time tests of the live mixer (gansynth_live.live.voices): the audio callback's code.

Synthetic note buffers are fed as `NoteStart`s through `Mixer.post` and mixed with
`Mixer.process` in blocks (small, odd, bigger than max_frames); the output is compared
sample for sample with `Envelope.note_gain` and `sustain.looped`, the offline definitions
of a note's gain and of a held note's looped audio. Also: sustain pedal and sustain
modes, retrigger, all-notes-off and stealing without clicks, polyphony, playback rate and
pitch bend (through loops too), channel mapping, clipping, latency stats, per-block
allocation (tracemalloc) and posting from another thread while the audio thread runs.
"""
from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from gansynth_live.envelope import Envelope
from gansynth_live.live.voices import (FADING, HELD, MAX_COMMANDS_PER_BLOCK, RELEASED,
                                       SUSTAINED, Mixer, NoteStart, velocity_gain)
from gansynth_live.sustain import Loop, RenderedNote, looped, make_note

SR = 48000
MAX_FRAMES = 1024
L = 2400  # rendered note length (frames) for the exact-gain tests: 50 ms
SHAPED = Envelope(attack_percent=10.0, attack_slope=0.7, release_percent=25.0,
                  release_slope=0.3)  # A = 240, R = 600 frames for L = 2400
FLAT = Envelope(attack_percent=0.0, release_percent=0.0)  # 5 ms (240-frame) fades only
FADE = 240  # the shortest attack and release at SR
BLOCKS = [1, 64, 128, 256, 1000, 1500, (37, 1, 500, 3, 1100)]  # 1500, 1100 > MAX_FRAMES
BLOCK_IDS = ["1", "64", "128", "256", "1000", "1500>max", "odd"]


def noise(frames: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A buffer whose every sample differs (catches off-by-one reads), |x| <= 0.9."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.2, 0.9, (frames, channels)) * rng.choice([-1, 1], (frames, channels))
            ).astype(np.float32)


def dc(frames: int, channels: int = 1, value: float = 1.0) -> np.ndarray:
    return np.full((frames, channels), value, np.float32)


def sine(freq: float, frames: int, channels: int = 1) -> np.ndarray:
    t = np.arange(frames) / SR
    return np.repeat(np.sin(2 * np.pi * freq * t)[:, None], channels, 1).astype(np.float32)


def rendered(audio: np.ndarray | RenderedNote, loop: Loop | None = None) -> RenderedNote:
    """`audio` as a rendered note; by default its loop is the third quarter, seam 48."""
    if isinstance(audio, RenderedNote):
        return audio
    frames = len(audio)
    if frames < 8:  # too short for a loop: only ever played once (sustain natural)
        return RenderedNote(np.ascontiguousarray(audio, np.float32), frames, Loop(0, 1, 0, 0))
    return make_note(audio, loop or Loop(frames // 2, frames * 3 // 4, min(48, frames // 8), 1.0))


def note(pitch=60, audio=None, *, rate=1.0, gain=0.8, envelope=SHAPED, length=L, duration=None,
         received=0.0, loop=False, note_loop=None) -> NoteStart:
    """A NoteStart of `audio` (default: noise of `length` frames), sustain natural unless
    `loop`."""
    if audio is None:
        audio = noise(length)
    return NoteStart(pitch, rendered(audio, note_loop), rate, gain, envelope, length, loop,
                     duration, received)


def render(mixer: Mixer, total: int, block=256, events=None) -> tuple[np.ndarray, list[int]]:
    """Process `total` frames in blocks (an int or a cycle of sizes); `events` maps a block
    index to the commands posted just before that block. Returns (output, block starts)."""
    events = dict(events or {})
    sizes = itertools.cycle(block) if isinstance(block, tuple) else itertools.repeat(block)
    chunks, starts, pos = [], [], 0
    for k in itertools.count():
        if pos >= total:
            break
        for command in events.pop(k, ()):
            mixer.post(command)
        n = min(next(sizes), total - pos)
        out = np.full((n, mixer.channels), 7.0, np.float32)  # garbage: must be overwritten
        mixer.process(out)
        chunks.append(out.copy())
        starts.append(pos)
        pos += n
    assert not events, "events past the end of the render"
    return np.concatenate(chunks), starts


def expected(start: int, total: int, ns: NoteStart, held: int, mixer_gain: float,
             channels: int = 1) -> np.ndarray:
    """The note as gansynth-generate would place it (rate 1)."""
    gain = ns.envelope.note_gain(min(held, total), ns.length, SR, ns.loop)
    n = min(len(gain), total - start)
    source = looped(ns.note, n) if ns.loop else ns.note.audio[:n]
    out = np.zeros((total, channels), np.float64)
    out[start:start + n] = source.astype(np.float64) * gain[:n, None] * ns.gain * mixer_gain
    return out


def mixer(channels=1, **kw) -> Mixer:
    kw.setdefault("gain", 0.5)
    return Mixer(SR, channels, MAX_FRAMES, **kw)


def all_free(m: Mixer) -> bool:
    return all(not v.state for v in m.voices)


def assert_close(actual, wanted, atol=2e-6):
    actual = np.asarray(actual, np.float64)
    bad = np.flatnonzero(np.abs(actual - wanted).max(axis=-1) > atol) if actual.ndim > 1 else \
        np.flatnonzero(np.abs(actual - wanted) > atol)
    assert not len(bad), (f"{len(bad)} samples differ, first at {bad[0]}: "
                          f"got {actual[bad[0]]}, want {wanted[bad[0]]}")


# Exact gain semantics ---------------------------------------------------------------------

def _block_index_at_or_after(starts_of, frame):
    return next(k for k, s in enumerate(starts_of) if s >= frame)


def _starts(block, total):
    """The block starts `render` will use (to place note-offs on block boundaries)."""
    sizes = itertools.cycle(block) if isinstance(block, tuple) else itertools.repeat(block)
    starts, pos = [], 0
    while pos < total:
        starts.append(pos)
        pos += next(sizes)
    return starts


@pytest.mark.parametrize("block", BLOCKS, ids=BLOCK_IDS)
def test_note_held_past_its_length_matches_note_gain(block):
    m = mixer()
    ns = note()
    total = L + 5000
    starts = _starts(block, total)
    k = 2 if len(starts) > 3 else 0  # start after a few silent blocks
    out, got_starts = render(m, total, block, {k: [("on", ns)]})
    assert got_starts == starts
    assert_close(out, expected(starts[k], total, ns, 10**9, m.gain))
    assert all_free(m)
    assert m.voices_started == 1 and m.active_voices() == 0


@pytest.mark.parametrize("block", BLOCKS, ids=BLOCK_IDS)
def test_note_off_at_block_boundary_matches_note_gain(block):
    m = mixer()
    ns = note()
    total = L + 2000
    starts = _starts(block, total)
    off = _block_index_at_or_after(starts, 700)
    out, _ = render(m, total, block, {0: [("on", ns)], off: [("off", 60)]})
    assert_close(out, expected(0, total, ns, starts[off], m.gain))
    assert all_free(m)


@pytest.mark.parametrize("block,duration", [
    pytest.param(b, d, id=f"{i}-{d}") for b, i in zip(BLOCKS, BLOCK_IDS)
    for d in [0, 100, 777, 1799, 1801, 5000] if b != 1 or d in (777, 1801)])
def test_duration_note_releases_mid_block(block, duration):
    """/note: the release starts `duration` frames after note-on, wherever that falls."""
    m = mixer()
    ns = note(duration=duration)
    total = L + 1200
    out, _ = render(m, total, block, {0: [("on", ns)]})
    assert_close(out, expected(0, total, ns, duration, m.gain))
    assert all_free(m)


@pytest.mark.parametrize("block", [1, 64, 128])
def test_note_off_during_attack_fades_from_level_reached(block):
    """Only block sizes that put a block boundary inside the 240-frame attack."""
    m = mixer()
    ns = note()
    total = L + 1200
    starts = _starts(block, total)
    off = _block_index_at_or_after(starts, 100)  # A = 240: still in the attack
    assert starts[off] < 240
    out, _ = render(m, total, block, {0: [("on", ns)], off: [("off", 60)]})
    assert_close(out, expected(0, total, ns, starts[off], m.gain))
    assert np.abs(np.diff(out[:, 0])).max() < 2.0  # no jump bigger than the noise itself


@pytest.mark.parametrize("block", BLOCKS, ids=BLOCK_IDS)
@pytest.mark.parametrize("loop", [False, True], ids=["natural", "loop"])
def test_zero_attack_zero_release_envelope(block, loop):
    """A = R = 0 mean the shortest clickless fades (5 ms): a held note ramps up over 240
    frames, sounds until its audio ends (natural, fading out over its last 240 frames) or
    on (loop); an early note-off fades it out over 240 frames."""
    m = mixer()
    ns = note(audio=noise(L, seed=3), envelope=FLAT, loop=loop)
    total = L + 700
    out, _ = render(m, total, block, {0: [("on", ns)]})
    assert_close(out, expected(0, total, ns, 10**9, m.gain))
    assert out[0, 0] == 0.0 and out[FADE, 0] != 0.0 and out[L - FADE - 1, 0] != 0.0
    assert out[L:].any() == loop
    assert all_free(m) != loop

    m = mixer()
    starts = _starts(block, total)
    off = _block_index_at_or_after(starts, 500)
    out, _ = render(m, total, block, {0: [("on", ns)], off: [("off", 60)]})
    assert_close(out, expected(0, total, ns, starts[off], m.gain))
    assert not out[starts[off] + FADE:].any() and all_free(m)


@pytest.mark.parametrize("block", BLOCKS, ids=BLOCK_IDS)
def test_looping_note_held_five_lengths_matches_the_offline_loop(block):
    """Sustain loop: a note held 5x its rendered length plays its audio up to the loop, then
    the seam and the loop again and again (`sustain.looped`), until note-off + release."""
    m = mixer()
    ns = note(loop=True, note_loop=Loop(1000, 1000 + 337, 60, 1.0))  # wraps mid-block
    total = 6 * L
    starts = _starts(block, total)
    off = _block_index_at_or_after(starts, 5 * L)
    out, _ = render(m, total, block, {0: [("on", ns)], off: [("off", 60)]})
    assert_close(out, expected(0, total, ns, starts[off], m.gain))
    assert np.abs(out[4 * L:5 * L]).max() > 0.1  # still sounding long after L
    assert all_free(m)


@pytest.mark.parametrize("rate", [0.9, 2 ** (3 / 12)])
def test_looping_note_at_another_rate_keeps_its_frequency_and_phase(rate):
    """A stand-in played faster or slower loops too: a sine whose loop holds whole periods
    plays on at rate x its frequency with no jump at the wraps."""
    m = mixer()
    period = 100  # 480 Hz at 48 kHz
    ns = note(audio=sine(SR / period, 4800), envelope=FLAT, rate=rate, loop=True,
              note_loop=Loop(1000, 1000 + 7 * period, 50, 1.0))
    out, _ = render(m, 5 * 4800, 256, {0: [("on", ns)]})
    tail = out[4800:, 0]
    assert _frequency(tail) == pytest.approx(SR / period * rate, rel=1e-4)
    assert np.abs(np.diff(tail)).max() < 1.05 * 0.4 * 2 * np.pi * rate / period


@pytest.mark.parametrize("rate,block", [(0.9, (100, 7, 250)), (1.37, 1500), (3.9, 1024),
                                        (6.5, 1024), (6.5, (100, 7, 250))])
def test_looping_note_at_any_rate_reads_the_offline_loop_interpolated(rate, block):
    """A held note at a rate other than 1 reads the looped stream (`sustain.looped`) at
    positions k * rate, linearly interpolated: from a window of the stream copied out per
    block, or (a block at more than 4x, which the window does not hold) by wrapping every
    position; both give the same samples."""
    m = mixer()
    ns = note(envelope=FLAT, rate=rate, gain=1.0, loop=True,
              note_loop=Loop(1000, 1000 + 337, 60, 1.0))  # wraps within most blocks
    total = 6000
    out, _ = render(m, total, block, {0: [("on", ns)]})
    positions = np.arange(total) * rate
    stream = looped(ns.note, int(positions[-1]) + 2).astype(np.float64)[:, 0]
    want = np.interp(positions, np.arange(len(stream)), stream) * m.gain
    assert_close(out[FADE:, 0], want[FADE:], atol=1e-6)  # after the 5 ms attack


def test_sustain_pedal_keeps_a_looping_note_sounding_past_its_length():
    m = mixer()
    ns = note(loop=True)
    render(m, 512, 256, {0: [("on", ns), ("sustain", True)]})
    m.post(("off", 60))
    out, _ = render(m, 4 * L, 256)
    assert _state(m, 60) == [SUSTAINED] and np.abs(out[-L:]).max() > 0.1
    m.post(("sustain", False))
    render(m, L, 256)
    assert all_free(m)


def test_default_envelope_and_velocity_gain_scale_output():
    m = mixer(gain=0.3)
    env = Envelope()
    vel = velocity_gain(90)
    ns = note(audio=dc(L), envelope=env, gain=vel)
    out, _ = render(m, L + 500, 128, {0: [("on", ns)]})
    assert_close(out, expected(0, L + 500, ns, 10**9, 0.3))
    peak = out.max()
    assert peak == pytest.approx(0.3 * vel, rel=1e-5)


def test_velocity_gain_curve():
    assert velocity_gain(127) == 1.0
    assert velocity_gain(64) == pytest.approx((64 / 127) ** 2)
    assert velocity_gain(64, 1.0) == pytest.approx(64 / 127)
    assert velocity_gain(1, 0.0) == 1.0
    gains = [velocity_gain(v) for v in range(1, 128)]
    assert all(a < b for a, b in zip(gains, gains[1:]))


def test_gain_command_changes_master_gain_at_next_block():
    m = mixer(gain=0.5)
    ns = note(audio=dc(L), envelope=FLAT)
    out, _ = render(m, 1024, 256, {0: [("on", ns)], 2: [("gain", 0.25)]})
    assert_close(out[FADE:512], np.full((512 - FADE, 1), 0.8 * 0.5))
    assert_close(out[512:], np.full((512, 1), 0.8 * 0.25))


def test_zero_frame_block_is_harmless():
    m = mixer(channels=2)
    m.post(("on", note()))
    m.process(np.zeros((0, 2), np.float32))
    out, _ = render(m, L + 1000, 256)
    assert out.any()


def test_block_bigger_than_max_frames_with_clipping():
    """A host block > max_frames is mixed in parts, and clipping still works on all of it."""
    m = Mixer(SR, 2, 256, gain=1.0)
    for p in range(4):
        m.post(("on", note(pitch=60 + p, audio=dc(L, 2), envelope=FLAT, gain=1.0)))
    out = np.zeros((1000, 2), np.float32)
    m.process(out)
    assert np.all(out[FADE // 4:] == 1.0)  # 4 voices: full scale a quarter into the attack
    assert m.clipped_blocks == 1
    assert m.frames_processed == 1000


# Sustain, retrigger ----------------------------------------------------------------------

def _state(m: Mixer, pitch: int) -> list[int]:
    return sorted(v.state for v in m.voices if v.state and v.pitch == pitch)


def test_sustain_pedal_holds_note_off_until_pedal_up():
    m = mixer()
    ns = note(length=L)
    total = L + 1000
    # on at block 0, pedal down, off at block 2 (ignored while sustained), pedal up at 6
    blocks = [("on", ns), ("sustain", True)]
    out1, _ = render(m, 512, 256, {0: blocks})
    m.post(("off", 60))
    out2, _ = render(m, 1024, 256)
    assert _state(m, 60) == [SUSTAINED]
    assert m.active_voices() == 1
    m.post(("sustain", False))
    out3, _ = render(m, total - 1536, 256)
    assert m.sustain is False
    out = np.concatenate([out1, out2, out3])
    assert_close(out, expected(0, total, ns, 1536, m.gain))
    assert all_free(m)


def test_sustain_does_not_affect_notes_still_held_and_new_notes():
    m = mixer()
    m.post(("sustain", True))
    m.post(("on", note(60)))
    m.post(("on", note(62)))
    render(m, 256)
    m.post(("off", 60))
    render(m, 256)
    assert _state(m, 60) == [SUSTAINED] and _state(m, 62) == [HELD]
    m.post(("sustain", False))
    render(m, 256)
    assert _state(m, 60) == [RELEASED] and _state(m, 62) == [HELD]


def test_same_pitch_struck_again_releases_earlier_voice():
    m = mixer()
    first = note(audio=noise(L, seed=1))
    second = note(audio=noise(L, seed=2))
    total = 512 + L + 500
    out, _ = render(m, total, 128, {0: [("on", first)], 4: [("on", second)]})
    want = expected(0, total, first, 512, m.gain) + expected(512, total, second, 10**9, m.gain)
    assert_close(out, want)
    assert m.voices_stolen == 0


def test_same_pitch_struck_again_while_sustained():
    m = mixer()
    m.post(("sustain", True))
    m.post(("on", note(60)))
    render(m, 256)
    m.post(("off", 60))
    m.post(("on", note(60)))
    render(m, 256)
    assert _state(m, 60) == [HELD, RELEASED]


# All notes off, stealing: no clicks ------------------------------------------------------

def test_all_off_fades_every_voice_within_fade_frames_without_click():
    m = mixer(channels=2, gain=0.25)
    long = 48000
    long_release = Envelope(attack_percent=0, release_percent=50)
    for p in range(6):
        m.post(("on", note(60 + p, dc(long + 10, 1), envelope=long_release if p in (1, 2) else FLAT,
                           length=long, gain=0.5)))
    render(m, 1024, 256)
    m.post(("sustain", True))
    m.post(("off", 61))  # a sustained voice fades too
    m.post(("off", 62))
    m.post(("sustain", False))  # 62 released: its release is long, it fades too
    m.post(("on", note(70, dc(long + 10), envelope=SHAPED, length=long, gain=0.5)))
    render(m, 64, 64)
    m.post(("all_off",))
    out, _ = render(m, 4 * m.fade_frames, 64)
    assert m.fade_frames == 240
    level_before = out[0, 0]
    assert level_before > 0.5
    assert np.abs(out[m.fade_frames:]).max() < 1e-9, "still sounding after fade_frames"
    assert all_free(m) and m.active_voices() == 0
    step = np.abs(np.diff(np.concatenate([[[level_before] * 2], out]), axis=0)).max()
    slope = level_before / m.fade_frames  # the fade's own step
    assert step <= 1.05 * slope + 1e-6, f"click: step {step} vs fade slope {slope}"
    assert np.array_equal(out[:, 0], out[:, 1])


@pytest.mark.parametrize("block", [1, 17, 64, 256, 1000])
def test_all_off_fade_length_independent_of_block_size(block):
    m = mixer()
    m.post(("on", note(60, dc(48000), envelope=FLAT, length=48000, gain=1.0)))
    render(m, 300, block)
    m.post(("all_off",))
    out, _ = render(m, 1000, block)
    g = 0.5  # mixer gain
    want = np.maximum(g * (1.0 - np.arange(1000) / m.fade_frames), 0.0)
    assert_close(out[:, 0], want, atol=1e-5)
    assert all_free(m)


def test_all_off_then_new_note_plays_normally():
    m = mixer()
    m.post(("on", note(60)))
    render(m, 512)
    m.post(("all_off",))
    ns = note(64)
    m.post(("on", ns))
    out, _ = render(m, L + 500, 128)
    # the old voice fades while the new one plays normally
    old = out[m.fade_frames:]
    assert_close(old, expected(0, L + 500, ns, 10**9, m.gain)[m.fade_frames:])


def test_polyphony_steals_oldest_released_before_held_voice():
    m = mixer(polyphony=2)
    long = 20000
    m.post(("on", note(60, dc(long), length=long)))  # oldest, held
    m.post(("on", note(61, dc(long), length=long)))
    render(m, 256)
    m.post(("off", 61))  # released (long release): stolen first though younger
    m.post(("on", note(62, dc(long), length=long)))
    render(m, 256)
    assert _state(m, 61) == []  # faded within one 256-frame block (fade_frames 240)
    assert _state(m, 60) == [HELD] and _state(m, 62) == [HELD]
    assert m.voices_stolen == 1
    m.post(("on", note(63, dc(long), length=long)))
    m.process(np.zeros((16, 1), np.float32))
    assert _state(m, 60) == [FADING]  # now the oldest held voice goes
    assert m.voices_stolen == 2 and m.active_voices() == 2


def test_steal_prefers_sustained_over_held():
    m = mixer(polyphony=2)
    m.post(("sustain", True))
    m.post(("on", note(60)))
    m.post(("on", note(61)))
    render(m, 64)
    m.post(("off", 61))
    m.post(("on", note(62)))
    m.process(np.zeros((16, 1), np.float32))
    assert _state(m, 61) == [FADING] and _state(m, 60) == [HELD]


def test_stolen_voice_fades_without_click():
    m = mixer(channels=1, polyphony=2, gain=1.0)
    long = 20000
    m.post(("on", note(60, dc(long), envelope=FLAT, length=long, gain=0.5)))
    m.post(("on", note(61, dc(long), envelope=FLAT, length=long, gain=0.25)))
    before, _ = render(m, 512, 128)
    assert before[-1, 0] == pytest.approx(0.75)
    # the replacement is silent, so the output shows only the stolen voice's fade
    m.post(("on", note(62, np.zeros((long, 1), np.float32), envelope=FLAT, length=long)))
    out, _ = render(m, 1024, 128)
    assert m.voices_stolen == 1 and m.voices_dropped == 0
    assert out[-1, 0] == pytest.approx(0.25)  # the oldest (0.5) went
    steps = np.abs(np.diff(np.concatenate([before[-1:], out])[:, 0]))
    slope = 0.5 / m.fade_frames
    assert steps.max() <= 1.05 * slope, f"click: step {steps.max()} vs slope {slope}"
    assert np.all(out[m.fade_frames:, 0] == pytest.approx(0.25))


def test_active_voices_never_exceed_polyphony():
    m = mixer(polyphony=4)
    rng = np.random.default_rng(0)
    buf = noise(L)
    for _ in range(300):
        for _ in range(rng.integers(0, 4)):
            p = int(rng.integers(40, 80))
            m.post(("on", note(p, buf)) if rng.random() < 0.6 else ("off", p))
        m.process(np.zeros((int(rng.integers(1, 300)), 1), np.float32))
        assert m.active_voices() <= 4
        assert sum(1 for v in m.voices if v.state) <= len(m.voices)


def test_many_notes_in_one_block_never_raise_and_are_counted():
    m = mixer(channels=2, polyphony=32)
    buf = noise(L, 2)
    for i in range(200):
        m.post(("on", note(20 + i % 100, buf, gain=1.0)))
    out = np.zeros((256, 2), np.float32)
    m.process(out)
    # A burst is applied MAX_COMMANDS_PER_BLOCK at a time: no block does unbounded work.
    assert m.voices_started == MAX_COMMANDS_PER_BLOCK == 64
    assert len(m.commands) == 200 - 64
    assert m.active_voices() == 32
    assert m.voices_stolen == 64 - 32
    # A voice stolen in the block it started in was never heard: it is freed, not faded,
    # so no fade needs a spare slot and nothing is cut.
    assert m.voices_dropped == 0
    assert sum(1 for v in m.voices if v.state) == 32
    assert np.all(np.isfinite(out)) and np.abs(out).max() <= 1.0
    for _ in range(3):
        m.process(out)
    assert m.voices_started == 200 and not m.commands and m.active_voices() == 32
    render(m, 2 * L, 256, {0: [("all_off",)]})
    assert all_free(m)


def test_notes_spread_over_blocks_are_never_dropped():
    """Up to 8 steals per block fit the spare slots when a block is >= the fade."""
    m = mixer(polyphony=8)
    buf = noise(L)
    for k in range(50):
        for i in range(4):
            m.post(("on", note(40 + (4 * k + i) % 40, buf)))
        m.process(np.zeros((256, 1), np.float32))
        assert m.active_voices() <= 8
    assert m.voices_dropped == 0
    assert m.voices_stolen == 200 - 8


# Playback rate and pitch bend ------------------------------------------------------------

def _frequency(x: np.ndarray) -> float:
    """Frequency from interpolated rising zero crossings."""
    x = np.asarray(x, np.float64)
    i = np.flatnonzero((x[:-1] < 0) & (x[1:] >= 0))
    t = i + (-x[i]) / (x[i + 1] - x[i])
    return (len(t) - 1) / (t[-1] - t[0]) * SR


@pytest.mark.parametrize("block", [64, 256, 333])
def test_rate_plays_neighbour_pitch_at_expected_frequency(block):
    m = mixer()
    frames = SR
    rate = 2 ** (1 / 12)
    ns = note(audio=sine(440.0, frames), envelope=FLAT, rate=rate, length=int(frames / rate) - 10)
    out, _ = render(m, 24000, block, {0: [("on", ns)]})
    assert _frequency(out[:, 0]) == pytest.approx(440.0 * rate, rel=1e-4)
    assert np.abs(out).max() == pytest.approx(0.8 * 0.5, rel=1e-3)


@pytest.mark.parametrize("block", [64, 256, 333])
def test_pitch_bend_changes_frequency_of_sounding_note(block):
    m = mixer()
    frames = SR
    bend = 2 ** (2 / 12)
    ns = note(audio=sine(440.0, frames), envelope=FLAT, length=int(frames / bend) - 10)
    starts = _starts(block, 30000)
    k = _block_index_at_or_after(starts, 12000)
    out, _ = render(m, 30000, block, {0: [("on", ns)], k: [("bend", bend)]})
    b = starts[k]
    assert _frequency(out[:b - 10, 0]) == pytest.approx(440.0, rel=1e-4)
    assert _frequency(out[b + 10:, 0]) == pytest.approx(440.0 * bend, rel=1e-4)
    # no discontinuity at the bend: the phase carries on
    assert np.abs(np.diff(out[b - 50:b + 50, 0])).max() < 1.2 * 0.4 * 2 * np.pi * 494 / SR
    render(m, 64, 64, {0: [("bend", 1.0)]})
    assert m.bend == 1.0


@pytest.mark.parametrize("rate", [0.5, 0.75, 2 ** (-3 / 12), 1.5])
def test_fractional_rate_interpolates_linearly_across_blocks(rate):
    m = mixer()
    n = 6000
    ramp = (np.arange(n, dtype=np.float32) / n)[:, None]
    ns = note(audio=ramp, envelope=FLAT, rate=rate, length=int(n / rate) - 5, gain=1.0)
    out, _ = render(m, 1000, (100, 7, 250), {0: [("on", ns)]})
    want = np.arange(1000) * rate / n * 0.5
    assert_close(out[FADE:, 0], want[FADE:], atol=1e-6)  # after the 5 ms attack


@pytest.mark.parametrize("rate,block", [
    (r, b) for r in [1.0, 2.0, 1.37, 0.5] for b in [1, 64, 256, 1000, 1500]
    if b != 1 or r in (1.37, 2.0)])
def test_voice_fades_out_when_buffer_runs_out_before_envelope(rate, block):
    """Audio shorter than the envelope (a note bent up and held): the voice fades out over
    the fade_frames before its last source frame, whatever the block size (no cut at a
    block boundary), reads nothing past the end, and is then freed without error."""
    m = mixer()
    frames = 1000
    ns = note(audio=dc(frames), envelope=FLAT, rate=rate, length=10 * frames, gain=1.0)
    out, _ = render(m, 3000, block, {0: [("on", ns)]})
    assert all_free(m)
    end = (frames - 1) / rate  # output frame of the last source frame
    sounding = int(np.flatnonzero(out[:, 0])[-1]) + 1
    assert end - 1 <= sounding <= end + 1
    full = int(end) - m.fade_frames - 1
    assert np.all(out[FADE:full, 0] == pytest.approx(0.5))
    steps = np.abs(np.diff(out[:, 0]))
    assert steps.max() <= 1.05 * 0.5 / m.fade_frames, "click where the audio runs out"


@pytest.mark.parametrize("block", [64, 256])
def test_bend_up_while_held_runs_out_of_audio_smoothly(block):
    """The engine's case: length = frames / rate; a bend up then makes the audio end during
    the release, before the envelope does: fade, no click."""
    m = mixer()
    frames = 4800
    ns = note(audio=dc(frames), envelope=SHAPED, length=frames, gain=1.0)
    out, _ = render(m, 6000, block, {0: [("on", ns), ("bend", 2 ** (2 / 12))]})
    assert all_free(m)
    end = int((frames - 1) / 2 ** (2 / 12))
    assert out[end - 300, 0] > 0.02  # still in the release when the audio runs out
    steps = np.abs(np.diff(out[600:, 0]))  # after the attack
    assert steps.max() < 2 * 0.5 / m.fade_frames, "click where the audio runs out"
    assert not out[end + 2:].any()


def test_empty_and_one_frame_buffers():
    m = mixer()
    m.post(("on", note(60, np.zeros((0, 1), np.float32), envelope=FLAT, length=10)))
    m.post(("on", note(61, np.ones((1, 1), np.float32), envelope=FLAT, length=10, rate=1.5)))
    render(m, 512, 64)
    assert all_free(m)


# Channels ------------------------------------------------------------------------------

def test_mono_buffer_to_stereo_output():
    m = mixer(channels=2)
    ns = note(audio=noise(L, 1))
    out, _ = render(m, L + 500, 100, {0: [("on", ns)]})
    assert np.array_equal(out[:, 0], out[:, 1])
    assert_close(out[:, :1], expected(0, L + 500, ns, 10**9, m.gain))


def test_stereo_buffer_to_mono_output_is_mean():
    m = mixer(channels=1)
    audio = noise(L, 2, seed=5)
    ns = note(audio=audio)
    out, _ = render(m, L + 500, 100, {0: [("on", ns)]})
    mean = NoteStart(60, rendered(audio.mean(axis=1, keepdims=True)), 1.0, ns.gain,
                     ns.envelope, L, False)
    assert_close(out, expected(0, L + 500, mean, 10**9, m.gain))


@pytest.mark.parametrize("rate", [1.0, 0.9])
def test_stereo_buffer_to_stereo_output_keeps_channels(rate):
    m = mixer(channels=2)
    audio = np.concatenate([dc(L, 1, 0.25), dc(L, 1, -0.75)], axis=1)
    ns = note(audio=audio, envelope=FLAT, rate=rate, gain=1.0)
    out, _ = render(m, 1000, 128, {0: [("on", ns)]})
    assert np.allclose(out[FADE:, 0], 0.125) and np.allclose(out[FADE:, 1], -0.375)


# Clipping, latency --------------------------------------------------------------------

def test_clipping_keeps_output_in_range_and_counts_blocks():
    m = mixer(channels=2, gain=1.0, polyphony=16)
    for p in range(12):
        m.post(("on", note(50 + p, sine(100 + 10 * p, 48000, 2), envelope=FLAT, length=40000,
                           gain=1.0)))
    out, starts = render(m, 4096, 256)
    assert np.abs(out).max() <= 1.0
    assert np.abs(out).max() == 1.0
    assert 0 < m.clipped_blocks <= len(starts)
    quiet = mixer(channels=2, gain=0.5)
    quiet.post(("on", note(60)))
    render(quiet, 1024)
    assert quiet.clipped_blocks == 0


def test_latency_is_recorded_once_per_note_with_received_time():
    m = mixer()
    m.post(("on", note(60, received=time.perf_counter())))
    m.post(("on", note(61)))  # no receive time: not counted
    render(m, 256 * 4)
    assert m.latency_count == 1
    assert 0.0 <= m.latencies[0] < 5.0
    m.post(("on", note(62, received=time.perf_counter() - 0.010)))
    render(m, 256)
    assert m.latency_count == 2
    assert 0.010 <= m.latencies[1] < 5.0
    assert m.frames_processed == 256 * 5


@pytest.mark.parametrize("loop", [False, True])
def test_a_note_off_in_the_note_ons_block_still_plays_the_note(loop):
    """A drum pad (or a sequencer's zero-length note) sends note-off with note-on: both
    reach the mixer before the same block. The note is held through its attack (240
    frames here, under the 50 ms shortest hold) and released from full level, exactly as
    gansynth-generate plays a note of length 0; it used to be silent."""
    ns = note(loop=loop)  # L = 2400 frames: A = 240, R = 600
    out, _ = render(mixer(), 3000, events={0: [("on", ns), ("off", 60)]})
    want = expected(0, 3000, ns, 0, 0.5)
    np.testing.assert_allclose(out, want, atol=1e-6)
    attack = SHAPED.segment_lengths(ns.length, SR)[0]
    held, _ = render(mixer(), attack + 200, events={0: [("on", ns)]})
    # As loud as the note held, through its attack and just after.
    assert np.abs(out[:attack + 200]).max() >= 0.9 * np.abs(held).max() > 0.1


# Allocation ----------------------------------------------------------------------------

def _sounding_mixer(frames: int, block: int) -> Mixer:
    """8 natural voices (mono, stereo, some interpolated) and 8 looping ones, whose short
    loops wrap in every block."""
    m = Mixer(SR, 2, block, polyphony=16, gain=0.3)
    mono = rendered(sine(220.0, frames))
    stereo = rendered(sine(330.0, frames, 2))
    short_loop = rendered(sine(440.0, 4800), Loop(2400, 2400 + 109, 48, 1.0))
    for k in range(8):
        rate = 1.0 if k < 4 else 2 ** ((k - 8) / 12)  # some interpolated, all < 1
        m.post(("on", NoteStart(60 + k, mono if k % 2 else stereo, rate, 0.5, SHAPED,
                                frames - 10, False)))
        m.post(("on", NoteStart(70 + k, short_loop, rate, 0.5, SHAPED, frames - 10, True)))
    return m


def block_allocations(block: int, blocks: int, warm_up: int) -> tuple[int, int, int]:
    """(growth over the blocks, the largest transient allocation of one block, voices
    sounding at the end) in bytes, for `_sounding_mixer` with the bend changed every 100
    blocks. tracemalloc counts every thread's allocations: run it where no other thread
    runs (`in_a_fresh_process`)."""
    m = _sounding_mixer(block * (blocks + 200), block)
    out = np.zeros((block, 2), np.float32)
    for _ in range(warm_up):  # commands applied, caches filled
        m.process(out)
    m.post(("bend", 2 ** (1 / 12)))
    tracemalloc.start()
    try:
        m.process(out)
        base, _ = tracemalloc.get_traced_memory()
        worst = 0
        for i in range(blocks):
            if i % 100 == 0:
                m.post(("bend", 2 ** ((i % 300) / 1200)))
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            m.process(out)
            _, peak = tracemalloc.get_traced_memory()
            worst = max(worst, peak - before)
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return current - base, worst, m.active_voices()


def in_a_fresh_process(*args: int) -> tuple[int, int, int]:
    """`block_allocations(*args)` in a new interpreter: in the test run, threads other
    tests left behind (servers, readers) allocate now and then and were counted as the
    mixer's (a CI run saw one 3,052-byte block)."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import test_live_mixer as t; "
            "print(*t.block_allocations(*map(int, sys.argv[2:])))")
    result = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent),
                             *map(str, args)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    growth, worst, voices = map(int, result.stdout.split())
    return growth, worst, voices


def test_process_does_not_allocate_per_block():
    """250 blocks of 512 frames with 16 voices (mono, stereo, rate != 1, looping through a
    loop shorter than a block, bend changes): no growth and no temporary arrays (a numpy
    temporary of one block would be >= 2 KiB; the views a voice's read keeps alive at
    once come to ~1.7 KiB). (250, not more: tracemalloc makes each block ~20x slower.)"""
    growth, worst, voices = in_a_fresh_process(512, 250, 50)
    assert voices == 16, "the voices must sound throughout"
    assert growth < 8192, f"memory grew by {growth} bytes over 250 blocks"
    assert worst < 2048, f"a block allocated {worst} bytes transiently"


def test_process_transient_allocation_is_smaller_than_a_block_for_big_blocks():
    """With 4096-frame blocks, any numpy temporary (even a cast buffer) shows up clearly."""
    _, worst, voices = in_a_fresh_process(4096, 8, 5)
    assert voices == 16
    assert worst < 4096, f"a 4096-frame block allocated {worst} bytes transiently"


# Threads -------------------------------------------------------------------------------

def test_posting_from_another_thread_while_processing():
    m = mixer(channels=2, polyphony=16)
    buf = rendered(noise(L, 2))
    errors = []
    stop = threading.Event()
    posted = [0]

    def control():
        rng = np.random.default_rng(1)
        try:
            while not stop.is_set() and posted[0] < 4000:
                p = int(rng.integers(30, 90))
                r = rng.random()
                if r < 0.5:
                    m.post(("on", note(p, buf, rate=float(rng.choice([1.0, 0.9])),
                                       received=time.perf_counter())))
                elif r < 0.9:
                    m.post(("off", p))
                elif r < 0.95:
                    m.post(("sustain", bool(rng.random() < 0.5)))
                else:
                    m.post(("bend", float(2 ** rng.uniform(-2 / 12, 2 / 12))))
                m.active_voices()  # read from the control thread too
                posted[0] += 1
                if posted[0] % 25 == 0:
                    time.sleep(0.001)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    thread = threading.Thread(target=control, daemon=True)
    out = np.zeros((128, 2), np.float32)
    started = time.perf_counter()
    thread.start()
    deadline = time.perf_counter() + 5.0  # normally ~0.3 s: until the 4000 posts are done
    blocks = 0
    try:
        while thread.is_alive() and time.perf_counter() < deadline:
            m.process(out)
            assert np.all(np.isfinite(out)) and np.abs(out).max() <= 1.0
            assert m.active_voices() <= 16
            blocks += 1
    finally:
        stop.set()
        thread.join(5)
    assert not errors, errors
    assert posted[0] == 4000 and blocks > 20, (posted[0], blocks)
    m.post(("sustain", False))
    m.post(("all_off",))
    render(m, 2 * m.fade_frames, 128)
    assert all_free(m) and not m.commands
    assert m.voices_started > 100
    # One latency per voice heard (a voice stolen before its first block has none), each
    # the time from its post to the block that began it: within this test's run.
    assert 0 < m.latency_count <= m.voices_started
    latencies = m.latencies[:min(m.latency_count, 4096)]
    assert latencies.min() >= 0 and latencies.max() <= time.perf_counter() - started


def test_a_block_at_full_polyphony_with_pitch_bend_costs_less_cpu_than_it_lasts():
    """The callback's hard limit: mixing a block must take less CPU time than the block
    lasts, or the device underflows whatever else happens. The worst case: every voice
    held (looping) and the bend moving every block (interpolated reads). CPU time of this
    thread (time.thread_time), not wall time, so other jobs on the machine count little;
    the margin is bench/live_latency.py's to measure."""
    block, channels, polyphony = 256, 2, 32
    m = Mixer(SR, channels, 4096, polyphony=polyphony, gain=0.5)
    buf = noise(SR, 1)
    for i in range(polyphony):
        m.post(("on", note(40 + i, buf, gain=0.8, envelope=Envelope(), length=SR, loop=True)))
    out = np.zeros((block, channels), np.float32)
    for _ in range(MAX_COMMANDS_PER_BLOCK // polyphony + 2):
        m.process(out)
    costs = []
    for b in range(300):
        m.post(("bend", 2.0 ** (2.0 * np.sin(b / 10.0) / 12.0)))
        start = time.thread_time()
        m.process(out)
        costs.append(time.thread_time() - start)
    assert m.active_voices() == polyphony and m.bend != 1.0 and np.abs(out).max() > 0
    assert np.median(costs) < block / SR, f"median {np.median(costs) * 1e3:.2f} ms per block"
