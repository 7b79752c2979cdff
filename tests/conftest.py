"""Shared test setup: quiet TensorFlow, tiny models."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# A real JACK dummy server for the live tests (session-scoped `jack`, per-test `jack_env`).
from jack_helpers import jack, jack_env  # noqa: E402,F401
