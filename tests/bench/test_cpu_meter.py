"""The e2e benchmark's CPU meter (bench/e2e/run.py CpuMeter) must count a PostgreSQL child
that ended inside the window: an autovacuum worker or a backend whose connection closed
used to be missed, in PostgreSQL's figure and in the total, so a setting that starts more
of them (a shorter autovacuum_naptime) looked free. Real processes stand in for the
postmaster and its children: a parent that starts a child burning a known amount of CPU
and reaps it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# The parent: on each line read, it starts a child that burns the CPU seconds the line
# says, in two parts separated by a line on the child's stdin ("go"), and reaps it.
_PARENT = textwrap.dedent("""
    import subprocess, sys
    CHILD = (
        "import sys, time\\n"
        "def burn(s):\\n"
        "    end = time.process_time() + s\\n"
        "    while time.process_time() < end: pass\\n"
        "burn(float(sys.argv[1])); print('first', flush=True)\\n"
        "sys.stdin.readline(); burn(float(sys.argv[2]))\\n")
    for line in sys.stdin:
        before, after = line.split()
        child = subprocess.Popen([sys.executable, "-c", CHILD, before, after],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        child.stdout.readline()
        print(child.pid, flush=True)       # its first part is burnt
        sys.stdin.readline()               # "go"
        child.stdin.write("go\\n"); child.stdin.flush()
        child.wait()                       # reaped: its CPU is now the parent's children's
        print("reaped", flush=True)
""")


def _parent() -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _PARENT], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def _send(proc: subprocess.Popen[str], line: str) -> str:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    return proc.stdout.readline().strip()


def test_a_child_that_starts_and_ends_inside_the_window_is_counted(bench_e2e) -> None:
    run = bench_e2e("run")
    parent = _parent()
    try:
        meter = run.CpuMeter({"postgres": [parent.pid]}, {"postgres"})
        meter.begin()
        _send(parent, "0.3 0")  # a child burns 0.3 s, waits for "go"
        assert _send(parent, "go") == "reaped"
        usage = meter.end()
    finally:
        parent.kill()
        parent.wait()
    ended = usage["by_database"]["postgres"].get("ended", 0.0)
    assert 0.25 <= ended < 0.6
    assert usage["cpu"]["postgres"] >= ended  # in the total too


def test_a_child_that_ends_inside_the_window_counts_only_its_time_inside_it(bench_e2e) -> None:
    run = bench_e2e("run")
    parent = _parent()
    try:
        meter = run.CpuMeter({"postgres": [parent.pid]}, {"postgres"})
        _send(parent, "0.5 0.2")  # 0.5 s burnt before the window begins
        meter.begin()
        assert _send(parent, "go") == "reaped"  # 0.2 s more inside it, then it ends
        usage = meter.end()
    finally:
        parent.kill()
        parent.wait()
    ended = usage["by_database"]["postgres"].get("ended", 0.0)
    assert 0.15 <= ended < 0.45  # not the 0.7 s of its whole life
