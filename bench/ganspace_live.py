"""A new GANSpace coefficient point against a new grid point: seconds to playable.

    python bench/ganspace_live.py [--rounds 3] [--model DIR]

The live server's engine and OSC server (in this process, no audio device) with the
render process gansynth-live uses, on the embedded default model unless --model. After
the first point is ready, each round sends `/timbre/xy` to a grid point not rendered
yet and waits for its `/done` (the point's whole pitch range cached), then
`/timbre/pca` to a coefficient point not rendered yet and waits likewise. Between the
moves the render worker keeps filling neighbours in the background, as it does live,
so each move waits for the batch in progress first, whichever kind it is.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from live_helpers import OscClient  # noqa: E402

from gansynth_live.live.engine import Engine  # noqa: E402
from gansynth_live.live.osc import OscServer  # noqa: E402
from gansynth_live.live.renderer import ProcessRenderer  # noqa: E402

RATE = 48000
# Far from each other and from the first point (0, 0) with no edit, so none of them is
# a planned neighbour of another: each is rendered from nothing.
XY = [(1.0, 1.0), (0.0, 1.0), (1.0, 0.0), (0.5, 0.5)]
PCA = [(2.0,), (0.0, -2.0), (-2.0, 0.0, 2.0), (0.0, 0.0, 0.0, -2.0)]


def timed(client: OscClient, address: str, *args) -> float:
    start = time.perf_counter()
    client.send(address, *args)
    client.expect("/done", 600)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, len(XY) + 1))
    parser.add_argument("--model")
    args = parser.parse_args()
    renderer = ProcessRenderer(args.model, RATE, threads=max(1, (os.cpu_count() or 2) - 1))
    engine = Engine(renderer.facts, renderer, sample_rate=RATE, log=print)
    engine.start()
    start = time.perf_counter()
    assert engine.wait_ready(900)
    print(f"{renderer.facts.name}: first point in {time.perf_counter() - start:.1f} s, "
          f"{len(renderer.facts.pitches)} pitches, "
          f"{renderer.facts.ganspace_components} GANSpace directions")
    osc = OscServer(engine, port=0, log=print)
    osc.start()
    client = OscClient(osc.port)
    xy, pca = [], []
    try:
        for i in range(args.rounds):
            xy.append(timed(client, "/timbre/xy", *XY[i]))
            pca.append(timed(client, "/timbre/pca", *PCA[i]))
            print(f"round {i + 1}: /timbre/xy {xy[-1]:.1f} s, /timbre/pca {pca[-1]:.1f} s",
                  flush=True)
    finally:
        client.close()
        osc.close()
        engine.stop()
    for name, times in (("/timbre/xy", xy), ("/timbre/pca", pca)):
        print(f"{name}: median {statistics.median(times):.1f} s, "
              f"{min(times):.1f}..{max(times):.1f} s")


if __name__ == "__main__":
    main()
