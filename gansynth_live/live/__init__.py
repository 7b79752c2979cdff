"""Real-time GANSynth: the live server's audio process, and the render process it starts.

    engine.py       the control API: notes, timbre moves, readiness, the status report
    planner.py      what the render worker renders next (and /render's bounded queue)
    facts.py        what the audio process knows of the model (it never loads it)
    timbre.py       four anchors, the (x, y) position and the grid of cached points
    cache.py        rendered notes by (grid point, pitch), memory budget, stand-ins on a miss
    worker.py       the render thread (batches, handing notes over)
    renderer.py     the render process (the only one running the model) and in-process
    note_store.py   the first timbre point's notes on disk, for a start in seconds
    voices.py       voices and the mixer: the audio callback's code
    audio.py        the sounddevice stream and the --record writer
    realtime.py     real-time scheduling for the callback and the threads sharing its GIL
    osc.py          the OSC server: address table, limits, async bookkeeping
    oscwire.py      strict OSC decoding
    clients.py      where replies go: per client, bounded, expiring subscriptions
    replies.py      the one thread that sends replies and writes /render files
    render_files.py /render's directory: no symbolic link followed, no race
    ratelimit.py    token buckets and a rate-limited log
    midi_input.py   MIDI input (mido + python-rtmidi)
    cli.py          gansynth-live
"""
from gansynth_live.live.engine import Engine

__all__ = ["Engine"]
