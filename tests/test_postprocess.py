"""training/postprocess_model.py: dry run, newest checkpoint by number, relocatable result.

The gansynth-train run directory is built from real tf.train.Checkpoint files of the
training GAN (no training steps: the weights are set by hand so the test knows which
checkpoint was exported). The Magenta directory is the TF1 one of test_magenta_checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import gansynth_live as gl
from gansynth_live import training_run
from training import postprocess_model, train, trainer
from training.hparams import resolve_hparams
from training_helpers import TINY_ARCHITECTURE
from test_magenta_checkpoint import magenta_dir  # noqa: F401  (a fixture)

PITCHES = (60, 62, 64)


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file and folder under root: (size, mtime_ns, first bytes)."""
    out = {}
    for path in sorted(root.rglob("*")):
        stat = path.stat()
        head = path.read_bytes()[:4096] if path.is_file() else b""
        out[os.fspath(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns, head)
    return out


def checkpoint_files(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith(("ckpt-", "model.ckpt-")))


def run(capsys, *argv) -> tuple[int, str, str]:
    code = postprocess_model.main([os.fspath(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def project_run(tmp_path_factory):
    """A gansynth-train run dir: ckpt-10 (the newest by number), ckpt-9 (saved last, so
    the `checkpoint` file names it) and ckpt-2 (a copy of ckpt-10's files)."""
    base = tmp_path_factory.mktemp("postprocess")
    root = base / "run"
    meta_path = base / "meta.json"
    meta_path.write_text(json.dumps({f"piano_{p}": {"instrument_str": "piano", "pitch": p,
                                                    "instrument_source": 0} for p in PITCHES}))
    hparams, config = resolve_hparams("tiny", {
        "train_data_path": os.fspath(base / "data"), "train_root_dir": os.fspath(root),
        "train_meta_path": os.fspath(meta_path), **TINY_ARCHITECTURE})
    counts = trainer.pitch_counts(hparams)
    trainer.prepare_run_dir(hparams, config, counts)
    run = trainer.Trainer(hparams, config, counts, tf.distribute.get_strategy(),
                          log=lambda message: None)
    manager = tf.train.CheckpointManager(run.checkpoint, root / training_run.CHECKPOINT_DIR,
                                         max_to_keep=3, checkpoint_name="ckpt")
    gan, rng = run.gan, np.random.default_rng(0)
    weights = {}
    for number in (10, 9):
        for variable in gan.ema_generator.trainable_variables:
            variable.assign(variable + rng.normal(0, 0.1, variable.shape).astype(np.float32))
        gan.images_seen.assign(number)
        manager.save(checkpoint_number=number)
        weights[number] = {n: v.numpy() for n, v in gan.ema_generator.named_variables().items()}
    run.writer.close()
    folder = root / training_run.CHECKPOINT_DIR
    for name in os.listdir(folder):
        if name.startswith("ckpt-10."):
            shutil.copyfile(folder / name, folder / name.replace("ckpt-10.", "ckpt-2."))
    assert tf.train.latest_checkpoint(os.fspath(folder)).endswith("ckpt-9")
    return root, meta_path, weights


@pytest.fixture
def run_copy(project_run, tmp_path):
    root, meta_path, weights = project_run
    copy = tmp_path / "my_model"
    shutil.copytree(root, copy)
    return copy, meta_path, weights


def test_dry_run_lists_and_changes_nothing(run_copy, capsys):
    root, meta_path, _ = run_copy
    before = snapshot(root)
    code, out, err = run(capsys, "--ckpt_dir", root, "--meta_path", meta_path)
    assert code == 0, err
    assert snapshot(root) == before
    folder = root / "checkpoints"
    assert f"export the EMA generator of {folder / 'ckpt-10'}" in out
    assert f"copy {meta_path} to {root / 'meta.json'}" in out
    assert "strip train_root_dir, train_data_path, train_meta_path" in out
    for name in checkpoint_files(folder):
        assert (f"delete {folder / name}" in out) == (not name.startswith("ckpt-10.")), name
    assert f"rewrite {folder / 'checkpoint'} to name only ckpt-10" in out
    assert out.rstrip().endswith("dry run: nothing changed; add --execute to do this")


def test_execute_keeps_the_newest_by_number_and_the_result_moves(run_copy, capsys, tmp_path):
    root, meta_path, weights = run_copy
    code, out, err = run(capsys, "--ckpt_dir", root, "--meta_path", meta_path, "--execute")
    assert code == 0, err
    assert "done: the directory is a model for gansynth-live" in out
    folder = root / "checkpoints"
    assert checkpoint_files(folder) == ["ckpt-10.data-00000-of-00001", "ckpt-10.index"]
    assert (folder / "checkpoint").read_text().startswith(
        'model_checkpoint_path: "ckpt-10"\nall_model_checkpoint_paths: "ckpt-10"\n')
    assert (root / "meta.json").read_bytes() == meta_path.read_bytes()
    experiment = json.loads((root / "experiment.json").read_text())
    assert not {"train_root_dir", "train_data_path", "train_meta_path"} & set(experiment["hparams"])
    assert experiment["hparams"]["total_num_images"] == 11_000_000  # the rest is kept
    config = json.loads((root / "config.json").read_text())
    assert config["provenance"] == {"trained_images": 10, "checkpoint": "ckpt-10",
                                    "dataset_meta": "meta.json"}
    assert not list(root.parent.glob(".*"))  # no staging folders left behind
    # No machine path anywhere: the directory can move.
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in ("", ".json"):
            assert os.fspath(tmp_path) not in path.read_text(), path
    moved = tmp_path / "elsewhere" / "renamed_model"
    moved.parent.mkdir()
    shutil.move(root, moved)
    model = gl.load_model(moved)
    assert model.pitches == PITCHES and model.name == "my_model"
    exported = {n: v.numpy() for n, v in model.generator.named_variables().items()}
    assert all(np.array_equal(exported[n], weights[10][n]) for n in weights[10])
    assert not all(np.array_equal(exported[n], weights[9][n]) for n in weights[9])
    audio = model.generate(model.random_z(2, seed=0), [60, 64])
    assert audio.shape == (2, 512, 1) and np.isfinite(audio).all() and np.abs(audio).max() <= 1
    # Training can still resume from the moved directory's relative checkpoint state.
    assert tf.train.latest_checkpoint(os.fspath(moved / "checkpoints")) == \
        os.fspath(moved / "checkpoints" / "ckpt-10")


def test_a_damaged_newest_checkpoint_is_named_and_the_next_older_exported(run_copy, capsys):
    root, meta_path, weights = run_copy
    index = root / "checkpoints" / "ckpt-10.index"
    with open(index, "r+b") as f:  # flip bytes in the middle: the block checksum fails
        f.seek(index.stat().st_size // 2)
        f.write(b"\xff" * 16)
    code, out, err = run(capsys, "--ckpt_dir", root, "--meta_path", meta_path)
    assert code == 0, err
    folder = root / "checkpoints"
    assert f"export the EMA generator of {folder / 'ckpt-9'} (9 images)" in out
    assert f"delete {index} (it does not restore: " in out
    code, out, err = run(capsys, "--ckpt_dir", root, "--meta_path", meta_path, "--execute")
    assert code == 0, err
    assert checkpoint_files(folder) == ["ckpt-9.data-00000-of-00001", "ckpt-9.index"]
    model = gl.load_model(root)
    exported = {n: v.numpy() for n, v in model.generator.named_variables().items()}
    assert all(np.array_equal(exported[n], weights[9][n]) for n in weights[9])


def test_a_run_without_meta_json_postprocesses(run_copy, capsys):
    """A run trained straight from a folder of WAVs has no dataset meta.json."""
    root, _, _ = run_copy
    code, out, err = run(capsys, "--ckpt_dir", root, "--execute")
    assert code == 0, err
    assert "copy" not in out and not (root / "meta.json").exists()
    assert json.loads((root / "config.json").read_text())["provenance"]["dataset_meta"] is None
    assert gl.load_model(root).pitches == PITCHES


def test_failed_verification_deletes_nothing(run_copy, capsys):
    root, meta_path, _ = run_copy
    experiment = json.loads((root / "experiment.json").read_text())
    gan = trainer.GAN(experiment["hparams"], gl.ModelConfig.from_dict(experiment["architecture"]),
                    list(PITCHES))
    checkpoint = tf.train.Checkpoint(gan=gan)
    checkpoint.read(os.fspath(root / "checkpoints" / "ckpt-10")).assert_existing_objects_matched()
    variable = gan.ema_generator.trainable_variables[0]
    variable.assign(tf.fill(variable.shape, float("nan")))  # a diverged run
    gan.images_seen.assign(11)
    checkpoint.write(os.fspath(root / "checkpoints" / "ckpt-11"))
    files = checkpoint_files(root / "checkpoints")
    code, out, err = run(capsys, "--ckpt_dir", root, "--meta_path", meta_path, "--execute")
    assert code == 1
    assert "load " in out and "generate a note (stop here if that fails)" in out
    assert err.startswith("gansynth-postprocess: error: cannot load model"), err
    assert "non-finite" in err
    assert checkpoint_files(root / "checkpoints") == files  # ckpt-2, 9, 10 and 11 all kept
    assert "delete" not in out  # steps are listed as they run: it stopped at the check


@pytest.mark.parametrize("breakage, message", [
    (lambda root, meta: shutil.rmtree(root), "not a directory"),
    (lambda root, meta: meta.unlink(), "no such file"),
    (lambda root, meta: meta.write_text("{oops"), "not valid JSON"),
    (lambda root, meta: (root / "experiment.json").unlink(), "no experiment.json"),
    (lambda root, meta: [p.unlink() for p in (root / "checkpoints").glob("*.index")],
     "no checkpoint restores in checkpoints/ (ckpt-10: "),
])
def test_unusable_input_is_one_clear_error(run_copy, capsys, tmp_path, breakage, message):
    root, meta_path, _ = run_copy
    meta = tmp_path / "meta.json"
    shutil.copyfile(meta_path, meta)
    breakage(root, meta)
    code, out, err = run(capsys, "--ckpt_dir", root, "--meta_path", meta, "--execute")
    assert code == 1 and message in err and err.count("\n") == 1, err


# A Magenta / SopiMlab TF1 training directory -------------------------------------------------

@pytest.fixture
def magenta_copy(magenta_dir, tmp_path):  # noqa: F811
    root, _ = magenta_dir
    copy = tmp_path / "acoustic_only"
    shutil.copytree(root, copy)
    meta = tmp_path / "meta.json"  # SopiMlab's dataset meta: pitches 24..84
    meta.write_text(json.dumps({f"guitar_{p}": {"instrument_str": "guitar", "pitch": p,
                                                "instrument_source": 0} for p in range(24, 85)}))
    return copy, meta


def test_magenta_dry_run(magenta_copy, capsys):
    root, meta = magenta_copy
    before = snapshot(root)
    code, out, err = run(capsys, "--ckpt_dir", root, "--meta_path", meta)
    assert code == 0, err
    assert snapshot(root) == before
    assert f"delete {root / 'stage_00000'}" in out
    assert f"delete {root / 'stage_00002' / 'model.ckpt-9.index'}" in out
    assert "model.ckpt-10" not in out.replace("name only model.ckpt-10", "")


def test_magenta_execute_keeps_the_newest_stage_and_number(magenta_dir, magenta_copy, capsys,
                                                           tmp_path):
    root, meta = magenta_copy
    original = gl.load_model(magenta_dir[0])
    code, out, err = run(capsys, "--ckpt_dir", root, "--meta_path", meta, "--execute")
    assert code == 0, err
    assert sorted(p.name for p in root.iterdir()) == ["experiment.json", "meta.json",
                                                      "stage_00002"]
    stage = root / "stage_00002"
    assert checkpoint_files(stage) == ["model.ckpt-10.data-00000-of-00001",
                                       "model.ckpt-10.index", "model.ckpt-10.meta"]
    assert (stage / "checkpoint").read_text().startswith(
        'model_checkpoint_path: "model.ckpt-10"\n'
        'all_model_checkpoint_paths: "model.ckpt-10"\n')
    assert "/cluster/" not in (stage / "checkpoint").read_text()
    assert "train_root_dir" not in json.loads((root / "experiment.json").read_text())
    moved = tmp_path / "moved" / "guitar_model"
    moved.parent.mkdir()
    shutil.move(root, moved)
    model = gl.load_model(moved)
    assert model.pitches == original.pitches == tuple(range(24, 85))
    z = model.random_z(2, seed=3)
    np.testing.assert_array_equal(model.generate_specgrams(z, [24, 60]),
                                  original.generate_specgrams(z, [24, 60]))
    assert tf.train.latest_checkpoint(os.fspath(moved / "stage_00002")) == \
        os.fspath(moved / "stage_00002" / "model.ckpt-10")


def test_export_to_ships_a_snapshot_and_leaves_the_run_alone(run_copy, capsys, tmp_path):
    root, meta_path, weights = run_copy
    before = snapshot(root)
    out_dir = tmp_path / "shipped" / "default"
    code, out, err = run(capsys, "--ckpt_dir", root, "--meta_path", meta_path,
                         "--export_to", out_dir, "--execute")
    assert code == 0, err
    assert snapshot(root) == before  # nothing in the run changed, nothing deleted
    assert sorted(p.name for p in out_dir.iterdir()) == ["config.json", "generator.npz",
                                                        "meta.json"]
    config = json.loads((out_dir / "config.json").read_text())
    # 10 images into a progressive run: the snapshot keeps the progress it was trained to.
    assert config["progress"] == 0.0 and config["name"] == "default"
    model = gl.load_model(out_dir)
    assert model.progress == 0.0
    exported = {n: v.numpy() for n, v in model.generator.named_variables().items()}
    assert all(np.array_equal(exported[n], weights[10][n]) for n in weights[10])
    grown = gl.Model(model.config, model.pitches, generator=model.generator)
    z = model.random_z(1, seed=0)
    assert not np.allclose(model.generate_specgrams(z, 60), grown.generate_specgrams(z, 60))


def test_export_to_refuses_a_magenta_dir(magenta_copy, capsys, tmp_path):
    root, meta_path = magenta_copy[:2]
    code, _, err = run(capsys, "--ckpt_dir", root, "--meta_path", meta_path,
                       "--export_to", tmp_path / "x", "--execute")
    assert code == 1 and "--export_to works on gansynth-train runs" in err


def test_bad_progress_in_config_is_named(tmp_path):
    model = gl.Model(gl.preset("tiny"), PITCHES, progress=1.5)
    gl.save_model(model, tmp_path / "m")
    assert gl.load_model(tmp_path / "m").progress == 1.5
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["progress"] = 99
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(gl.ModelLoadError, match="config.json: progress must be in 0..6"):
        gl.load_model(tmp_path / "m")
