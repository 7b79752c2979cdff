"""Start-up in seconds: `make setup` fills the note store (`note_store.fill`, the
`python -m gansynth_live.live.note_store` command) with the first timbre point, and the
real server on a JACK dummy server then starts from it without rendering first. Also
the priorities it gives its threads and its render process (`realtime.favour_threads`)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import gansynth_live as gl
from gansynth_live.latent import seeded_z
from gansynth_live.live.note_store import NoteStore
from gansynth_live.live.realtime import CONTROL_NICE
from gansynth_live.live.renderer import InProcessRenderer
from live_helpers import PITCHES, OscClient, free_port, wait_for
from test_live_system import Server

RATE = 48000


def nice(pid: int) -> int:
    """The nice value of process `pid` (of its main thread)."""
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[16])


def render_child(pid: int) -> int | None:
    """The render process that server `pid` started, if it runs (a child is listed under
    the thread that started it)."""
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            children += open(f"/proc/{pid}/task/{task}/children").read().split()
        except FileNotFoundError:
            continue
    for child in children:
        try:
            if b"spawn_main" in open(f"/proc/{child}/cmdline", "rb").read():
                return int(child)
        except FileNotFoundError:
            continue
    return None


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    model = gl.Model(gl.preset("tiny"), PITCHES, name="tiny-startup")
    return model, gl.save_model(model, tmp_path_factory.mktemp("models") / "tiny")


def test_the_filled_store_holds_the_first_point_and_the_server_starts_from_it(
        jack, tmp_path, tiny_model_dir):
    model, model_dir = tiny_model_dir
    store_dir = tmp_path / "store"
    command = [sys.executable, "-m", "gansynth_live.live.note_store", "--model",
               str(model_dir), "--sample-rate", str(RATE), "--note-store", str(store_dir)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert f"{RATE} Hz: stored" in first.stdout

    # The notes are the first point's: anchor 0 (seed 0) at every pitch of the model (as
    # closely as another process's TensorFlow, summing in another order, renders them).
    facts, notes = NoteStore(store_dir, str(model_dir), RATE, 0).load()
    assert facts.pitches == PITCHES and tuple(sorted(notes)) == PITCHES
    wanted = InProcessRenderer(model, RATE)(np.stack([seeded_z(0, model.latent_size)] *
                                                     len(PITCHES)), PITCHES)
    for pitch, note in zip(PITCHES, wanted):
        np.testing.assert_allclose(notes[pitch].samples, note.samples, atol=2e-3)

    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "stored already" in again.stdout, again.stdout

    port = free_port()
    server = Server(jack.env, "--device", "system", "--osc-port", str(port), "--model",
                    str(model_dir), "--note-store", str(store_dir), "--render-dir",
                    str(tmp_path / "renders"))
    client = OscClient(port)
    try:
        status = client.status()
        assert status["ready"] == 1
        # The threads sharing the callback's GIL are niced up (as far as the OS allows);
        # the render process stays at nice 10, restarted by one of them too.
        assert CONTROL_NICE <= status["control_nice"] <= 0
        if os.geteuid() == 0:
            assert status["control_nice"] == CONTROL_NICE
        assert nice(server.process.pid) == status["control_nice"]
        child = wait_for(lambda: render_child(server.process.pid), 60, "the render process")
        assert wait_for(lambda: nice(child) == 10, 30, "nice 10")
        os.kill(child, signal.SIGKILL)
        client.send("/timbre/seed", 0, 12345)  # renders: a new render process
        restarted = wait_for(lambda: {render_child(server.process.pid)} - {None, child},
                             60, "a new render process").pop()
        assert wait_for(lambda: nice(restarted) == 10, 30, "nice 10")
        client.send("/quit")
        assert client.expect("/done") == ["/quit"]
        assert server.wait(30) == 0, "".join(server.output)
    finally:
        client.close()
        server.kill()
    assert any("first timbre point loaded from" in line for line in server.output), \
        "".join(server.output)


def test_a_save_removes_temporary_files_that_killed_writers_left(tiny_model_dir, tmp_path):
    model, path = tiny_model_dir
    renderer = InProcessRenderer(model, RATE)
    notes = dict(zip(PITCHES, renderer(np.stack([seeded_z(0, model.latent_size)] *
                                                len(PITCHES)), PITCHES)))
    stale, fresh = tmp_path / ".first-point-stale.npz", tmp_path / ".first-point-now.npz"
    stale.write_bytes(b"half a file")
    fresh.write_bytes(b"another writer, still writing")
    os.utime(stale, (1, 1))
    store = NoteStore(tmp_path, os.fspath(path), RATE, 0)
    store.save(renderer.facts, notes)
    assert not stale.exists() and fresh.exists() and store.load() is not None

