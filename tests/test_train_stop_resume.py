"""Stopping gansynth-train never loses work, and resuming uses what is intact.

A real tiny run (trained straight from a folder of real soundfont WAVs, the
GANSynth-Stereo flow) is stopped by SIGINT, SIGTERM and SIGUSR1 at a random moment and
resumed; its checkpoints are damaged in each way seen in practice and the run resumes
from the newest intact one; the run directory plays as it is, in Python and with
gansynth-generate.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

import gansynth_live as gl
from gansynth_live import training_run
from training import train, trainer
from training.hparams import resolve_hparams
from training_helpers import PITCHES, TINY_ARCHITECTURE, render_note_folder

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# One long stable stage: no checkpoint is written but the ones a stop (or the test) makes.
LONG_RUN = {"stable_stage_num_images": 1_000_000, "transition_stage_num_images": 1_000_000,
            "total_num_images": 3_000_000, "batch_size_schedule": [8],
            "save_summaries_num_images": 8, "save_checkpoint_secs": 3600}


@pytest.fixture(scope="module")
def wavs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("notes") / "mysamples"
    render_note_folder(folder)
    return folder


def hparams_for(wavs: Path, root: Path, **extra) -> dict:
    return {"train_data_path": os.fspath(wavs), "train_root_dir": os.fspath(root),
            **TINY_ARCHITECTURE, **LONG_RUN, **extra}


def command(hparams: dict, *flags: str) -> list[str]:
    return [os.fspath(BIN / "gansynth-train"), "--config", "tiny", "--hparams",
            json.dumps(hparams), *flags]


def images_in(prefix: Path) -> int:
    reader = tf.train.load_checkpoint(os.fspath(prefix))
    return int(reader.get_tensor("gan/images_seen/.ATTRIBUTES/VARIABLE_VALUE"))


def start_training(cmd: list[str], root: Path) -> subprocess.Popen:
    """Start `cmd` and return once it is taking steps (its summaries file grows)."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 240
    while True:
        events = list((root / training_run.SUMMARY_DIR).glob("events.*"))
        if events and events[0].stat().st_size > 20_000:  # several summary steps written
            return proc
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"training did not get going:\n{out[-2000:]}\n{err[-2000:]}")
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGUSR1])
def test_a_stop_signal_saves_where_it_was_and_the_same_command_resumes(wavs, tmp_path, signum):
    root = tmp_path / "mymodel"
    cmd = command(hparams_for(wavs, root))
    proc = start_training(cmd, root)
    time.sleep(random.uniform(0.0, 2.0))  # a random moment of the run
    signalled = time.monotonic()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    stop_seconds = time.monotonic() - signalled
    name = signal.Signals(signum).name
    assert proc.returncode == 0, err
    assert "Traceback" not in out + err
    assert f"gansynth-train: {name}: stopping after this step with a checkpoint" in err
    stopped = next(line for line in out.splitlines() if line.startswith("stopped by"))
    images = int(stopped.split(" at ")[1].split()[0])
    prefix = root / "checkpoints" / f"ckpt-{images}"
    assert stopped == f"stopped by {name} at {images} images; checkpoint {prefix} saved"
    assert "resume with the same command: gansynth-train --config tiny --hparams" in out
    # The only checkpoint is the one the signal wrote, at the images reached: the step in
    # flight was finished (a step is a few tenths of a second here), nothing more.
    assert training_run.checkpoint_prefixes(root / "checkpoints") == [prefix]
    assert images > 0 and images % 8 == 0 and images_in(prefix) == images
    assert stop_seconds < 30, f"took {stop_seconds:.1f} s to stop"

    # The same command (stopping itself after a second this time) continues the run.
    resumed = subprocess.run([*cmd, "--max_seconds", "1"], cwd=REPO, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {prefix} at {images} images" in resumed.stdout
    assert training_run.checkpoint_prefixes(root / "checkpoints")[0] != prefix  # it went on


def test_a_second_ctrl_c_exits_at_once_without_a_checkpoint(wavs, tmp_path):
    root = tmp_path / "mymodel"
    # Slow steps (a large batch: seconds each) so both Ctrl-Cs land inside one step.
    proc = start_training(command(hparams_for(wavs, root, batch_size_schedule=[512])), root)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    signalled = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - signalled < 2  # not after the step: at once
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "SIGINT again: exiting now, without a checkpoint" in err
    assert "Traceback" not in out + err
    assert training_run.checkpoint_prefixes(root / "checkpoints") == []


# Damaged checkpoints -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def three_checkpoints(wavs, tmp_path_factory) -> Path:
    """A run directory with checkpoints at 8, 16 and 24 images (a real Trainer)."""
    root = tmp_path_factory.mktemp("damaged") / "mymodel"
    run = make_trainer(hparams_for(wavs, root))
    manager = tf.train.CheckpointManager(run.checkpoint, root / "checkpoints", max_to_keep=3,
                                         checkpoint_name="ckpt")
    for images in (8, 16, 24):
        for variable in run.gan.ema_generator.trainable_variables:
            variable.assign_add(tf.fill(variable.shape, 0.01))
        run.gan.images_seen.assign(images)
        manager.save(checkpoint_number=images)
    run.writer.close()
    return root


def make_trainer(hparams: dict, log=None) -> trainer.Trainer:
    hparams, config = resolve_hparams("tiny", hparams)
    counts = trainer.pitch_counts(hparams)
    trainer.prepare_run_dir(hparams, config, counts)
    return trainer.Trainer(hparams, config, counts, tf.distribute.get_strategy(),
                           log=log or (lambda message: None))


def truncate_data(folder: Path, n: int) -> None:
    data = folder / f"ckpt-{n}.data-00000-of-00001"
    with open(data, "r+b") as f:
        f.truncate(data.stat().st_size // 2)


def random_index(folder: Path, n: int) -> None:
    index = folder / f"ckpt-{n}.index"
    index.write_bytes(np.random.default_rng(n).bytes(index.stat().st_size))


def missing_data(folder: Path, n: int) -> None:
    (folder / f"ckpt-{n}.data-00000-of-00001").unlink()


def flipped_bit(folder: Path, n: int) -> None:
    data = folder / f"ckpt-{n}.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 3] ^= 0x10
    data.write_bytes(bytes(raw))


DAMAGES = {"truncated .data": truncate_data, "random .index": random_index,
           "missing .data": missing_data, "a flipped bit": flipped_bit}


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("index_file", ["kept", "missing"])
def test_resume_skips_a_damaged_newest_checkpoint(three_checkpoints, wavs, tmp_path, damage,
                                                  index_file):
    root = tmp_path / "mymodel"
    shutil.copytree(three_checkpoints, root)
    folder = root / "checkpoints"
    DAMAGES[damage](folder, 24)
    if index_file == "missing":  # the `checkpoint` file is only a hint
        (folder / "checkpoint").unlink()
    messages = []
    run = make_trainer(hparams_for(wavs, root), log=messages.append)
    assert run.restore() == os.fspath(folder / "ckpt-16")
    assert int(run.gan.images_seen.numpy()) == 16
    assert len(messages) == 1 and messages[0].startswith(
        f"checkpoint ckpt-24 is damaged (") and messages[0].endswith(
        f"moved to {folder / 'damaged'}/, resuming from ckpt-16"), messages
    assert sorted(p.name for p in (folder / "damaged").iterdir()) == sorted(
        {"truncated .data": ["ckpt-24.data-00000-of-00001", "ckpt-24.index"],
         "random .index": ["ckpt-24.data-00000-of-00001", "ckpt-24.index"],
         "missing .data": ["ckpt-24.index"],
         "a flipped bit": ["ckpt-24.data-00000-of-00001", "ckpt-24.index"]}[damage])
    # The index file now names what is there, so the next start needs no fallback.
    assert tf.train.latest_checkpoint(os.fspath(folder)) == os.fspath(folder / "ckpt-16")


def test_two_damaged_checkpoints_fall_back_to_the_oldest(three_checkpoints, wavs, tmp_path):
    root = tmp_path / "mymodel"
    shutil.copytree(three_checkpoints, root)
    truncate_data(root / "checkpoints", 24)
    random_index(root / "checkpoints", 16)
    run = make_trainer(hparams_for(wavs, root))
    assert run.restore() == os.fspath(root / "checkpoints" / "ckpt-8")


def test_no_intact_checkpoint_is_an_error_until_start_over(three_checkpoints, wavs, tmp_path,
                                                            capsys):
    root = tmp_path / "mymodel"
    shutil.copytree(three_checkpoints, root)
    for n in (8, 16, 24):
        flipped_bit(root / "checkpoints", n)
    argv = ["--config", "tiny", "--hparams", json.dumps(hparams_for(wavs, root)),
            "--max_seconds", "0.5"]  # one step, then a checkpoint
    assert train.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none of its 3 checkpoints restores" in err, err
    assert "--start_over" in err
    assert len(training_run.checkpoint_prefixes(root / "checkpoints")) == 3  # left in place

    assert train.main([*argv, "--start_over"]) == 0
    out = capsys.readouterr().out
    assert f"the run's checkpoints are moved to {root / 'checkpoints' / 'replaced-1'}" in out
    assert "starting a new run at 0 images" in out
    assert len(list((root / "checkpoints" / "replaced-1").glob("*.index"))) == 3
    assert training_run.checkpoint_prefixes(root / "checkpoints") == [
        root / "checkpoints" / "ckpt-8"]


# The run directory plays as it is ------------------------------------------------------------

def test_a_run_directory_loads_and_renders_without_postprocessing(three_checkpoints, tmp_path):
    root = tmp_path / "mymodel"
    shutil.copytree(three_checkpoints, root)
    random_index(root / "checkpoints", 24)  # the newest is damaged: the next older plays
    model = gl.load_model(root)
    assert model.pitches == PITCHES and model.name == "mymodel (16 images)"
    audio = model.generate(model.random_z(2, seed=0), [60, 64])
    assert audio.shape == (2, 512, 1) and np.isfinite(audio).all()

    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack([mido.Message("note_on", note=62, velocity=100, time=0),
                            mido.Message("note_off", note=62, velocity=0, time=480)])
    midi.tracks.append(track)
    midi.save(tmp_path / "song.mid")
    proc = subprocess.run([os.fspath(BIN / "gansynth-generate"), "--ckpt_dir", os.fspath(root),
                           "--midi_file", os.fspath(tmp_path / "song.mid"), "--output_dir",
                           os.fspath(tmp_path / "out")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    audio, rate = sf.read(next((tmp_path / "out").glob("*.wav")))
    assert rate == 16000 and np.abs(audio).max() > 0
