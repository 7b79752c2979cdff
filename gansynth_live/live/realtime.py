"""Real-time scheduling for the audio callback's thread, where the OS allows it.

The callback's thread runs SCHED_FIFO at `AUDIO_PRIORITY` (unless JACK made it real-time
already), so that other processes do not delay its start. It still takes the GIL each
block: a thread of this process holding the GIL when another process preempts it makes
the callback wait, and that is why the model runs in another process and every other
thread here does bounded work (rate limits, bounded queues).

The other threads stay ordinary. Tried and measured (bench/live_latency.py, 2-core VM
with other jobs running): making them SCHED_FIFO too (priority 10) gave 3 underflows in
2 minutes of dense playing where ordinary threads gave 18 in another run, but two of
three runs had a callback held for 0.6 and 4.4 s, which no run without them had. The
likely cause: a thread that is not real-time (the main thread, a start-up thread)
holding the GIL, or the GIL's own mutex, starved by the real-time ones.

Where the OS refuses (no CAP_SYS_NICE and RLIMIT_RTPRIO 0, or no sched_setscheduler)
the thread runs as it is; `audio_realtime` in /status says which.
"""
from __future__ import annotations

import os
import threading

AUDIO_PRIORITY = 60   # below JACK's own threads (jackd -P 70), above everything ordinary


def realtime_thread(priority: int = AUDIO_PRIORITY) -> bool:
    """Give the calling thread SCHED_FIFO at `priority`, unless it has a real-time policy
    already (JACK gives its clients' threads one when jackd runs with --realtime);
    whether it has one now."""
    if not hasattr(os, "sched_setscheduler"):
        return False
    thread = threading.get_native_id()
    try:
        if os.sched_getscheduler(thread) in (os.SCHED_FIFO, os.SCHED_RR):
            return True
        os.sched_setscheduler(thread, os.SCHED_FIFO, os.sched_param(priority))
        return True
    except OSError:
        return False


__all__ = ["AUDIO_PRIORITY", "realtime_thread"]
