"""The layout of the Pd patches in pd/: no box covers another, no wire runs through a box,
every example opens on its front panel. Pure Python (tests/pd_layout.py): no Pd needed.

The geometry numbers pinned below were read off the real Pd 0.53 GUI (Tk canvas items of
keyboard.pd and sequencer.pd as they were before this layout, under Xvfb)."""
from __future__ import annotations

import pytest

from pd_helpers import PD_DIR
from pd_layout import Rect, check, parse_patch, wire_ends

PATCHES = sorted(p.name for p in PD_DIR.glob("*.pd"))
EXAMPLES = [p for p in PATCHES if p not in ("gansynth.pd", "gansynth-help.pd")]
GUI_CONTROLS = {"tgl", "bng", "hsl", "vsl", "nbx", "hradio", "vradio"}


def patch(tmp_path, body: str, font: int = 12):
    path = tmp_path / "t.pd"
    path.write_text(f"#N canvas 0 0 600 400 {font};\n{body}\n")
    return path


def boxes(path):
    return parse_patch(path)[0].boxes


def test_box_geometry_is_what_pd_draws(tmp_path):
    path = patch(tmp_path, r"""#X obj 190 150 expr int(\$f1 + 0.5);
#X msg 480 175 \; keyboard-velocity 100 \; keyboard-sustain-loop set 1;
#X msg 440 175 1;
#X floatatom 190 175 4 0 0 0 - - - 0;
#X obj 20 175 hsl 160 18 1 127 0 0 empty keyboard-velocity empty 0 -9 0 10 #fcfcfc #000000 #000000 12493 1;
#X text 20 35 Start the server first (gansynth-live \, or make run: UDP 127.0.0.1:57120). This patch's [gansynth] gets replies on UDP port 57122 \, so it can stay open next to the other examples., f 70;
#X obj 20 340 hradio 25 1 0 8 empty empty empty 0 -9 0 10 #fcfcfc #000000 #000000 0;
#N canvas 0 0 450 250 (subpatch) 0;
#X array seq-pitch 8 float 3;
#X coords 0 84 8 36 320 130 1 0 0;
#X restore 560 190 graph;
#X connect 4 0 0 0;""")
    expr, msg3, msg1, atom, hsl, comment, radio, graph = boxes(path)
    assert expr.rect == Rect(190, 150, 327, 170)      # 19 characters * 7 + 4, one line
    assert msg3.shape == Rect(480, 175, 683, 225)     # 3 lines; the flag: 10 px at most
    assert msg1.shape == Rect(440, 175, 470, 195)     # at least 3 characters wide, 5 px flag
    assert atom.rect == Rect(190, 175, 220, 194)
    assert hsl.rect == Rect(17, 175, 182, 193)        # a slider's 3 px / 2 px margins
    assert comment.rect == Rect(20, 36, 514, 83)      # `, f 70`: 70 characters, 3 lines
    assert comment.text.startswith("Start the server first (gansynth-live, or make run")
    assert radio.rect == Rect(20, 340, 220, 365)
    assert graph.rect == Rect(560, 190, 880, 320)
    assert graph.label == Rect(560, 174, 623, 189)    # the array's name above the graph
    canvas = parse_patch(path)[0]
    assert wire_ends(canvas, canvas.wires[0]) == (20, 193, 193, 150)


def test_inlets_and_outlets_follow_the_arguments(tmp_path):
    path = patch(tmp_path, r"""#X obj 0 0 route done fail status connected;
#X obj 0 30 t b b b b;
#X obj 0 60 expr \$f1 / max(\$f2 \, 1) * 1000;
#X obj 0 90 r \$0-x;
#X obj 0 120 tgl 17 0 \$0-send \$0-receive empty 0 0 0 12 #fcfcfc #000000 #000000 0 1;
#X obj 0 150 pack 1 0.5 25 0.5;""")
    got = [(b.inlets, b.outlets) for b in boxes(path)]
    assert got == [(1, 5), (1, 4), (2, 1), (0, 1), (0, 0), (4, 1)]


def test_the_check_finds_overlaps_and_wires_through_boxes(tmp_path):
    # three boxes from the old keyboard.pd: the [expr] lay on the comment, the comment on
    # [loadbang]
    old = patch(tmp_path, r"""#X obj 190 150 expr int(\$f1 + 0.5);
#X text 260 150 note length (s) for clicks;
#X obj 440 150 loadbang;""")
    assert len(check(old).overlaps) == 2
    # a wire from [a] down to [c] through [b]; [d] beside it is not crossed
    through = patch(tmp_path, """#X obj 20 20 f;
#X obj 20 60 f;
#X obj 20 100 f;
#X obj 80 60 f;
#X connect 0 0 2 0;""")
    report = check(through)
    assert report.overlaps == [] and len(report.crossings) == 1
    assert "[f] outlet 0 -> [f] inlet 0 crosses [f]" in report.crossings[0]


def test_a_panel_background_and_a_message_bus_are_allowed(tmp_path):
    # a [cnv] holds its controls; messages stacked above one inlet share one line of wire
    path = patch(tmp_path, """#X obj 10 10 cnv 15 300 100 empty empty empty 20 12 0 12 #e4e8ee #404040 0;
#X obj 20 20 tgl 17 0 empty empty empty 17 7 0 10 #fcfcfc #000000 #000000 0 1;
#X msg 20 150 note_on 60 100;
#X msg 20 180 note_off 60;
#X msg 20 210 all_notes_off;
#X obj 20 260 print;
#X connect 2 0 5 0;
#X connect 3 0 5 0;
#X connect 4 0 5 0;""")
    assert check(path).overlaps == [] and check(path).crossings == []
    # ... but a box in the column that is not on the bus is crossed
    unwired = path.read_text().replace("#X connect 3 0 5 0;\n", "")
    path.write_text(unwired)
    assert len(check(path).crossings) == 1


def test_a_gui_label_counts_as_part_of_the_layout(tmp_path):
    path = patch(tmp_path, """#X obj 20 20 tgl 17 0 empty empty server_answered 22 9 0 12 #fcfcfc #000000 #000000 0 1;
#X text 60 20 a comment under the label;""")
    assert len(check(path).overlaps) == 1


@pytest.mark.parametrize("name", PATCHES)
def test_patch_has_no_overlaps_and_no_wire_through_a_box(name):
    report = check(PD_DIR / name)
    assert report.overlaps == [], "\n".join(report.overlaps)
    assert report.crossings == [], "\n".join(report.crossings)


@pytest.mark.parametrize("name", PATCHES)
def test_every_wire_end_is_exact(name):
    """Every object's inlets and outlets are known (tests/pd_layout.py `iolets`, an
    abstraction or a subpatch), so the wires are checked where Pd draws them."""
    unknown = [f"{c.name}: {b.name}" for c in parse_patch(PD_DIR / name) for b in c.boxes
               if not b.exact_iolets]
    assert unknown == []


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_opens_on_its_front_panel(name):
    """The controls a player touches (and every display) sit in a graph-on-parent panel at the
    top of the patch, so the example also works as an object in another patch; the plumbing is
    below it or in subpatches. A control added later (e.g. for a new server feature) belongs on
    the panel too."""
    top = parse_patch(PD_DIR / name)[0]
    assert top.gop is not None and top.gop_area, "no graph-on-parent front panel"
    assert top.gop.y1 <= 60, "the panel is not at the top"
    assert all(b.rect.y1 >= top.gop.y2 for b in top.boxes if b.kind in ("obj", "msg")
               and not b.rect.inside(top.gop)), "plumbing above or beside the panel's bottom"
    controls = [b for b in top.boxes
                if b.kind in ("floatatom", "symbolatom", "listbox", "graph")
                or b.text.split(" ")[0] in GUI_CONTROLS]
    outside = [b.name for b in controls if not b.rect.inside(top.gop)]
    assert controls and outside == []
