"""A running service collects its garbage less often (runtime.settle_heap), but still
collects it: cycles a record or request leaves behind do not pile up."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_cycles_are_still_collected_after_the_heap_is_settled() -> None:
    # In a process of its own: settle_heap changes the interpreter's collector for good.
    code = textwrap.dedent("""
        import gc, os, weakref
        from microcred_shared.runtime import GC_THRESHOLDS, settle_heap

        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

        settle_heap()
        before = rss()
        assert gc.get_threshold() == GC_THRESHOLDS, gc.get_threshold()
        assert gc.get_freeze_count() > 0
        freed = 0

        def gone(_):
            global freed
            freed += 1

        class Node:
            pass

        refs = []
        for i in range(200_000):  # a batch's worth of cyclic garbage, many times over
            a, b = Node(), Node()
            a.other, b.other = b, a
            a.payload = [i] * 20
            if i % 100 == 0:
                refs.append(weakref.ref(a, gone))
        print(freed, len(refs), rss() - before)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    freed, made, grown = (int(x) for x in out)
    # Without any collection none would be freed and the 400,000 nodes with their lists
    # (well over 100 MB) would all still be held.
    assert freed >= made * 0.9
    assert grown < 40 * 2**20
