"""GANSpace timbre controls in the live server: /timbre/pca over real OSC (UDP on
127.0.0.1), the coefficient point as a cache key, the planner's coefficient neighbours,
the render process editing latents, --midi-cc-pca over real JACK MIDI and /status.

The model is the tiny preset with directions computed here from few latents (they only
need to be directions)."""
from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

import gansynth_live as gl
from gansynth_live import ganspace
from gansynth_live.live import cli
from gansynth_live.live.midi_input import MidiInput, pca_coefficient
from gansynth_live.live.osc import OscServer
from gansynth_live.live.renderer import InProcessRenderer, ProcessRenderer
from gansynth_live.live.timbre import GridPoint, TimbreState
from live_helpers import (PITCHES, RATE, GatedRenderer, OscClient,  # noqa: F401 (tiny_model)
                          make_engine, tiny_model, wait_for)
from jack_helpers import jack  # noqa: F401 (fixture)
from test_midi_input import Recorder, backend, cc, play  # noqa: F401 (fixtures)

COMPONENTS = 4


@pytest.fixture(scope="module")
def model():
    """The tiny preset with 4 GANSpace directions."""
    model = gl.Model(gl.preset("tiny"), PITCHES, name="tiny-ganspace")
    model.set_ganspace(ganspace.compute(model, samples=256, components=COMPONENTS, batch=128))
    return model


@pytest.fixture
def served(request):
    """served(engine) -> an OscClient talking to an OscServer for the engine (both closed
    after the test)."""
    def serve(engine):
        osc = OscServer(engine, port=0, log=lambda message: None)
        osc.start()
        client = OscClient(osc.port)
        request.addfinalizer(lambda: (client.close(), osc.close(), engine.stop()))
        return client
    return serve


def complete(engine, point: GridPoint) -> bool:
    return engine.cache.cached_pitches(point) == len(PITCHES)


# /timbre/pca over OSC --------------------------------------------------------------------

def test_pca_applies_and_answers_done_once_the_point_is_playable(model, served):
    renderer = GatedRenderer(model)
    engine = make_engine(model, renderer=renderer, grid=3)
    client = served(engine)
    renderer.gate.clear()
    client.send("/timbre/pca", 1.0, -0.5)
    assert renderer.waiting.wait(30), "the render worker never reached the gate"
    # Replies leave in order: nothing but the status answers while the render is held.
    client.send("/status")
    address, params = client.receive()
    assert address == "/status.reply"
    status = dict(zip(params[::2], params[1::2]))
    assert status["ready"] == 0
    assert [status[f"pca_{n}"] for n in range(1, COMPONENTS + 1)] == [1.0, -0.5, 0.0, 0.0]
    assert status["pca_components"] == COMPONENTS
    renderer.gate.set()
    assert client.expect("/done", 60) == ["/timbre/pca", 1.0, -0.5]
    point = engine.timbre.current_point()
    assert point.pca == (1.0, -0.5) and complete(engine, point)
    client.send("/timbre/pca")  # no coefficients: back to the latent's own note
    assert client.expect("/done", 60) == ["/timbre/pca"]
    assert engine.timbre.current_point().pca == () and engine.timbre.coefficients == ()


def test_a_move_back_to_a_cached_point_answers_the_waiting_clients(model):
    """A knob moved away (the new point waits for renders) and back to the rendered start
    point, with nothing left to render: the first move's "playable" answer must not wait
    for a render that never comes."""
    renderer = GatedRenderer(model)
    engine = make_engine(model, renderer=renderer, grid=3)
    try:
        renderer.gate.clear()
        engine.set_pca([2.0])
        assert renderer.waiting.wait(30), "the render worker never reached the gate"
        answered = threading.Event()
        engine.when_ready(answered.set)
        assert not answered.is_set() and not engine.wait_ready(0)
        engine.set_pca_component(1, 0.0)  # back to the start point, all rendered
        assert answered.is_set() and engine.wait_ready(0)
    finally:
        renderer.gate.set()
        engine.stop()


@pytest.mark.parametrize("args, reason", [
    ((3.5,), "ganspace coefficient 1 must be in -3..3, got 3.5"),
    ((0.5, -3.01), "ganspace coefficient 2 must be in -3..3, got -3.01"),
    ((0.1,) * (COMPONENTS + 1), f"give 1..{COMPONENTS} ganspace coefficients, got 5"),
    ((float("nan"),), "ganspace coefficient 1 must be finite, got nan"),
    ((1.0, "up"), "ganspace coefficient 2 must be a number, got str 'up'"),
])
def test_bad_coefficients_fail_and_change_nothing(model, served, args, reason):
    engine = make_engine(model, grid=3)
    engine.set_pca([0.5])
    client = served(engine)
    client.send("/timbre/pca", *args)
    assert client.expect("/fail", 10) == ["/timbre/pca", reason]
    assert engine.timbre.coefficients == (0.5,)


def test_a_model_without_directions_says_how_to_get_them(tiny_model, served):  # noqa: F811
    engine = make_engine(tiny_model, grid=3)
    client = served(engine)
    for args in [(1.0,), ()]:
        client.send("/timbre/pca", *args)
        assert client.expect("/fail", 10) == [
            "/timbre/pca", "this model has no GANSpace directions (gansynth-ganspace "
                           "--model DIR computes them)"]
    status = client.status()
    assert status["pca_components"] == 0 and "pca_1" not in status


# The coefficient point as a cache key -----------------------------------------------------

def test_coefficients_snap_to_a_finite_set_of_cache_keys():
    timbre = TimbreState(16, 3, ganspace_components=COMPONENTS)
    points = {}
    for values in [(), (0.0,), (0.1,), (0.0, 0.0, -0.1), (0.2,), (0.3,), (1.1, -2.9),
                   (1.0, -3.0, 0.0)]:
        timbre.set_pca(values)
        points[values] = timbre.current_point()
    assert points[()] == points[(0.0,)] == points[(0.1,)] == points[(0.0, 0.0, -0.1)] \
        == GridPoint(0, 0, 0)  # the latent's own point: the key it had before GANSpace
    assert points[(0.2,)].pca == points[(0.3,)].pca == (0.25,)
    assert points[(1.1, -2.9)] == points[(1.0, -3.0, 0.0)] == GridPoint(0, 0, 0, (1.0, -3.0))
    assert timbre.coefficients == (1.0, -3.0)  # as set, the trailing 0 dropped
    timbre.set_xy(1.0, 0.5)
    assert timbre.current_point() == GridPoint(0, 2, 1, (1.0, -3.0))


def test_the_plan_takes_coefficient_neighbours_with_the_grid_neighbours():
    timbre = TimbreState(16, 3, ganspace_components=COMPONENTS)
    timbre.set_xy(0.5, 0.5)
    timbre.set_pca([1.1])  # snaps to 1.0, nearer to 1.25 than to 0.75
    point = timbre.current_point()
    neighbours = list(timbre.neighbours(point))
    coefficient_points = {point._replace(pca=pca)
                          for pca in ganspace.snap_neighbours((1.0,), COMPONENTS)}
    assert len(coefficient_points) == 2 * COMPONENTS
    # The first ring: every coefficient neighbour and the 8 grid points around, at (1.0,).
    assert set(neighbours[:16]) == coefficient_points | {
        GridPoint(0, i, j, (1.0,)) for i in range(3) for j in range(3) if (i, j) != (1, 1)}
    assert neighbours[0] == point._replace(pca=(1.25,))  # where the slider is heading
    assert len(neighbours) == len(set(neighbours)) == 16  # a 3 x 3 grid has one ring


def test_the_planner_renders_coefficient_neighbours_in_the_background(model, served):
    engine = make_engine(model, grid=3)
    client = served(engine)
    client.send("/timbre/pca", 0.0, 2.0)
    assert client.expect("/done", 60) == ["/timbre/pca", 0.0, 2.0]
    point = engine.timbre.current_point()
    ahead = [point._replace(pca=pca) for pca in ganspace.snap_neighbours(point.pca, COMPONENTS)]
    wait_for(lambda: all(complete(engine, p) for p in ahead), 120,
             "the coefficient neighbours to be rendered")
    # Now a slider step is a cache hit: the new point is playable at once.
    engine.set_pca([0.0, 2.25])
    assert engine.wait_ready(0)
    notes = engine.status()["notes"]
    engine.note_on(PITCHES[0], 100)
    status = engine.status()
    assert status["notes"] == notes + 1 and status["cache_misses"] == 0


# Rendering: the position's latent, edited -------------------------------------------------

@pytest.fixture
def process_renderer(model, tmp_path_factory):
    """The render process gansynth-live uses, on the tiny model saved with its directions."""
    path = gl.save_model(model, tmp_path_factory.mktemp("ganspace") / "tiny")
    renderer = ProcessRenderer(path, RATE, threads=1)
    yield renderer
    renderer.close()


def rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(a))))


def test_the_render_process_edits_the_latent_at_a_coefficient_point(model, process_renderer):
    assert process_renderer.facts.ganspace_components == COMPONENTS  # from the child
    engine = make_engine(model, renderer=process_renderer, grid=3)
    try:
        plain = engine.timbre.current_point()
        before = {pitch: engine.cache.get(plain, pitch).audio for pitch in PITCHES}
        engine.set_pca([2.0, 0.0, -1.5])
        assert engine.wait_ready(120)
        edited = engine.timbre.current_point()
        assert edited == plain._replace(pca=(2.0, 0.0, -1.5))
        z = engine.timbre.latent(plain)
        here = InProcessRenderer(model, RATE)
        for pitch in PITCHES:
            a, b = before[pitch], engine.cache.get(edited, pitch).audio
            assert rms(a - b) > 0.2 * rms(a), f"pitch {pitch}: the edit changed little"
            # The plain point is rendered as before GANSpace (without the edit's graph);
            # the edit as the model's own generate(z, pitch, ganspace=...) renders it
            # (another process, other threads: test_live_renderer's tolerance).
            np.testing.assert_allclose(a, here(z[None], [pitch])[0].audio, atol=5e-3)
            np.testing.assert_allclose(b, here(z[None], [pitch], [(2.0, 0.0, -1.5)])[0].audio,
                                       atol=5e-3)
    finally:
        engine.stop()


def test_a_batch_mixes_plain_and_edited_notes(model):
    here = InProcessRenderer(model, RATE)
    z = model.random_z(3, seed=4)
    mixed = here(z, [58, 60, 62], [(), (1.0,), (0.0, -1.0)])
    for i, (pitch, edit) in enumerate([(58, None), (60, (1.0,)), (62, (0.0, -1.0))]):
        alone = here(z[i:i + 1], [pitch], None if edit is None else [edit])[0]
        # (batches of other sizes round differently in the last bits)
        np.testing.assert_allclose(mixed[i].audio, alone.audio, atol=2e-3)
    plain = here(z[1:2], [60])[0].audio
    assert rms(mixed[1].audio - plain) > 0.05 * rms(plain)


def test_render_writes_the_exact_coefficients_not_the_snapped_point(model):
    engine = make_engine(model, grid=3)
    try:
        engine.set_pca([0.1])  # snaps to the plain point; /render takes 0.1 itself
        assert engine.timbre.current_point().pca == ()
        got, done = [], threading.Event()
        engine.render_note(60, lambda note: (got.append(note), done.set()),
                           lambda reason: (got.append(reason), done.set()))
        assert done.wait(60) and not isinstance(got[0], str), got
        here = InProcessRenderer(model, RATE)
        z = engine.timbre.latent_at_position()[None]
        np.testing.assert_allclose(got[0].audio, here(z, [60], [(0.1,)])[0].audio, atol=1e-5)
        assert not np.allclose(got[0].audio, here(z, [60])[0].audio, atol=1e-5)
    finally:
        engine.stop()


# MIDI: --midi-cc-pca ----------------------------------------------------------------------

def test_cc_values_map_to_the_coefficient_range():
    assert [pca_coefficient(v) for v in (0, 1, 64, 127)] == [-3.0, -3.0, 0.0, 3.0]
    assert pca_coefficient(96) == pytest.approx(32 / 63 * 3)


class PcaRecorder(Recorder):
    def set_pca_component(self, direction, value):
        self._add("set_pca_component", direction, value)


def test_midi_ccs_drive_the_first_directions(play):  # noqa: F811
    target = PcaRecorder()
    send, _ = play(target, cc_pca=[20, 21])
    send(cc(20, 127), cc(21, 64), cc(1, 0), cc(20, 0), cc(22, 100))  # 22: not mapped
    assert target.wait_for(4) == [("set_pca_component", 1, 3.0),
                                  ("set_pca_component", 2, 0.0), ("set_xy", 0.0, None),
                                  ("set_pca_component", 1, -3.0)]


def test_midi_ccs_move_the_engine_and_status_reports_it(model, play, served):  # noqa: F811
    engine = make_engine(model, grid=3)
    client = served(engine)
    send, midi = play(engine, cc_pca=[20, 21, 22])
    send(cc(21, 127), cc(22, 1))
    wait_for(lambda: engine.timbre.coefficients == (0.0, 3.0, -3.0), 10, "the CCs")
    assert engine.wait_ready(60)
    status = client.status()
    assert [status[f"pca_{n}"] for n in range(1, 5)] == [0.0, 3.0, -3.0, 0.0]
    assert midi.errors == 0


def test_a_cc_drives_one_control_only():
    with pytest.raises(ValueError, match="cc_x and cc_pca both use CC 1"):
        MidiInput(None, "x", virtual=True, cc_pca=[7, 1])
    with pytest.raises(ValueError, match="cc_pca names CC 7 twice"):
        MidiInput(None, "x", virtual=True, cc_pca=[7, 7])
    for argv, message in [
            (["--midi-cc-pca", "20", "1"], "--midi-cc-x and --midi-cc-pca both use CC 1"),
            (["--midi-cc-y", "9", "--midi-cc-pca", "9"],
             "--midi-cc-y and --midi-cc-pca both use CC 9"),
            (["--midi-cc-pca", "20", "20"], "--midi-cc-pca names CC 20 twice")]:
        with pytest.raises(cli.FlagError, match=message):  # before the model loads
            cli.check_flags(cli.parse_args(argv))
    with pytest.raises(SystemExit):
        cli.parse_args(["--midi-cc-pca", "128"])


def test_more_pca_ccs_than_the_model_has_directions_is_a_flag_error(jack, tiny_model,  # noqa: F811
                                                                    tmp_path):
    """Found only once the render process tells the facts: the error names the flag and
    the render process is stopped, not left to exit with the interpreter."""
    path = gl.save_model(tiny_model, tmp_path / "no-directions")
    result = subprocess.run(
        [sys.executable, "-m", "gansynth_live.live", "--model", str(path), "--device",
         "system", "--osc-port", "0", "--note-store", "off", "--midi-cc-pca", "20"],
        env=jack.env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 2, result.stderr
    assert ("gansynth-live: error: --midi-cc-pca: 1 CCs, but the model has 0 GANSpace "
            "directions") in result.stderr
    assert "Traceback" not in result.stderr and "leaked" not in result.stderr

