"""Where OSC replies go: back to the client that asked, or where it subscribed.

A client is one sending socket, (host, port). Its replies go back to that socket, unless
it subscribed with `/notify 1 reply_port`: then they go to (host, reply_port) instead
(Pd's [netsend] cannot receive on the socket it sends from, so Pd names a port). Two
programs on one host (Pd and a python-osc tool, say) are two clients and each gets its
own replies.

The table is bounded: at most `MAX_CLIENTS` subscribed clients of `MAX_PORTS` reply
ports each; a subscription lapses after `EXPIRE_SECONDS` without a datagram from its
client (any message renews it, /notify too). A thread-safe object: the OSC thread
subscribes, the reply thread looks up.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

MAX_CLIENTS = 32
MAX_PORTS = 4
# A day: a Pd patch subscribes once when it opens and may then stay silent through a long
# break; the table stays bounded by MAX_CLIENTS whatever this is.
EXPIRE_SECONDS = 86400.0

Address = tuple[str, int]


class Clients:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._ports: dict[Address, list[int]] = {}
        self._heard: dict[Address, float] = {}
        self._lock = threading.Lock()
        self.expired = 0

    def heard(self, client: Address) -> None:
        """A datagram came from `client`: its subscription (if any, and not lapsed
        already) lives on."""
        if client in self._heard:
            with self._lock:
                last = self._heard.get(client)
                if last is None:
                    return
                if self.clock() - last > EXPIRE_SECONDS:
                    self._drop(client)
                    self.expired += 1
                else:
                    self._heard[client] = self.clock()

    def subscribe(self, client: Address, port: int) -> None:
        """Replies to `client` go to (its host, `port`); ValueError if the table is full."""
        with self._lock:
            self._expire()
            ports = self._ports.get(client)
            if ports is None:
                if len(self._ports) >= MAX_CLIENTS:
                    raise ValueError(f"too many subscribed clients ({MAX_CLIENTS}); "
                                     f"unsubscribe one (/notify 0) or wait for one to lapse "
                                     f"({EXPIRE_SECONDS:g} s without a message)")
                ports = self._ports[client] = []
            if port not in ports:
                if len(ports) >= MAX_PORTS:
                    raise ValueError(f"a client may subscribe at most {MAX_PORTS} reply ports")
                ports.append(port)
            self._heard[client] = self.clock()

    def unsubscribe(self, client: Address, port: int) -> None:
        with self._lock:
            ports = self._ports.get(client, [])
            if port in ports:
                ports.remove(port)
            if not ports:
                self._drop(client)

    def targets(self, client: Address) -> list[Address]:
        """Where a reply to `client` goes."""
        with self._lock:
            ports = self._ports.get(client)
            if ports and self.clock() - self._heard[client] > EXPIRE_SECONDS:
                self._expire()
                ports = None
            return [(client[0], port) for port in ports] if ports else [client]

    def __len__(self) -> int:
        """Reply ports subscribed, all clients together."""
        with self._lock:
            return sum(len(ports) for ports in self._ports.values())

    def _expire(self) -> None:
        now = self.clock()
        for client in [c for c, t in self._heard.items() if now - t > EXPIRE_SECONDS]:
            self._drop(client)
            self.expired += 1

    def _drop(self, client: Address) -> None:
        self._ports.pop(client, None)
        self._heard.pop(client, None)


__all__ = ["Clients", "EXPIRE_SECONDS", "MAX_CLIENTS", "MAX_PORTS"]
