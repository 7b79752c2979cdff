"""Turn a training run into a small, movable model directory (SopiMlab's postprocess step).

    python training/postprocess_model.py --ckpt_dir mymodel [--meta_path mydataset/meta.json]
    python training/postprocess_model.py --ckpt_dir mymodel [--meta_path ...] --execute

Without --execute it only lists what it would do. With it, for a gansynth-train run:

1. export the EMA generator of the newest intact checkpoint (step numbers compared
   as numbers; one that does not restore is skipped and deleted) as config.json +
   generator.npz, so the directory is a small model directory;
2. copy the dataset's meta.json in, when --meta_path names one (a run trained straight
   from a folder of WAVs has none);
3. strip machine paths (train_root_dir, train_data_path, train_meta_path) from experiment.json;
4. load the exported model and generate a note: nothing is deleted unless this works;
5. delete the older checkpoints (the newest stays, so training can still resume).

A Magenta / SopiMlab TF1 training dir gets the same treatment (newest checkpoint of the
newest stage kept, `checkpoint` files rewritten with relative paths), minus the export:
gansynth-live loads such directories directly.

With --export_to DIR it only exports the newest checkpoint (with meta.json) as the model
directory DIR and changes nothing in the run (how the embedded default model is shipped
from a run that keeps training).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from gansynth_live import training_run

MACHINE_PATH_KEYS = ("train_root_dir", "train_data_path", "train_meta_path")
_CKPT_FILE = re.compile(r"^(?:model\.)?ckpt-(\d+)\.(?:index|data-\d+-of-\d+|meta)$")


class PostprocessError(Exception):
    pass


@dataclass
class Plan:
    """The operations, described for the dry run and executed in order."""
    steps: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def add(self, description: str, action: Callable[[], None]) -> None:
        self.steps.append((description, action))


def checkpoint_numbers(folder: Path) -> list[int]:
    """Numbers of the complete checkpoints (index + data) in `folder`, newest first."""
    files = [f.name for f in folder.iterdir()] if folder.is_dir() else []
    numbers = {int(m.group(1)) for name in files if (m := _CKPT_FILE.match(name))}
    complete = [n for n in numbers
                if any(re.match(rf"^(?:model\.)?ckpt-{n}\.index$", f) for f in files)
                and any(re.match(rf"^(?:model\.)?ckpt-{n}\.data-", f) for f in files)]
    return sorted(complete, reverse=True)


def files_of_other_checkpoints(folder: Path, keep: int) -> list[Path]:
    return sorted(f for f in folder.iterdir()
                  if (m := _CKPT_FILE.match(f.name)) and int(m.group(1)) != keep)


def strip_machine_paths(experiment_path: Path) -> None:
    experiment = json.loads(experiment_path.read_text())
    hparams = experiment.get("hparams", experiment)  # ours nests them; Magenta's is flat
    for key in MACHINE_PATH_KEYS:
        hparams.pop(key, None)
    tmp = experiment_path.with_name(f".{experiment_path.name}.tmp")
    tmp.write_text(json.dumps(experiment, indent=2) + "\n")
    os.replace(tmp, experiment_path)


def verify_loads(model_dir: Path) -> None:
    import gansynth_live as gl
    model = gl.load_model(model_dir)
    audio = model.generate(model.random_z(1, seed=0), model.pitches[len(model.pitches) // 2])
    if not audio.size or not (abs(audio) <= 1.0).all():
        raise PostprocessError(f"{model_dir}: the exported model generates invalid audio")


def newest_snapshot(ckpt_dir: Path) -> training_run.RunSnapshot:
    """The run's newest checkpoint that restores (its EMA generator as a Model)."""
    from gansynth_live.model_dir import ModelLoadError

    try:
        return training_run.read_training_run(ckpt_dir)
    except ModelLoadError as e:
        raise PostprocessError(str(e)) from None


def copy_meta_step(plan: Plan, meta_path: Path | None, target: Path) -> None:
    if meta_path is not None:
        plan.add(f"copy {meta_path} to {target / 'meta.json'}",
                 lambda: shutil.copyfile(meta_path, target / "meta.json"))


def plan_project_run(ckpt_dir: Path, meta_path: Path | None) -> Plan:
    folder = ckpt_dir / training_run.CHECKPOINT_DIR
    snapshot = newest_snapshot(ckpt_dir)
    keep = snapshot.checkpoint
    plan = Plan()
    plan.add(f"export the EMA generator of {keep} ({snapshot.images} images) to "
             f"{ckpt_dir}/config.json + generator.npz",
             lambda: export_generator(ckpt_dir, snapshot, meta_path))
    copy_meta_step(plan, meta_path, ckpt_dir)
    plan.add(f"strip {', '.join(MACHINE_PATH_KEYS)} from {ckpt_dir / training_run.EXPERIMENT_FILE}",
             lambda: strip_machine_paths(ckpt_dir / training_run.EXPERIMENT_FILE))
    plan.add(f"load {ckpt_dir} and generate a note (stop here if that fails)",
             lambda: verify_loads(ckpt_dir))
    damaged = dict(snapshot.skipped)
    for prefix in training_run.checkpoint_prefixes(folder):
        if prefix != keep:
            why = f" (it does not restore: {damaged[prefix]})" if prefix in damaged else ""
            for path in training_run.checkpoint_files(prefix):
                plan.add(f"delete {path}{why}", path.unlink)
    plan.add(f"rewrite {folder / 'checkpoint'} to name only {keep.name}",
             lambda: training_run.write_checkpoint_index(folder, [keep]))
    return plan


def provenance(snapshot: training_run.RunSnapshot, meta_path: Path | None) -> dict:
    return {"trained_images": snapshot.images, "checkpoint": snapshot.checkpoint.name,
            "dataset_meta": meta_path.name if meta_path else None}


def export_generator(ckpt_dir: Path, snapshot: training_run.RunSnapshot,
                     meta_path: Path | None) -> None:
    """Write config.json + generator.npz (EMA weights) into ckpt_dir, atomically per file."""
    import gansynth_live as gl

    snapshot.model.name = ckpt_dir.name
    staging = gl.save_model(snapshot.model, ckpt_dir.parent / f".{ckpt_dir.name}.export",
                            overwrite=True, provenance=provenance(snapshot, meta_path))
    for name in ("generator.npz", "config.json"):  # config last: it marks the dir loadable
        os.replace(staging / name, ckpt_dir / name)
    shutil.rmtree(staging)


def export_to(snapshot: training_run.RunSnapshot, meta_path: Path | None, out_dir: Path) -> None:
    """Write a separate model directory `out_dir` (replaced atomically); the run is untouched."""
    import gansynth_live as gl

    snapshot.model.name = out_dir.name
    gl.save_model(snapshot.model, out_dir, meta_path=meta_path, overwrite=True,
                  provenance=provenance(snapshot, meta_path))


def plan_export(ckpt_dir: Path, meta_path: Path | None, out_dir: Path) -> Plan:
    """--export_to: the newest intact checkpoint as a model directory elsewhere; nothing deleted."""
    snapshot = newest_snapshot(ckpt_dir)
    plan = Plan()
    plan.add(f"export the EMA generator of {snapshot.checkpoint} ({snapshot.images} images)"
             f"{' with ' + os.fspath(meta_path) if meta_path else ''} to {out_dir} "
             f"(replacing it atomically; the run is not changed)",
             lambda: export_to(snapshot, meta_path, out_dir))
    plan.add(f"load {out_dir} and generate a note", lambda: verify_loads(out_dir))
    return plan


def plan_magenta_run(ckpt_dir: Path, meta_path: Path | None) -> Plan:
    stages = sorted((int(p.name.split("_")[1]), p) for p in ckpt_dir.iterdir()
                    if p.is_dir() and re.match(r"^stage_\d+$", p.name))
    keep = next(((stage, folder, checkpoint_numbers(folder)[0]) for stage, folder in reversed(stages)
                 if checkpoint_numbers(folder)), None)
    if keep is None:
        raise PostprocessError(f"{ckpt_dir}: no stage folder holds a complete model.ckpt-N")
    _, keep_folder, number = keep
    plan = Plan()
    copy_meta_step(plan, meta_path, ckpt_dir)
    plan.add(f"strip {', '.join(MACHINE_PATH_KEYS)} from {ckpt_dir / 'experiment.json'}",
             lambda: strip_machine_paths(ckpt_dir / "experiment.json"))
    plan.add(f"load {ckpt_dir} and generate a note (stop here if that fails)",
             lambda: verify_loads(ckpt_dir))
    for _, folder in stages:
        if folder != keep_folder:
            plan.add(f"delete {folder}", lambda folder=folder: shutil.rmtree(folder))
    for path in files_of_other_checkpoints(keep_folder, number):
        plan.add(f"delete {path}", path.unlink)
    plan.add(f"rewrite {keep_folder / 'checkpoint'} to name only model.ckpt-{number}",
             lambda: training_run.write_checkpoint_index(
                 keep_folder, [keep_folder / f"model.ckpt-{number}"]))
    return plan


def make_plan(ckpt_dir: Path, meta_path: Path | None, export_dir: Path | None = None) -> Plan:
    if not ckpt_dir.is_dir():
        raise PostprocessError(f"--ckpt_dir {ckpt_dir}: not a directory")
    if meta_path is not None:
        if not meta_path.is_file():
            raise PostprocessError(f"--meta_path {meta_path}: no such file")
        try:
            json.loads(meta_path.read_text())
        except (OSError, ValueError) as e:
            raise PostprocessError(f"--meta_path {meta_path}: not valid JSON: {e}") from None
    if training_run.is_training_run(ckpt_dir):
        if export_dir is not None:
            return plan_export(ckpt_dir, meta_path, export_dir)
        return plan_project_run(ckpt_dir, meta_path)
    if export_dir is not None:
        raise PostprocessError(f"--export_to works on gansynth-train runs; {ckpt_dir} is not one "
                               f"(a Magenta dir loads as it is)")
    if (ckpt_dir / "experiment.json").exists():
        return plan_magenta_run(ckpt_dir, meta_path)
    raise PostprocessError(f"--ckpt_dir {ckpt_dir}: no experiment.json; not a training run")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="gansynth-postprocess",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt_dir", required=True, type=Path, help="the training run directory")
    parser.add_argument("--meta_path", type=Path,
                        help="the dataset's meta.json, copied into the model for reference "
                             "(gansynth-make-dataset writes it; a run trained straight from a "
                             "folder of WAVs has none)")
    parser.add_argument("--export_to", type=Path, metavar="DIR",
                        help="instead: export the newest checkpoint as a model directory DIR "
                             "and leave the run as it is (e.g. to ship a snapshot of a run "
                             "that keeps training)")
    parser.add_argument("--execute", action="store_true", help="do it (default: only list)")
    args = parser.parse_args(argv)
    try:
        plan = make_plan(args.ckpt_dir, args.meta_path, args.export_to)
        for i, (description, action) in enumerate(plan.steps, 1):
            print(f"{i:3d}. {description}", flush=True)
            if args.execute:
                action()
    except Exception as e:  # noqa: BLE001 - every failure becomes one clear line
        print(f"gansynth-postprocess: error: {e}", file=sys.stderr)
        return 1
    print("done: the directory is a model for gansynth-live" if args.execute
          else "dry run: nothing changed; add --execute to do this")
    return 0


if __name__ == "__main__":
    sys.exit(main())
