"""training/slurm/train.sbatch: valid bash, and its requeue logic with stand-in Slurm commands."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "training" / "slurm" / "train.sbatch"
BASH = shutil.which("bash")

pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")


def test_bash_syntax_and_directives():
    subprocess.run([BASH, "-n", os.fspath(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    assert re.search(r"^\s*srun .*gansynth-train ", text, re.M)
    assert "--strategy" in text and "--max_seconds" in text
    directives = re.findall(r"^#SBATCH (--[\w-]+)", text, re.M)
    for option in ("--time", "--gpus", "--cpus-per-task", "--mem", "--requeue", "--signal",
                   "--open-mode"):
        assert option in directives
    # sbatch reads directives only before the first command.
    first_command = next(i for i, line in enumerate(text.splitlines())
                         if line.strip() and not line.startswith("#"))
    last_directive = max(i for i, line in enumerate(text.splitlines())
                         if line.startswith("#SBATCH"))
    assert last_directive < first_command


def fake_slurm(tmp_path: Path, left: str, outcome: str) -> dict[str, str]:
    """PATH with stand-ins: squeue prints `left`, srun runs its command, scontrol and
    gansynth-train record their arguments; gansynth-train ends as `outcome` says."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {
        "squeue": f'echo "{left}"',
        "srun": 'while [[ $1 == -* ]]; do shift; done; exec "$@"',
        "scontrol": f'echo "$@" >> {tmp_path}/scontrol.calls',
        # The trap comes first: the test signals as soon as train.args exists.
        "gansynth-train": f"""trap 'echo "stopped by SIGUSR1 at 8 images; checkpoint saved"; exit 0' USR1
printf '%s\\n' "$@" > {tmp_path}/train.args
case {outcome} in
  complete) echo "training complete: 11000000 images";;
  time) echo "time limit reached at 4000 images; checkpoint saved";;
  fail) echo "gansynth-train: error: hparam seed = 'x': expected int" >&2; exit 1;;
  slow) echo "stage 0 images 8"; sleep 10 & wait;;
esac""",
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/bin/bash\n" + body + "\n")
        path.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "4242",
            "DATA": "/scratch/me/data", "RUN_DIR": "/scratch/me/run", "TMPDIR": os.fspath(tmp_path),
            "HOME": os.fspath(tmp_path)}


def run_script(tmp_path, left="1-00:00:00", outcome="complete", **env):
    full = {**fake_slurm(tmp_path, left, outcome), **env}
    proc = subprocess.run([BASH, os.fspath(SCRIPT)], env=full, capture_output=True, text=True,
                          timeout=60)
    args_file = tmp_path / "train.args"
    args = args_file.read_text().splitlines() if args_file.exists() else []
    calls = tmp_path / "scontrol.calls"
    return proc, args, calls.read_text() if calls.exists() else ""


def test_a_complete_run_is_not_requeued(tmp_path):
    proc, args, scontrol = run_script(tmp_path, EXTRA_HPARAMS='"batch_size_schedule": [16]',
                                      META="/scratch/me/data/meta.json")
    assert proc.returncode == 0, proc.stderr
    assert args[:4] == ["--config", "mel_prog_hires", "--strategy", "auto"]
    hparams = json.loads(args[args.index("--hparams") + 1])
    assert hparams == {"train_data_path": "/scratch/me/data", "train_root_dir": "/scratch/me/run",
                       "train_meta_path": "/scratch/me/data/meta.json",
                       "batch_size_schedule": [16]}
    assert args[args.index("--max_seconds") + 1] == str(86400 - 900)  # 1 day minus MARGIN
    assert scontrol == ""
    assert "training complete" in proc.stdout
    assert not list(tmp_path.glob("gansynth-train-4242.*"))  # the attempt's log is removed


def test_a_stopped_run_requeues_itself(tmp_path):
    proc, args, scontrol = run_script(tmp_path, left="3:59:30", outcome="time", MARGIN="600")
    assert proc.returncode == 0, proc.stderr
    assert args[args.index("--max_seconds") + 1] == str(3 * 3600 + 59 * 60 + 30 - 600)
    assert scontrol == "requeue 4242\n"


def test_requeues_stop_at_max_requeues(tmp_path):
    proc, _, scontrol = run_script(tmp_path, outcome="time", SLURM_RESTART_COUNT="3",
                                   MAX_REQUEUES="3")
    assert proc.returncode == 1 and scontrol == ""
    assert "not requeueing" in proc.stderr


def test_a_failed_run_is_not_requeued(tmp_path):
    proc, _, scontrol = run_script(tmp_path, outcome="fail")
    assert proc.returncode == 1 and scontrol == ""
    assert "expected int" in proc.stdout + proc.stderr


def test_usr1_before_the_time_limit_stops_training_with_a_checkpoint_then_requeues(tmp_path):
    env = {**fake_slurm(tmp_path, "UNLIMITED", "slow")}
    proc = subprocess.Popen([BASH, os.fspath(SCRIPT)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not (tmp_path / "train.args").exists():  # training has started
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR1)  # what --signal=B:USR1@300 sends
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "USR1" in err
    assert "stopped by SIGUSR1" in out  # passed on to gansynth-train, which saved and stopped
    assert (tmp_path / "scontrol.calls").read_text() == "requeue 4242\n"


@pytest.mark.parametrize("left", ["UNLIMITED", "NOT_SET", "", "10:00"])
def test_no_max_seconds_without_a_usable_time_limit(tmp_path, left):
    # Unlimited, unknown, or less than MARGIN + 60 s left: the USR1 trap is the safety net.
    proc, args, _ = run_script(tmp_path, left=left)
    assert proc.returncode == 0, proc.stderr
    assert "--max_seconds" not in args


def test_missing_settings_are_named(tmp_path):
    env = fake_slurm(tmp_path, "1:00:00", "complete")
    del env["DATA"]
    proc = subprocess.run([BASH, os.fspath(SCRIPT)], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "DATA" in proc.stderr
