"""gansynth-train: progressive GAN training of a GANSynth model (TensorFlow 2).

    gansynth-train --config=mel_prog_hires \\
        --hparams='{"train_data_path": "mydataset", "train_root_dir": "mymodel"}'

The run directory (train_root_dir) holds:

    experiment.json   the resolved hparams and architecture (a resumed run must match)
    checkpoints/      tf.train.Checkpoint files, named by image count; the newest intact
                      one is resumed, so a stop (Ctrl-C, SIGTERM, kill -9) and the same
                      command continue the run
    summaries/        TensorBoard: losses, gradient penalty, AC accuracy, mel-IF images, audio
    pitches.json      pitch vocabulary and counts used for the one-hot labels

Ctrl-C (SIGINT), SIGTERM and SIGUSR1 (the Slurm script's warning) finish the step in
flight, save a checkpoint and exit 0; the same signal again exits at once. This module
only parses arguments and handles signals: the training itself (training/trainer.py and
TensorFlow) is imported once the arguments are known, so `--help` answers at once.
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from gansynth_live import training_run
from gansynth_live.config import PRESETS
from gansynth_live.quiet_tensorflow import import_tensorflow
from training.hparams import PRESET_PURPOSES

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


class StopRequests:
    """The first stop signal asks for a stop with a checkpoint; a second one exits at once.

    Python runs signal handlers in the main thread only between bytecodes, so not while
    a training step or a save runs in TensorFlow's C++ code (seconds, on a CPU). The
    signals are therefore read from a wakeup pipe by a thread of their own, which
    answers at once, whatever the main thread is doing.
    """

    def __init__(self) -> None:
        self.received: str | None = None

    def install(self) -> None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:  # a Python handler, so the signal reaches the pipe
            signal.signal(signum, lambda signum, frame: None)
        threading.Thread(target=self._watch, args=(read_fd,), name="stop-signals",
                         daemon=True).start()

    def __call__(self) -> str | None:
        """The name of the signal received (e.g. "SIGINT"), or None."""
        return self.received

    def _watch(self, read_fd: int) -> None:
        while True:
            for signum in os.read(read_fd, 64):
                if signum in STOP_SIGNALS:
                    self._handle(signum)

    def _handle(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:
            print(f"gansynth-train: {name} again: exiting now, without a checkpoint; the "
                  f"same command resumes from the last one", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self.received = name
        print(f"gansynth-train: {name}: stopping after this step with a checkpoint "
              f"({'Ctrl-C' if signum == signal.SIGINT else name} again exits at once, "
              f"without one)", file=sys.stderr, flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    presets = "\n".join(f"  {name:32s}{PRESET_PURPOSES[name]}" for name in PRESETS)
    parser = argparse.ArgumentParser(
        prog="gansynth-train", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"presets (--config):\n{presets}\n\nThe hparams are listed in training/README.md.")
    parser.add_argument("--config", default="mel_prog_hires", choices=list(PRESETS),
                        metavar="PRESET", help="architecture preset, listed below "
                                               "(default: mel_prog_hires)")
    parser.add_argument("--hparams", default="{}", help="JSON object of hparams (Magenta names)")
    parser.add_argument("--strategy", default="auto",
                        choices=("auto", "default", "mirrored", "multiworker"),
                        help="auto (default): multiworker in a Slurm job of several tasks, "
                             "mirrored with several GPUs, else default (one device)")
    parser.add_argument("--max_seconds", type=float, default=None,
                        help="stop (with a checkpoint) after this many seconds; rerun to resume")
    parser.add_argument("--start_over", action="store_true",
                        help="train from 0 images even though the run has checkpoints "
                             "(they are moved to checkpoints/replaced-N, not deleted)")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own start-up and warning messages")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    stop = StopRequests()
    stop.install()
    # TensorFlow's C++ log (e.g. grappler's "remapper failed" on a graph it cannot fuse,
    # harmless) would bury the progress lines; errors still reach us as exceptions.
    tf = import_tensorflow(args.verbose)  # seconds to import

    from training import trainer
    from training.dataset import DatasetError
    from training.hparams import HparamsError, parse_hparams_json, resolve_hparams

    def log(message: str) -> None:
        print(message, flush=True)

    try:
        hparams, config = resolve_hparams(args.config, parse_hparams_json(args.hparams))
        if not os.path.exists(hparams["train_data_path"]):
            raise HparamsError(f"train_data_path {hparams['train_data_path']} does not exist")
        counts = trainer.pitch_counts(hparams)
        trainer.pitch_sampling_weights(hparams, counts)  # errors before the run dir is written
        trainer.prepare_run_dir(hparams, config, counts)
        if args.start_over:
            moved = training_run.start_over(
                Path(hparams["train_root_dir"]) / training_run.CHECKPOINT_DIR)
            if moved:
                log(f"--start_over: the run's checkpoints are moved to {moved}")
        tf.random.set_seed(hparams["seed"])
        run = trainer.Trainer(hparams, config, counts, trainer.make_strategy(args.strategy),
                              log=log, stop_requested=stop)
        images = run.train(max_seconds=args.max_seconds)
        run.writer.flush()  # the last summaries, before a stop's exit
    except (HparamsError, DatasetError, trainer.NoIntactCheckpoint, ValueError, OSError) as e:
        print(f"gansynth-train: error: {e}", file=sys.stderr)
        return 1
    if not run.schedule.done(images):
        log(f"resume with the same command: {shlex.join(['gansynth-train', *argv])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
