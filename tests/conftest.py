"""Shared test setup: quiet TensorFlow, tiny models."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
