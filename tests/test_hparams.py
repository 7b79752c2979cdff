"""Training hparams: Magenta's defaults, errors that name the key, architecture mapping."""
import pytest

from gansynth_live.config import ModelConfig, preset
from training.hparams import (
    TRAINING_DEFAULTS, HparamsError, architecture_from, parse_hparams_json, resolve_hparams,
)

PATHS = {"train_data_path": "data", "train_root_dir": "run"}


def resolve(config="mel_prog_hires", **overrides):
    return resolve_hparams(config, {**PATHS, **overrides})


def test_defaults_are_magentas_mel_prog_hires():
    hparams, config = resolve()
    magenta = {  # docs/magenta-reference.md section 1, Training
        "total_num_images": 11_000_000, "stable_stage_num_images": 800_000,
        "transition_stage_num_images": 800_000, "batch_size_schedule": [8],
        "train_progressive": True, "generator_learning_rate": 8e-4,
        "discriminator_learning_rate": 8e-4, "adam_beta1": 0.0, "adam_beta2": 0.99,
        "generator_ema_decay": 0.999, "gradient_penalty_target": 1.0,
        "gradient_penalty_weight": 10.0, "real_score_penalty_weight": 0.001,
        "generator_ac_loss_weight": 10.0, "discriminator_ac_loss_weight": 10.0,
        "save_summaries_num_images": 10_000,
        "train_min_pitch": 24, "train_max_pitch": 84, "fake_batch_size": 61,
        "train_instrument_sources": [0],  # SopiMlab: acoustic only
    }
    assert {k: hparams[k] for k in magenta} == magenta
    # Not Magenta's 600 s: a kill -9 loses at most 5 minutes (a signal saves at once).
    assert hparams["save_checkpoint_secs"] == 300
    assert hparams["discriminator_pitch_head"] is False  # not Magenta's: off by default
    assert hparams["train_meta_path"] is None
    assert {k: hparams[k] for k in PATHS} == PATHS
    assert config == ModelConfig()
    assert (config.spec_shape, config.start_shape, config.num_resolutions, config.latent_size,
            config.fmap_base, config.fmap_max, config.audio_length, config.sample_rate) == \
        ((128, 1024), (2, 16), 7, 256, 4096, 256, 64000, 16000)


def test_overrides_apply_and_defaults_are_not_mutated():
    before = {k: (list(v) if isinstance(v, list) else v) for k, v in TRAINING_DEFAULTS.items()}
    hparams, _ = resolve(batch_size_schedule=[16, 8], total_num_images=1000, seed=3,
                         generator_learning_rate=1)
    assert hparams["batch_size_schedule"] == [16, 8] and hparams["total_num_images"] == 1000
    assert hparams["seed"] == 3
    assert hparams["generator_learning_rate"] == 1.0  # an int where a float goes is fine
    assert isinstance(hparams["generator_learning_rate"], float)
    assert TRAINING_DEFAULTS == before


def test_unknown_names_are_errors_that_name_them():
    with pytest.raises(HparamsError, match=r"unknown hparams \['learning_rate', 'num_gpus'\]"):
        resolve(learning_rate=1e-3, num_gpus=2)
    with pytest.raises(HparamsError, match="known: .*total_num_images"):
        resolve(total_images=5)


@pytest.mark.parametrize("key, value, expected", [
    ("total_num_images", "many", "int"),
    ("total_num_images", 1.5e6, "int"),
    ("seed", True, "int"),
    ("generator_learning_rate", "8e-4", "float"),
    ("train_progressive", 1, "bool"),
    ("discriminator_pitch_head", "yes", "bool"),
    ("batch_size_schedule", 8, "list"),
    ("train_instrument_sources", 0, "list"),
    ("train_meta_path", 3, "str"),
    ("train_root_dir", ["a"], "str"),
    ("num_resolutions", "3", "int"),
    ("start_height", 8.0, "int"),
    ("latent_vector_size", True, "int"),
    ("fmap_decay", "1", "int or float"),
    ("self_attention", "yes", "bool"),
    ("channel_mode", 2, "str"),
])
def test_wrong_types_name_the_key(key, value, expected):
    with pytest.raises(HparamsError, match=rf"hparam {key} = .*expected {expected}"):
        resolve(**{key: value})


@pytest.mark.parametrize("overrides, message", [
    ({"total_num_images": 0}, "total_num_images = 0: must be positive"),
    ({"stable_stage_num_images": -5}, "stable_stage_num_images = -5: must be positive"),
    ({"transition_stage_num_images": 0}, "transition_stage_num_images"),
    ({"save_summaries_num_images": 0}, "save_summaries_num_images"),
    ({"batch_size_schedule": []}, "batch_size_schedule = \\[\\]"),
    ({"batch_size_schedule": [8, 0]}, "batch_size_schedule = \\[8, 0\\]"),
    ({"batch_size_schedule": [8, "4"]}, "batch_size_schedule"),
    ({"train_min_pitch": 90, "train_max_pitch": 80}, "train_min_pitch..train_max_pitch.*90..80"),
    ({"train_max_pitch": 128}, "train_max_pitch"),
    ({"train_data_path": None}, "train_data_path is required"),
    ({"train_root_dir": ""}, "train_root_dir is required"),
    ({"channel_mode": "quad"}, "channel_mode = 'quad'"),
    ({"audio_length": -1}, "audio_length = -1"),
    ({"latent_vector_size": 0}, "latent_vector_size.*latent_size = 0"),
    ({"start_width": 3}, "start_width.*frequency bins must be a power of 2"),
    ({"num_resolutions": 0}, "num_resolutions"),
    ({"audio_length": 5.0}, "audio_length.*cover at most 67072 samples"),  # 5 s > 4.19 s
    ({"self_attention": True, "start_height": 4}, "self_attention"),
    ({"train_pitch_weights": {"C1": 2}}, r"train_pitch_weights\['C1'\]: the key must be a MIDI pitch"),
    ({"train_pitch_weights": {"30-24": 2}}, r"\['30-24'\]: must be MIDI pitches 0..127, low to high"),
    ({"train_pitch_weights": {"128": 2}}, r"\['128'\]: must be MIDI pitches"),
    ({"train_pitch_weights": {"24": 0}}, r"\['24'\] = 0: must be a number > 0"),
    ({"train_pitch_weights": {"24": "3"}}, r"\['24'\] = '3': must be a number > 0"),
    ({"train_pitch_weights": {"24": float("nan")}}, r"\['24'\] = nan: must be a number > 0"),
    ({"train_pitch_weights": {"24-26": 2, "26": 3}}, r"\['26'\]: pitch 26 is given a weight twice"),
    ({"train_pitch_weights": [24, 3]}, "train_pitch_weights = \\[24, 3\\]: expected dict"),
])
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(HparamsError, match=message):
        resolve(**overrides)


def test_pitch_weight_ranges_expand_to_one_weight_per_pitch():
    hparams = resolve(train_pitch_weights={"24-26": 3, "30": 1.5})[0]
    assert hparams["train_pitch_weights"] == {"24": 3.0, "25": 3.0, "26": 3.0, "30": 1.5}
    assert resolve()[0]["train_pitch_weights"] == {}


def test_parse_hparams_json():
    assert parse_hparams_json("") == {} and parse_hparams_json("  ") == {}
    assert parse_hparams_json('{"seed": 2}') == {"seed": 2}
    with pytest.raises(HparamsError, match="not valid JSON"):
        parse_hparams_json("{seed: 2}")
    with pytest.raises(HparamsError, match="must be a JSON object"):
        parse_hparams_json("[1, 2]")


def test_resolution_hparams_set_start_and_spec_shape():
    _, config = resolve("tiny", num_resolutions=3, start_height=32, start_width=64)
    assert config.num_resolutions == 3
    assert config.start_shape == (32, 64) and config.spec_shape == (128, 256)
    assert (config.latent_size, config.fmap_max) == (16, 8)  # the rest of the preset stays
    _, config = resolve("mel_prog_hires", num_resolutions=6, start_height=4, start_width=32)
    assert config.spec_shape == (128, 1024) and config.start_shape == (4, 32)
    # Only num_resolutions: the preset's start shape is kept and the image grows or shrinks
    # with it (as in Magenta); here 1 s no longer fits in 64 frames, and the error says so.
    _, config = resolve("tiny", num_resolutions=6, audio_length=0.25)
    assert config.start_shape == (2, 4) and config.spec_shape == (64, 128)
    with pytest.raises(HparamsError, match=r"\{'num_resolutions': 6\}.*cover at most 4288"):
        resolve("tiny", num_resolutions=6)


def test_network_size_hparams_use_magentas_names():
    _, config = resolve("mel_prog_hires", latent_vector_size=128, kernel_size=5, fmap_base=2048,
                        fmap_decay=0.5, fmap_max=64, self_attention=True)
    assert (config.latent_size, config.kernel_size, config.fmap_base, config.fmap_decay,
            config.fmap_max, config.self_attention) == (128, 5, 2048, 0.5, 64, True)
    assert config.attention_block is not None


def test_channel_mode_stereo():
    _, config = resolve("mel_prog_hires", channel_mode="stereo")
    assert config.channels == 2 and config.image_channels == 4
    _, config = resolve("mel_prog_hires", channel_mode="mono")
    assert config.channels == 1


def test_audio_length_seconds_or_samples_and_sample_rate():
    # GANSynth-Stereo gives seconds; Magenta gives samples (a whole number above 1000).
    _, config = resolve("mel_prog_hires", audio_length=4)
    assert config.audio_length == 64000
    _, config = resolve("mel_prog_hires", audio_length=2.5)
    assert config.audio_length == 40000
    _, config = resolve("mel_prog_hires", audio_length=64000)
    assert config.audio_length == 64000
    _, config = resolve("mel_prog_hires", audio_length=1001)
    assert config.audio_length == 1001
    # Seconds are converted at the given sample rate, whichever order the keys come in.
    _, config = resolve("mel_prog_hires", audio_length=2, sample_rate=32000)
    assert config.sample_rate == 32000 and config.audio_length == 64000
    _, config = resolve("tiny", sample_rate=8000, audio_length=1)
    assert config.audio_length == 8000


def test_stereo_fork_experiment_maps_to_one_config():
    # A GANSynth-Stereo style hparams set: 44.1 kHz-ish stereo in seconds.
    hparams, config = resolve("mel_prog_hires", channel_mode="stereo", sample_rate=16000,
                              audio_length=4.0, num_resolutions=7, start_height=2,
                              start_width=16)
    assert config == ModelConfig(channels=2)
    assert "channel_mode" not in hparams and "num_resolutions" not in hparams


def test_unknown_config_preset():
    with pytest.raises(ValueError, match="unknown config 'huge'"):
        architecture_from("huge", {})
    assert architecture_from("mel_prog_1s", {}) == preset("mel_prog_1s")
