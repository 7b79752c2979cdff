"""Importing TensorFlow without its start-up log.

At import, TensorFlow's C++ side logs what it found (oneDNN custom operations, the CPU
instructions it was built for, CUDA plugins). TF_CPP_MIN_LOG_LEVEL=3 hides most of it,
but TensorFlow 2.21 writes the oneDNN line (on CPUs where oneDNN is on by default, such
as those with AVX-512) through absl before absl's log is set up, whatever the variable
says. So the commands import TensorFlow once with file descriptor 2 pointed at a
temporary file, then pass on every captured line except those INFO and WARNING log
lines: errors, Python warnings and anything else still reach the user.

The commands pass their --verbose; a library user who set TF_CPP_MIN_LOG_LEVEL=0 gets
the whole log too.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile

# absl/glog records at INFO or WARNING level ("I0000 00:00:1796668304.757034  3169
# port.cc:153] ..."), and absl's notice that it logs to stderr until it is set up.
_LOG_LINE = re.compile(rb"^[IW]\d{4} [\d:.]+ +\d+ [^\]]*\] ")
_ABSL_NOTICE = b"WARNING: All log messages before absl::InitializeLog() is called are written"


def is_start_up_log(line: bytes) -> bool:
    """Whether one captured line of stderr is TensorFlow start-up log to hide."""
    return bool(_LOG_LINE.match(line)) or line.startswith(_ABSL_NOTICE)


def import_tensorflow(verbose: bool | None = None):
    """Import TensorFlow (once; later calls return the module at once), its start-up log
    hidden unless `verbose` (None: unless TF_CPP_MIN_LOG_LEVEL is 0); the module."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    if verbose is None:
        verbose = os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if verbose else "3"
    if verbose:
        import tensorflow
        return tensorflow
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = b"".join(line for line in captured if not is_start_up_log(line))
            while kept:
                kept = kept[os.write(2, kept):]
    return tensorflow


__all__ = ["import_tensorflow", "is_start_up_log"]
