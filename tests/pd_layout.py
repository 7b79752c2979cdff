"""Where Pd draws the boxes and wires of a .pd file, and what overlaps: the layout check.

Geometry of Pd 0.53 vanilla at zoom 1, from its source (g_rtext.c, g_text.c, g_canvas.c and the
IEM GUIs) and checked against the boxes that the real Pd GUI draws for every patch in pd/:

- The font: the GUI picks the largest DejaVu Sans Mono that fits Pd's nominal metrics and
  reports what it measured (`FONT`): the patch font 12 is 7 px per character, 15 px per line.
- Object and message boxes: the text wrapped at 60 characters (or at the `, f N` width, and
  then exactly N characters wide), at least 3 characters wide; width = columns * 7 + 4,
  height = lines * 15 + 5. A message box draws a flag of height / 4 (at most 10 px) on its right.
- Comments: the same wrapping with a minimum of 1 character, 2 px less high, 1 px lower.
- Atom boxes (floatatom, symbolatom, listbox): width characters * 7 + 2 by 19 (width 0 grows
  with the number: counted as 5 characters here); a label sits left, right, above or below.
- IEM GUIs (tgl bng hsl vsl nbx hradio vradio cnv) take their size from their arguments, and
  their label is text anchored west at (x + ldx, y + ldy) in its own font size.
- A subpatch or abstraction with graph-on-parent shows its graph rectangle; without it, a text
  box. Arrays are graphs.
- A wire runs from the middle of an outlet (bottom edge of its box) to the middle of an inlet
  (top edge): n iolets are spread evenly over the box width, 7 px each.

The check, for every canvas (each subpatch is its own canvas):
- overlaps: two footprints (boxes, GUI labels) that intersect by more than touching borders,
  or a box cut by the graph-on-parent edge. A [cnv] is a panel background: other boxes may lie
  on it.
- wire crossings: a wire whose straight line enters another footprint shrunk by 1 px (so a
  wire that only grazes an edge passes), not counting its own source and sink. One exception,
  the bus: messages stacked in a column above one inlet (gansynth-help.pd) each send a wire
  down the same line; a wire that crosses such a box only within the column of the box's own
  outlet to that same inlet lies on top of that box's wire and is not counted.

Run `python tests/pd_layout.py pd/*.pd` for a table per patch (add -v for every finding).
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Pd font size -> (character width, line height) in px, as the GUI measures DejaVu Sans Mono
# (pd-gui.tcl fit_font_into_metrics; Tk `font measure M` / `font metrics -linespace`). IEM
# labels use Tk pixel sizes directly, so their sizes are in the same table.
FONT = {8: (5, 10), 9: (5, 12), 10: (6, 13), 11: (7, 14), 12: (7, 15), 13: (8, 17), 14: (8, 17),
        16: (10, 19), 18: (11, 22), 20: (12, 24), 24: (14, 29), 36: (22, 43)}
PD_FONT_SIZES = (8, 10, 12, 16, 24, 36)  # what a canvas font snaps to
DEFAULT_WRAP = 60   # characters per line of a box without `, f N` (DEFAULTBOXWIDTH)
IOWIDTH = 7         # inlet / outlet width
ATOM_AUTO_WIDTH = 5  # characters assumed for an atom box of width 0 (it grows with its value)
IEM = {"tgl", "bng", "hsl", "vsl", "nbx", "hradio", "vradio", "cnv",
       "toggle", "hslider", "vslider", "my_numbox", "my_canvas"}


def font_metrics(size: int) -> tuple[int, int]:
    """(char width, line height) of a font size, nearest measured size if not in the table."""
    nearest = min(FONT, key=lambda s: abs(s - size))
    return FONT[nearest]


@dataclass
class Rect:
    x1: int
    y1: int
    x2: int
    y2: int

    def intersects(self, other: Rect, touch: int = 1) -> bool:
        """True when the two overlap by more than `touch` px in both directions."""
        return (min(self.x2, other.x2) - max(self.x1, other.x1) > touch and
                min(self.y2, other.y2) - max(self.y1, other.y1) > touch)

    def inside(self, other: Rect) -> bool:
        return (self.x1 >= other.x1 and self.y1 >= other.y1 and self.x2 <= other.x2
                and self.y2 <= other.y2)

    def shrunk(self, by: int) -> Rect:
        return Rect(self.x1 + by, self.y1 + by, self.x2 - by, self.y2 - by)


@dataclass
class Box:
    """One thing on a canvas: `rect` is Pd's getrect (wires attach to it), `shape` what is drawn
    (a message box's flag included), `label` a GUI's label text outside the box."""
    index: int
    kind: str             # obj msg text floatatom symbolatom listbox graph
    text: str             # as displayed (the class and arguments for objects)
    rect: Rect
    shape: Rect
    inlets: int = 0
    outlets: int = 0
    label: Rect | None = None
    is_panel: bool = False  # a [cnv] background
    exact_iolets: bool = True  # False: a class `iolets` does not know, counted from its wires

    @property
    def name(self) -> str:
        words = self.text.split("\n")[0]
        return f"[{words[:40]}]" if self.kind != "text" else f"comment '{words[:30]}...'"


@dataclass
class Canvas:
    name: str
    font: int
    boxes: list[Box] = field(default_factory=list)
    wires: list[tuple[int, int, int, int]] = field(default_factory=list)
    gop: Rect | None = None       # the graph-on-parent area (in this canvas's coordinates)
    hide_name: bool = False
    gop_area: bool = False        # the area shows part of the canvas (not just its arrays)
    arrays: list[str] = field(default_factory=list)  # array names shown above a graph


# ---------------------------------------------------------------------------------------------
# reading a .pd file

def split_records(text: str) -> list[list[str]]:
    """The file's records (ending at an unescaped ';') as lists of atoms, escapes kept."""
    records, atoms, word = [], [], ""
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            word += text[i:i + 2]
            i += 2
            continue
        if c.isspace():
            if word:
                atoms.append(word)
            word = ""
        elif c == ";":
            if word:
                atoms.append(word)
            records.append(atoms)
            atoms, word = [], ""
        elif c == ",":  # an unescaped comma separates messages: its own atom
            if word:
                atoms.append(word)
            atoms.append(",")
            word = ""
        else:
            word += c
        i += 1
    return records


def display_text(atoms: list[str]) -> str:
    """The text Pd shows for a box's atoms (binbuf_gettext): `\\,` and `\\;` stick to the word
    before them, a ';' ends a line, other escapes show without their backslash."""
    out = ""
    for a in atoms:
        if a in ("\\,", "\\;", ",", ";"):
            out = out.rstrip(" ") + a[-1] + ("\n" if a.endswith(";") else " ")
        else:
            out += re.sub(r"\\(.)", r"\1", a) + " "
    return out.rstrip(" ")


def wrap(text: str, limit: int) -> list[str]:
    """Lines as rtext_formattext breaks them: at newlines, else at the last space that keeps a
    line within `limit` characters, else hard at `limit`."""
    lines = []
    for para in text.split("\n"):
        while len(para) > limit:
            cut = para.rfind(" ", 0, limit + 1)
            if cut < 0:
                lines.append(para[:limit])
                para = para[limit:]
            else:
                lines.append(para[:cut])
                para = para[cut + 1:]
        lines.append(para)
    return lines


def width_spec(atoms: list[str]) -> tuple[list[str], int]:
    """Split a trailing `, f N` (the box width in characters) off the atoms."""
    if len(atoms) >= 3 and atoms[-3] == "," and atoms[-2] == "f":
        return atoms[:-3], int(float(atoms[-1]))
    return atoms, 0


def text_box_size(text: str, kind: str, width_chars: int, font: int) -> tuple[int, int]:
    cw, lh = font_metrics(font)
    lines = wrap(text, width_chars or DEFAULT_WRAP)
    cols = width_chars or max(max(len(l) for l in lines), 1 if kind == "text" else 3)
    return cols * cw + 4, len(lines) * lh + 5


def _num(a: str, default: float = 0) -> float:
    try:
        return float(a)
    except ValueError:
        return default


def _named(a: str) -> bool:
    return a not in ("empty", "-", "", "\\$0-empty")


def iolets(name: str, args: list[str]) -> tuple[int, int] | None:
    """(inlets, outlets) of a vanilla object class with these arguments; None when unknown."""
    n = len(args)
    fixed = {
        "loadbang": (0, 1), "inlet": (0, 1), "inlet~": (0, 1), "outlet": (1, 0),
        "outlet~": (1, 0), "print": (1, 0), "pdcontrol": (1, 1), "oscformat": (1, 1),
        "oscparse": (1, 1), "netsend": (1, 2), "key": (0, 1), "keyup": (0, 1), "until": (2, 1),
        "change": (1, 1), "moses": (2, 2), "spigot": (2, 1), "metro": (2, 1), "random": (2, 1),
        "f": (2, 1), "float": (2, 1), "symbol": (2, 1), "int": (2, 1), "i": (2, 1),
        "bang": (1, 1), "b": (1, 1), "clip": (3, 1), "tabwrite": (2, 0), "tabread": (1, 1),
        "tabread4~": (2, 1), "tabplay~": (1, 2), "line~": (2, 1), "line": (3, 1),
        "soundfiler": (1, 2), "table": (0, 0), "notein": (0, 3), "bendin": (0, 2),
        "pgmin": (0, 2), "dac~": (2, 0), "adc~": (0, 2), "value": (1, 1), "v": (1, 1),
        "list trim": (1, 1), "list append": (2, 1), "list prepend": (2, 1),
        "list split": (2, 3), "list store": (2, 2), "list length": (1, 1), "list": (2, 1),
        "array size": (2, 1), "delay": (2, 1), "del": (2, 1), "swap": (2, 2), "timer": (2, 1),
    }
    if name == "list":
        sub = f"list {args[0]}" if args and args[0] in ("trim", "append", "prepend", "split",
                                                        "store", "length") else "list"
        return fixed[sub]
    if name == "array" and args and args[0] == "size":
        return fixed["array size"]
    if name in fixed:
        return fixed[name]
    if name in ("t", "trigger"):
        return 1, max(n, 1)
    if name in ("route", "sel", "select"):
        return (2 if n <= 1 else 1), max(n, 1) + 1
    if name == "pack":
        return max(n, 2), 1
    if name == "unpack":
        return 1, max(n, 2)
    if name in ("r", "receive", "r~", "receive~", "catch~"):
        return (0 if n else 1), 1
    if name in ("s", "send", "s~", "send~", "throw~"):
        return (1 if n else 2), 0
    if name in ("ctlin",):
        return 0, 3 - min(n, 2)
    if name in ("notein", "bendin", "pgmin", "touchin"):
        return 0, (3 if name == "notein" else 2) - (1 if n else 0)
    if name in ("netreceive",):
        udp = "-u" in args
        return 1, (1 if udp else 2) + (1 if "-f" in args else 0)
    if name in ("expr", "expr~", "fexpr~"):
        body = " ".join(args)
        ins = [int(m) for m in re.findall(r"\$[fisv](\d+)", body)]
        depth, outs = 0, 1
        for ch in body:  # one outlet per expression: commas outside parentheses
            depth += {"(": 1, ")": -1}.get(ch, 0)
            outs += ch == "," and depth == 0
        return max(ins + [1]), outs
    if re.fullmatch(r"[-+*/%<>=!&|^]{1,2}~?|mod|div|max|min|pow|atan2|wrap", name):
        return 2, 1
    return None


def iem_geometry(name: str, args: list[str]) -> tuple[int, int, str, str, str, int, int, int]:
    """(width, height, send, receive, label, ldx, ldy, label font size) of an IEM GUI."""
    a = args + ["0"] * 20
    if name in ("tgl", "toggle"):
        s = int(_num(a[0], 15))
        return s, s, a[2], a[3], a[4], int(_num(a[5])), int(_num(a[6])), int(_num(a[8], 10))
    if name == "bng":
        s = int(_num(a[0], 15))
        return s, s, a[4], a[5], a[6], int(_num(a[7])), int(_num(a[8])), int(_num(a[10], 10))
    if name in ("hsl", "vsl", "hslider", "vslider"):
        w, h = int(_num(a[0], 128)), int(_num(a[1], 15))
        return w, h, a[6], a[7], a[8], int(_num(a[9])), int(_num(a[10])), int(_num(a[12], 10))
    if name in ("nbx", "my_numbox"):
        digits, h, fs = int(_num(a[0], 5)), int(_num(a[1], 14)), int(_num(a[12], 10))
        w = fs * 31 * digits // 36 + h // 2 + 4  # my_numbox_calc_fontwidth
        return w, h, a[6], a[7], a[8], int(_num(a[9])), int(_num(a[10])), fs
    if name in ("hradio", "vradio"):
        s, count = int(_num(a[0], 15)), int(_num(a[3], 8))
        w, h = (s * count, s) if name == "hradio" else (s, s * count)
        return w, h, a[4], a[5], a[6], int(_num(a[7])), int(_num(a[8])), int(_num(a[10], 10))
    if name in ("cnv", "my_canvas"):
        return (int(_num(a[1], 100)), int(_num(a[2], 60)), a[3], a[4], a[5], int(_num(a[6])),
                int(_num(a[7])), int(_num(a[9], 10)))
    raise ValueError(name)


def _iem_box(index: int, x: int, y: int, name: str, args: list[str]) -> Box:
    w, h, send, receive, label, ldx, ldy, fs = iem_geometry(name, args)
    if name in ("hsl", "hslider"):   # slider margins (g_slider.c): 3 px left, 2 px right
        rect = Rect(x - 3, y, x + w + 2, y + h)
    elif name in ("vsl", "vslider"):  # 2 px above, 3 px below
        rect = Rect(x, y - 2, x + w, y + h + 3)
    else:
        rect = Rect(x, y, x + w, y + h)
    label_rect = None
    if _named(label):
        cw, lh = font_metrics(fs)
        lx, ly = x + ldx, y + ldy
        label_rect = Rect(lx, ly - lh // 2, lx + len(label) * cw, ly + lh - lh // 2)
    panel = name in ("cnv", "my_canvas")
    return Box(index, "obj", display_text([name] + args), rect, rect,
               0 if panel or _named(receive) else 1, 0 if panel or _named(send) else 1,
               label_rect, is_panel=panel)


def _atom_box(index: int, kind: str, atoms: list[str], font: int) -> Box:
    x, y = int(_num(atoms[0])), int(_num(atoms[1]))
    a = atoms[2:] + ["0"] * 10
    width = int(_num(a[0])) or ATOM_AUTO_WIDTH
    where, label, receive, send = int(_num(a[3])) & 3, a[4], a[5], a[6]
    fs = int(_num(a[7])) or font
    cw, lh = font_metrics(font)
    rect = Rect(x, y, x + width * cw + 2, y + lh + 4)
    label_rect = None
    if _named(label):
        lcw, llh = font_metrics(fs)
        lw = len(label) * lcw
        if where == 0:    # left
            lx, ly = rect.x1 - 3 - lw, rect.y1 + 2
        elif where == 1:  # right
            lx, ly = rect.x2 + 2, rect.y1 + 2
        elif where == 2:  # above
            lx, ly = rect.x1 - 1, rect.y1 - 1 - llh
        else:             # below
            lx, ly = rect.x1 - 1, rect.y2 + 3
        label_rect = Rect(lx, ly, lx + lw, ly + llh)
    return Box(index, kind, kind, rect, rect, 0 if _named(receive) else 1,
               0 if _named(send) else 1, label_rect)


def _text_box(index: int, kind: str, atoms: list[str], font: int) -> Box:
    x, y = int(_num(atoms[0])), int(_num(atoms[1]))
    body, wchars = width_spec(atoms[2:])
    text = display_text(body)
    w, h = text_box_size(text, kind, wchars, font)
    if kind == "text":
        rect = Rect(x, y + 1, x + w, y + h - 2)
        return Box(index, kind, text, rect, rect)
    rect = Rect(x, y, x + w, y + h)
    if kind == "msg":
        return Box(index, kind, text, rect, Rect(x, y, x + w + min(h // 4, 10), y + h), 1, 1)
    return Box(index, kind, text, rect, rect)


def _restore_box(index: int, atoms: list[str], sub: Canvas, parent_font: int) -> Box:
    """The box of a subpatch or graph in its parent (`#X restore x y pd name` / `graph`)."""
    x, y = int(_num(atoms[0])), int(_num(atoms[1]))
    ins = sum(1 for b in sub.boxes if b.text.split(" ")[0] in ("inlet", "inlet~"))
    outs = sum(1 for b in sub.boxes if b.text.split(" ")[0] in ("outlet", "outlet~"))
    if sub.gop is not None:
        rect = Rect(x, y, x + sub.gop.x2 - sub.gop.x1, y + sub.gop.y2 - sub.gop.y1)
        text = "graph" if atoms[2:3] == ["graph"] else display_text(atoms[2:])
        label = None
        if sub.arrays and not sub.hide_name:  # g_graph.c: the names stack up above the graph
            cw, lh = font_metrics(parent_font)
            label = Rect(x, y - 1 - len(sub.arrays) * lh,
                         x + max(map(len, sub.arrays)) * cw, y - 1)
            text = f"graph {' '.join(sub.arrays)}"
        return Box(index, "graph", text, rect, rect, ins, outs, label)
    box = _text_box(index, "obj", atoms, parent_font)
    box.inlets, box.outlets = ins, outs
    return box


def _abstraction(path: Path, name: str, seen: set) -> Canvas | None:
    """The top canvas of abstraction `name`.pd next to the patch, if there is one (and it is
    not the patch itself or one that contains it)."""
    file = path.parent / f"{name}.pd"
    if "/" in name or "\\" in name or not file.is_file() or file.resolve() in seen:
        return None
    return parse_patch(file, _seen=seen)[0]


def parse_patch(path: str | Path, _seen: set | None = None) -> list[Canvas]:
    """Every canvas of a .pd file (the patch, then its subpatches), with boxes and wires."""
    path = Path(path)
    seen = (_seen or set()) | {path.resolve()}
    stack: list[Canvas] = []
    done: list[Canvas] = []
    for rec in split_records(path.read_text()):
        if len(rec) < 2:
            continue
        head, kind, atoms = rec[0], rec[1], rec[2:]
        if head == "#N" and kind == "canvas":
            if not stack:  # the patch: "#N canvas x y width height font"
                font = int(_num(atoms[4], 12)) if len(atoms) >= 5 else 12
                stack.append(Canvas(path.name, min(PD_FONT_SIZES, key=lambda s: abs(s - font))))
            else:  # a subpatch or graph: "#N canvas x y width height name vis", parent's font
                name = atoms[4] if len(atoms) >= 5 else "pd"
                stack.append(Canvas(f"{stack[-1].name} > {name}", stack[-1].font))
            continue
        if head != "#X" or not stack:
            continue
        canvas = stack[-1]
        index = len(canvas.boxes)
        if kind == "coords":
            c = [_num(a) for a in atoms]
            if len(c) >= 7 and int(c[6]):  # any graph flag: graph-on-parent (canvas_setgraph)
                w, h = int(c[4]), int(c[5])
                mx, my = (int(c[7]), int(c[8])) if len(c) >= 9 else (0, 0)
                canvas.gop = Rect(mx, my, mx + w, my + h)
                canvas.hide_name = bool(int(c[6]) & 2)
                canvas.gop_area = len(c) >= 9  # an area of the canvas shows; else (arrays) not
        elif kind == "restore":
            sub = stack.pop()
            done.append(sub)
            parent = stack[-1]
            parent.boxes.append(_restore_box(len(parent.boxes), atoms, sub, parent.font))
        elif kind == "connect":
            canvas.wires.append(tuple(int(_num(a)) for a in atoms[:4]))
        elif kind == "obj" and len(atoms) > 2:
            cls, args = atoms[2], width_spec(atoms[3:])[0]
            if cls in IEM:
                canvas.boxes.append(_iem_box(index, int(_num(atoms[0])), int(_num(atoms[1])),
                                             cls, args))
                continue
            box = _text_box(index, "obj", atoms, canvas.font)
            abstraction = _abstraction(path, cls, seen)
            if abstraction is not None:
                box.inlets = sum(1 for b in abstraction.boxes if b.text.split(" ")[0] == "inlet")
                box.outlets = sum(1 for b in abstraction.boxes
                                  if b.text.split(" ")[0] == "outlet")
                if abstraction.gop is not None:
                    g = abstraction.gop
                    x, y = box.rect.x1, box.rect.y1
                    box.rect = box.shape = Rect(x, y, x + g.x2 - g.x1, y + g.y2 - g.y1)
            else:
                io = iolets(cls, [display_text([a]) for a in args])
                box.inlets, box.outlets = io if io is not None else (-1, -1)
            canvas.boxes.append(box)
        elif kind == "obj":  # an empty object box
            canvas.boxes.append(_text_box(index, "obj", atoms, canvas.font))
        elif kind in ("msg", "text"):
            canvas.boxes.append(_text_box(index, kind, atoms, canvas.font))
        elif kind in ("floatatom", "symbolatom", "listbox"):
            canvas.boxes.append(_atom_box(index, kind, atoms, canvas.font))
        elif kind == "array" and len(atoms) >= 4 and not int(_num(atoms[3])) & 8:  # 8: hidden
            canvas.arrays.append(display_text(atoms[:1]))
        # scalars and declarations draw nothing of their own here
    if stack:
        done.append(stack.pop())
    _fill_unknown_iolets(done)
    return [done[-1]] + done[:-1]


def _fill_unknown_iolets(canvases: list[Canvas]) -> None:
    """An object class missing from `iolets`: as many iolets as its wires use (their x is then
    an estimate; add the class to `iolets` for the exact one)."""
    for c in canvases:
        for b in c.boxes:
            if b.inlets < 0:
                b.exact_iolets = False
                b.inlets = max([i + 1 for s, o, d, i in c.wires if d == b.index] + [1])
                b.outlets = max([o + 1 for s, o, d, i in c.wires if s == b.index] + [1])


# ---------------------------------------------------------------------------------------------
# the check

@dataclass
class Footprint:
    box: Box
    rect: Rect
    what: str
    is_label: bool = False


def footprints(canvas: Canvas) -> list[Footprint]:
    """What covers the canvas: every box but the panel backgrounds, and every GUI label."""
    out = []
    for b in canvas.boxes:
        if not b.is_panel:
            out.append(Footprint(b, b.shape, b.name))
        if b.label is not None:
            out.append(Footprint(b, b.label, f"label of {b.name}", is_label=True))
    return out


def overlaps(canvas: Canvas) -> list[str]:
    """Pairs of footprints that cover each other, and boxes cut by the graph-on-parent edge."""
    found = []
    fps = footprints(canvas)
    for i, a in enumerate(fps):
        for b in fps[i + 1:]:
            if a.box is not b.box and a.rect.intersects(b.rect):
                found.append(f"{canvas.name}: {a.what} overlaps {b.what}")
    if canvas.gop is not None and canvas.gop_area:
        for f in fps:
            if f.rect.intersects(canvas.gop) and not f.rect.inside(canvas.gop):
                found.append(f"{canvas.name}: {f.what} is cut by the graph-on-parent edge")
    return found


def _iolet_x(r: Rect, i: int, n: int) -> int:
    """Left edge of iolet i of n, spread evenly over the box (glist_drawiofor)."""
    return r.x1 + (r.x2 - r.x1 - IOWIDTH) * i // (1 if n <= 1 else n - 1)


def wire_ends(canvas: Canvas, wire: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2) of a wire as linetraverser_next draws it."""
    src, outlet, sink, inlet = wire
    a, b = canvas.boxes[src], canvas.boxes[sink]

    def onset(r: Rect, i: int, n: int) -> int:
        return _iolet_x(r, i, n) + (IOWIDTH - 1) // 2

    return (onset(a.rect, outlet, a.outlets), a.rect.y2,
            onset(b.rect, inlet, b.inlets), b.rect.y1)


def segment_enters(x1: float, y1: float, x2: float, y2: float, r: Rect) -> bool:
    """Does the segment pass through the inside of r? (Liang-Barsky clipping)"""
    t0, t1 = 0.0, 1.0
    dx, dy = x2 - x1, y2 - y1
    for p, q in ((-dx, x1 - r.x1), (dx, r.x2 - x1), (-dy, y1 - r.y1), (dy, r.y2 - y1)):
        if p == 0:
            if q <= 0:
                return False
        else:
            t = q / p
            if p < 0:
                t0 = max(t0, t)
            else:
                t1 = min(t1, t)
            if t0 >= t1:
                return False
    return True


def _outlet_column(box: Box, outlet: int) -> tuple[int, int]:
    x = _iolet_x(box.rect, outlet, box.outlets)
    return x, x + IOWIDTH


def rides_a_bus(canvas: Canvas, wire: tuple[int, int, int, int], box: Box) -> bool:
    """True when the wire crosses `box` only inside the column of an outlet that is wired to the
    same inlet: a column of messages stacked above one inlet (as in gansynth-help.pd) draws
    their wires on top of each other, one line that reads as one bus."""
    src, outlet, sink, inlet = wire
    x1, y1, x2, y2 = wire_ends(canvas, wire)
    if y2 == y1:
        return False
    for s, o, d, i in canvas.wires:
        if s == box.index and (d, i) == (sink, inlet):
            left, right = _outlet_column(box, o)
            xs = [x1 + (x2 - x1) * (min(max(y, y1), y2) - y1) / (y2 - y1)
                  for y in (box.rect.y1, box.rect.y2)]
            if all(left - 1 <= x <= right + 1 for x in xs):
                return True
    return False


def wire_crossings(canvas: Canvas) -> list[str]:
    """Wires whose line runs through a footprint other than their own two boxes' (a bus of
    stacked messages excepted: `rides_a_bus`)."""
    found = []
    fps = footprints(canvas)
    for wire in canvas.wires:
        src, outlet, sink, inlet = wire
        ends = wire_ends(canvas, wire)
        for f in fps:
            if f.box.index in (src, sink):
                continue
            if segment_enters(*ends, f.rect.shrunk(1)) and not (
                    not f.is_label and rides_a_bus(canvas, wire, f.box)):
                found.append(f"{canvas.name}: the wire {canvas.boxes[src].name} outlet {outlet}"
                             f" -> {canvas.boxes[sink].name} inlet {inlet} crosses {f.what}")
    return found


@dataclass
class Report:
    patch: str
    overlaps: list[str]
    crossings: list[str]


def check(path: str | Path) -> Report:
    """Overlaps and wire crossings on every canvas of one .pd file."""
    canvases = parse_patch(path)
    return Report(Path(path).name, [o for c in canvases for o in overlaps(c)],
                  [w for c in canvases for w in wire_crossings(c)])


def table(reports: list[Report]) -> str:
    """A markdown table: overlaps and wire crossings per patch."""
    rows = [f"| {'patch':<22} | overlaps | wires through a box |",
            f"|{'-' * 24}|----------|{'-' * 21}|"]
    for r in reports:
        rows.append(f"| {r.patch:<22} | {len(r.overlaps):>8} | {len(r.crossings):>19} |")
    rows.append(f"| {'total':<22} | {sum(len(r.overlaps) for r in reports):>8} | "
                f"{sum(len(r.crossings) for r in reports):>19} |")
    return "\n".join(rows)


if __name__ == "__main__":
    verbose = "-v" in sys.argv
    files = [a for a in sys.argv[1:] if a != "-v"]
    reports = [check(f) for f in files]
    print(table(reports))
    if verbose:
        for r in reports:
            for line in r.overlaps + r.crossings:
                print(line)
