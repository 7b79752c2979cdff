"""Every command the docs show works as written, so a doc that drifts fails here.

Two checks:
- every command line in the docs' code blocks names a program that exists and only
  flags that its `--help` lists;
- the training guide's command blocks run as a shell script in a fresh folder, with the
  environment activated as the guide says. Only sizes are changed (listed in
  `TINY_SIZES`): the tiny preset instead of mel_prog_hires, and 32 ms notes instead of
  4 s ones, so the whole flow runs in a minute on two cores.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import mido
import pytest

from training_helpers import NOTE_SAMPLES, TINY_ARCHITECTURE, render_note_folder

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DOCS = ["README.md", "training/README.md", "training/slurm/README.md",
        "training/default_model/README.md", "docs/gansynth-generate.md",
        "docs/gansynth-live.md", "pd/README.md"]
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def code_blocks(text: str) -> list[list[str]]:
    """The lines of each fenced code block, backslash continuations joined."""
    blocks = []
    for body in re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S):
        blocks.append(body.replace("\\\n", " ").splitlines())
    return blocks


def command_words(line: str) -> list[str] | None:
    """The command of a documented line ([program or module, args...]), or None."""
    line = line.split(" #")[0].strip()
    if not line or line.startswith("#"):
        return None
    try:
        words = shlex.split(line)
    except ValueError:
        return None
    while words and (words[0] in ("nohup", "nice") or words[0].startswith("-n")
                     or re.fullmatch(r"-?\d+|\w+=\S*", words[0])):
        words = words[1:]
    if words and words[-1] == "&":
        words = words[:-1]
    words = [w for w in words if not w.startswith(">") and w not in ("2>&1",)]
    if not words:
        return None
    if words[0] in SCRIPTS:
        return [SCRIPTS[words[0]].split(":")[0], *words[1:]]
    if words[0] == "python" and len(words) > 1:
        if words[1] == "-m":
            return words[2:]
        if words[1].endswith(".py") and "..." not in words:
            return [f"training.{Path(words[1]).stem}", *words[2:]]
    return None


def documented_commands() -> list[tuple[str, list[str]]]:
    found = []
    for doc in DOCS:
        for block in code_blocks((REPO / doc).read_text()):
            for line in block:
                words = command_words(line)
                if words:
                    found.append((doc, words))
    return found


@cache
def help_text(module: str) -> str:
    proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"python -m {module} --help failed:\n{proc.stderr}"
    return proc.stdout


def test_the_docs_show_commands():
    modules = {words[0] for _, words in documented_commands()}
    assert {"training.make_dataset", "training.train", "training.postprocess_model",
            "gansynth_live.render"} <= modules, modules


@pytest.mark.parametrize("doc, words", documented_commands(),
                         ids=lambda v: v if isinstance(v, str) else " ".join(v)[:60])
def test_a_documented_command_uses_real_flags(doc, words):
    module, *args = words
    listed = set(re.findall(r"--[\w-]+", help_text(module)))
    used = {re.match(r"--[\w-]+", a.strip("[")).group() for a in args if a.strip("[").startswith("--")}
    assert used <= listed, f"{doc}: {' '.join(words)}: {sorted(used - listed)} not in --help"


# The training guide, run as written ----------------------------------------------------------

TINY_SIZES = {
    # what the guide says -> what this test runs (sizes only)
    "--config mel_prog_hires": "--config tiny",
    "--in_dir mysamples --out_dir mydataset": f"--in_dir mysamples --out_dir mydataset "
                                                f"--length {NOTE_SAMPLES}",
    "--in_dir ../mysamples --out_dir ../mydataset": f"--in_dir ../mysamples --out_dir "
                                                      f"../mydataset --length {NOTE_SAMPLES}",
}
TINY_HPARAMS = {**TINY_ARCHITECTURE, "stable_stage_num_images": 16,
                "transition_stage_num_images": 16, "total_num_images": 48,
                "batch_size_schedule": [8]}


def tiny(line: str) -> str:
    for guide, test in TINY_SIZES.items():
        line = line.replace(guide, test)
    match = re.search(r"--hparams '(\{.*?\})'", line)
    if match:
        hparams = {**json.loads(match.group(1)), **TINY_HPARAMS}
        line = line.replace(match.group(0), f"--hparams '{json.dumps(hparams)}'")
    return line


def guide_blocks() -> list[list[str]]:
    """training/README.md's blocks from the three commands up to the run directory."""
    text = (REPO / "training/README.md").read_text()
    section = text[text.index("## Training your own model"):text.index("## Hyperparameters")]
    return code_blocks(section)


@pytest.fixture
def newcomer(tmp_path) -> Path:
    """A folder as the guide assumes it: the project's training/ scripts, .venv, mysamples/."""
    shutil.copytree(REPO / "training", tmp_path / "training",
                    ignore=shutil.ignore_patterns("default_model", "__pycache__"))
    (tmp_path / ".venv").symlink_to(VENV_BIN.parent)
    render_note_folder(tmp_path / "mysamples")
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(mido.MidiTrack([mido.Message("note_on", note=62, velocity=100, time=0),
                                       mido.Message("note_off", note=62, time=240)]))
    midi.save(tmp_path / "song.mid")
    return tmp_path


def run_block(folder: Path, lines: list[str]) -> subprocess.CompletedProcess:
    script = "set -e\n" + "\n".join(tiny(line) for line in lines)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = "/usr/bin:/bin"  # nothing of the project until the guide activates it
    return subprocess.run(["bash", "-c", script], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=900)


def test_the_training_guide_runs_as_written(newcomer):
    three_commands, aalto, stereo = guide_blocks()
    assert three_commands[0].startswith(". .venv/bin/activate")
    activate = three_commands[:1]

    done = run_block(newcomer, three_commands)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "training complete: 48 images" in done.stdout
    assert "done: the directory is a model for gansynth-live" in done.stdout
    assert (newcomer / "mymodel" / "config.json").exists()

    shutil.rmtree(newcomer / "mydataset")  # the Aalto form from inside training/
    shutil.copytree(newcomer / "mymodel", newcomer / "mymodel_first")
    aalto_done = run_block(newcomer, activate + aalto)
    assert aalto_done.returncode == 0, aalto_done.stdout[-3000:] + aalto_done.stderr[-3000:]
    assert (newcomer / "mydataset" / "meta.json").exists()

    shutil.rmtree(newcomer / "mymodel")  # GANSynth-Stereo's: WAVs -> run dir -> played
    stereo_done = run_block(newcomer, activate + stereo)
    assert stereo_done.returncode == 0, stereo_done.stdout[-3000:] + stereo_done.stderr[-3000:]
    assert list((newcomer / "out").glob("*.wav")), stereo_done.stdout
    assert (newcomer / "mymodel" / "config.json").exists()
