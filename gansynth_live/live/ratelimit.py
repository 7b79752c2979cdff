"""Bounded work per second: a token bucket, and a log that passes only so many lines.

A flood (thousands of OSC datagrams a second from a local sender, JACK MIDI garbage,
a stream of bad input each worth a log line) must cost the audio process little more
than reading it: what is beyond the rate is dropped and counted, never queued.
"""
from __future__ import annotations

import threading
import time
from typing import Callable


class RateLimit:
    """`rate` events per second on average, in bursts of up to `burst` (a token bucket).
    `clock` is injectable (seconds, monotonic) so tests need no sleeps."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        if not rate > 0 or not burst >= 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got {rate}, {burst}")
        self.rate = float(rate)
        self.burst = float(burst)
        self.clock = clock
        self._tokens = self.burst
        self._last = clock()

    def allow(self) -> bool:
        """Take one token if there is one (one thread calls this: no lock)."""
        now = self.clock()
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True


class LimitedLog:
    """Passes log lines to `log` at up to `rate` per second (bursts of `burst`); the lines
    dropped in between are counted, and said at the next line that passes."""

    def __init__(self, log: Callable[[str], None], rate: float = 1.0, burst: float = 10,
                 clock: Callable[[], float] = time.monotonic):
        self.log = log
        self._limit = RateLimit(rate, burst, clock)
        self._lock = threading.Lock()  # OSC, MIDI and the render worker all log
        self.suppressed = 0  # lines not passed on, all together
        self._pending = 0    # of which not yet said

    def __call__(self, message: str) -> None:
        with self._lock:
            if not self._limit.allow():
                self.suppressed += 1
                self._pending += 1
                return
            pending, self._pending = self._pending, 0
        if pending:
            self.log(f"({pending} log lines suppressed: more than the log's rate)")
        self.log(message)


__all__ = ["LimitedLog", "RateLimit"]
