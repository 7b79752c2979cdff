"""Damaged input files give one error line naming the file, in bounded memory.

Each damaged input a tester sent is rebuilt here as a real file (MIDI written with mido,
a model directory written by save_model, a TF1 checkpoint written by Saver, then
damaged) and given to the real command in a subprocess whose data memory is limited
with RLIMIT_DATA: a file that makes the program allocate gigabytes fails the test
instead of the machine. The control test shows the limit leaves room for a normal render.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import textwrap

import mido
import numpy as np
import pytest

import gansynth_live as gl
from gansynth_live import render
from gansynth_live.config import MAX_GENERATOR_PARAMETERS, PRESETS, ModelConfig
from test_magenta_checkpoint import (FLAGS, NUM_PITCHES, generator_tensors,  # noqa: E402
                                     write_tf1_checkpoint)

# A tiny-model render needs about 0.8 GB of data memory (TensorFlow included, measured
# with RLIMIT_DATA on 2 cores); the damaged files asked for 5 GB to 2 TiB.
MEMORY_LIMIT = 3 * 2**30
# TensorFlow sizes its thread pools by the cores and every thread's stack counts as data
# memory: fix the pools so the limit means the same on a 2-core and a 128-core machine.
ENV = {**os.environ, "TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "2",
       "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
DATA_FILE = "stage_00006/model.ckpt-10.data-00000-of-00001"


def run_limited(argv: list, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
    """Run `argv` (python is sys.executable) under MEMORY_LIMIT; a hang is a failure."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_LIMIT, MEMORY_LIMIT))

    return subprocess.run([sys.executable] + [str(a) for a in argv], capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limit, env={**ENV, **env})


def generate(*args, **env: str) -> subprocess.CompletedProcess:
    return run_limited(["-m", "gansynth_live.render", "--quiet", *args], **env)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single stderr line of a failed gansynth-generate, checked to be just that."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1 and lines[0].startswith("gansynth-generate: error: "), result.stderr
    return lines[0]


def write_midi(path, tempo: int, ticks_per_beat: int, note_ticks: list[int]):
    """Type 0: one set_tempo, then one short note at each absolute tick."""
    midi = mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat)
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    now = 0
    for tick in note_ticks:
        track.append(mido.Message("note_on", note=60, velocity=100, time=tick - now))
        track.append(mido.Message("note_off", note=60, time=1))
        now = tick + 1
    midi.tracks.append(track)
    midi.save(path)
    return path


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    """A tiny project model directory and a small Magenta training directory."""
    root = tmp_path_factory.mktemp("bad_inputs")
    gl.save_model(gl.Model(gl.preset("tiny"), range(36, 85), name="tiny"), root / "tiny")
    magenta = root / "magenta"
    (magenta / "stage_00006").mkdir(parents=True)
    ema = generator_tensors(np.random.default_rng(0), NUM_PITCHES)
    write_tf1_checkpoint(os.fspath(magenta / "stage_00006" / "model.ckpt"),
                         {**ema, **{f"{k}/ExponentialMovingAverage": v for k, v in ema.items()}},
                         10)
    (magenta / "experiment.json").write_text(json.dumps(FLAGS))
    return {"root": root, "tiny": root / "tiny", "magenta": magenta}


def damaged(dirs, base: str, name: str):
    """A copy of dirs[base] to damage."""
    copy = dirs["root"] / name
    shutil.copytree(dirs[base], copy)
    return copy


def set_architecture(model_dir, **fields):
    path = model_dir / "config.json"
    config = json.loads(path.read_text())
    config["architecture"].update(fields)
    path.write_text(json.dumps(config))


# gansynth-generate --------------------------------------------------------------------

def test_help_answers_without_importing_tensorflow():
    script = textwrap.dedent("""
        import sys
        from gansynth_live.render import main
        assert main(["--help"]) == 0
        print("tensorflow imported" if "tensorflow" in sys.modules else "no tensorflow")
    """)
    result = run_limited(["-c", script], timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--verbose" in result.stdout and result.stdout.strip().endswith("no tensorflow")


def test_a_normal_render_fits_the_memory_limit_and_says_nothing(dirs, tmp_path):
    """The control: the limit the other tests use leaves room for a real render. Its
    stderr is empty even where TensorFlow's C++ log is switched on (on a CPU it says
    which instructions it was built for; with CUDA, which plugins it registered):
    gansynth-generate shows that log only with --verbose."""
    midi = write_midi(tmp_path / "ok.mid", mido.bpm2tempo(120), 480, [0, 480, 960])
    result = generate("--ckpt_dir", dirs["tiny"], "--midi_file", midi,
                      "--output_dir", tmp_path / "out", "--seed", 1, TF_CPP_MIN_LOG_LEVEL="0")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert sorted(os.listdir(tmp_path / "out")) == ["generated_clip.wav", "latents.npz"]


def test_a_piece_of_a_year_is_refused_before_anything_is_allocated(dirs, tmp_path):
    # The tester's file: tempo 16777215 us per beat, 1 tick per beat, a note at tick
    # 2,000,000 = 388 days. It used to take 5.1 GB and end in "Unable to allocate 1.95 TiB".
    midi = write_midi(tmp_path / "year.mid", 16777215, 1, [0, 2_000_000])
    result = generate("--ckpt_dir", dirs["tiny"], "--midi_file", midi,
                      "--output_dir", tmp_path / "out")
    line = one_error_line(result)
    assert str(midi) in line and "(388 days)" in line and "at most 3,600 s (1 h)" in line
    assert not (tmp_path / "out").exists()


def test_tempo_0_is_refused(dirs, tmp_path):
    midi = write_midi(tmp_path / "tempo0.mid", 0, 480, [0, 480])
    result = generate("--ckpt_dir", dirs["tiny"], "--midi_file", midi,
                      "--output_dir", tmp_path / "out")
    line = one_error_line(result)
    assert str(midi) in line and "tempo 0" in line


def test_too_many_instruments_are_refused_before_the_model_loads(dirs, tmp_path):
    midi = write_midi(tmp_path / "hour.mid", mido.bpm2tempo(60), 480, [0, 3500 * 480])
    result = generate("--ckpt_dir", dirs["tiny"], "--midi_file", midi,
                      "--output_dir", tmp_path / "out", "--secs_per_instrument", "0.001")
    line = one_error_line(result)
    assert "--secs_per_instrument 0.001" in line and "at most 100,000" in line


def test_a_truncated_magenta_checkpoint_is_one_line_naming_the_file(dirs, tmp_path):
    model = damaged(dirs, "magenta", "truncated_magenta")
    os.truncate(model / DATA_FILE, 50_000)  # of 101,232 bytes
    midi = write_midi(tmp_path / "ok.mid", mido.bpm2tempo(120), 480, [0])
    line = one_error_line(generate("--ckpt_dir", model, "--midi_file", midi,
                                   "--output_dir", tmp_path / "out"))
    assert f"cannot load model {model}: {DATA_FILE} holds 50,000 bytes" in line


# gl.load_model ------------------------------------------------------------------------

LOAD_EACH = textwrap.dedent("""
    import sys
    import gansynth_live as gl
    for path in sys.argv[1:]:
        try:
            gl.load_model(path)
            print("loaded", path)
        except gl.ModelLoadError as e:
            print(str(e).replace("\\n", " NEWLINE "))
""")


def test_damaged_model_dirs_are_one_model_load_error_each(dirs):
    """Each as gl.load_model sees it; one subprocess, so TensorFlow starts only once."""
    expected = {}
    model = damaged(dirs, "tiny", "fmap_max_65536")  # the tester's config.json
    set_architecture(model, fmap_max=65536)
    expected[model] = "the generator would have 77,863,822 parameters"
    model = damaged(dirs, "tiny", "fmap_154_gb")  # would be 1.2 TB of weights
    set_architecture(model, fmap_max=65536, fmap_base=2**20)
    expected[model] = f"at most {MAX_GENERATOR_PARAMETERS:,}"
    model = damaged(dirs, "magenta", "magenta_truncated")
    os.truncate(model / DATA_FILE, 100_000)
    expected[model] = f"{DATA_FILE} holds 100,000 bytes but its index lists 101,232"
    model = damaged(dirs, "magenta", "magenta_fifo_index")  # reading it would block
    (model / "stage_00006" / "model.ckpt-10.index").unlink()
    os.mkfifo(model / "stage_00006" / "model.ckpt-10.index")
    expected[model] = "stage_00006/model.ckpt-10.index is not a regular file"
    model = damaged(dirs, "magenta", "magenta_pitch_range")  # list(range(24, 10**9))
    (model / "experiment.json").write_text(json.dumps({**FLAGS, "train_max_pitch": 10**9}))
    expected[model] = "train_min_pitch..train_max_pitch = 24..1000000000"
    model = damaged(dirs, "magenta", "magenta_resolutions")  # 2 ** (10**9 - 1)
    (model / "experiment.json").write_text(json.dumps({**FLAGS, "num_resolutions": 10**9}))
    expected[model] = "num_resolutions = 1000000000 is not in 1..16"
    model = damaged(dirs, "magenta", "magenta_flag_type")
    (model / "experiment.json").write_text(json.dumps({**FLAGS, "audio_length": "four s"}))
    expected[model] = "experiment.json: invalid literal for int()"

    result = run_limited(["-c", LOAD_EACH, *expected], timeout=300)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(expected), result.stdout
    for line, (model, message) in zip(lines, expected.items()):
        assert line.startswith(f"cannot load model {model}: ") and message in line, line


# The limits themselves ----------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PRESETS))
def test_parameter_count_from_the_config_is_the_generators(name):
    """The bound is computed before building: it must count what Generator builds."""
    from gansynth_live.networks import Generator
    from gansynth_live.pitch_map import profiles_for

    configs = [PRESETS[name]]
    if PRESETS[name].attention_block is not None:
        configs.append(PRESETS[name].replace(self_attention=True, channels=2))
    for config in configs:
        pitches = list(range(30, 91))
        generator = Generator(config, len(pitches), pitch_profiles=profiles_for(config, pitches))
        built = sum(int(np.prod(v.shape)) for v in generator.named_variables().values())
        assert config.generator_parameters(len(pitches)) == built


@pytest.mark.parametrize("fields, message", [
    ({"fmap_max": 65536}, "the generator would have 77,863,822 parameters"),
    ({"fmap_base": 2**14, "fmap_decay": 0.0, "fmap_max": 2**14}, "parameters"),
    ({"fmap_base": 600, "fmap_decay": 0.0, "fmap_max": 600},
     "largest feature map would hold 19,660,800"),
    ({"kernel_size": 10**9}, "parameters"),
    ({"latent_size": 10**6}, "latent_size = 1000000: must be at most 4096"),
    ({"num_resolutions": 10**9}, "num_resolutions = 1000000000: must be at most 16"),
    ({"fmap_decay": float("nan")}, "fmap_decay = nan: must be a number in -8..8"),
    ({"fmap_decay": -2000.0}, "fmap_decay = -2000.0"),  # 2 ** 14000 would overflow
    ({"spec_shape": [float("inf"), 256]}, "spec_shape = [inf, 256]: must be two positive"),
    ({"spec_shape": [2**20, 2**20], "start_shape": [2**14, 2**14]}, "at most 4096 frequency"),
    ({"sample_rate": 10**9}, "sample_rate = 1000000000: must be at most 96000"),
])
def test_config_bounds_are_one_value_error_before_building(fields, message):
    data = {**PRESETS["tiny"].to_dict(), **fields}
    with pytest.raises(ValueError, match="^model config") as error:
        ModelConfig.from_dict(data)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_every_preset_is_within_the_bounds():
    for config in PRESETS.values():
        assert ModelConfig.from_dict(config.to_dict()) == config


def test_a_latents_file_claiming_huge_arrays_is_refused_from_its_header(tmp_path):
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (2**20, 2**20)})
    path = tmp_path / "latents.npz"
    with zipfile.ZipFile(path, "w") as archive:  # 4 TiB claimed, a few bytes stored
        archive.writestr("anchors.npy", header.getvalue() + b"\0" * 16)
    with pytest.raises(render.RenderError, match=r"holds 4,194,304 MiB of arrays; at most 256"):
        render.load_latents(path, 16, "midi")
