"""Importing TensorFlow without its start-up log.

At import, TensorFlow's C++ side logs what it found (oneDNN custom operations, the CPU
instructions it was built for, CUDA plugins). TF_CPP_MIN_LOG_LEVEL hides most of it,
but TensorFlow 2.21 writes the oneDNN line (on CPUs where oneDNN is on by default, such
as those with AVX-512) through absl before absl's log is set up, whatever the variable
says. So TensorFlow is imported once with file descriptor 2 pointed into a pipe, read by
a small filter process that passes on every line except those INFO and WARNING log
lines: errors, Python warnings and anything else still reach the user, even the last
words of an import that aborts the process (a fatal CPU-instruction check does).

The commands pass their --verbose (False: the C++ log's errors hidden too, for the
whole run: the command reports real failures itself); library users keep their
TF_CPP_MIN_LOG_LEVEL, and with 0 see the whole log.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

# absl/glog records at INFO or WARNING level ("I0000 00:00:1796668304.757034  3169
# port.cc:153] ..."), and absl's notice that it logs to stderr until it is set up.
_LOG_LINE = re.compile(rb"^[IW]\d{4} [\d:.]+ +\d+ [^\]]*\] ")
_ABSL_NOTICE = b"WARNING: All log messages before absl::InitializeLog() is called are written"

# The filter process: stdin line by line to stderr, less the log lines above.
_FILTER = f"""
import re, sys
log = re.compile({_LOG_LINE.pattern!r})
for line in sys.stdin.buffer:
    if not (log.match(line) or line.startswith({_ABSL_NOTICE!r})):
        sys.stderr.buffer.write(line)
        sys.stderr.buffer.flush()
"""


def is_start_up_log(line: bytes) -> bool:
    """Whether one line of stderr is TensorFlow start-up log to hide."""
    return bool(_LOG_LINE.match(line)) or line.startswith(_ABSL_NOTICE)


def import_tensorflow(verbose: bool | None = None):
    """Import TensorFlow, its start-up log hidden unless `verbose` (None: as
    TF_CPP_MIN_LOG_LEVEL says, all of it at 0); the module."""
    if "tensorflow" in sys.modules:
        import tensorflow  # waits for an import in progress in another thread
        return tensorflow
    if verbose is not None:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if verbose else "3"
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        import tensorflow
        return tensorflow
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    log_filter = subprocess.Popen([sys.executable, "-c", _FILTER], stdin=read_end,
                                  stdout=subprocess.DEVNULL)  # its stderr: ours, as it is
    os.close(read_end)
    saved = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        import tensorflow
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer gone: the filter ends
        os.close(saved)
        log_filter.wait()
    return tensorflow


__all__ = ["import_tensorflow", "is_start_up_log"]
