"""The Pd patches against the REAL live server: headless Pd (puredata-core) sends OSC to an
in-process `Engine` + `OscServer` (tiny model with pitches 48..72, seeded weights) over UDP
on 127.0.0.1, and the tests check the server's effect (notes played, timbre moved, status
answered, a real /render WAV loaded into a Pd array). The CLI + JACK path is covered by
tests/test_live_system.py; the patches' exact OSC by tests/test_pd_patches.py."""
from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf

import gansynth_live as gl
from gansynth_live.live.osc import OscServer
from live_helpers import make_engine, play, wait_for
from pd_helpers import PD, PdSession, example_copy, free_udp_port

pytestmark = pytest.mark.skipif(PD is None, reason="Pure Data (`pd`, Debian puredata-core) "
                                                   "is not installed")


@pytest.fixture(scope="module")
def keyboard_model():
    return gl.Model(gl.preset("tiny"), range(48, 73), name="tiny-keys")


@pytest.fixture
def server(keyboard_model, tmp_path):
    engine = make_engine(keyboard_model, grid=3)
    osc = OscServer(engine, port=0, render_dir=tmp_path / "renders", log=lambda m: None)
    osc.start()
    yield engine, osc
    osc.close()
    engine.stop()


def notes_played(engine) -> int:
    return engine.status()["notes"]


def test_abstraction_plays_and_shapes_the_real_server(server):
    engine, osc = server
    with PdSession(server_port=osc.port, reply_port=free_udp_port()) as pd:
        assert pd.wait_for(lambda line: line.startswith("GS: connected"), timeout=10)
        pd.send("gs note_on 60 100")
        assert wait_for(lambda: notes_played(engine) == 1, 10, "the note from Pd")
        play(engine, 0.02)
        assert engine.status()["voices"] == 1
        pd.send("gs note_off 60")
        pd.send("gs xy 0.3 0.7")
        assert wait_for(lambda: (engine.timbre.x, engine.timbre.y) == pytest.approx((0.3, 0.7)),
                        10, "the timbre move")
        pd.send("gs envelope 10 0.3 50 0.7")
        assert wait_for(lambda: engine.envelope.release_percent == 50, 10, "the envelope")
        assert engine.envelope.params() == pytest.approx(
            {"attack_percent": 10, "attack_slope": 0.3, "release_percent": 50,
             "release_slope": 0.7})
        pd.send("gs seed 2 1234")
        assert pd.wait_for(lambda line: line == "GS: done /timbre/seed 2 1234", timeout=60)
        assert engine.timbre.anchor_sources[2] == "seed 1234"
        pd.send("gs status")
        assert pd.wait_for(lambda line: line == "GS: status model tiny-keys", timeout=10)
        assert pd.wait_for(lambda line: line.startswith("GS: status cache_entries "), 10)
        pd.send("gs note_on 100 100")  # 28 above 48..72: the server's reason comes back
        line = pd.wait_for(lambda line: line.startswith("GS: fail /note_on"), timeout=10)
        assert line and "semitones" in line and "48..72" in line, line
        assert not pd.errors(), pd.errors()
    assert notes_played(engine) == 1


def held_voices_after_the_note(pd, engine, pitch) -> int:
    """Press `pitch` from Pd, run the mixer past the rendered note's length while the key is
    still held, and return the voices sounding then (loop: 1, natural: 0); release it."""
    before = notes_played(engine)
    pd.send(f"gs note_on {pitch} 100")
    assert wait_for(lambda: notes_played(engine) == before + 1, 10, "the note from Pd")
    play(engine, 0.02)
    assert engine.status()["voices"] == 1
    play(engine, engine.note_frames / engine.sample_rate + 0.2)
    voices = engine.status()["voices"]
    pd.send(f"gs note_off {pitch}")
    assert wait_for(lambda: (play(engine, 0.05), engine.status()["voices"] == 0)[1], 10,
                    "the release")
    return voices


def test_sustain_mode_from_pd_reaches_the_real_server(server, tmp_path):
    """[sustain_mode natural / loop / 0 / 1( set the engine's mode (held notes end with the
    rendered note, or loop); /status reports it; keyboard.pd's toggle follows the server's
    mode when it connects and a click flips it."""
    engine, osc = server
    assert engine.sustain_mode == "loop"
    with PdSession(server_port=osc.port, reply_port=free_udp_port()) as pd:
        assert pd.wait_for(lambda line: line.startswith("GS: connected"), timeout=10)
        pd.send("gs sustain_mode natural")
        assert wait_for(lambda: engine.sustain_mode == "natural", 10, "natural")
        pd.send("gs status")
        assert pd.wait_for(lambda line: line == "GS: status sustain_mode natural", timeout=10)
        assert held_voices_after_the_note(pd, engine, 60) == 0
        pd.send("gs sustain_mode 1")
        assert wait_for(lambda: engine.sustain_mode == "loop", 10, "loop from a 1")
        assert held_voices_after_the_note(pd, engine, 62) == 1
        pd.send("gs sustain_mode 0")
        assert wait_for(lambda: engine.sustain_mode == "natural", 10, "natural from a 0")
        pd.send("gs sustain_mode loop")
        assert wait_for(lambda: engine.sustain_mode == "loop", 10, "loop")
        pd.send("gs sustain_mode 2")
        line = pd.wait_for(lambda line: line.startswith("GS: fail /sustain_mode"), timeout=10)
        assert line and "loop" in line and "natural" in line, line
        assert engine.sustain_mode == "loop"
        assert not pd.errors(), pd.errors()
    engine.set_sustain_mode("natural")  # e.g. gansynth-live --sustain natural
    keyboard = example_copy("keyboard.pd", tmp_path, osc.port, free_udp_port())
    with PdSession(tmp_path, open_patches=[keyboard]) as pd:
        assert pd.wait_for(lambda line: line == "gansynth-status: sustain_mode natural", 10)
        assert engine.sustain_mode == "natural"  # the patch showed it, sent nothing
        pd.send("click keyboard-sustain-loop")     # the toggle showed off: on now
        assert wait_for(lambda: engine.sustain_mode == "loop", 10, "the toggle's loop")
        pd.send("click keyboard-sustain-loop")
        assert wait_for(lambda: engine.sustain_mode == "natural", 10, "the toggle's natural")
        assert not pd.errors(), pd.errors()


def test_keyboard_and_sequencer_patches_play_the_real_server(server, tmp_path):
    engine, osc = server
    keyboard = example_copy("keyboard.pd", tmp_path, osc.port, free_udp_port())
    with PdSession(tmp_path, open_patches=[keyboard]) as pd:
        assert wait_for(lambda: osc.counters["messages"] >= 2, 10, "the patch's subscription")
        pd.send("to #key 97")    # a: C4 = 60
        pd.send("to #keyup 97")
        pd.send("to keyboard-play 67")
        assert wait_for(lambda: notes_played(engine) == 2, 10, "two notes from the keyboard")
        assert not pd.errors(), pd.errors()
    sequencer = example_copy("sequencer.pd", tmp_path, osc.port, free_udp_port())
    before = notes_played(engine)
    with PdSession(tmp_path, open_patches=[sequencer]) as pd:
        assert wait_for(lambda: osc.counters["messages"] >= 2, 10, "the patch's subscription")
        pd.send("to seq-bpm 600")
        pd.send("to seq-play 1")
        assert wait_for(lambda: notes_played(engine) >= before + 4, 20, "sequencer steps")
        assert wait_for(lambda: engine.timbre.x > 0, 10, "the sequencer's morph")
        pd.send("to seq-play 0")
        assert not pd.errors(), pd.errors()
    assert osc.counters["failures"] == 0


def test_render_to_array_loads_the_servers_note(server, tmp_path):
    engine, osc = server
    patch = example_copy("render-to-array.pd", tmp_path, osc.port, free_udp_port())
    with PdSession(tmp_path, open_patches=[patch]) as pd:
        assert wait_for(lambda: osc.counters["messages"] >= 2, 10, "the patch's subscription")
        pd.send("to render-go bang")
        path = osc.render_dir / "pd-note.wav"
        assert wait_for(path.exists, 60, "the server's WAV")
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        assert rate == engine.sample_rate and audio.shape == (engine.note_frames, 1)
        assert wait_for(lambda: pd.array_size("gansynth-note", timeout=0.5) == len(audio), 20,
                        "the Pd array to be filled")
        for i in (0, 1000, 24000, len(audio) - 1):
            # Pd prints 6 significant digits
            assert pd.tabread("gansynth-note", i) == pytest.approx(float(audio[i, 0]), rel=1e-5,
                                                                   abs=1e-6)
        assert np.abs(audio).max() > 0
        assert not pd.errors(), pd.errors()


@pytest.fixture(scope="module")
def ganspace_model():
    """A tiny model of pitches 48..72 with 4 GANSpace directions (from few latents: they
    only need to be directions)."""
    from gansynth_live import ganspace

    model = gl.Model(gl.preset("tiny"), range(48, 73), name="tiny-ganspace")
    model.set_ganspace(ganspace.compute(model, samples=256, components=4, batch=128))
    return model


def test_ganspace_sliders_move_the_real_servers_timbre(ganspace_model, tmp_path):
    """pd/ganspace.pd against the real server: a slider sets the coefficients (the server's
    /status reports them and its /done comes back once the point is playable), a cell
    plays a note there, the reset button brings them back to 0."""
    from live_helpers import OscClient

    engine = make_engine(ganspace_model, grid=3)
    osc = OscServer(engine, port=0, render_dir=tmp_path / "renders", log=lambda m: None)
    osc.start()
    client = OscClient(osc.port)
    patch = example_copy("ganspace.pd", tmp_path, osc.port, free_udp_port())
    try:
        with PdSession(tmp_path, open_patches=[patch]) as pd:
            assert wait_for(lambda: osc.counters["messages"] >= 2, 10, "the subscription")
            pd.send("to ganspace-c2 1.5")
            assert pd.wait_for(lambda line: line == "gansynth-done: /timbre/pca 0 1.5 0 0", 60)
            status = client.status()
            assert [status[f"pca_{n}"] for n in range(1, 5)] == [0.0, 1.5, 0.0, 0.0]
            assert engine.timbre.current_point().pca == (0.0, 1.5) and status["ready"] == 1
            pd.send("to ganspace-key 12")
            assert wait_for(lambda: notes_played(engine) == 1, 10, "the note from the panel")
            assert engine.status()["cache_misses"] == 0  # playable: it hit the cache
            pd.send("click ganspace-reset")
            assert wait_for(lambda: engine.timbre.coefficients == (), 10, "the reset")
            assert not pd.errors(), pd.errors()
        assert osc.counters["failures"] == 0
    finally:
        client.close()
        osc.close()
        engine.stop()
