"""gansynth-train end to end on real soundfont notes: train, kill -9, resume, postprocess, play.

One progressive run (2 resolutions: 3 stages, 256 images) is started as a subprocess,
killed with SIGKILL once it has checkpointed inside the transition stage, and finished by
running the same command again; the tests below read what that left behind. A second
subprocess trains under MirroredStrategy on two logical CPU devices.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

import gansynth_live as gl
from gansynth_live import training_run
from gansynth_live.config import ModelConfig
from training import make_dataset, postprocess_model, train, trainer
from training.hparams import resolve_hparams
from gansynth_live.schedule import Schedule
from training.warm_start import warm_start
from training_helpers import NOTE_SAMPLES, PITCHES, TINY_ARCHITECTURE, render_note_folder

REPO = Path(__file__).resolve().parents[1]
# Stage ends 64 (1 block), 128 (block 2 fading in), 256 (2 blocks); batch 8: 32 steps.
SCHEDULE = {"stable_stage_num_images": 64, "transition_stage_num_images": 64,
            "total_num_images": 256, "batch_size_schedule": [8],
            "save_summaries_num_images": 64}
SCALAR_TAGS = {"generator_loss", "discriminator_loss", "wasserstein_distance",
               "gradient_penalty", "real_ac_loss", "real_ac_accuracy", "fake_ac_loss",
               "fake_ac_accuracy", "progress", "images_per_second"}
CKPT = re.compile(r"^ckpt-(\d+)\.index$")


# Helpers -------------------------------------------------------------------------------------

def checkpoint_numbers(root: Path) -> set[int]:
    folder = root / training_run.CHECKPOINT_DIR
    names = os.listdir(folder) if folder.is_dir() else []
    return {int(m.group(1)) for name in names if (m := CKPT.match(name))}


def latest_images(root: Path) -> int:
    prefix = tf.train.latest_checkpoint(os.fspath(root / training_run.CHECKPOINT_DIR))
    reader = tf.train.load_checkpoint(prefix)
    return int(reader.get_tensor("gan/images_seen/.ATTRIBUTES/VARIABLE_VALUE"))


def read_events(path: Path) -> list[tuple[int, str, str, np.ndarray]]:
    """(step, tag, plugin, value) of every summary value in one event file."""
    out = []
    for event in tf.compat.v1.train.summary_iterator(os.fspath(path)):
        for value in event.summary.value:
            out.append((event.step, value.tag, value.metadata.plugin_data.plugin_name,
                        tf.make_ndarray(value.tensor)))
    return out


def restore_gan(root: Path) -> trainer.GAN:
    experiment = json.loads((root / training_run.EXPERIMENT_FILE).read_text())
    vocabulary = json.loads((root / training_run.VOCABULARY_FILE).read_text())
    gan = trainer.GAN(experiment["hparams"], ModelConfig.from_dict(experiment["architecture"]),
                    [int(p) for p in vocabulary["pitches"]])
    prefix = tf.train.latest_checkpoint(os.fspath(root / training_run.CHECKPOINT_DIR))
    tf.train.Checkpoint(gan=gan).read(prefix).assert_existing_objects_matched()
    return gan


def run_main(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = train.main(argv)
    return code, out.getvalue(), err.getvalue()


def distance(a: dict, b: dict) -> float:
    return math.sqrt(sum(float(np.sum((np.asarray(a[k]) - np.asarray(b[k])) ** 2)) for k in a))


def values(variables: dict) -> dict:
    return {name: v.numpy() for name, v in variables.items()}


# Fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """8 real notes (TimGM6mb piano and violin, pitches 60 62 64 65) as a TFRecord dataset."""
    base = tmp_path_factory.mktemp("notes")
    render_note_folder(base / "wavs")
    code = make_dataset.main(["--in_dir", os.fspath(base / "wavs"), "--out_dir",
                              os.fspath(base / "dataset"), "--length", str(NOTE_SAMPLES)])
    assert code == 0
    return base / "dataset"


def run_hparams(dataset: Path, root: Path, **extra) -> dict:
    return {"train_data_path": os.fspath(dataset), "train_root_dir": os.fspath(root),
            **TINY_ARCHITECTURE, **SCHEDULE, "save_checkpoint_secs": 1, **extra}


@pytest.fixture(scope="module")
def resumed_run(dataset, tmp_path_factory):
    """Start training, SIGKILL it after a checkpoint in the transition stage, rerun it."""
    root = tmp_path_factory.mktemp("train") / "run"
    argv = ["--config", "tiny", "--hparams", json.dumps(run_hparams(dataset, root))]
    log_path = root.parent / "killed.log"
    seen: set[int] = set()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "training.train", *argv], cwd=REPO,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 300
            while not any(64 < n < 256 for n in seen):
                assert proc.poll() is None, "training ended before it could be killed:\n" \
                    + log_path.read_text()[-3000:]
                assert time.time() < deadline, "no checkpoint after stage 0 within 300 s"
                seen |= checkpoint_numbers(root)
                time.sleep(0.05)
            still_running = proc.poll() is None
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    killed_log = log_path.read_text()
    try:
        killed_at = latest_images(root)
        events_before = set(os.listdir(root / training_run.SUMMARY_DIR))
        code, out, err = run_main(argv)  # the same command again
    except Exception as e:  # say what the killed run did, then fail
        raise AssertionError(f"{e!r} after kill -9 at checkpoints {sorted(seen)}; killed "
                             f"run's log:\n{killed_log[-3000:]}") from e
    return SimpleNamespace(root=root, dataset=dataset, argv=argv, seen=seen,
                           still_running=still_running, returncode=proc.returncode,
                           killed_log=killed_log, killed_at=killed_at, code=code, log=out,
                           err=err, events_before=events_before)


# Training, kill -9, resume -------------------------------------------------------------------

def test_kill_9_then_the_same_command_resumes_at_the_checkpoint(resumed_run):
    r = resumed_run
    assert r.still_running and r.returncode == -signal.SIGKILL
    assert "starting a new run at 0 images of 256" in r.killed_log
    assert r.code == 0, r.err
    # Checkpoints came at the end of stage 0 and on the time interval inside stage 1.
    assert 64 in r.seen
    assert any(n not in (64, 128, 256) for n in r.seen), r.seen
    assert 64 < r.killed_at < 256
    prefix = os.fspath(r.root / training_run.CHECKPOINT_DIR / f"ckpt-{r.killed_at}")
    assert f"resumed from {prefix} at {r.killed_at} images of 256" in r.log
    # The same schedule position: the stage the checkpoint lies in, not stage 0.
    schedule = Schedule.from_hparams(
        resolve_hparams("tiny", json.loads(r.argv[-1]))[0], num_resolutions=2)
    stages = [int(s) for s in re.findall(r"^stage (\d+)/2:", r.log, re.M)]
    assert stages == list(range(schedule.stage_of(r.killed_at), 3))
    assert "training complete: 256 images" in r.log
    assert latest_images(r.root) == 256
    assert max(checkpoint_numbers(r.root)) == 256


def test_the_resumed_run_counts_on_from_the_checkpoint(resumed_run):
    r = resumed_run
    summaries = r.root / training_run.SUMMARY_DIR
    new_files = set(os.listdir(summaries)) - r.events_before
    assert len(new_files) == 1
    steps = sorted({step for step, *_ in read_events(summaries / new_files.pop())})
    assert steps and steps[0] > r.killed_at and steps[-1] == 256
    # Summaries every 64 images, on the global image count.
    assert set(steps) == {s for s in (64, 128, 192, 256) if s > r.killed_at}


def test_run_directory_layout(resumed_run):
    root = resumed_run.root
    experiment = json.loads((root / training_run.EXPERIMENT_FILE).read_text())
    hparams, config = resolve_hparams("tiny", json.loads(resumed_run.argv[-1]))
    assert experiment == {"hparams": hparams, "architecture": config.to_dict()}
    assert experiment["architecture"]["spec_shape"] == [16, 64]
    assert experiment["architecture"]["audio_length"] == NOTE_SAMPLES
    vocabulary = json.loads((root / training_run.VOCABULARY_FILE).read_text())
    assert vocabulary == {"pitches": list(PITCHES),
                          "pitch_counts": {str(p): 2 for p in PITCHES}}
    files = os.listdir(root / training_run.CHECKPOINT_DIR)
    assert "checkpoint" in files
    assert 1 <= len(checkpoint_numbers(root)) <= 3  # max_to_keep
    assert all(name == "checkpoint" or name.startswith("ckpt-") for name in files)
    assert len(os.listdir(root / training_run.SUMMARY_DIR)) == 2  # one per process
    assert not [n for n in os.listdir(root) if n.endswith(".tmp")]


def test_tensorboard_summaries(resumed_run):
    root = resumed_run.root
    events = [e for path in sorted((root / training_run.SUMMARY_DIR).iterdir()) for e in read_events(path)]
    plugins = {tag: plugin for _, tag, plugin, _ in events}
    assert SCALAR_TAGS <= set(plugins)
    assert all(plugins[tag] == "scalars" for tag in SCALAR_TAGS)
    assert plugins["generated_mel_magnitude"] == "images"
    assert plugins["generated_audio"] == "audio"
    schedule = Schedule(2, 64, 64, 256, (8,))
    for step, tag, _, value in events:
        if tag in SCALAR_TAGS:
            assert np.isfinite(value).all(), (step, tag, value)
        if tag == "progress":  # the progress of the batch that crossed the summary step
            before = step - 8
            assert float(value) == pytest.approx(
                schedule.progress(before, schedule.num_blocks(schedule.stage_of(before))))
        if tag in ("real_ac_accuracy", "fake_ac_accuracy"):
            assert 0.0 <= float(value) <= 1.0
        if tag == "gradient_penalty":
            assert float(value) >= 0.0
    images = [v for _, tag, _, v in events if tag == "generated_mel_magnitude"]
    assert images[-1].shape == (2 + 3,)  # width, height, then 3 encoded PNGs
    audio = [v for _, tag, _, v in events if tag == "generated_audio"]
    assert audio[-1].shape == (3, 2)  # 3 clips: (encoded WAV, label)


def test_ema_generator_trails_the_trained_generator(resumed_run):
    gan = restore_gan(resumed_run.root)
    assert int(gan.images_seen.numpy()) == 256
    raw, ema = values(gan.generator.named_variables()), values(gan.ema_generator.named_variables())
    experiment = json.loads((resumed_run.root / training_run.EXPERIMENT_FILE).read_text())
    fresh = trainer.GAN(experiment["hparams"], ModelConfig.from_dict(experiment["architecture"]),
                      list(PITCHES))
    init = values(fresh.generator.named_variables())
    assert distance(values(fresh.ema_generator.named_variables()), init) == 0  # starts equal
    # 32 updates at decay 0.999 move the average a few percent of the way the weights went.
    assert 0 < distance(ema, init) < 0.2 * distance(raw, init)
    assert distance(ema, raw) > 0.5 * distance(raw, init)
    assert int(gan.g_optimizer.iterations.numpy()) == 32
    assert int(gan.d_optimizer.iterations.numpy()) == 32


def test_postprocess_then_load_and_generate(resumed_run, tmp_path):
    model_dir = tmp_path / "my_model"
    shutil.copytree(resumed_run.root, model_dir)
    meta = resumed_run.dataset / "meta.json"
    code = postprocess_model.main(["--ckpt_dir", os.fspath(model_dir), "--meta_path",
                                   os.fspath(meta), "--execute"])
    assert code == 0
    assert checkpoint_numbers(model_dir) == {256}
    model = gl.load_model(model_dir)
    assert model.pitches == PITCHES and model.sample_rate == 16000 and model.channels == 1
    audio = model.generate(model.random_z(3, seed=1), [60, 62, 65])
    assert audio.shape == (3, NOTE_SAMPLES, 1) and audio.dtype == np.float32
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
    assert np.abs(audio).max() > 0
    # The exported weights are the EMA generator's of the newest checkpoint.
    gan = restore_gan(resumed_run.root)
    ema = values(gan.ema_generator.named_variables())
    exported = values(model.generator.named_variables())
    assert ema.keys() == exported.keys()
    assert all(np.array_equal(ema[k], exported[k]) for k in ema)
    config = json.loads((model_dir / "config.json").read_text())
    assert config["provenance"]["trained_images"] == 256


def test_rerunning_a_finished_run_takes_this_runs_learning_rates(resumed_run, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(resumed_run.root, root)
    hparams, config = resolve_hparams("tiny", run_hparams(
        resumed_run.dataset, root, generator_learning_rate=1e-4, discriminator_learning_rate=2e-4))
    counts = trainer.pitch_counts(hparams)
    trainer.prepare_run_dir(hparams, config, counts)  # learning rates are not resume keys
    messages = []
    gan_trainer = trainer.Trainer(hparams, config, counts, tf.distribute.get_strategy(),
                                log=messages.append)
    assert gan_trainer.train() == 256
    assert messages[0].startswith("resumed from") and messages[-1] == "training complete: 256 images"
    assert float(gan_trainer.gan.g_optimizer.learning_rate) == pytest.approx(1e-4)
    assert float(gan_trainer.gan.d_optimizer.learning_rate) == pytest.approx(2e-4)
    assert int(gan_trainer.gan.g_optimizer.iterations.numpy()) == 32  # restored, not reset


# Refusals and errors through main(argv) ------------------------------------------------------

def test_resuming_with_other_schedule_hparams_is_refused(resumed_run, capsys):
    root = resumed_run.root
    before = {p.name: p.stat().st_mtime_ns for p in root.rglob("*")}
    changed = run_hparams(resumed_run.dataset, root, total_num_images=512,
                          stable_stage_num_images=32)
    code = train.main(["--config", "tiny", "--hparams", json.dumps(changed)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("gansynth-train: error: ") and err.count("\n") == 1
    assert "'total_num_images'" in err and "'stable_stage_num_images'" in err
    assert os.fspath(root) in err
    other_arch = run_hparams(resumed_run.dataset, root, latent_vector_size=32)
    assert train.main(["--config", "tiny", "--hparams", json.dumps(other_arch)]) == 1
    assert "'architecture'" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in root.rglob("*")} == before


@pytest.mark.parametrize("hparams, strategy, message", [
    ({"bogus_rate": 1}, "auto", r"unknown hparams \['bogus_rate'\]"),
    ({"total_num_images": -5}, "auto", "total_num_images = -5"),
    ({"batch_size_schedule": "8"}, "auto", "batch_size_schedule = '8'"),
    ({"channel_mode": "surround"}, "auto", "channel_mode = 'surround'"),
    ({"train_min_pitch": 90, "train_max_pitch": 100}, "auto", "no training notes with pitch in 90..100"),
    ({"train_data_path": "/nonexistent/data"}, "auto", "/nonexistent/data does not exist"),
    ({"train_pitch_weights": {"50-51": 2}}, "auto",
     r"train_pitch_weights names pitches \[50, 51\] that have no training notes "
     r"\(the vocabulary is \[60, 62, 64, 65\]\)"),
])
def test_bad_hparams_exit_1_with_one_line_naming_them(dataset, tmp_path, capsys, hparams,
                                                        strategy, message):
    full = {**run_hparams(dataset, tmp_path / "run"), **hparams}
    code = train.main(["--config", "tiny", "--strategy", strategy, "--hparams", json.dumps(full)])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("gansynth-train: error: "), err
    assert re.search(message, err), err
    assert "Traceback" not in out + err


def test_bad_flags_are_refused_before_tensorflow_loads(capsys):
    for argv, message in [(["--strategy", "sideways"], "argument --strategy: invalid choice"),
                          (["--config", "huge"], "argument --config: invalid choice")]:
        with pytest.raises(SystemExit) as exit_info:
            train.parse_args(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_data_without_vocabulary_pitches_is_an_error_not_a_hang(dataset, tmp_path, capsys):
    # meta.json (the vocabulary) and the records disagree: no example survives the filter.
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"horn_70": {"pitch": 70, "instrument_source": 0}}))
    hparams = run_hparams(dataset, tmp_path / "run", train_meta_path=os.fspath(meta))
    assert train.main(["--config", "tiny", "--hparams", json.dumps(hparams)]) == 1
    err = capsys.readouterr().err
    assert "no training examples with a pitch in the vocabulary [70]" in err
    assert err.count("\n") == 1


def test_invalid_json_is_an_error(capsys):
    assert train.main(["--hparams", "{total_num_images: 5}"]) == 1
    assert "--hparams is not valid JSON" in capsys.readouterr().err


# The pitch vocabulary ------------------------------------------------------------------------

def vocabulary_hparams(**overrides):
    return resolve_hparams("tiny", {"train_root_dir": "unused", **overrides})[0]


def test_pitch_counts_from_dataset_json(dataset):
    assert trainer.pitch_counts(vocabulary_hparams(train_data_path=os.fspath(dataset))) == \
        {60: 2, 62: 2, 64: 2, 65: 2}
    # A record file directly: its folder's dataset.json.
    assert trainer.pitch_counts(vocabulary_hparams(
        train_data_path=os.fspath(dataset / "data.tfrecord"), train_min_pitch=61,
        train_max_pitch=64)) == {62: 2, 64: 2}


def test_pitch_counts_from_meta_json_filter_sources_and_range(dataset, tmp_path):
    meta_path = os.fspath(dataset / "meta.json")
    hp = vocabulary_hparams(train_data_path=os.fspath(dataset), train_meta_path=meta_path,
                            train_max_pitch=64)
    assert trainer.pitch_counts(hp) == {60: 2, 62: 2, 64: 2}
    meta = {  # SopiMlab / NSynth style: sources 0 acoustic, 1 electronic, 2 synthetic
        "a_40": {"pitch": 40, "instrument_source": 0}, "b_40": {"pitch": 40, "instrument_source": 1},
        "c_41": {"pitch": 41, "instrument_source": 2}, "d_42": {"pitch": 42},  # no source: 0
        "e_20": {"pitch": 20, "instrument_source": 0}, "f_90": {"pitch": 90, "instrument_source": 0},
    }
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(meta))
    hp = vocabulary_hparams(train_data_path="unused", train_meta_path=os.fspath(path))
    assert trainer.pitch_counts(hp) == {40: 1, 42: 1}
    hp["train_instrument_sources"] = [1, 2]
    assert trainer.pitch_counts(hp) == {40: 1, 41: 1}
    hp.update(train_instrument_sources=[0, 1, 2], train_min_pitch=0, train_max_pitch=127)
    assert trainer.pitch_counts(hp) == {20: 1, 40: 2, 41: 1, 42: 1, 90: 1}
    hp.update(train_instrument_sources=[5])
    with pytest.raises(trainer.HparamsError, match="no training notes with pitch in 0..127"):
        trainer.pitch_counts(hp)


def test_a_wav_folder_trains_with_its_names_as_the_vocabulary(dataset, tmp_path):
    folder = tmp_path / "wavs"
    render_note_folder(folder, pitches=(60, 67), instruments={"flute": 73})
    (folder / "notes.txt").write_text("not audio")
    hparams, config = resolve_hparams("tiny", {"train_data_path": os.fspath(folder),
                                               "train_root_dir": "unused", **TINY_ARCHITECTURE})
    counts = trainer.pitch_counts(hparams)
    assert counts == {60: 1, 67: 1}
    converter = trainer.SpecgramConverter(config.sample_rate, config.audio_length,
                                        config.spec_shape, config.channels)
    images, labels = next(iter(trainer.image_dataset(hparams, config, converter, counts, 2, 0)))
    assert images.shape == (2, 16, 64, 2) and sorted(labels.numpy()) == [0, 1]
    assert float(tf.reduce_max(tf.abs(images))) <= 1.0


def test_pitch_weights_shape_the_real_and_the_generated_batches(dataset, tmp_path):
    # 2 notes at each of 60 62 64 65; 60 weighted 4: drawn 4 / 7 of the time, not 1 / 4.
    hparams, config = resolve_hparams("tiny", run_hparams(
        dataset, tmp_path / "run", train_pitch_weights={"60": 4}))
    counts = trainer.pitch_counts(hparams)
    converter = trainer.SpecgramConverter(config.sample_rate, config.audio_length,
                                        config.spec_shape, config.channels)
    batches = trainer.image_dataset(hparams, config, converter, counts, 8, seed=0).take(150)
    labels = np.concatenate([labels.numpy() for _, labels in batches])
    shares = np.bincount(labels, minlength=4) / len(labels)
    assert shares == pytest.approx([4 / 7, 1 / 7, 1 / 7, 1 / 7], abs=0.05), shares
    gan_trainer = trainer.Trainer(hparams, config, counts, tf.distribute.get_strategy(), log=print)
    generated = gan_trainer._sample_labels(4000).numpy()
    assert np.bincount(generated, minlength=4) / 4000 == pytest.approx(
        [4 / 7, 1 / 7, 1 / 7, 1 / 7], abs=0.03)


def test_a_pitch_weight_error_leaves_no_run_directory(dataset, tmp_path, capsys):
    hparams = run_hparams(dataset, tmp_path / "run", train_pitch_weights={"61": 2})
    assert train.main(["--config", "tiny", "--hparams", json.dumps(hparams)]) == 1
    assert "names pitches [61]" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_ema_warning_is_for_stages_still_ahead_only():
    schedule = Schedule(6, 5000, 5000, 400000, (16,))  # the last of 11 stages from 50,000
    warning = trainer.ema_lag_warning(0.998, schedule, images=49999)
    assert warning and "remembers about 8000 images" in warning and "0.9904" in warning
    assert trainer.ema_lag_warning(0.998, schedule, images=50000) is None  # nothing to outlast
    assert trainer.ema_lag_warning(0.99, schedule, 0) is None
    flat = Schedule(6, 5000, 5000, 400000, (16,), progressive=False)
    assert trainer.ema_lag_warning(0.998, flat, images=0) is None


def test_a_pitch_map_run_trains_postprocesses_and_generates(dataset, tmp_path):
    root = tmp_path / "run"
    code, out, err = run_main(["--config", "tiny", "--hparams",
                               json.dumps(run_hparams(dataset, root, pitch_map=True))])
    assert code == 0, err
    # 64-image stages are far shorter than the default average's memory (8 / 0.001 images).
    assert "warning: generator_ema_decay 0.999 remembers about 8000 images" in out
    experiment = json.loads((root / training_run.EXPERIMENT_FILE).read_text())
    assert experiment["architecture"]["pitch_map"] is True
    gan = restore_gan(root)
    assert gan.conditional and int(gan.images_seen.numpy()) == 256
    code = postprocess_model.main(["--ckpt_dir", os.fspath(root), "--meta_path",
                                   os.fspath(dataset / "meta.json"), "--execute"])
    assert code == 0
    model = gl.load_model(root)
    assert model.config.pitch_map and model.pitches == PITCHES
    audio = model.generate(model.random_z(2, seed=1), [60, 65])
    assert audio.shape == (2, NOTE_SAMPLES, 1) and np.isfinite(audio).all()
    exported = values(model.generator.named_variables())
    ema = values(gan.ema_generator.named_variables())
    assert all(np.array_equal(ema[k], exported[k]) for k in ema)


def test_warm_start_adds_the_if_pitch_map_to_a_trained_run(dataset, tmp_path):
    """A pitch_map run grows pitch_map_if: the widened networks first compute exactly what
    the old ones did, then train on from the old image count with the new inputs."""
    old_root, new_root = tmp_path / "magnitude_map", tmp_path / "with_if"
    code, _, err = run_main(["--config", "tiny", "--hparams", json.dumps(
        run_hparams(dataset, old_root, pitch_map=True, total_num_images=128))])
    assert code == 0, err
    old = restore_gan(old_root)

    new_hparams = run_hparams(dataset, new_root, pitch_map=True, pitch_map_if=True,
                              warm_start_from=os.fspath(old_root))
    hparams, config = resolve_hparams("tiny", new_hparams)
    gan = trainer.GAN(hparams, config, list(PITCHES))
    warm_start(gan, hparams, config, list(PITCHES), old_root)
    assert int(gan.images_seen.numpy()) == 128
    z = tf.random.stateless_normal([4, config.latent_size], seed=[1, 2])
    one_hot = tf.one_hot([0, 1, 2, 3], len(PITCHES))
    for net in ("generator", "ema_generator"):
        np.testing.assert_allclose(getattr(gan, net)(z, one_hot, 1.0, 2),
                                   getattr(old, net)(z, one_hot, 1.0, 2), atol=2e-5)
    images = old.generator(z, one_hot, 1.0, 2)
    for new_out, old_out in zip(gan.discriminator(images, 1.0, 2, one_hot=one_hot),
                                old.discriminator(images, 1.0, 2, one_hot=one_hot)):
        np.testing.assert_allclose(new_out, old_out, rtol=1e-4, atol=1e-4)
    kernel = "Generator/progressive_gan_generator/progressive_gan_block_2/conv1/conv2d/kernel"
    assert not np.any(gan.generator.named_variables()[kernel][:, :, -1, :])

    code, out, err = run_main(["--config", "tiny", "--hparams", json.dumps(new_hparams)])
    assert code == 0, err
    assert "(warm start) at 128 images of 256" in out
    trained = restore_gan(new_root)
    assert int(trained.images_seen.numpy()) == 256
    assert np.abs(trained.generator.named_variables()[kernel][:, :, -1, :]).max() > 0

    # What cannot be widened is refused with the reason, before anything is written.
    for bad, message in [({"warm_start_from": os.fspath(tmp_path)}, "not a gansynth-train run"),
                         ({"latent_vector_size": 8}, "differs in ['latent_size']")]:
        root = tmp_path / f"bad_{len(message)}"
        code, _, err = run_main(["--config", "tiny", "--hparams", json.dumps(
            {**new_hparams, "train_root_dir": os.fspath(root), **bad})])
        assert code == 1 and message in err, err
        assert not list((root / training_run.CHECKPOINT_DIR).glob("ckpt-*"))


# MirroredStrategy over two logical CPU devices ----------------------------------------------

MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from training import trainer
    from training.hparams import resolve_hparams

    hparams, config = resolve_hparams("tiny", json.loads(sys.argv[1]))
    counts = trainer.pitch_counts(hparams)
    trainer.prepare_run_dir(hparams, config, counts)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    gan_trainer = trainer.Trainer(hparams, config, counts, strategy, log=print)
    gan = gan_trainer.gan
    init = {n: v.numpy() for n, v in gan.ema_generator.named_variables().items()}
    images = gan_trainer.train()

    def replicas(variable):
        return [np.asarray(c.numpy()) for c in variable.values]

    modules = [gan.generator, gan.discriminator, gan.ema_generator]
    variables = [v for m in modules for v in m.named_variables().values()] + [gan.images_seen]
    mirrored = [v for v in variables if isinstance(v, tf.distribute.DistributedValues)]
    spread = max(float(np.max(np.abs(r[0] - r[1]))) for r in map(replicas, mirrored))
    devices = sorted({c.device for v in mirrored for c in v.values})
    ema = {n: v.numpy() for n, v in gan.ema_generator.named_variables().items()}
    raw = {n: v.numpy() for n, v in gan.generator.named_variables().items()}
    dist = lambda a, b: float(np.sqrt(sum(np.sum((a[k] - b[k]) ** 2) for k in a)))
    print("RESULT " + json.dumps({
        "replicas": strategy.num_replicas_in_sync, "images": images,
        "variables": len(variables), "mirrored": len(mirrored), "spread": spread,
        "devices": devices, "ema_moved": dist(ema, init), "raw_moved": dist(raw, init),
        "ema_sum": float(sum(np.sum(v, dtype=np.float64) for v in ema.values())),
        "g_steps": int(gan.g_optimizer.iterations.numpy()),
    }))
""")


def test_mirrored_strategy_on_two_logical_cpus(dataset, tmp_path):
    root = tmp_path / "mirrored"
    hparams = run_hparams(dataset, root, train_progressive=False, total_num_images=32,
                          save_summaries_num_images=16, save_checkpoint_secs=600)
    proc = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, json.dumps(hparams)],
                          cwd=REPO, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert result["replicas"] == 2
    assert result["images"] == 32 and result["g_steps"] == 4
    assert result["mirrored"] == result["variables"]  # every variable has a copy per device
    assert [d.split("/")[-1] for d in result["devices"]] == ["device:CPU:0", "device:CPU:1"]
    assert result["spread"] == 0.0  # the replicas' weights stay identical
    assert 0 < result["ema_moved"] < result["raw_moved"]
    assert "training complete: 32 images" in proc.stdout
    # Losses are finite; summaries at 16 and 32 images.
    (event_file,) = (root / training_run.SUMMARY_DIR).iterdir()
    scalars = [(step, tag, v) for step, tag, plugin, v in read_events(event_file)
               if plugin == "scalars"]
    assert {step for step, *_ in scalars} == {16, 32}
    assert SCALAR_TAGS <= {tag for _, tag, _ in scalars}
    assert all(np.isfinite(v).all() for *_, v in scalars)
    # The checkpoint written under MirroredStrategy restores without it (export, postprocess).
    gan = restore_gan(root)
    assert int(gan.images_seen.numpy()) == 32
    ema_sum = sum(np.sum(v.numpy(), dtype=np.float64)
                  for v in gan.ema_generator.named_variables().values())
    assert ema_sum == pytest.approx(result["ema_sum"], rel=1e-12)


# MultiWorkerMirroredStrategy under Slurm (opt-in: two TensorFlow processes, 1-2 minutes) --

def run_slurm_workers(argv: list[str], ntasks: int = 2) -> list[str]:
    """Run argv as the tasks of a one-node Slurm job step on localhost; their outputs."""
    slurm = {"SLURM_NTASKS": str(ntasks), "SLURM_STEP_NUM_TASKS": str(ntasks),
             "SLURM_STEP_NODELIST": "localhost", "SLURM_STEP_TASKS_PER_NODE": str(ntasks),
             "CUDA_VISIBLE_DEVICES": ",".join(map(str, range(ntasks)))}
    procs = [subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env={**os.environ, **slurm, "SLURM_PROCID": str(rank)})
             for rank in range(ntasks)]
    logs = [p.communicate(timeout=500)[0] for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    return logs


@pytest.mark.skipif(not os.environ.get("GANSYNTH_SLOW_TESTS"),
                    reason="set GANSYNTH_SLOW_TESTS=1 to run two Slurm-like workers on localhost")
def test_two_slurm_workers_stop_together_and_resume(dataset, tmp_path):
    root = tmp_path / "multiworker"
    hparams = run_hparams(dataset, root, train_progressive=False, total_num_images=48,
                          save_summaries_num_images=16)
    argv = [sys.executable, "-m", "training.train", "--config", "tiny", "--strategy", "auto",
            "--hparams", json.dumps(hparams)]
    # --max_seconds is measured by each worker's clock; they must still stop at one step.
    logs = run_slurm_workers(argv + ["--max_seconds", "1"])
    stops = [re.findall(r"time limit reached at (\d+) images", log) for log in logs]
    assert stops[0] and stops[0] == stops[1]
    stopped_at = int(stops[0][0])
    assert latest_images(root) == stopped_at < 48
    logs = run_slurm_workers(argv)
    for log in logs:
        assert f"resumed from {root / 'checkpoints' / f'ckpt-{stopped_at}'}" in log
        assert "training complete: 48 images" in log
    # The same losses on both workers; only the chief (worker 0) wrote files.
    losses = [re.findall(r"D [\d.-]+ G [\d.-]+", log) for log in logs]
    assert losses[0] and losses[0] == losses[1]
    assert latest_images(root) == 48
    assert len(os.listdir(root / training_run.SUMMARY_DIR)) == 2  # one per attempt, chief only
    assert sorted(os.listdir(root)) == ["checkpoints", "experiment.json", "pitches.json",
                                        "summaries"]
