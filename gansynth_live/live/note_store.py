"""The first timbre point's notes on disk, so that the next start is ready in seconds.

Rendering the first point takes the render process most of the start-up (importing
TensorFlow, loading the model, then a whole pitch range on the cores it may use).
Every start of the same model at the same device rate with the same first anchor seed
renders the same notes, so the first start stores them (`save`) and the next ones load
them (`load`): the server plays from them at once while the render process starts in
the background.

An entry is named by a hash of everything that makes those notes: the model
directory's files (names, sizes, modification times), the device rate, the seed of
anchor 0 (the first point, (0, 0), is anchor 0 itself), the source of the code that
renders (`RENDERING_CODE` and `live/renderer.py`) and TensorFlow's version. A
change to any of them is a different entry; the newest `KEEP` entries are kept.

`make setup` fills the store for the default model at 48 and 44.1 kHz (`fill`, or
`python -m gansynth_live.live.note_store`), so that the first start after setting up is
ready in seconds too: importing TensorFlow and loading the model alone take about 10 s
on the 2-core development machine when it is busy.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from gansynth_live.live.facts import ModelFacts
from gansynth_live.sustain import Loop, RenderedNote

KEEP = 4
# The modules whose code makes a rendered note (loading, generating, the loop).
RENDERING_CODE = ("config", "latent", "magenta_checkpoint", "model", "model_dir", "networks",
                  "pitch_map", "spectral", "sustain")
STALE_TEMPORARY_S = 86400.0  # a temporary file this old was left by a killed writer
PACKAGE = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = PACKAGE / "models" / "default"  # model_dir.DEFAULT_MODEL_DIR, without TF


def default_directory() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gansynth-live"


def _key(model_path: str | None, device_rate: int, seed: int) -> str:
    digest = hashlib.sha256()
    model = Path(model_path).resolve() if model_path else DEFAULT_MODEL
    for root, dirs, files in os.walk(model):
        dirs.sort()
        for name in sorted(files):
            stat = os.stat(os.path.join(root, name))
            digest.update(f"{os.path.relpath(os.path.join(root, name), model)} "
                          f"{stat.st_size} {stat.st_mtime_ns}\n".encode())
    for source in [*(PACKAGE / f"{name}.py" for name in RENDERING_CODE),
                   PACKAGE / "live" / "renderer.py"]:
        digest.update(source.read_bytes())
    try:
        tensorflow = importlib.metadata.version("tensorflow")
    except importlib.metadata.PackageNotFoundError:
        tensorflow = "none"
    digest.update(f"{model} {device_rate} {seed} {tensorflow}".encode())
    return digest.hexdigest()[:32]


class NoteStore:
    """The stored first point of `model_path` (None: the default model) at `device_rate`
    for anchor 0's `seed`, in `directory`."""

    def __init__(self, directory: str | os.PathLike, model_path: str | None,
                 device_rate: int, seed: int):
        self.directory = Path(directory)
        self.path = self.directory / f"first-point-{_key(model_path, device_rate, seed)}.npz"

    def load(self) -> tuple[ModelFacts, dict[int, RenderedNote]] | None:
        """(the model's facts, {pitch: note}), or None if not stored (or unreadable)."""
        try:
            with np.load(self.path, allow_pickle=False) as stored:
                facts = ModelFacts(**{**json.loads(str(stored["facts"])),
                                      "pitches": tuple(stored["pitches"].tolist())})
                notes = {}
                for i, pitch in enumerate(facts.pitches):
                    start, end, seam = (int(v) for v in stored["loops"][i])
                    notes[pitch] = RenderedNote(stored[f"samples_{pitch}"],
                                                int(stored["lengths"][i]),
                                                Loop(start, end, seam, float(stored["matches"][i])))
        except (OSError, KeyError, ValueError, TypeError):
            return None
        return facts, notes

    def save(self, facts: ModelFacts, notes: dict[int, RenderedNote]) -> None:
        """Store the notes (written to a temporary file, then renamed into place)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        arrays = {f"samples_{pitch}": notes[pitch].samples for pitch in facts.pitches}
        description = {k: v for k, v in vars(facts).items() if k in
                       ("name", "sample_rate", "num_samples", "channels", "latent_size",
                        "ganspace_components")}
        fd, temporary = tempfile.mkstemp(prefix=".first-point-", suffix=".npz",
                                         dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as file:
                np.savez(file, facts=json.dumps(description), pitches=np.array(facts.pitches),
                         lengths=np.array([notes[p].length for p in facts.pitches]),
                         loops=np.array([notes[p].loop[:3] for p in facts.pitches], np.int64),
                         matches=np.array([notes[p].loop.match for p in facts.pitches]),
                         **arrays)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        for old in sorted(self.directory.glob("first-point-*.npz"),
                          key=lambda p: p.stat().st_mtime, reverse=True)[KEEP:]:
            old.unlink(missing_ok=True)
        # A writer killed mid-save (kill -9, power cut) leaves its temporary file.
        for stale in self.directory.glob(".first-point-*.npz"):
            try:
                if time.time() - stale.stat().st_mtime > STALE_TEMPORARY_S:
                    stale.unlink()
            except FileNotFoundError:
                pass


def fill(model_path: str | None, rates: Sequence[int], seed: int = 0,
         directory: str | os.PathLike | None = None,
         log: Callable[[str], None] = print) -> list[Path]:
    """Render and store the first timbre point at each device rate in `rates` that is not
    stored yet, as the server's first start would (its render process, its engine);
    the entries, stored now or before."""
    from gansynth_live.live.engine import Engine
    from gansynth_live.live.renderer import ProcessRenderer

    directory = Path(directory) if directory is not None else default_directory()
    paths = []
    for rate in rates:
        store = NoteStore(directory, model_path, rate, seed)
        paths.append(store.path)
        if store.load() is not None:
            log(f"{rate} Hz: stored already ({store.path})")
            continue
        renderer = ProcessRenderer(model_path, rate)
        engine = Engine(renderer.facts, renderer, sample_rate=rate,
                        seeds=(seed, *range(1, 4)), log=log)
        try:
            engine.start()
            engine.wait_ready()
            point = engine.timbre.current_point()
            store.save(engine.facts, {pitch: engine.cache.get(point, pitch)
                                      for pitch in engine.facts.pitches})
        finally:
            engine.stop()
        log(f"{rate} Hz: stored {store.path}")
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m gansynth_live.live.note_store",
        description="Store the first timbre point's notes for gansynth-live's next start.")
    p.add_argument("--model", help="model directory (default: the embedded default model)")
    p.add_argument("--sample-rate", type=int, nargs="+", default=[48000, 44100],
                   help="device rates to store it for (default 48000 44100)")
    p.add_argument("--seed", type=int, default=0, help="anchor 0's seed (default 0)")
    p.add_argument("--note-store", metavar="DIR", help="the store (default: gansynth-live's)")
    args = p.parse_args(argv)
    fill(args.model, args.sample_rate, args.seed, args.note_store,
         log=lambda message: print(f"note store: {message}", flush=True))
    return 0


__all__ = ["NoteStore", "default_directory", "fill"]


if __name__ == "__main__":
    raise SystemExit(main())
