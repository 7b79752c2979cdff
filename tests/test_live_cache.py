"""Tests of the live note cache (LRU in a byte budget, stand-ins on a miss) and the timbre pad
(anchors, position, grid snapping, generations, neighbours)."""
from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from live_helpers import wait_for
from gansynth_live.latent import seeded_z
from gansynth_live.live.cache import NoteCache
from gansynth_live.live.timbre import MAX_SEED, GridPoint, TimbreState
from gansynth_live.sustain import Loop, RenderedNote

NOTE_BYTES = 4000  # a 1000-frame mono float32 note


def audio(value: float = 0.0, frames: int = 1000, channels: int = 1) -> RenderedNote:
    """A note of `frames` frames, its loop in its second half and no seam (no extra bytes)."""
    return RenderedNote(np.full((frames, channels), value, np.float32), frames,
                        Loop(frames // 2, frames, 0, 1.0))


def P(i, j, generation=0) -> GridPoint:
    return GridPoint(generation, i, j)


def consistent(cache: NoteCache) -> None:
    """bytes and the pitch index agree with the entries."""
    entries = dict(cache._entries)
    assert cache.bytes == sum(a.nbytes for a in entries.values())
    indexed = {(point, pitch) for pitch, points in cache._points_by_pitch.items()
               for point in points}
    assert indexed == set(entries)
    assert all(points for points in cache._points_by_pitch.values())


# NoteCache: storage, LRU, budget ---------------------------------------------------------

def test_budget_must_be_positive():
    for bad in (0, -1):
        with pytest.raises(ValueError, match="budget"):
            NoteCache(bad)


def test_put_get_contains_len_and_bytes():
    cache = NoteCache(10 * NOTE_BYTES)
    a, b = audio(1.0), audio(2.0, channels=2)
    assert cache.get(P(0, 0), 60) is None
    cache.put(P(0, 0), 60, a)
    cache.put(P(1, 0), 60, b)
    assert cache.get(P(0, 0), 60) is a
    assert cache.get(P(1, 0), 60) is b
    assert cache.get(P(0, 0), 61) is None and cache.get(P(0, 0, 1), 60) is None
    assert (P(0, 0), 60) in cache and (P(2, 0), 60) not in cache
    assert len(cache) == 2
    assert cache.bytes == a.nbytes + b.nbytes == 3 * NOTE_BYTES
    assert not a.samples.flags.writeable  # a voice may hold it; nobody may write it
    assert cache.cached_pitches(P(0, 0)) == 1 and cache.cached_pitches(P(5, 5)) == 0
    assert cache.points() == {P(0, 0), P(1, 0)}
    consistent(cache)


def test_replacing_a_note_does_not_double_count():
    cache = NoteCache(10 * NOTE_BYTES)
    cache.put(P(0, 0), 60, audio(1.0))
    cache.put(P(0, 0), 60, audio(2.0, frames=500))
    assert len(cache) == 1 and cache.bytes == NOTE_BYTES // 2
    assert cache.get(P(0, 0), 60).samples[0, 0] == 2.0
    assert cache.evictions == 0
    consistent(cache)


def test_lru_eviction_order_and_get_refreshes():
    cache = NoteCache(3 * NOTE_BYTES)
    for pitch in (60, 61, 62):
        cache.put(P(0, 0), pitch, audio())
    assert cache.evictions == 0
    cache.get(P(0, 0), 60)  # 61 is now the least recently used
    cache.put(P(0, 0), 63, audio())
    assert (P(0, 0), 61) not in cache
    assert {p for (_, p) in cache._entries} == {60, 62, 63}
    assert cache.evictions == 1 and cache.bytes == 3 * NOTE_BYTES
    cache.put(P(0, 0), 64, audio())  # then 62, the oldest untouched
    assert (P(0, 0), 62) not in cache
    cache.get(P(0, 0), 63)
    cache.put(P(0, 0), 65, audio())  # 60 (refreshed before 63 and 64 arrived)
    assert (P(0, 0), 60) not in cache
    assert cache.evictions == 3
    assert cache.cached_pitches(P(0, 0)) == 3
    consistent(cache)


def test_big_note_evicts_as_many_as_needed():
    cache = NoteCache(4 * NOTE_BYTES)
    for pitch in range(4):
        cache.put(P(0, 0), pitch, audio())
    cache.put(P(1, 1), 50, audio(frames=2500))  # 2.5 notes
    assert cache.evictions == 3
    assert cache.bytes <= cache.budget_bytes
    assert (P(0, 0), 3) in cache and (P(1, 1), 50) in cache
    consistent(cache)


def test_kept_points_are_protected_and_only_they_exceed_the_budget():
    cache = NoteCache(3 * NOTE_BYTES)
    keep = {P(0, 0)}
    for pitch in (60, 61, 62):
        cache.put(P(0, 0), pitch, audio(), keep)
    cache.put(P(0, 0), 63, audio(), keep)  # all kept: over budget, nothing evicted
    assert len(cache) == 4 and cache.evictions == 0
    assert cache.bytes == 4 * NOTE_BYTES > cache.budget_bytes
    cache.put(P(1, 0), 60, audio(), keep)  # the new, unkept note stays (just stored)...
    assert (P(1, 0), 60) in cache
    cache.put(P(2, 0), 60, audio(), keep)  # ...until the next put evicts it first
    assert (P(1, 0), 60) not in cache and (P(2, 0), 60) in cache
    assert all((P(0, 0), pitch) in cache for pitch in (60, 61, 62, 63))
    cache.put(P(3, 0), 60, audio(), frozenset())  # nothing kept now: back within budget
    assert cache.bytes <= cache.budget_bytes
    assert (P(3, 0), 60) in cache
    consistent(cache)


def test_budget_invariant_under_random_puts():
    rng = np.random.default_rng(0)
    cache = NoteCache(20 * NOTE_BYTES)
    points = [P(i, j) for i in range(3) for j in range(3)]
    keys = [(point, p) for point in points for p in range(40, 50)]
    evictions = 0
    for step in range(600):
        point, pitch = keys[rng.integers(len(keys))]
        keep = {points[k] for k in rng.choice(len(points), rng.integers(0, 3), replace=False)}
        size = int(rng.integers(200, 2500))
        before = len(cache) + ((point, pitch) not in cache)
        cache.put(point, pitch, audio(frames=size), keep)
        evictions += before - len(cache)
        if rng.random() < 0.3:
            cache.get(*keys[rng.integers(len(keys))])
        over = [k for k in cache._entries if k[0] not in keep and k != (point, pitch)]
        if cache.bytes > cache.budget_bytes:
            assert not over, "budget exceeded while an unkept entry remains"
        assert (point, pitch) in cache
    assert cache.evictions == evictions > 0
    consistent(cache)


# NoteCache: stand-ins --------------------------------------------------------------------

def test_stand_in_empty_cache_is_none():
    assert NoteCache(NOTE_BYTES).stand_in(P(0, 0), 60) is None


def test_stand_in_exact_note_at_rate_one():
    cache = NoteCache(100 * NOTE_BYTES)
    a = audio(1.0)
    cache.put(P(2, 2), 60, a)
    got, rate = cache.stand_in(P(2, 2), 60)
    assert got is a and rate == 1.0


def test_stand_in_1_same_pitch_nearest_point_beats_nearby_pitch_at_same_point():
    cache = NoteCache(100 * NOTE_BYTES)
    cache.put(P(4, 4), 61, audio(1.0))  # step 2 candidate
    cache.put(P(8, 8), 60, audio(2.0))  # far, same pitch
    cache.put(P(5, 3), 60, audio(3.0))  # nearest same pitch (distance sqrt 2)
    cache.put(P(4, 6), 60, audio(4.0))  # distance 2
    got, rate = cache.stand_in(P(4, 4), 60)
    assert got.samples[0, 0] == 3.0 and rate == 1.0


def test_stand_in_1_ignores_other_generations_of_same_pitch():
    cache = NoteCache(100 * NOTE_BYTES)
    cache.put(P(4, 4, 0), 60, audio(1.0))  # exact point and pitch, old anchors
    cache.put(P(0, 0, 1), 60, audio(2.0))  # far, but current anchors
    got, rate = cache.stand_in(P(4, 4, 1), 60)
    assert got.samples[0, 0] == 2.0 and rate == 1.0


@pytest.mark.parametrize("cached,rate_semitones", [
    (61, -1), (59, 1), (62, -2), (48, 12), (72, -12)])
def test_stand_in_2_nearest_pitch_at_same_point_with_rate(cached, rate_semitones):
    """A note `shift` semitones away is played at 2**(-shift/12): a higher note slower."""
    cache = NoteCache(100 * NOTE_BYTES)
    cache.put(P(3, 3), cached, audio(float(cached)))
    got, rate = cache.stand_in(P(3, 3), 60)
    assert got.samples[0, 0] == cached
    assert rate == pytest.approx(2.0 ** (rate_semitones / 12.0))


def test_stand_in_2_prefers_nearest_pitch_then_lower_on_tie():
    cache = NoteCache(100 * NOTE_BYTES)
    for pitch in (57, 63, 62):
        cache.put(P(3, 3), pitch, audio(float(pitch)))
    got, rate = cache.stand_in(P(3, 3), 60)
    assert got.samples[0, 0] == 62 and rate == pytest.approx(2 ** (-2 / 12))
    cache.put(P(3, 3), 58, audio(58.0))  # 58 and 62 tie: the lower one (played faster)
    got, rate = cache.stand_in(P(3, 3), 60)
    assert got.samples[0, 0] == 58 and rate == pytest.approx(2 ** (2 / 12))


def test_stand_in_2_same_point_beats_nearer_pitch_at_other_point():
    cache = NoteCache(100 * NOTE_BYTES)
    cache.put(P(3, 4), 61, audio(1.0))  # neighbour point, 1 semitone
    cache.put(P(3, 3), 65, audio(2.0))  # same point, 5 semitones
    got, rate = cache.stand_in(P(3, 3), 60)
    assert got.samples[0, 0] == 2.0 and rate == pytest.approx(2 ** (-5 / 12))


def test_stand_in_3_nearest_pitch_at_nearest_other_point():
    cache = NoteCache(100 * NOTE_BYTES)
    cache.put(P(8, 8), 59, audio(1.0))
    cache.put(P(5, 5), 57, audio(2.0))
    cache.put(P(2, 2), 59, audio(3.0))  # nearest point among the nearest pitch (59)
    got, rate = cache.stand_in(P(3, 3), 60)
    assert got.samples[0, 0] == 3.0 and rate == pytest.approx(2 ** (1 / 12))
    cache.put(P(6, 6), 61, audio(4.0))  # 61 ties 59 in distance: lower pitch first
    got, _ = cache.stand_in(P(3, 3), 60)
    assert got.samples[0, 0] == 3.0


def test_stand_in_respects_max_shift():
    cache = NoteCache(100 * NOTE_BYTES)
    cache.put(P(3, 3), 73, audio(1.0))
    cache.put(P(0, 0), 47, audio(2.0))
    assert cache.stand_in(P(3, 3), 60) is None  # 13 semitones away: too far
    got, rate = cache.stand_in(P(3, 3), 60, max_shift=13)  # same point first (step 2)
    assert got.samples[0, 0] == 1.0 and rate == pytest.approx(2 ** (-13 / 12))
    got, rate = cache.stand_in(P(5, 5), 60, max_shift=13)  # step 3: -13 before +13
    assert got.samples[0, 0] == 2.0 and rate == pytest.approx(2 ** (13 / 12))
    assert cache.stand_in(P(3, 3), 61, max_shift=0) is None
    got, rate = cache.stand_in(P(3, 3), 73, max_shift=0)
    assert got.samples[0, 0] == 1.0 and rate == 1.0


def test_stand_in_4_older_generations_only_when_current_has_nothing():
    cache = NoteCache(100 * NOTE_BYTES)
    cache.put(P(3, 3, 0), 60, audio(1.0))  # exact point/pitch of old anchors
    cache.put(P(0, 8, 2), 66, audio(2.0))  # current anchors, far point, 6 semitones
    got, rate = cache.stand_in(P(3, 3, 2), 60)
    assert got.samples[0, 0] == 2.0 and rate == pytest.approx(2 ** (-6 / 12))


def test_stand_in_4_newest_older_generation_first():
    cache = NoteCache(100 * NOTE_BYTES)
    cache.put(P(3, 3, 0), 60, audio(0.0))  # oldest, same point
    cache.put(P(8, 8, 1), 60, audio(1.0))  # newer, far point
    got, rate = cache.stand_in(P(3, 3, 2), 60)
    assert got.samples[0, 0] == 1.0 and rate == 1.0
    cache.put(P(7, 7, 1), 60, audio(7.0))  # nearer point of the same older generation
    got, _ = cache.stand_in(P(3, 3, 2), 60)
    assert got.samples[0, 0] == 7.0
    cache2 = NoteCache(100 * NOTE_BYTES)
    cache2.put(P(3, 3, 0), 62, audio(2.0))  # only older anchors, nearby pitch
    got, rate = cache2.stand_in(P(3, 3, 1), 60)
    assert got.samples[0, 0] == 2.0 and rate == pytest.approx(2 ** (-2 / 12))


def test_stand_in_refreshes_lru():
    cache = NoteCache(3 * NOTE_BYTES)
    for pitch in (60, 61, 62):
        cache.put(P(0, 0), pitch, audio(float(pitch)))
    got, _ = cache.stand_in(P(1, 1), 60)  # uses (0, 0) 60: now most recent
    assert got.samples[0, 0] == 60
    cache.put(P(0, 0), 63, audio())
    assert (P(0, 0), 60) in cache and (P(0, 0), 61) not in cache


def test_evicted_note_stays_valid_for_its_holder():
    cache = NoteCache(NOTE_BYTES)
    a = audio(5.0)
    cache.put(P(0, 0), 60, a)
    held = cache.get(P(0, 0), 60)
    cache.put(P(0, 0), 61, audio())
    assert (P(0, 0), 60) not in cache
    assert held is a and np.all(held.samples == 5.0)
    consistent(cache)


def test_concurrent_put_get_stand_in():
    cache = NoteCache(30 * NOTE_BYTES)
    errors, stop = [], threading.Event()
    counts = [0, 0, 0]

    def run(k, body):
        rng = np.random.default_rng(k)
        try:
            while not stop.is_set():
                body(rng)
                counts[k] += 1
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def putter(rng):
        point = P(int(rng.integers(9)), int(rng.integers(9)), int(rng.integers(3)))
        cache.put(point, int(rng.integers(40, 80)), audio(frames=int(rng.integers(100, 1500))),
                  {point} if rng.random() < 0.2 else frozenset())

    def getter(rng):
        point = P(int(rng.integers(9)), int(rng.integers(9)), int(rng.integers(3)))
        got = cache.get(point, int(rng.integers(40, 80)))
        assert got is None or got.samples.ndim == 2
        cache.cached_pitches(point)
        len(cache)

    def stander(rng):
        point = P(int(rng.integers(9)), int(rng.integers(9)), 2)
        got = cache.stand_in(point, int(rng.integers(40, 80)))
        if got is not None:
            assert got[0].samples.ndim == 2 and 0.5 <= got[1] <= 2.0
        cache.points()

    threads = [threading.Thread(target=run, args=(k, f), daemon=True)
               for k, f in enumerate((putter, getter, stander))]
    for t in threads:
        t.start()
    wait_for(lambda: min(counts) > 200, timeout=30, what="200 calls of each kind")
    stop.set()
    for t in threads:
        t.join(5)
    assert not errors, errors
    assert min(counts) > 50, counts
    consistent(cache)
    assert cache.evictions > 0


# TimbreState --------------------------------------------------------------------------

LATENT = 16


def state(**kw) -> TimbreState:
    return TimbreState(LATENT, **kw)


def test_init_anchors_from_seeds_and_validation():
    t = state(seeds=(5, 6, 7, 8))
    for k, seed in enumerate((5, 6, 7, 8)):
        np.testing.assert_array_equal(t.anchors[k], seeded_z(seed, LATENT))
    assert t.anchor_sources == ["seed 5", "seed 6", "seed 7", "seed 8"]
    assert (t.x, t.y, t.generation) == (0.0, 0.0, 0)
    with pytest.raises(ValueError, match="resolution"):
        state(resolution=1)
    with pytest.raises(ValueError, match="seeds"):
        state(seeds=(1, 2, 3))


@pytest.mark.parametrize("call,match", [
    (lambda t: t.set_seed(4, 1), "anchor"),
    (lambda t: t.set_seed(-1, 1), "anchor"),
    (lambda t: t.set_seed(0, -1), "seed"),
    (lambda t: t.set_seed(0, MAX_SEED + 1), "seed"),
    (lambda t: t.set_z(4, np.zeros(LATENT)), "anchor"),
    (lambda t: t.set_z(0, np.zeros(LATENT - 1)), "z"),
    (lambda t: t.set_z(0, np.zeros((1, LATENT))), "z"),
    (lambda t: t.set_z(0, [0.0] * (LATENT - 1) + [math.inf]), "z"),
    (lambda t: t.set_z(0, [math.nan] + [0.0] * (LATENT - 1)), "z"),
    (lambda t: t.set_xy(1.5, None), "x"),
    (lambda t: t.set_xy(-0.01, 0.5), "x"),
    (lambda t: t.set_xy(math.nan, None), "x"),
    (lambda t: t.set_xy(None, math.nan), "y"),
    (lambda t: t.set_xy(0.25, 2.0), "y"),
    (lambda t: t.set_xy(None, math.inf), "y"),
    (lambda t: t.set_xy("left", None), "x"),
])
def test_validation_names_the_argument_and_changes_nothing(call, match):
    t = state()
    t.set_xy(0.5, 0.5)
    anchors, sources = t.anchors.copy(), list(t.anchor_sources)
    with pytest.raises(ValueError, match=match):
        call(t)
    assert (t.x, t.y, t.generation) == (0.5, 0.5, 0)
    np.testing.assert_array_equal(t.anchors, anchors)
    assert t.anchor_sources == sources


@pytest.mark.parametrize("x,y,resolution,ij", [
    (0.49, 0.0, 9, (4, 0)),
    (0.0, 0.49, 9, (0, 4)),
    (0.06, 0.07, 9, (0, 1)),
    (1.0, 1.0, 9, (8, 8)),
    (0.99, 0.01, 9, (8, 0)),
    (0.74, 0.76, 3, (1, 2)),
    (0.5, 0.5, 2, (0, 0)),  # a tie: round half to even; either neighbour is nearest
    (0.51, 0.49, 2, (1, 0)),
])
def test_grid_snapping(x, y, resolution, ij):
    t = state(resolution=resolution)
    t.set_xy(x, y)
    p = t.current_point()
    assert (p.i, p.j) == ij and p.generation == 0
    last = resolution - 1
    assert math.hypot(p.i - x * last, p.j - y * last) <= math.sqrt(0.5) + 1e-9


def test_set_xy_none_keeps_coordinate():
    t = state()
    t.set_xy(0.3, 0.7)
    t.set_xy(None, 0.2)
    assert (t.x, t.y) == (0.3, 0.2)
    t.set_xy(0.9, None)
    assert (t.x, t.y) == (0.9, 0.2)
    t.set_xy(None, None)
    assert (t.x, t.y) == (0.9, 0.2)
    t.set_xy(0, 1)  # ints are fine
    assert (t.x, t.y) == (0.0, 1.0) and t.generation == 0


def test_generation_bumps_only_on_a_real_anchor_change():
    t = state(seeds=(0, 1, 2, 3))
    old = t.anchors
    t.set_seed(0, 0)  # the seed it already has
    t.set_z(1, seeded_z(1, LATENT))  # the values it already has
    t.set_z(2, list(map(float, seeded_z(2, LATENT))))
    assert t.generation == 0 and t.anchors is old
    t.set_seed(0, 9)
    assert t.generation == 1 and t.anchor_sources[0] == "seed 9"
    assert t.anchors is not old  # a new array: readers of the old one are undisturbed
    np.testing.assert_array_equal(old[0], seeded_z(0, LATENT))
    t.set_seed(0, 9)
    assert t.generation == 1
    z = np.linspace(-1, 1, LATENT)
    t.set_z(3, z)
    assert t.generation == 2 and t.anchor_sources[3] == "z"
    np.testing.assert_allclose(t.anchors[3], z.astype(np.float32))
    t.set_z(3, z)
    t.set_xy(0.5, 0.5)
    assert t.generation == 2
    assert t.current_point() == GridPoint(2, 4, 4)
    assert t.anchors.dtype == np.float32


def test_latent_at_corners_equals_anchors():
    t = state(seeds=(10, 11, 12, 13))
    t.set_z(2, np.arange(LATENT, dtype=np.float32) - 3)
    last = t.resolution - 1
    for k, (i, j) in enumerate([(0, 0), (last, 0), (0, last), (last, last)]):
        z = t.latent(GridPoint(t.generation, i, j))
        assert z.dtype == np.float32 and z.shape == (LATENT,)
        np.testing.assert_allclose(z, t.anchors[k], rtol=1e-5, atol=1e-5)
    t.set_xy(1.0, 0.0)
    np.testing.assert_allclose(t.latent_at_position(), t.anchors[1], rtol=1e-5, atol=1e-5)


def test_latent_of_grid_point_matches_exact_position_on_the_grid():
    t = state(resolution=5)
    t.set_xy(0.25, 0.75)
    p = t.current_point()
    assert (p.i, p.j) == (1, 3)
    np.testing.assert_allclose(t.latent(p), t.latent_at_position(), rtol=1e-6, atol=1e-6)
    t.set_xy(0.3, 0.7)  # same grid point, different exact position
    assert t.current_point() == p
    assert not np.allclose(t.latent(p), t.latent_at_position())
    inner = t.latent(GridPoint(0, 2, 2))
    assert not any(np.allclose(inner, a) for a in t.anchors)


@pytest.mark.parametrize("x,y,resolution", [
    (0.49, 0.5, 9), (0.0, 0.0, 9), (1.0, 0.3, 9), (0.6, 0.6, 5), (0.1, 0.9, 2)])
def test_neighbours_ring_by_ring_nearest_first_each_once(x, y, resolution):
    t = state(resolution=resolution)
    t.set_xy(x, y)
    point = t.current_point()
    got = list(t.neighbours(point))
    assert len(got) == resolution * resolution - 1
    assert len(set(got)) == len(got)
    assert point not in got
    assert all(p.generation == point.generation for p in got)
    assert {(p.i, p.j) for p in got} | {(point.i, point.j)} == {
        (i, j) for i in range(resolution) for j in range(resolution)}
    last = resolution - 1
    keys = [(max(abs(p.i - point.i), abs(p.j - point.j)),
             math.hypot(p.i - x * last, p.j - y * last)) for p in got]
    assert keys == sorted(keys)
    assert keys[0][0] == 1


def test_neighbours_first_is_nearest_to_exact_position():
    t = state()
    t.set_xy(0.49, 0.5)  # (3.92, 4) on the 9 x 9 grid: snaps to (4, 4)
    point = t.current_point()
    first = [(p.i, p.j) for p in list(t.neighbours(point))[:9]]
    assert first[0] == (3, 4)  # 0.08 away
    assert set(first[1:3]) == {(4, 3), (4, 5)}  # 1.003
    assert first[3] == (5, 4)  # 1.08
    assert set(first[4:6]) == {(3, 3), (3, 5)}  # 1.36
    assert set(first[6:8]) == {(5, 3), (5, 5)}  # 1.47
    assert first[8] == (2, 4)  # ring 2 starts with its nearest
    old = GridPoint(7, 0, 0)  # any point, any generation: keeps its generation
    assert {p.generation for p in t.neighbours(old)} == {7}


def test_neighbours_finish_a_ring_before_a_nearer_point_of_the_next():
    t = state()
    t.set_xy(3.5 / 8, 0.5)  # (3.5, 4): snaps to (4, 4); (2, 4) is 1.5 away, (5, 5) 1.80
    point = t.current_point()
    assert (point.i, point.j) == (4, 4)
    order = [(p.i, p.j) for p in t.neighbours(point)]
    assert order.index((5, 5)) < 8 <= order.index((2, 4))
