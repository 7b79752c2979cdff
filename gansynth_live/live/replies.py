"""The reply thread: the one thread that sends OSC replies and writes /render files.

The OSC thread and the render worker only queue work here, so neither waits on a slow
disk or a full socket, and a reply's destination is looked up (`clients.Clients`) at
the moment it is sent. Jobs run in the order queued: a /synced queued after a /done is
sent after it. The queue is bounded (`MAX_QUEUED`); a job beyond it is dropped and
counted (`dropped`), the sender of a flood cannot make it grow.
"""
from __future__ import annotations

import queue
import socket
import threading
from typing import Any, Callable

import numpy as np
from pythonosc.osc_message_builder import OscMessageBuilder

from gansynth_live.live.clients import Address, Clients

MAX_QUEUED = 1024
MAX_FAIL_ADDRESS = 80    # characters of an address echoed in /fail
MAX_FAIL_REASON = 400    # characters of a reason


class Replier:
    def __init__(self, sock: socket.socket, clients: Clients,
                 log: Callable[[str], None] = print):
        self.sock = sock
        self.clients = clients
        self.log = log
        self.dropped = 0      # jobs not queued: the queue was full
        self.send_errors = 0  # datagrams the OS would not send (receiver gone, ...)
        self._jobs: queue.Queue = queue.Queue(MAX_QUEUED)
        self._thread = threading.Thread(target=self._run, name="osc-replies", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, then stop."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(timeout)

    def reply(self, client: Address, address: str, *args: Any) -> None:
        """Queue `address args` for `client` (to where it subscribed, or back to it)."""
        self.run(lambda: self.send(client, address, *args))

    def fail(self, client: Address, address: str, reason: str) -> None:
        """Queue `/fail address reason`, both cut to a bounded length."""
        if len(address) > MAX_FAIL_ADDRESS:
            address = address[:MAX_FAIL_ADDRESS] + "..."
        if len(reason) > MAX_FAIL_REASON:
            reason = reason[:MAX_FAIL_REASON] + "..."
        self.reply(client, "/fail", address, reason)

    def run(self, job: Callable[[], None]) -> None:
        """Queue `job` to run on the reply thread (it may call `send`)."""
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            self.dropped += 1

    def send(self, client: Address, address: str, *args: Any) -> None:
        """Send now (reply thread only)."""
        builder = OscMessageBuilder(address)
        for arg in args:
            builder.add_arg(osc_value(arg))
        datagram = builder.build().dgram
        for target in self.clients.targets(client):
            try:
                self.sock.sendto(datagram, target)
            except OSError:
                self.send_errors += 1  # the receiver went away; nothing to do

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception as e:  # noqa: BLE001 - one bad job must not end the replies
                self.log(f"osc: reply failed: {type(e).__name__}: {e}")


def osc_value(value: Any):
    """int32, float32 or string: what every OSC client (Pd's [oscparse] too) reads."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value) if -2**31 <= value < 2**31 else float(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return str(value)


__all__ = ["MAX_QUEUED", "Replier", "osc_value"]
