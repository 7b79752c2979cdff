"""The Pure Data patches in pd/, run in real headless Pd (puredata-core) against OSC peers.

The OSC peer here is `FakeOscServer` (tests/pd_helpers.py): a real UDP socket that parses
what Pd sends with python-osc and answers like the live server (/status.reply, /done, /fail).
"""
import math
import time

import pytest

from pd_helpers import (PD, PD_DIR, FakeOscServer, PdSession, example_copy, free_udp_port,
                        run_pd_harness)

pytestmark = pytest.mark.skipif(PD is None, reason="Pure Data (`pd`, Debian puredata-core) is not installed")

EXAMPLES = ["gansynth-help.pd", "keyboard.pd", "xy-pad.pd", "envelope.pd", "sequencer.pd",
            "midi-in.pd", "render-to-array.pd", "ganspace.pd"]


def approx(values):
    return pytest.approx(values, abs=1e-5)


def wait_until(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_every_patch_is_tested():
    on_disk = sorted(p.name for p in PD_DIR.glob("*.pd"))
    assert on_disk == sorted(EXAMPLES + ["gansynth.pd"])


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_loads_cleanly(name, tmp_path):
    """Each example opens with no "couldn't create" and no error, and finds its server."""
    with FakeOscServer() as srv:
        patch = example_copy(name, tmp_path, srv.port, free_udp_port())
        with PdSession(tmp_path, open_patches=[patch]) as pd:
            # the abstraction subscribes as soon as it loads, and stops polling on the answer
            assert srv.wait_for("/notify", timeout=5)
            assert srv.wait_for("/status", timeout=5)
            time.sleep(0.5)
            errors = pd.errors()
        assert not errors, "\n".join(errors)
        assert not srv.without_polling(), "an example sent something on load"


def test_abstraction_loads_with_defaults_cleanly(tmp_path):
    """gansynth.pd opened on its own (no arguments: 127.0.0.1 57120, replies on 57121)."""
    with PdSession(tmp_path, open_patches=[PD_DIR / "gansynth.pd"]) as pd:
        time.sleep(0.5)
        errors = [e for e in pd.errors() if "57121" not in e]  # port may be busy on a dev box
    assert not errors, "\n".join(errors)


INLET_TO_OSC = [
    ("note_on 60 100", "/note_on", [60, 100]),
    ("note_off 60", "/note_off", [60]),
    ("note 62 90 1.5", "/note", [62, 90, 1.5]),
    ("all_notes_off", "/all_notes_off", []),
    ("seed 2 1234", "/timbre/seed", [2, 1234]),
    ("xy 0.3 0.7", "/timbre/xy", [0.3, 0.7]),
    ("z 1 0.1 -0.2 0.3", "/timbre/z", [1, 0.1, -0.2, 0.3]),
    ("envelope 1 0.5 25 0.5", "/envelope", [1, 0.5, 25, 0.5]),
    ("pitch_bend -2", "/pitch_bend", [-2]),
    ("sustain 1", "/sustain", [1]),
    ("sustain_mode natural", "/sustain_mode", ["natural"]),
    ("sustain_mode 1", "/sustain_mode", [1]),
    ("render 60 x.wav", "/render", [60, "x.wav"]),
    ("send /foo/bar 1 abc", "/foo/bar", [1, "abc"]),
    ("send /baz", "/baz", []),
    ("quit", "/quit", []),
]


def test_abstraction_sends_the_osc_table(tmp_path):
    with FakeOscServer() as srv:
        reply_port = free_udp_port()
        with PdSession(tmp_path, server_port=srv.port, reply_port=reply_port) as pd:
            assert srv.wait_for("/notify")
            assert srv.messages[0] == ("/notify", [1.0, float(reply_port)])
            for fudi, _, _ in INLET_TO_OSC:
                pd.send("gs " + fudi)
            assert srv.wait_for("/quit")
            pd.send("gs status")
            pd.send("gs notify 0")
            pd.send("gs notify")
            assert srv.wait_for("/notify", count=3)
            assert not pd.errors()
        got = srv.without_polling()
        assert [a for a, _ in got] == [a for _, a, _ in INLET_TO_OSC]
        for (address, args), (fudi, _, want) in zip(got, INLET_TO_OSC):
            nums = [a for a in args if not isinstance(a, str)]
            assert all(isinstance(a, float) for a in nums), (fudi, args)  # Pd sends floats
            assert [a for a in args if isinstance(a, str)] == [w for w in want if isinstance(w, str)]
            assert nums == approx([w for w in want if not isinstance(w, str)]), fudi
        notifies = [p for a, p in srv.messages if a == "/notify"]
        assert notifies[-2:] == [[0.0], [1.0, float(reply_port)]]
        assert ("/status", []) in srv.messages


def test_notify_1_subscribes_the_reply_port(tmp_path):
    """`notify 1` is `notify`: /notify 1 <reply port> (and the reply port stays what it was)."""
    with FakeOscServer() as srv:
        reply_port = free_udp_port()
        with PdSession(tmp_path, server_port=srv.port, reply_port=reply_port) as pd:
            assert srv.wait_for("/notify")
            pd.send("gs notify 1")
            pd.send("gs notify")
            assert srv.wait_for("/notify", count=3)
            assert not pd.errors()
    notifies = [p for a, p in srv.messages if a == "/notify"]
    assert notifies[1:] == [[1.0, float(reply_port)]] * 2


def test_abstraction_outlet_gives_replies_as_pd_messages(tmp_path):
    with FakeOscServer() as srv:
        with PdSession(tmp_path, server_port=srv.port, reply_port=free_udp_port()) as pd:
            # the first poll's /status.reply: connected 1, then one status message per field
            assert wait_until(lambda: "status model default" in pd.outlet())
            srv.reply("/done", "/render", "/tmp/x.wav")
            srv.reply("/fail", "/note_on", "pitch 200 out of range")
            srv.reply("/done", "/timbre/seed")
            srv.reply("/status.reply", "voices", 3, "underflows", 0, "blocksize", 256)
            assert wait_until(lambda: "status blocksize 256" in pd.outlet())
            assert not pd.errors()
            out = pd.outlet()
    assert out[:5] == ["connected 1", "status voices 2", "status cache_entries 61",
                       "status sample_rate 48000", "status model default"]
    assert out[5:] == ["done /render /tmp/x.wav",
                       r"fail /note_on pitch\ 200\ out\ of\ range",  # one symbol, as Pd prints it
                       "done /timbre/seed",
                       "status voices 3", "status underflows 0", "status blocksize 256"]


def test_abstraction_polls_until_the_server_answers_and_reconnects(tmp_path):
    """Default host (argument 0); /notify is repeated every 2 s until an answer comes;
    `connect host port` switches servers and subscribes there."""
    with FakeOscServer(answer=False) as silent, FakeOscServer() as other:
        with PdSession(tmp_path, server_port=silent.port, reply_port=free_udp_port(),
                       host="0") as pd:
            assert silent.wait_for("/notify", count=2, timeout=5)  # retried: no answer
            pd.send(f"gs connect 127.0.0.1 {other.port}")
            assert wait_until(lambda: "connected 1" in pd.outlet())
            pd.send("gs note_on 61 90")
            assert other.wait_for("/note_on")
            assert not pd.errors()
    assert other.without_polling() == [("/note_on", [61.0, 90.0])]
    assert silent.without_polling() == []


def test_run_pd_harness_helper():
    with FakeOscServer() as srv:
        out, lines = run_pd_harness(["gs xy 0.5 0.25", ("sleep", 0.2), "gs status"],
                                    srv.port, free_udp_port(), settle=0.5)
    assert ("/timbre/xy", [0.5, 0.25]) in srv.messages
    assert "status voices 2" in out


def run_example(name, tmp_path, commands, until, srv=None, timeout=5.0):
    """Open an example with its [gansynth] pointed at a FakeOscServer, send harness commands."""
    own = srv is None
    srv = srv or FakeOscServer()
    try:
        patch = example_copy(name, tmp_path, srv.port, free_udp_port())
        with PdSession(tmp_path, open_patches=[patch]) as pd:
            assert srv.wait_for("/status")
            for c in commands:
                if isinstance(c, tuple):
                    time.sleep(c[1])
                else:
                    pd.send(c)
            assert wait_until(lambda: until(srv.without_polling()), timeout), srv.without_polling()
            errors = pd.errors()
            assert not errors, "\n".join(errors)
            return srv.without_polling(), pd
    finally:
        if own:
            srv.close()


def test_keyboard_computer_keys_and_clicks(tmp_path):
    cmds = ["to #key 97", "to #key 97",          # a pressed (auto-repeat: ignored)
            "to #keyup 97",                        # a released
            "to #key 120", "to #key 119",          # x: octave up, w = C#
            "to keyboard-velocity 64", "to #key 106", "to #keyup 119", "to #keyup 106",
            "to keyboard-play 67"]                 # what a click on [67( does
    got, _ = run_example("keyboard.pd", tmp_path, cmds, lambda m: len(m) >= 7)
    assert got == [("/note_on", [60.0, 100.0]), ("/note_off", [60.0]),
                   ("/note_on", [73.0, 100.0]), ("/note_on", [83.0, 64.0]),
                   ("/note_off", [73.0]), ("/note_off", [83.0]), ("/note", approx([67, 64, 1]))]


def test_keyboard_click_plays_a_note(tmp_path):
    got, _ = run_example("keyboard.pd", tmp_path, ["to keyboard-play 67"], lambda m: len(m) >= 1)
    assert got == [("/note", approx([67, 100, 1]))]


def test_keyboard_sustain_loop_toggle(tmp_path):
    """The toggle starts on (loop, the server's default; nothing is sent on load), sends
    /sustain_mode 1 / 0, and follows the mode that the server's /status.reply reports."""
    with FakeOscServer() as srv:
        cmds = ["click keyboard-sustain-loop",     # a click: on -> off
                "to keyboard-sustain-loop 1", "to keyboard-sustain-loop 0"]
        got, _ = run_example("keyboard.pd", tmp_path, cmds, lambda m: len(m) >= 3, srv=srv)
        assert got == [("/sustain_mode", [0.0]), ("/sustain_mode", [1.0]),
                       ("/sustain_mode", [0.0])]
    with FakeOscServer() as srv:
        patch = example_copy("keyboard.pd", tmp_path, srv.port, free_udp_port())
        with PdSession(tmp_path, open_patches=[patch]) as pd:
            assert srv.wait_for("/status")
            # the server says natural: the toggle shows off (set: nothing is sent back) ...
            srv.reply("/status.reply", "voices", 0, "sustain_mode", "natural")
            assert pd.wait_for(lambda l: l == "gansynth-status: sustain_mode natural")
            time.sleep(0.2)
            assert srv.without_polling() == []
            pd.send("click keyboard-sustain-loop")  # ... so a click turns loop on
            assert wait_until(lambda: srv.without_polling() == [("/sustain_mode", [1.0])])
            srv.reply("/status.reply", "sustain_mode", "loop")
            assert pd.wait_for(lambda l: l == "gansynth-status: sustain_mode loop")
            pd.send("click keyboard-sustain-loop")  # loop shown: a click turns it off
            assert wait_until(lambda: srv.without_polling()[1:] == [("/sustain_mode", [0.0])])
            assert not pd.errors(), pd.errors()


def test_xy_pad_moves_timbre_and_sets_seeds(tmp_path):
    cmds = ["to xypad-x 0.25", "to xypad-y 0.75", "to xypad-random bang"]
    got, _ = run_example("xy-pad.pd", tmp_path, cmds, lambda m: len(m) >= 6)
    assert got[0] == ("/timbre/xy", approx([0.25, 0]))
    assert got[1] == ("/timbre/xy", approx([0.25, 0.75]))
    seeds = got[2:6]
    assert sorted(p[0] for _, p in seeds) == [0, 1, 2, 3]
    assert all(a == "/timbre/seed" and p[1] == int(p[1]) and 0 <= p[1] < 100000 for a, p in seeds)


def test_envelope_sliders(tmp_path):
    cmds = ["to envelope-release 50", "to envelope-attack-slope 0.8"]
    got, _ = run_example("envelope.pd", tmp_path, cmds, lambda m: len(m) >= 2)
    assert got == [("/envelope", approx([1, 0.5, 50, 0.5])),
                   ("/envelope", approx([1, 0.8, 50, 0.5]))]


def test_sequencer_morphs_timbre_while_it_plays(tmp_path):
    cmds = ["to seq-bpm 600", "to seq-play 1"]
    got, _ = run_example("sequencer.pd", tmp_path, cmds, lambda m: len(m) >= 18, timeout=8)
    steps = got[:18]
    pitches = [60, 63, 67, 70, 72, 67, 63, 55]
    morph = [0, 0.3, 0.6, 1, 1, 0.6, 0.3, 0]
    for step in range(9):
        (a1, xy), (a2, note) = steps[2 * step], steps[2 * step + 1]
        s = step % 8
        assert a1 == "/timbre/xy" and xy == approx([s / 7, morph[s]])
        assert a2 == "/note" and note == approx([pitches[s], 100, 27 / 600])


def test_midi_in_forwards_notes_controllers_bend_program(tmp_path):
    # what Pd's MIDI input delivers: #notein pitch velocity channel, #ctlin controller value
    # channel, #bendin 0..16383 channel, #pgmin program channel
    cmds = ["to #notein 60 100 1", "to #notein 60 0 1",
            "to #ctlin 1 127 1", "to #ctlin 2 0 1", "to #ctlin 64 100 1", "to #ctlin 64 10 1",
            "to #bendin 16383 1", "to #pgmin 7 1"]
    got, _ = run_example("midi-in.pd", tmp_path, cmds, lambda m: len(m) >= 8)
    assert got[:2] == [("/note_on", [60.0, 100.0]), ("/note_off", [60.0])]
    assert got[2] == ("/timbre/xy", approx([1, 0]))
    assert got[3] == ("/timbre/xy", approx([1, 0]))
    assert got[4:6] == [("/sustain", [1.0]), ("/sustain", [0.0])]
    assert got[6][0] == "/pitch_bend" and got[6][1] == approx([2 * 8191 / 8192])
    assert got[7] == ("/timbre/seed", [0.0, 7.0])


def test_render_to_array_fills_the_array(tmp_path):
    render_dir = tmp_path / "renders"
    render_dir.mkdir()
    with FakeOscServer(render_dir=render_dir) as srv:
        patch = example_copy("render-to-array.pd", tmp_path, srv.port, free_udp_port())
        with PdSession(tmp_path, open_patches=[patch]) as pd:
            assert srv.wait_for("/status")
            pd.send("to render-go bang")
            assert srv.wait_for("/render")
            assert srv.without_polling() == [("/render", [60.0, "pd-note.wav"])]
            assert wait_until(lambda: pd.array_size("gansynth-note", timeout=0.5) == 8000, 5)
            for i in (0, 9, 100, 7999):
                want = 0.5 * math.sin(2 * math.pi * 440 * i / 16000)
                assert pd.tabread("gansynth-note", i) == pytest.approx(want, abs=1e-6)
            assert not pd.errors(), pd.errors()


def test_ganspace_sliders_send_the_whole_vector_and_the_keys_play(tmp_path):
    """pd/ganspace.pd: a slider sends /timbre/pca c1 c2 c3 c4 (the others as they stand),
    the reset button brings all four back to 0, a cell plays /note."""
    with FakeOscServer() as srv:
        patch = example_copy("ganspace.pd", tmp_path, srv.port, free_udp_port())
        with PdSession(tmp_path, open_patches=[patch]) as pd:
            assert srv.wait_for("/status", timeout=5)
            pd.send("to ganspace-c1 1.5")
            pd.send("to ganspace-c3 -2")
            pd.send("to ganspace-key 12")
            pd.send("click ganspace-reset")
            assert wait_until(lambda: len(srv.without_polling()) == 7)
            sent = srv.without_polling()
            assert sent[:3] == [("/timbre/pca", approx([1.5, 0, 0, 0])),
                                ("/timbre/pca", approx([1.5, 0, -2, 0])),
                                ("/note", approx([60, 100, 1]))]
            assert sent[-1] == ("/timbre/pca", approx([0, 0, 0, 0]))
            assert not pd.errors(), pd.errors()
