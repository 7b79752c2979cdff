"""The progressive schedule against Magenta's formulas (docs/magenta-reference.md section 1, Training)."""
import math

import pytest

from training.hparams import TRAINING_DEFAULTS
from gansynth_live.schedule import Schedule

M = 1_000_000


def magenta_progress(images: int, stable: int, transition: int, num_blocks: int) -> float:
    """compute_progress as docs/magenta-reference.md states it, written out independently."""
    capped = min(max(images, 0), num_blocks * stable + (num_blocks - 1) * transition - 1)
    period = stable + transition
    return math.floor(capped / period) + max(0.0, (capped % period - stable) / transition)


def magenta_stage_info(stage: int, stable: int, transition: int, total: int, resolutions: int):
    """(num_blocks, image count at the end of `stage`) as Magenta's get_stage_info."""
    num_blocks = (stage + 1) // 2 + 1
    end = (stage // 2 + 1) * stable + ((stage + 1) // 2) * transition
    if stage >= 2 * resolutions - 2:
        end = total
    return num_blocks, min(end, total)


@pytest.fixture
def hires():
    return Schedule.from_hparams(TRAINING_DEFAULTS, num_resolutions=7)


def test_magenta_hires_stage_layout(hires):
    assert hires.num_stages == 13
    assert [hires.num_blocks(s) for s in range(13)] == [1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]
    ends = [hires.stage_end(s) for s in range(13)]
    assert ends == [int(0.8 * M * (s + 1)) for s in range(12)] + [11 * M]
    assert all(hires.batch_size(s) == 8 for s in range(13))
    assert hires.total_images == 11 * M


@pytest.mark.parametrize("images, expected", [
    (0, 0.0), (799_999, 0.0), (800_000, 0.0), (1_200_000, 0.5), (1_599_999, 0.99999875),
    (1_600_000, 1.0), (2_400_000, 1.0), (2_800_000, 1.5), (3_200_000, 2.0),
    (9_600_000, 6.0), (10_399_999, 6.0), (10_400_000, 6.0), (11_000_000, 6.0),
])
def test_progress_at_known_points(hires, images, expected):
    stage = hires.stage_of(images)
    assert hires.progress(images, hires.num_blocks(stage)) == pytest.approx(expected, abs=1e-9)


def test_progress_matches_magenta_formula_everywhere(hires):
    for images in range(0, 11 * M + 1, 12_345):
        stage = hires.stage_of(images)
        num_blocks = hires.num_blocks(stage)
        assert hires.progress(images, num_blocks) == pytest.approx(
            magenta_progress(images, 800_000, 800_000, num_blocks), abs=1e-12), images


def test_progress_is_continuous_and_monotonic_over_the_stages(hires):
    previous = 0.0
    for images in range(0, 11 * M, 40_000):
        stage = hires.stage_of(images)
        p = hires.progress(images, hires.num_blocks(stage))
        assert previous <= p <= previous + 0.05 + 1e-9
        # In a stable stage p is the whole number num_blocks - 1; fading in, it lies between.
        if stage % 2 == 0:
            assert p == hires.num_blocks(stage) - 1
        else:
            assert hires.num_blocks(stage) - 2 <= p < hires.num_blocks(stage) - 1
        previous = p


@pytest.mark.parametrize("stable, transition, total, resolutions", [
    (100, 50, 1000, 3), (64, 64, 896, 7), (10, 30, 75, 4), (800_000, 800_000, 2_000_000, 7),
])
def test_uneven_schedules_match_magenta(stable, transition, total, resolutions):
    s = Schedule(resolutions, stable, transition, total, (8,))
    assert s.num_stages == 2 * resolutions - 1
    for stage in range(s.num_stages):
        num_blocks, end = magenta_stage_info(stage, stable, transition, total, resolutions)
        assert (s.num_blocks(stage), s.stage_end(stage)) == (num_blocks, end), stage
    for images in range(0, total + 1, max(1, total // 97)):
        stage = s.stage_of(images)
        assert images < s.stage_end(stage) or stage == s.num_stages - 1
        assert stage == 0 or images >= s.stage_end(stage - 1) or s.stage_end(stage - 1) == total
        assert s.progress(images, s.num_blocks(stage)) == pytest.approx(
            magenta_progress(images, stable, transition, s.num_blocks(stage)))


def test_the_cap_holds_progress_at_the_stage_architecture():
    # Past the nominal end of its stage (total_num_images larger than the schedule) the
    # image counter is capped per stage: the last stage stays at num_blocks - 1.
    s = Schedule(3, 100, 50, 10_000, (8,))
    assert s.stage_end(4) == 10_000 and s.num_blocks(4) == 3
    for images in (399, 400, 449, 450, 5_000, 9_999):
        assert s.progress(images, 3) == 2.0
    # The capped counter 3*100 + 2*50 - 1 = 399 is what Magenta clips to.
    assert s.progress(10**9, 3) == magenta_progress(399, 100, 50, 3)


def test_stage_of_at_boundaries(hires):
    assert hires.stage_of(0) == 0
    assert hires.stage_of(799_999) == 0
    assert hires.stage_of(800_000) == 1  # a stage ends when its image count is reached
    assert hires.stage_of(9_599_999) == 11
    assert hires.stage_of(9_600_000) == 12
    assert hires.stage_of(11 * M) == 12 and hires.stage_of(50 * M) == 12
    assert not hires.done(11 * M - 1) and hires.done(11 * M)


def test_total_shorter_than_the_schedule_ends_early():
    s = Schedule(7, 800_000, 800_000, 2_000_000, (8,))
    assert [s.stage_end(i) for i in range(4)] == [800_000, 1_600_000, 2_000_000, 2_000_000]
    assert s.stage_of(1_999_999) == 2 and s.done(2_000_000)


def test_batch_size_schedule_is_padded_at_the_front():
    s = Schedule(4, 10, 10, 100, (16, 8))  # Magenta pads to [16, 16, 16, 8]
    assert [s.num_blocks(i) for i in range(7)] == [1, 2, 2, 3, 3, 4, 4]
    assert [s.batch_size(i) for i in range(7)] == [16, 16, 16, 16, 16, 8, 8]
    full = Schedule(3, 10, 10, 100, (32, 16, 8))
    assert [full.batch_size(i) for i in range(5)] == [32, 16, 16, 8, 8]
    hires = Schedule(7, 10, 10, 100, (64, 64, 64, 32, 16, 8, 4))
    assert [hires.batch_size(i) for i in range(13)] == [64] * 5 + [32, 32, 16, 16, 8, 8, 4, 4]


def test_non_progressive_trains_the_full_network_at_final_progress():
    hparams = {**TRAINING_DEFAULTS, "train_progressive": False, "batch_size_schedule": [16, 8],
               "total_num_images": 5000}
    s = Schedule.from_hparams(hparams, num_resolutions=7)
    assert s.num_stages == 1
    assert s.num_blocks(0) == 7 and s.stage_end(0) == 5000 and s.batch_size(0) == 8
    assert all(s.stage_of(i) == 0 for i in (0, 4999, 5000, 10**7))
    assert all(s.progress(i, 7) == 6.0 for i in (0, 1, 2500, 4999))


def test_eta():
    s = Schedule(2, 10, 10, 1000, (8,))
    assert s.eta_seconds(200, 4.0) == 200.0
    assert s.eta_seconds(1000, 4.0) == 0 and s.eta_seconds(2000, 4.0) == 0
    assert s.eta_seconds(0, 0.0) == math.inf
