"""Scheduling for the audio process: the callback's thread real-time, the others first
in line among ordinary ones, where the OS allows it.

The callback's thread runs SCHED_FIFO at `AUDIO_PRIORITY` (unless JACK made it real-time
already), so that other processes do not delay its start. It still takes the GIL each
block, and waits for it while another thread of this process holds it. That is why the
model runs in another process and every other thread here does bounded work (rate
limits, bounded queues). Measured (a traced callback, 2-core VM, a CPU hog on one core):
the callbacks that missed their block did not run long (at most 1.2 ms of CPU); they
started late, 6 to 67 ms after JACK called PortAudio, waiting for the GIL.

A short hold becomes a long wait when its thread waits for a CPU meanwhile: preempted
while it holds the GIL, or woken to take it over (a thread that asked for the GIL while
the callback ran gets it before the callback goes on). At nice 0 such a thread can wait
a whole time slice of any other job. So the other threads get nice `CONTROL_NICE`
(`favour_threads`): still ordinary threads, which cannot starve anything, but first in
line among them. Making them SCHED_FIFO instead was tried and left out: one run of 2
minutes of dense playing gave 3 underflows where ordinary threads gave 18 in another,
but two of three held a callback for 0.6 and 4.4 s, likely a thread that is not
real-time (the main thread, a start-up thread) holding the GIL, or its mutex, starved.

Where the OS refuses (no CAP_SYS_NICE, RLIMIT_RTPRIO 0 or RLIMIT_NICE 0) the threads run
as they are; `audio_realtime` and `control_nice` in /status say what they got.
"""
from __future__ import annotations

import os
import threading

AUDIO_PRIORITY = 60   # below JACK's own threads (jackd -P 70), above everything ordinary
CONTROL_NICE = -10    # the other threads of the audio process: ordinary, but first in line


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


def favour_threads(nice: int = CONTROL_NICE) -> int:
    """Give the calling thread nice `nice` (or the lowest the OS allows above it); the
    threads it starts from now on inherit it (a Linux thread has its own nice value).
    The nice value it has now."""
    thread = threading.get_native_id()
    for value in range(nice, 0):
        try:
            os.setpriority(os.PRIO_PROCESS, thread, value)
            break
        except (OSError, AttributeError):
            continue
    try:
        return os.getpriority(os.PRIO_PROCESS, thread)
    except (OSError, AttributeError):
        return 0


__all__ = ["AUDIO_PRIORITY", "CONTROL_NICE", "favour_threads", "realtime_thread"]
