"""The live engine without an audio device: notes, cache hits and misses, timbre moves,
renders, bad input and a failing model, with the mixer run block by block as the audio
callback would. The model is the tiny preset with seeded weights (fast on 2 cores)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import gansynth_live as gl
from gansynth_live.envelope import Envelope
from gansynth_live.live.engine import Engine
from gansynth_live.live.planner import RETRY_FAILED_AFTER_S
from gansynth_live.live.voices import velocity_gain
from gansynth_live.live.renderer import resample
from gansynth_live.sustain import find_loop, looped
from live_helpers import PITCHES, RATE, FakeClock, engine_for, make_engine, play, tiny_model, wait_for  # noqa: F401

L = RATE  # 1 s notes at the device rate


@pytest.fixture
def engine(tiny_model):  # noqa: F811
    engine = make_engine(tiny_model, gain=0.5)  # resampled full-scale noise can top 1.0
    yield engine
    engine.stop()


def expected_note(engine: Engine, pitch: int, velocity: int, held: int, loop: bool = True):
    """The note as gansynth-generate places it: looped (sustain loop) or not."""
    note = engine.cache.get(engine.timbre.current_point(), pitch)
    gain = Envelope().note_gain(held, L, RATE, loop)
    audio = looped(note, len(gain)) if loop else note.audio[:len(gain)]
    return audio[:, 0] * gain * velocity_gain(velocity) * engine.mixer.gain


def test_ready_means_the_current_points_pitches_are_cached(engine):
    status = engine.status()
    assert status["ready"] == 1 and status["pending_renders"] == 0
    point = engine.timbre.current_point()
    assert all(engine.cache.get(point, p) is not None for p in PITCHES)
    note = engine.cache.get(point, 60)
    assert note.length == L and note.audio.shape == (L, 1)


def test_cached_note_is_the_models_note_at_the_device_rate_with_its_loop(
        engine, tiny_model):  # noqa: F811
    point = engine.timbre.current_point()
    z = engine.timbre.latent(point)
    generated = tiny_model.generate(z, 60)[0]
    direct = resample(generated, 16000, RATE)
    note = engine.cache.get(point, 60)
    np.testing.assert_allclose(note.audio, direct, atol=5e-3)
    assert note.loop[:3] == find_loop(generated, 16000, 60).scaled(RATE / 16000, L)[:3]


def test_a_held_hit_loops_until_released(engine):
    engine.note_on(60, 100)
    out = play(engine, 3.0)
    held = len(out)
    engine.note_off(60)
    out = np.concatenate([out, play(engine, 0.5)])
    assert engine.status()["cache_hits"] == 1 and engine.status()["sustain_mode"] == "loop"
    want = expected_note(engine, 60, 100, held)
    np.testing.assert_allclose(out[:len(want), 0], want, atol=1e-5)
    np.testing.assert_array_equal(out[:, 0], out[:, 1])  # mono model -> both channels
    assert np.abs(out[2 * L:3 * L]).max() > 0.01 and not out[len(want):].any()


def test_natural_sustain_plays_the_rendered_note_once(engine):
    engine.set_sustain_mode("natural")
    engine.note_on(60, 100)
    out = play(engine, 1.2)
    want = expected_note(engine, 60, 100, 10 * L, loop=False)
    assert len(want) == L
    np.testing.assert_allclose(out[:L, 0], want, atol=1e-5)
    assert not out[L:].any()  # a note held past its audio ends with it
    with pytest.raises(ValueError, match="sustain mode must be one of loop, natural"):
        engine.set_sustain_mode("forever")
    assert engine.status()["sustain_mode"] == "natural"


def test_note_off_starts_the_release_and_note_with_duration_too(engine):
    engine.note_on(60, 127)
    first = play(engine, 0.5)  # 93.75 blocks -> 94 blocks = 24064 frames
    engine.note_off(60)
    rest = play(engine, 0.7)
    out = np.concatenate([first, rest])[:, 0]
    held = len(first)
    want = expected_note(engine, 60, 127, held)
    np.testing.assert_allclose(out[:len(want)], want, atol=1e-5)
    assert not out[len(want):].any()
    engine.note_on(61, 127, duration=0.25)
    out = play(engine, 1.0)[:, 0]
    want = expected_note(engine, 61, 127, int(round(0.25 * RATE)))
    np.testing.assert_allclose(out[:len(want)], want, atol=1e-5)
    assert not out[len(want):].any()


def test_a_pitch_the_model_lacks_plays_its_nearest_pitch_resampled(engine):
    """The tiny model has 58..62: 64 plays 62 two semitones faster, 50 plays 58 slower."""
    point = engine.timbre.current_point()
    for pitch, source in ((64, 62), (50, 58)):
        engine.note_on(pitch, 100)
        play(engine, 0.01)
        voice = next(v for v in engine.mixer.voices if v.state and v.pitch == pitch)
        assert voice.note is engine.cache.get(point, source)
        assert voice.rate == pytest.approx(2 ** ((pitch - source) / 12))
        engine.note_off(pitch)
        play(engine, 0.3)
        assert engine.status()["voices"] == 0
    assert engine.status()["resampled_notes"] == 2 and engine.status()["cache_hits"] == 2


def test_velocity_zero_is_a_note_off(engine):
    engine.note_on(60, 90)
    play(engine, 0.1)
    engine.note_on(60, 0)
    play(engine, 0.3)
    assert engine.status()["voices"] == 0


def test_a_miss_sounds_at_once_from_a_stand_in_then_the_exact_note(engine):
    engine.set_xy(1.0, 1.0)  # a far grid point: nothing cached there yet
    engine.note_on(60, 100)
    out = play(engine, 0.05)
    status = engine.status()
    assert status["cache_misses"] == 1 and status["silent_misses"] == 0
    assert np.abs(out).max() > 0  # something sounds in the very first block
    assert np.abs(out[:256]).max() > 0
    assert wait_for(lambda: engine.wait_ready(0.1), what="the new point to render")
    engine.all_notes_off()
    play(engine, 0.05)
    engine.note_on(60, 100)
    out = play(engine, 1.1)
    assert engine.status()["cache_hits"] == 1
    assert engine.status()["grid_i"] == 2 and engine.status()["grid_j"] == 2
    np.testing.assert_allclose(out[:L, 0], expected_note(engine, 60, 100, L)[:L], atol=1e-5)


def test_moving_within_a_grid_cell_keeps_the_point_and_the_cache(engine):
    point = engine.timbre.current_point()
    notes = [engine.cache.get(point, p) for p in PITCHES]
    engine.set_xy(0.2, 0.24)  # grid 3: still point (0, 0)
    assert engine.timbre.current_point() == point == (0, 0, 0, ())  # no GANSpace edit
    assert engine.wait_ready(0)  # still playable, without waiting for anything
    assert all(engine.cache.get(point, p) is note for p, note in zip(PITCHES, notes))
    engine.note_on(60, 100)
    assert engine.status()["cache_hits"] == 1 and engine.status()["cache_misses"] == 0


def test_new_seed_is_a_new_timbre_and_old_notes_stand_in(engine):
    old = engine.cache.get(engine.timbre.current_point(), 60).samples.copy()
    engine.set_seed(0, 1234)
    assert engine.timbre.generation == 1
    engine.note_on(60, 100)  # nothing of generation 1 yet: the old timbre stands in
    out = play(engine, 0.1)
    assert np.abs(out).max() > 0
    assert wait_for(lambda: engine.wait_ready(0.1), what="the new timbre")
    new = engine.cache.get(engine.timbre.current_point(), 60).audio
    assert new.shape == old[:L].shape and not np.allclose(new, old[:L], atol=1e-3)
    engine.set_seed(0, 1234)  # the same seed again changes nothing
    assert engine.timbre.generation == 1


def test_when_ready_fires_once_the_point_is_rendered(engine):
    fired = threading.Event()
    engine.when_ready(fired.set)
    assert fired.is_set()  # already ready
    fired.clear()
    engine.set_seed(3, 77)
    engine.set_xy(1.0, 0.0)
    engine.when_ready(fired.set)
    assert fired.wait(30)
    assert engine.status()["ready"] == 1


def test_render_note_uses_the_exact_position(engine, tiny_model):  # noqa: F811
    engine.set_xy(0.3, 0.6)
    got, failed = [], []
    done = threading.Event()
    engine.render_note(61, lambda audio: (got.append(audio), done.set()),
                       lambda reason: (failed.append(reason), done.set()))
    assert done.wait(30) and not failed
    z = gl.latent.bilinear_slerp(engine.timbre.anchors, 0.3, 0.6).astype(np.float32)
    want = resample(tiny_model.generate(z, 61)[0], 16000, RATE)
    np.testing.assert_allclose(got[0].audio, want, atol=5e-3)


@pytest.mark.parametrize("call, message", [
    (lambda e: e.note_on(45, 100), "pitch 45 is more than 12 semitones from the model's "
                                   "pitches 58..62"),
    (lambda e: e.note_on(128, 100), "pitch must be in 0..127, got 128"),
    (lambda e: e.note_off(-1), "pitch must be in 0..127, got -1"),
    (lambda e: e.note_on(60.5, 100), "pitch must be a whole number"),
    (lambda e: e.note_on(60, 128), "velocity must be in 0..127, got 128"),
    (lambda e: e.note_on(60, float("nan")), "velocity must be finite, got nan"),
    (lambda e: e.note_on(60, 100, duration=-1), "duration must be in 0..3600 seconds"),
    (lambda e: e.note_on("sixty", 100), "pitch must be a number"),
    (lambda e: e.set_xy(1.5, 0), "x must be in 0..1, got 1.5"),
    (lambda e: e.set_xy(0, float("nan")), "y must be finite, got nan"),
    (lambda e: e.set_seed(4, 1), "anchor must be in 0..3, got 4"),
    (lambda e: e.set_seed(0, -1), "seed must be in 0..9223372036854775807"),
    (lambda e: e.set_z(0, [0.0] * 3), "z for anchor 0 needs 16 numbers, got 3"),
    (lambda e: e.set_z(1, [float("inf")] * 16), "z contains NaN or infinite values"),
    (lambda e: e.set_envelope(101, 0.5, 25, 0.5), "attack_percent must be in 0..100"),
    (lambda e: e.set_envelope(1, 0.5, 25, 2), "release_slope must be in 0..1"),
    (lambda e: e.pitch_bend(3), "pitch bend must be within +-2 semitones"),
    (lambda e: e.set_gain(-1), "gain must be in 0..4"),
])
def test_bad_input_is_refused_by_name_and_changes_nothing(engine, call, message):
    before = engine.status()
    anchors = engine.timbre.anchors.copy()
    with pytest.raises(ValueError, match=message.replace("+", r"\+").replace(".", r"\.")):
        call(engine)
    after = engine.status()
    assert np.array_equal(anchors, engine.timbre.anchors)
    for key in ("x", "y", "anchors_generation", "notes", "attack_percent", "release_slope"):
        assert before[key] == after[key], key
    assert not engine.mixer.commands


class FailingModel(gl.Model):
    """A real model whose generate() raises for batches containing pitch 61 (a fault)."""
    failed: list = []

    def generate(self, z, pitches):
        if 61 in list(np.atleast_1d(pitches)):
            FailingModel.failed.append(np.asarray(z).tobytes())
            raise RuntimeError("simulated out-of-memory")
        return super().generate(z, pitches)


def test_a_failing_render_is_counted_and_the_instrument_plays_on(tiny_model):  # noqa: F811
    model = FailingModel(tiny_model.config, PITCHES, generator=tiny_model.generator)
    FailingModel.failed.clear()
    clock = FakeClock()
    engine = engine_for(model, batch_size=1, clock=clock)
    engine.start()
    try:
        point = engine.timbre.current_point()
        wait_for(lambda: engine.cache.cached_pitches(point) == 4, what="the other pitches")
        wait_for(lambda: engine.status()["render_failures"] >= 1, what="the failure")
        assert engine.status()["ready"] == 0 and engine.status()["render_errors"] >= 1
        engine.note_on(60, 100)
        engine.note_on(61, 100)  # stand-in: pitch 60 or 62 resampled
        out = play(engine, 0.2)
        assert np.abs(out).max() > 0 and engine.status()["voices"] == 2
        # A failed note is not planned again before RETRY_FAILED_AFTER_S (no busy loop)...
        first = FailingModel.failed[0]
        assert (point, 61) not in [job.key for job in engine.planner.next_jobs(100)]
        assert FailingModel.failed.count(first) == 1
        clock.advance(RETRY_FAILED_AFTER_S)  # ...and is, after it
        engine.worker.wake()
        wait_for(lambda: FailingModel.failed.count(first) == 2, what="the retry")
    finally:
        engine.stop()


def test_the_cache_stays_within_its_budget_while_the_timbre_moves(tiny_model):  # noqa: F811
    per_point = 2 * L * 4 * len(PITCHES)  # a note and its loop body (at most 1 s)
    engine = make_engine(tiny_model, cache_bytes=int(2.5 * per_point))
    try:
        for x, y in [(1, 0), (0, 1), (1, 1), (0.5, 0.5), (0, 0)]:
            engine.set_xy(x, y)
            assert wait_for(lambda: engine.wait_ready(0.1), what=f"point {x},{y}")
            assert engine.cache.bytes <= engine.cache.budget_bytes
        status = engine.status()
        assert status["cache_evictions"] > 0
        assert status["cache_entries"] <= engine.cache.budget_bytes // (L * 4)
    finally:
        engine.stop()


def test_too_small_a_cache_is_refused():
    model = gl.Model(gl.preset("tiny"), PITCHES)
    with pytest.raises(ValueError, match="cannot hold one timbre point"):
        engine_for(model, cache_bytes=1000)
