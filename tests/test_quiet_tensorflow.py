"""TensorFlow's start-up log is hidden by the commands, and nothing else is."""
import subprocess
import sys
import textwrap

from gansynth_live.quiet_tensorflow import is_start_up_log

# Lines TensorFlow 2.21 wrote at import on this project's CPU machines.
ONEDNN = (b"I0000 00:00:1796668304.757034    3169 port.cc:153] oneDNN custom operations are "
          b"on. You may see slightly different numerical results due to floating-point "
          b"round-off errors from different computation orders.\n")
ABSL = (b"WARNING: All log messages before absl::InitializeLog() is called are written to "
        b"STDERR\n")


def test_start_up_log_lines_are_told_from_everything_else():
    assert is_start_up_log(ONEDNN) and is_start_up_log(ABSL)
    assert is_start_up_log(b"W0000 00:00:1796668304.757034  12 cpu_feature_guard.cc:227] This binary...\n")
    # Errors and fatal records, Python warnings and tracebacks are passed on.
    assert not is_start_up_log(b"E0000 00:00:1.5  12 meta_optimizer.cc:966] remapper failed\n")
    assert not is_start_up_log(b"F0000 00:00:1.5  12 x.cc:1] Check failed\n")
    assert not is_start_up_log(b"UserWarning: something the user should see\n")
    assert not is_start_up_log(b"Traceback (most recent call last):\n")
    assert not is_start_up_log(b"I0000 is how a message might start\n")


def run(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", **env})


def test_the_import_says_nothing_and_other_stderr_output_survives():
    # Even asked for the whole C++ log by the environment, a command that is not verbose
    # shows none of it; what the process writes to stderr itself still arrives, in order.
    result = run("""
        import os, sys
        from gansynth_live.quiet_tensorflow import import_tensorflow
        print("before", file=sys.stderr, flush=True)
        tf = import_tensorflow(verbose=False)
        os.write(2, b"after\\n")
        print(tf.constant(2.0).numpy() * 2)
    """, TF_CPP_MIN_LOG_LEVEL="0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == b"4.0"
    assert result.stderr == b"before\nafter\n"


def test_verbose_and_the_environment_show_the_log():
    code = """
        from gansynth_live.quiet_tensorflow import import_tensorflow
        import_tensorflow({})
    """
    verbose = run(code.format("verbose=True"))
    by_environment = run(code.format(""), TF_CPP_MIN_LOG_LEVEL="0")
    for result in (verbose, by_environment):
        assert result.returncode == 0, result.stderr
    # What TensorFlow logs at import depends on the CPU and the build; at level 0 it says
    # at least which CPU instructions it uses, or that oneDNN is on.
    assert any(is_start_up_log(line + b"\n") for line in verbose.stderr.splitlines())
    assert verbose.stderr.count(b"\n") == by_environment.stderr.count(b"\n")


def test_the_last_words_of_an_import_that_aborts_still_arrive(tmp_path):
    # A stand-in for TensorFlow's fatal CPU-instruction check: it logs, then aborts the
    # process in the middle of the import, while stderr points into the filter's pipe.
    package = tmp_path / "tensorflow"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import os\n"
        "os.write(2, b'I0000 00:00:1.5  1 port.cc:1] start-up chatter\\n')\n"
        "os.write(2, b'F0000 00:00:1.5  1 cpu_feature_guard.cc:1] needs AVX, not here\\n')\n"
        "os.abort()\n")
    result = run("""
        from gansynth_live.quiet_tensorflow import import_tensorflow
        import_tensorflow(verbose=False)
    """, PYTHONPATH=str(tmp_path))
    assert result.returncode != 0
    assert result.stderr == b"F0000 00:00:1.5  1 cpu_feature_guard.cc:1] needs AVX, not here\n"
