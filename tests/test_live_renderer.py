"""Renderers: the child-process renderer gansynth-live uses gives the same notes as
rendering in-process, reports a bad model, a bad request and a killed child, and recovers;
the shared memory the notes come back through grows with the batch and is removed when
the child is killed and when the renderer closes."""
from __future__ import annotations

import os
import signal
import threading
from multiprocessing import shared_memory

import numpy as np
import pytest

import gansynth_live as gl
from gansynth_live.live.facts import ModelFacts
from gansynth_live.live.renderer import InProcessRenderer, ProcessRenderer, RenderError
from live_helpers import PITCHES, RATE, tiny_model, wait_for  # noqa: F401


@pytest.fixture(scope="module")
def saved_tiny(tiny_model, tmp_path_factory):  # noqa: F811
    path = tmp_path_factory.mktemp("renderer") / "tiny"
    gl.save_model(tiny_model, path)
    return path


@pytest.fixture(scope="module")
def renderer(saved_tiny):
    """One child for the module (starting one imports TensorFlow: seconds)."""
    renderer = ProcessRenderer(saved_tiny, RATE, threads=1)
    yield renderer
    renderer.close()
    assert renderer.pid is None


def test_child_process_renders_what_the_parent_would(tiny_model, renderer):  # noqa: F811
    z = tiny_model.random_z(3, seed=1)
    here = InProcessRenderer(tiny_model, RATE)(z, [58, 60, 62])
    there = renderer(z, [58, 60, 62])
    assert renderer.pid != os.getpid()
    assert [a.audio.shape for a in there] == [(RATE, 1)] * 3
    for a, b in zip(here, there):
        np.testing.assert_allclose(a.samples, b.samples, atol=5e-3)
        assert a.length == b.length and a.loop == b.loop  # the loop travels with the note


def exists(name: str) -> bool:
    try:
        shared_memory.SharedMemory(name=name).close()
    except FileNotFoundError:
        return False
    return True


def test_the_arena_grows_for_a_bigger_batch(tiny_model, renderer):  # noqa: F811
    z = tiny_model.random_z(5, seed=2)
    small = renderer(z[:1], [60])
    first = renderer._arena.name
    big = renderer(z, [58, 59, 60, 61, 62])
    assert renderer._arena.name != first and not exists(first)
    assert len(big) == 5 and all(a.audio.shape == (RATE, 1) for a in big)
    np.testing.assert_array_equal(small[0].samples,
                                  renderer(z[:1], [60])[0].samples)  # a smaller batch fits
    for a, b in zip(InProcessRenderer(tiny_model, RATE)(z, [58, 59, 60, 61, 62]), big):
        np.testing.assert_allclose(a.samples, b.samples, atol=5e-3)
    big[0].samples[:] = 1.0  # the copies are the caller's own


def test_a_bad_request_fails_and_the_child_lives_on(renderer):
    pid = renderer.pid
    with pytest.raises(RenderError, match="pitch 30 is not in the model's vocabulary"):
        renderer(np.zeros((1, 16), np.float32), [30])
    assert len(renderer(np.zeros((1, 16), np.float32), [60])) == 1
    assert renderer.pid == pid and renderer.restarts == 0


def test_a_child_killed_during_a_call_is_reported_then_replaced(renderer):
    renderer(np.zeros((1, 16), np.float32), [60])
    arena, restarts = renderer._arena.name, renderer.restarts
    killer = threading.Timer(0.2, os.kill, (renderer.pid, signal.SIGKILL))
    killer.start()
    with pytest.raises(RenderError, match=r"the render process died \(exit code -9\)"):
        renderer(np.zeros((512, 16), np.float32), [60] * 512)  # seconds of work: killed midway
    killer.join()
    assert not exists(arena)  # the parent removed what the dead child left
    assert len(renderer(np.zeros((1, 16), np.float32), [60])) == 1
    assert renderer.restarts == restarts + 1


def test_a_child_that_died_between_calls_is_replaced_at_the_next(renderer):
    renderer(np.zeros((1, 16), np.float32), [60])
    arena, restarts = renderer._arena.name, renderer.restarts
    renderer._process.kill()
    renderer._process.join()
    assert len(renderer(np.zeros((1, 16), np.float32), [60])) == 1
    assert renderer.restarts == restarts + 1
    assert not exists(arena) and renderer._arena.name != arena


def test_closing_removes_the_arena(saved_tiny):
    renderer = ProcessRenderer(saved_tiny, RATE, threads=1)
    renderer(np.zeros((2, 16), np.float32), [60, 61])
    arena = renderer._arena.name
    renderer.close()
    assert not exists(arena) and renderer.pid is None


def test_a_bad_model_is_reported_at_start(tmp_path):
    with pytest.raises(RenderError, match="could not load the model: ModelLoadError: .*nope"):
        ProcessRenderer(tmp_path / "nope", RATE)


def test_a_renderer_started_in_the_background_waits_its_first_call(tiny_model, saved_tiny):  # noqa: F811,E501
    renderer = ProcessRenderer(saved_tiny, RATE, threads=1, wait=False)
    try:
        z = tiny_model.random_z(1, seed=2)
        note = renderer(z, [60])[0]  # waits for the child to be ready
        assert renderer.facts == ModelFacts.of(tiny_model)
        np.testing.assert_allclose(note.samples,
                                   InProcessRenderer(tiny_model, RATE)(z, [60])[0].samples,
                                   atol=5e-3)  # as above: TensorFlow's threads differ
    finally:
        renderer.close()


def test_closing_while_the_background_start_loads_stops_at_once(saved_tiny):
    renderer = ProcessRenderer(saved_tiny, RATE, threads=1, wait=False)
    child = wait_for(lambda: renderer._process, 30, "the child to be spawned")
    renderer.close()  # TensorFlow is still importing: nothing to wait for
    assert renderer.pid is None and child is not None and not child.is_alive()
    with pytest.raises(RenderError, match="closed"):
        renderer(np.zeros((1, 16), np.float32), [60])
