"""The live server's guards, one by one and without a server: strict OSC decoding, the
shared argument checks, rate limits and the limited log on a fake clock, the reply
routing table, and /render's directory that follows no symbolic link."""
from __future__ import annotations

import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_message_builder import OscMessageBuilder

from gansynth_live.live.clients import EXPIRE_SECONDS, MAX_PORTS, Clients
from gansynth_live.live.oscwire import OscError, decode_message, peek_address, split_packet
from gansynth_live.live.ratelimit import LimitedLog, RateLimit
from gansynth_live.live.render_files import RenderDir
from gansynth_live.validation import MAX_SEED, integer, number
from live_helpers import PITCHES, FakeClock, tiny_model  # noqa: F401


def osc(address: str, *args) -> bytes:
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


# OSC decoding ---------------------------------------------------------------------------

def test_every_supported_type_decodes_to_its_value():
    data = osc("/all", 7, 2**40, 0.5, "text", b"\x01\x02\x03", True, False)
    assert decode_message(data) == ("/all", (7, 2**40, 0.5, "text", b"\x01\x02\x03", True,
                                             False))
    double = b"/d\x00\x00,d\x00\x00" + struct.pack(">d", 0.1)
    assert decode_message(double).args == (0.1,)
    assert decode_message(b"/bare\x00\x00\x00") == ("/bare", ())  # no type tags: OSC 1.0


@pytest.mark.parametrize("data, reason", [
    (osc("/e", 1.0, 2.0)[:-1], "argument 2 ('f') is cut short"),
    (osc("/b", b"abcdef")[:-4], "argument 1 ('b'): blob of 6 bytes is cut short"),
    (b"/n\x00\x00,N\x00\x00", "argument 1 ('N'): unsupported type tag"),
    (b"/n\x00\x00,[i]\x00\x00\x00\x00", "argument 1 ('['): unsupported type tag"),
    (b"/n\x00\x00if\x00\x00", "type tag string must start with ','"),
    (b"/" + b"a" * 300 + b"\x00\x00\x00", "address longer than 256 bytes"),
    (b"/s\x00\x00,s\x00\x00\xff\xfe\x00\x00", "argument 1 ('s') is not UTF-8"),
])
def test_malformed_messages_say_what_is_wrong(data, reason):
    with pytest.raises(OscError, match=reason.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[")):
        decode_message(data)


def test_bundles_are_split_whole_or_refused_whole():
    inner = b"#bundle\x00" + bytes(8) + struct.pack(">i", 8) + osc("/in")
    outer = (b"#bundle\x00" + bytes(8) + struct.pack(">i", len(osc("/a", 1))) + osc("/a", 1)
             + struct.pack(">i", len(inner)) + inner)
    assert [peek_address(m) for m in split_packet(outer)] == ["/a", "/in"]
    for broken, reason in [(outer[:-1], "claims 28 bytes, 27 are left"),
                           (outer[:16] + struct.pack(">i", 6) + bytes(8), "size 6"),
                           (outer + b"\x00\x00", "element size at byte 64 is cut short")]:
        with pytest.raises(OscError, match=reason):
            split_packet(broken)
    nested = osc("/deep")
    for _ in range(9):
        nested = b"#bundle\x00" + bytes(8) + struct.pack(">i", len(nested)) + nested
    with pytest.raises(OscError, match="nested deeper than 8"):
        split_packet(nested)


# Argument checks --------------------------------------------------------------------------

def test_integers_are_exact_and_floats_from_pd_are_integers():
    assert integer("seed", 2**53 + 1, 0, MAX_SEED) == 2**53 + 1
    assert integer("seed", MAX_SEED, 0, MAX_SEED) == MAX_SEED
    assert integer("pitch", 60.0) == 60 and integer("pitch", np.int16(60)) == 60
    for value, reason in [(2**63, "seed must be in 0..9223372036854775807, got 9223372036854775808"),
                          (60.5, "seed must be a whole number, got 60.5"),
                          (True, "seed must be a number, got bool True"),
                          ("7", "seed must be a number, got str '7'"),
                          (float("inf"), "seed must be finite, got inf")]:
        with pytest.raises(ValueError, match=reason):
            integer("seed", value, 0, MAX_SEED)
    with pytest.raises(ValueError, match="bend must be above 0 and at most 96, got 0"):
        number("bend", 0, above=0, high=96)


# Rate limits ------------------------------------------------------------------------------

def test_a_rate_limit_passes_its_burst_then_its_rate():
    clock = FakeClock()
    limit = RateLimit(64, 10, clock)
    assert sum(limit.allow() for _ in range(50)) == 10
    clock.advance(1 / 16)  # 4 more
    assert sum(limit.allow() for _ in range(50)) == 4
    clock.advance(60)  # never more than the burst saved up
    assert sum(limit.allow() for _ in range(50)) == 10


def test_the_log_passes_its_rate_and_says_how_many_it_dropped():
    clock, lines = FakeClock(), []
    log = LimitedLog(lines.append, rate=1, burst=3, clock=clock)
    for i in range(10):
        log(f"bad note {i}")
    assert lines == ["bad note 0", "bad note 1", "bad note 2"] and log.suppressed == 7
    clock.advance(1)
    log("bad note 10")
    assert lines[3:] == ["(7 log lines suppressed: more than the log's rate)", "bad note 10"]


# Reply routing ----------------------------------------------------------------------------

def test_replies_go_per_client_and_subscriptions_lapse():
    clock = FakeClock()
    clients = Clients(clock)
    pd, tool = ("127.0.0.1", 40001), ("127.0.0.1", 40002)
    clients.subscribe(pd, 9000)
    assert clients.targets(pd) == [("127.0.0.1", 9000)] and clients.targets(tool) == [tool]
    clock.advance(EXPIRE_SECONDS)
    clients.heard(pd)  # renewed just in time
    clock.advance(EXPIRE_SECONDS)
    assert clients.targets(pd) == [("127.0.0.1", 9000)]
    clock.advance(1)
    assert clients.targets(pd) == [pd] and len(clients) == 0 and clients.expired == 1
    for port in range(MAX_PORTS):
        clients.subscribe(tool, 30000 + port)
    with pytest.raises(ValueError, match=f"at most {MAX_PORTS} reply ports"):
        clients.subscribe(tool, 31000)
    clients.unsubscribe(tool, 30000)
    assert len(clients.targets(tool)) == MAX_PORTS - 1


# The render directory ---------------------------------------------------------------------

@pytest.fixture
def render_dir(tmp_path):
    directory = RenderDir(tmp_path / "renders")
    yield directory
    directory.close()


AUDIO = np.linspace(-0.5, 0.5, 480, dtype=np.float32)[:, None]


def test_names_are_checked_before_anything_is_written(render_dir):
    assert render_dir.parts("piano/take1") == ("piano", "take1.wav")
    assert render_dir.parts("x.WAV") == ("x.WAV",)
    for name, reason in [("../x", "'..'"), ("a//b", "may not be empty"), ("/etc/x", "absolute"),
                         ("x.txt", "must end in .wav"), ("a" * 256, "longer than 255 bytes"),
                         ("/".join("d" * 9), "at most 8"), ("", "non-empty"), (5, "non-empty")]:
        with pytest.raises(ValueError, match=reason):
            render_dir.parts(name)


def test_a_wav_is_written_whole_inside_the_directory(render_dir, tmp_path):
    path = render_dir.write_wav(("a", "b", "n.wav"), AUDIO, 48000)
    assert path == str(tmp_path / "renders" / "a" / "b" / "n.wav")
    audio, rate = sf.read(path, dtype="float32")
    assert rate == 48000 and np.array_equal(audio, AUDIO[:, 0])
    assert sorted(os.listdir(tmp_path / "renders" / "a" / "b")) == ["n.wav"]  # no temp left


def test_links_on_the_way_are_refused_and_a_link_in_place_is_replaced(render_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "renders" / "away").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OSError, match="symbolic links are not followed"):
        render_dir.write_wav(("away", "n.wav"), AUDIO, 48000)
    target = outside / "victim.wav"
    target.write_bytes(b"precious")
    (tmp_path / "renders" / "n.wav").symlink_to(target)
    render_dir.write_wav(("n.wav",), AUDIO, 48000)
    assert target.read_bytes() == b"precious" and not (tmp_path / "renders" / "n.wav").is_symlink()
    assert list(outside.iterdir()) == [target]


def test_the_directory_swapped_after_start_is_not_the_one_written(render_dir, tmp_path):
    """The server holds the directory it opened: renaming it and putting a link in its
    place sends nothing to the link's target."""
    outside = tmp_path / "outside"
    outside.mkdir()
    os.rename(tmp_path / "renders", tmp_path / "moved")
    (tmp_path / "renders").symlink_to(outside, target_is_directory=True)
    render_dir.write_wav(("n.wav",), AUDIO, 48000)
    assert (tmp_path / "moved" / "n.wav").exists() and not list(outside.iterdir())


# The audio process ------------------------------------------------------------------------

def test_the_audio_process_imports_no_tensorflow():
    """Everything the live server's audio process imports: no TensorFlow (only the render
    process runs the model)."""
    code = ("import sys\n"
            "import gansynth_live.live.cli, gansynth_live.live.osc, gansynth_live.live.audio\n"
            "import gansynth_live.live.midi_input, gansynth_live.live.renderer\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'gansynth_live.model')))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


# The first point's store -------------------------------------------------------------------

def test_the_first_point_is_stored_and_loaded_whole(tmp_path, tiny_model):  # noqa: F811
    from gansynth_live.live.facts import ModelFacts
    from gansynth_live.live.note_store import KEEP, NoteStore
    from gansynth_live.live.renderer import InProcessRenderer

    renderer = InProcessRenderer(tiny_model, 48000)
    notes = dict(zip(PITCHES, renderer(tiny_model.random_z(len(PITCHES), seed=3), PITCHES)))
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    store = NoteStore(tmp_path / "store", str(model_dir), 48000, seed=0)
    assert store.load() is None
    store.save(ModelFacts.of(tiny_model), notes)
    facts, loaded = store.load()
    assert facts == ModelFacts.of(tiny_model)
    for pitch, note in notes.items():
        assert np.array_equal(loaded[pitch].samples, note.samples)
        assert loaded[pitch].length == note.length and loaded[pitch].loop == note.loop
        assert all(type(v) is int for v in loaded[pitch].loop[:3])
    # Anything that makes other notes is another entry: rate, seed, the model's files.
    assert NoteStore(tmp_path / "store", str(model_dir), 44100, 0).load() is None
    assert NoteStore(tmp_path / "store", str(model_dir), 48000, 1).load() is None
    (model_dir / "config.json").write_text('{"changed": 1}')
    assert NoteStore(tmp_path / "store", str(model_dir), 48000, 0).load() is None
    for seed in range(1, KEEP + 2):  # only the newest KEEP entries stay
        NoteStore(tmp_path / "store", str(model_dir), 48000, seed).save(facts, loaded)
    assert len(list((tmp_path / "store").glob("first-point-*.npz"))) == KEEP
