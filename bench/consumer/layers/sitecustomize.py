"""cProfile inside the service processes, on a signal (issue 12: calls per batch by layer).

On PYTHONPATH with MICROCRED_CPROFILE=<dir>, every `python -m microcred_<service>` process
(not the devstack) starts profiling on SIGUSR1 and writes `<dir>/<module>-<pid>.prof` on
each SIGUSR2 (profiling goes on). `bench/consumer/layers.py` reads them. A bench tool only:
nothing here is imported by a service unless this folder is put on its PYTHONPATH.
"""

import os
import sys

_argv = getattr(sys, "orig_argv", [])
_out = os.environ.get("MICROCRED_CPROFILE")
_name = next((a for a in _argv if a.startswith("microcred_") and a != "microcred_devstack"),
             None)
if _out and _name and "-m" in _argv:
    import cProfile
    import signal

    _profile: cProfile.Profile | None = None

    def _start(*_: object) -> None:
        global _profile
        _profile = cProfile.Profile()
        _profile.enable()

    def _dump(*_: object) -> None:
        if _profile is None:
            return
        _profile.disable()
        path = f"{_out}/{_name}-{os.getpid()}.prof"
        _profile.dump_stats(path + ".tmp")
        os.replace(path + ".tmp", path)
        _profile.enable()

    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _dump)
