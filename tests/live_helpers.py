"""Shared by the live tests: a tiny model, engines that are ready to play, an OSC client."""
from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
from pythonosc import osc_message
from pythonosc.osc_message_builder import OscMessageBuilder

import gansynth_live as gl
from gansynth_live.live.engine import Engine
from gansynth_live.live.facts import ModelFacts
from gansynth_live.live.renderer import InProcessRenderer

PITCHES = tuple(range(58, 63))
RATE = 48000


@pytest.fixture(scope="session")
def tiny_model():
    """The `tiny` preset (1 s notes at 16 kHz), 5 pitches, seeded random weights."""
    return gl.Model(gl.preset("tiny"), PITCHES, name="tiny-live")


def engine_for(model, renderer=None, **options) -> Engine:
    """An engine (not started) that renders with `renderer` (default: `model` in this
    process)."""
    settings = dict(sample_rate=RATE, blocksize=256, grid=3, cache_bytes=64 << 20,
                    log=lambda message: None)
    settings.update(options)
    renderer = renderer or InProcessRenderer(model, settings["sample_rate"])
    return Engine(ModelFacts.of(model), renderer, **settings)


class GatedRenderer(InProcessRenderer):
    """Renders only while `gate` is set: a test holds renders back with `gate.clear()`
    and knows they are waiting, instead of sleeping and hoping."""

    def __init__(self, model, device_rate: int = RATE):
        super().__init__(model, device_rate)
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()  # a render is held at the gate

    def __call__(self, z, pitches, ganspace=None):
        if not self.gate.is_set():
            self.waiting.set()
            self.gate.wait()
        return super().__call__(z, pitches, ganspace)


def make_engine(model, **options) -> Engine:
    """A started engine whose first timbre point is rendered."""
    engine = engine_for(model, **options)
    engine.start()
    assert engine.wait_ready(60), "the first timbre point did not render"
    return engine


def play(engine: Engine, seconds: float, blocksize: int = 256) -> np.ndarray:
    """Run the mixer for `seconds` in blocks (as the audio callback would) and return it."""
    blocks = []
    out = np.zeros((blocksize, engine.channels), np.float32)
    for _ in range(int(round(seconds * engine.sample_rate / blocksize))):
        engine.mixer.process(out)
        blocks.append(out.copy())
    return np.concatenate(blocks)


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port() -> int:
    """A UDP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OscClient:
    """A real UDP socket on 127.0.0.1 that sends OSC and reads the replies sent to it."""

    def __init__(self, port: int):
        self.target = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def send(self, address: str, *args) -> None:
        builder = OscMessageBuilder(address)
        for arg in args:
            builder.add_arg(arg)
        self.sock.sendto(builder.build().dgram, self.target)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def receive(self, timeout: float = 10.0) -> tuple[str, list]:
        self.sock.settimeout(timeout)
        data, _ = self.sock.recvfrom(65535)
        message = osc_message.OscMessage(data)
        return message.address, list(message.params)

    def expect(self, address: str, timeout: float = 10.0) -> list:
        """The next reply with `address` (others in between are skipped)."""
        end = time.monotonic() + timeout
        while True:
            got, params = self.receive(max(0.01, end - time.monotonic()))
            if got == address:
                return params
            if time.monotonic() > end:
                raise AssertionError(f"no {address} reply")

    def status(self) -> dict:
        self.send("/status")
        params = self.expect("/status.reply")
        return dict(zip(params[::2], params[1::2]))

    def close(self) -> None:
        self.sock.close()


class FakeClock:
    """A monotonic clock that moves only when told (for rate limits and expiry)."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
