"""gansynth-generate with GANSpace timbre: --ganspace, the --ganspace_at path, --ganspace_only,
their record in latents.npz and the errors. A tiny model with directions computed here."""
import numpy as np
import pytest
import soundfile as sf

import gansynth_live as gl
from gansynth_live import ganspace
from gansynth_live.timbre_path import TimbrePath
from render_helpers import TPB, off, on, rms, run, song, write_midi  # noqa: F401

# Few latents keep the directions quick to compute; they only need to be directions.
SMALL = dict(samples=1024, components=4, batch=256, seed=1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny model saved twice: without directions ("plain") and with 4 ("directions")."""
    root = tmp_path_factory.mktemp("models")
    model = gl.Model(gl.preset("tiny"), range(36, 85), name="tiny")
    gl.save_model(model, root / "plain")
    model.set_ganspace(ganspace.compute(model, **SMALL))
    gl.save_model(model, root / "directions")
    return {"plain": root / "plain", "directions": root / "directions"}


@pytest.fixture
def steps(tmp_path):
    """Six notes starting at 0, 1, ..., 5 s (120 bpm: 1 s = 960 ticks), 0.25 s each."""
    notes = []
    for i, pitch in enumerate([48, 50, 52, 53, 55, 57]):
        notes += [(0 if i == 0 else 720, on(pitch)), (TPB // 2, off(pitch))]
    return write_midi(tmp_path / "steps.mid", [notes])


def render(models, out, *flags, capsys, midi=None, model="directions"):
    """Run the command; (stdout, audio of the clip or None, the latents file's arrays)."""
    argv = ["--ckpt_dir", models[model], "--output_dir", out, "--seed", 3, *flags]
    if midi is not None:
        argv += ["--midi_file", midi, "--secs_per_instrument", 2]
    rc, stdout, err = run(argv, capsys)
    assert rc == 0, err
    with np.load(out / "latents.npz") as npz:
        latents = {k: npz[k] for k in npz.files}
    clip = out / "generated_clip.wav"
    return stdout, (sf.read(clip)[0] if clip.exists() else None), latents


# Flags ----------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, message", [
    (["--ganspace", "1,3.5"], "argument --ganspace: ganspace coefficient 2 must be in -3..3, "
                              "got 3.5"),
    (["--ganspace", "nan"], "argument --ganspace: ganspace coefficient 1 must be finite, got nan"),
    (["--ganspace", "1,,2"], "argument --ganspace: ganspace coefficient 2 must be a number, "
                             "got ''"),
    (["--ganspace="], "argument --ganspace: give 1 or more ganspace coefficients, got none"),
    (["--ganspace", "-1,9"], "argument --ganspace: ganspace coefficient 2 must be in -3..3, "
                             "got 9"),  # "-1,9" is a value, not an option
    (["--ganspace_at", "2"], "argument --ganspace_at/--ganspace-at: must be TIME:c1,c2,..."),
    (["--ganspace_at", "-1:2"], "the time must be in 0..3600 seconds, got -1"),
    (["--ganspace_at", "1:2", "--ganspace_at", "1.0:-2"], "--ganspace_at: two points at 1 s"),
    (["--ganspace_at", "1:2", "--ganspace", "1"], "not allowed with argument --ganspace"),
    (["--ganspace_only"], "--ganspace_only needs --ganspace, --ganspace_at or a --latents"),
    (["--ganspace_at", "0:2", "--ganspace_at", "0:-2"],
     "two points at 0 s; for a sudden change put two points close together "
     "(e.g. at 0 and 0.01)"),
])
def test_bad_flags_are_one_line_naming_the_flag(song, tmp_path, capsys, flags, message):
    rc, out, err = run(["--output_dir", tmp_path / "out", "--midi_file", song, *flags], capsys)
    assert rc == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_a_path_needs_note_times(tmp_path, capsys):
    rc, _, err = run(["--output_dir", tmp_path / "out", "--ganspace_at", "0:1"], capsys)
    assert rc == 2 and "--ganspace_at needs --midi_file" in err


@pytest.mark.parametrize("model, flags, message", [
    ("directions", ["--ganspace", "1,0,0,0,1"], "--ganspace: give 1..4 ganspace coefficients, "
                                                "got 5 (model tiny has 4 GANSpace directions)"),
    ("directions", ["--ganspace_at", "0:1", "--ganspace_at", "2:0,0,0,0,1"],
     "--ganspace_at at 2 s: give 1..4 ganspace coefficients, got 5"),
    ("directions", ["--ganspace_at", "0:1,0,0,0,0", "--ganspace_at", "2:0,0,0,0,1"],
     "--ganspace_at at 2 s: give 1..4"),  # the point at 0 s only has trailing zeros
    ("plain", ["--ganspace", "1"], "--ganspace: model tiny has no GANSpace directions; "
                                   "compute them with gansynth-ganspace --model {plain}"),
])
def test_the_model_must_have_the_directions(models, song, tmp_path, capsys, model, flags,
                                            message):
    rc, _, err = run(["--ckpt_dir", models[model], "--output_dir", tmp_path / "out",
                      "--midi_file", song, *flags], capsys)
    message = message.format(plain=models["plain"])
    assert rc == 1 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


# Rendering ------------------------------------------------------------------------------

def test_coefficients_edit_every_note_and_zeros_change_nothing(models, song, tmp_path, capsys):
    _, plain, plain_latents = render(models, tmp_path / "plain", capsys=capsys, midi=song)
    assert "ganspace_times" not in plain_latents

    out, zero, _ = render(models, tmp_path / "zero", "--ganspace", "0,0", capsys=capsys,
                          midi=song)
    assert (tmp_path / "zero" / "generated_clip.wav").read_bytes() == \
        (tmp_path / "plain" / "generated_clip.wav").read_bytes()
    assert "timbre: GANSpace coefficients 0,0 editing each note's latent" in out

    _, edited, latents = render(models, tmp_path / "a", "--ganspace", "2,-1.5", capsys=capsys,
                                midi=song)
    assert edited.shape == plain.shape
    assert rms(edited - plain) > 0.05 * rms(plain)
    np.testing.assert_array_equal(latents["note_ganspace"], [[2, -1.5], [2, -1.5]])
    np.testing.assert_array_equal(latents["note_z"], plain_latents["note_z"])  # same instruments
    assert not latents["ganspace_only"]

    render(models, tmp_path / "b", "--ganspace", "2,-1.5", capsys=capsys, midi=song)
    for name in ("generated_clip.wav", "latents.npz"):  # repeatable, byte for byte
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()


def test_pure_coefficient_points_ignore_the_instruments(models, song, tmp_path, capsys):
    out, pure, latents = render(models, tmp_path / "a", "--ganspace", "1", "--ganspace_only",
                                capsys=capsys, midi=song)
    assert "as pure coefficient points" in out and latents["ganspace_only"]
    _, edited, _ = render(models, tmp_path / "b", "--ganspace", "1", capsys=capsys, midi=song)
    assert rms(pure - edited) > 0.05 * rms(edited)
    render(models, tmp_path / "c", "--ganspace", "1", "--ganspace_only", "--seed", 4,
           capsys=capsys, midi=song)  # other instruments, the same notes
    assert (tmp_path / "c" / "generated_clip.wav").read_bytes() == \
        (tmp_path / "a" / "generated_clip.wav").read_bytes()


def test_a_path_is_interpolated_at_each_note_start(models, steps, tmp_path, capsys):
    # Given out of order and with fewer coefficients at 1 s (the rest are 0).
    out, _, latents = render(models, tmp_path / "a", "--ganspace_at", "3:2,0",
                             "--ganspace_at", "1:0.5", "--ganspace_at", "4.5:-1,1",
                             capsys=capsys, midi=steps)
    assert "timbre: a GANSpace path through 3 points (1 s to 4.5 s) editing" in out
    np.testing.assert_array_equal(latents["ganspace_times"], [1, 3, 4.5])
    np.testing.assert_array_equal(latents["ganspace_points"], [[0.5, 0], [2, 0], [-1, 1]])
    np.testing.assert_allclose(latents["note_start"], [0, 1, 2, 3, 4, 5])
    np.testing.assert_allclose(latents["note_ganspace"], [
        [0.5, 0],                # before the first point: the first point
        [0.5, 0],                # at it
        [1.25, 0],               # halfway from 1 s to 3 s
        [2, 0],
        [2 + 2 / 3 * (-1 - 2), 2 / 3 * 1],  # two thirds of the way from 3 s to 4.5 s
        [-1, 1],                 # after the last point: the last point
    ], atol=1e-6)
    assert latents["note_ganspace"].dtype == np.float32


def test_timbre_path_directly():
    path = TimbrePath.from_points([(2.0, [1.0]), (0.0, [0.0, -2.0])])
    np.testing.assert_array_equal(path.points, [[0, -2], [1, 0]])
    np.testing.assert_allclose(path.at([-1, 0, 0.5, 2, 9]),
                               [[0, -2], [0, -2], [0.25, -1.5], [1, 0], [1, 0]])
    np.testing.assert_array_equal(TimbrePath.from_points([(5.0, [1.5])]).at([0, 9]),
                                  [[1.5], [1.5]])


def test_the_latents_file_renders_the_path_again(models, steps, tmp_path, capsys):
    flags = ["--ganspace_at", "0:-1,1", "--ganspace_at", "5:2", "--batch_size", 4]
    _, _, first = render(models, tmp_path / "a", *flags, capsys=capsys, midi=steps)
    saved = tmp_path / "a" / "latents.npz"
    out, _, again = render(models, tmp_path / "b", "--latents", saved, "--batch_size", 4,
                           capsys=capsys, midi=steps)
    assert "a GANSpace path through 2 points" in out
    assert (tmp_path / "b" / "generated_clip.wav").read_bytes() == \
        (tmp_path / "a" / "generated_clip.wav").read_bytes()
    for key in first:
        np.testing.assert_array_equal(again[key], first[key])

    # A flag replaces the file's path: --ganspace 0 is the instruments unedited.
    render(models, tmp_path / "c", "--batch_size", 4, capsys=capsys, midi=steps)
    _, _, zero = render(models, tmp_path / "d", "--latents", saved, "--batch_size", 4,
                        "--ganspace", "0", capsys=capsys, midi=steps)
    assert (tmp_path / "d" / "generated_clip.wav").read_bytes() == \
        (tmp_path / "c" / "generated_clip.wav").read_bytes()
    np.testing.assert_array_equal(zero["ganspace_times"], [0])


def test_random_notes_take_the_coefficients_and_render_again(models, tmp_path, capsys):
    flags = ["--num_notes", 3, "--ganspace", "-2,1", "--ganspace_only"]
    out, _, latents = render(models, tmp_path / "a", *flags, capsys=capsys)
    assert "timbre: GANSpace coefficients -2,1 as pure coefficient points" in out
    np.testing.assert_array_equal(latents["note_ganspace"], [[-2, 1]] * 3)
    render(models, tmp_path / "plain", "--num_notes", 3, capsys=capsys)
    render(models, tmp_path / "b", "--latents", tmp_path / "a" / "latents.npz", capsys=capsys)
    for i in range(3):
        wav = (tmp_path / "a" / f"generated_{i}.wav").read_bytes()
        assert (tmp_path / "b" / f"generated_{i}.wav").read_bytes() == wav
        assert (tmp_path / "plain" / f"generated_{i}.wav").read_bytes() != wav


def test_a_damaged_path_in_a_latents_file_is_one_line(models, song, tmp_path, capsys):
    render(models, tmp_path / "a", "--ganspace", "1", capsys=capsys, midi=song)
    with np.load(tmp_path / "a" / "latents.npz") as npz:
        data = {k: npz[k] for k in npz.files}
    np.savez(tmp_path / "bad.npz", **{**data, "ganspace_points": np.array([[np.nan]])})
    del data["ganspace_only"]
    np.savez(tmp_path / "partial.npz", **data)
    for name, message in (("bad.npz", "GANSpace path: times and coefficient points must be "
                                      "finite"),
                          ("partial.npz", "lacks ganspace_only")):
        rc, _, err = run(["--ckpt_dir", models["directions"], "--output_dir", tmp_path / "out",
                          "--midi_file", song, "--latents", tmp_path / name], capsys)
        assert rc == 1 and f"latents file {tmp_path / name}" in err and message in err, err
        assert len(err.splitlines()) == 1


def test_notes_at_zero_on_a_path_are_the_instruments_themselves(models, steps, tmp_path,
                                                                capsys):
    """A path at 0 for its first notes and editing the later ones of the same batch: the
    notes at 0 are byte for byte the plain render's (one plain and one edited call)."""
    _, plain, _ = render(models, tmp_path / "plain", capsys=capsys, midi=steps)
    _, mixed, latents = render(models, tmp_path / "mixed", "--ganspace_at", "0:0",
                               "--ganspace_at", "2:-0", "--ganspace_at", "2.5:2",
                               capsys=capsys, midi=steps)
    assert not latents["note_ganspace"][:3].any() and latents["note_ganspace"][3:].all()
    assert str(latents["ganspace_points"][1, 0]) == "0.0"  # "-0" is read as 0
    second = sf.info(tmp_path / "plain" / "generated_clip.wav").samplerate
    early = slice(0, int(2.9 * second))  # notes 0..2 (0.25 s each, releases included)
    np.testing.assert_array_equal(mixed[early], plain[early])
    assert rms(mixed[3 * second:] - plain[3 * second:]) > 0.05 * rms(plain[3 * second:])


def test_pure_points_from_a_latents_files_path(models, steps, tmp_path, capsys):
    _, first, _ = render(models, tmp_path / "a", "--ganspace", "1.5", "--ganspace_only",
                         capsys=capsys, midi=steps)
    _, _, edited = render(models, tmp_path / "b", "--ganspace", "1.5", capsys=capsys,
                          midi=steps)
    out, _, again = render(models, tmp_path / "c", "--latents", tmp_path / "b" / "latents.npz",
                           "--ganspace_only", capsys=capsys, midi=steps)
    assert "as pure coefficient points" in out and again["ganspace_only"]
    assert (tmp_path / "c" / "generated_clip.wav").read_bytes() == \
        (tmp_path / "a" / "generated_clip.wav").read_bytes()
    render(models, tmp_path / "d", capsys=capsys, midi=steps)  # no path in this file
    rc, _, err = run(["--ckpt_dir", models["directions"], "--output_dir", tmp_path / "e",
                      "--midi_file", steps, "--latents", tmp_path / "d" / "latents.npz",
                      "--ganspace_only"], capsys)
    assert rc == 1 and "--ganspace_only: latents file" in err and "holds no GANSpace path" in err

