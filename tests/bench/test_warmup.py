"""The e2e benchmark's warm-up (bench/e2e/run.py, wave 19): the default run measures a
backbone that has already carried a warm-up's results, says so in its summary, and prints
the warm-up's own ("cold") figures; `--warmup 0` is the cold run of before. No timing here:
the options, the slices, the idle-burn arithmetic and the shape of what is kept."""

from __future__ import annotations

from typing import Any

from pytest import approx


def test_the_default_run_is_warm_and_says_so(bench_e2e) -> None:
    run = bench_e2e("run")
    args = run.parse_args([])
    assert args.warmup == run.WARMUP_DEFAULT >= 2000
    assert args.warmup_checkpoint == "on"
    assert run.warmup_results(args) == args.warmup
    state = run.backbone_state(args)
    assert state.startswith("warm") and f"{args.warmup:,}" in state and "CHECKPOINT" in state


def test_warmup_0_is_the_cold_run_of_before(bench_e2e) -> None:
    run = bench_e2e("run")
    args = run.parse_args(["--warmup", "0"])
    # the 100-result prelude every run sent before wave 19, and nothing measured of it
    assert run.warmup_results(args) == 100
    assert run.backbone_state(args).startswith("cold")
    off = run.parse_args(["--warmup", "3000", "--warmup-checkpoint", "off"])
    assert run.warmup_results(off) == 3000
    assert "CHECKPOINT" not in run.backbone_state(off)


def test_the_warmup_slices_add_up(bench_e2e) -> None:
    run = bench_e2e("run")
    assert run.warmup_slices(10_000, 1) == [10_000]
    assert run.warmup_slices(10_000, 3) == [3334, 3333, 3333]
    assert run.warmup_slices(4, 10) == [1, 1, 1, 1]
    assert run.warmup_slices(7, 0) == [7]


def test_net_cpu_takes_off_the_idle_burn_over_the_same_wall_time(bench_e2e) -> None:
    run = bench_e2e("run")
    usage = {"wall": 10.0, "cpu": {"kafka": 2.0, "notify": 1.0, "postgres": 0.1}}
    # idle probe of 5 s: kafka burnt 0.5 s (1.0 s over 10 s), postgres 0.5 s (more than
    # it used under load: clamped at zero, never negative)
    idle = {"wall": 5.0, "cpu": {"kafka": 0.5, "postgres": 0.5}}
    net = run.net_per_credential(usage, idle, 1000)
    assert net == approx({"kafka": 1.0, "notify": 1.0, "postgres": 0.0})
    assert run.net_per_credential(usage, None, 1000)["kafka"] == 2.0


def _cold() -> dict[str, Any]:
    usage = {"wall": 8.0, "cpu": {"kafka": 3.0, "postgres (all backends)": 1.0},
             "jit": {"kafka": 1.0}}
    slice_usage = {"wall": 4.0, "cpu": {"kafka": 2.0, "postgres (all backends)": 0.5},
                   "jit": {"kafka": 0.8}}
    return {"n": 2000, "delivered": 2000, "usage": usage, "machine_busy": 0.5,
            "pg": {"transactions": 400.0, "wal_bytes": 2000 * 18 * 1024.0,
                   "wal_flushes": 200.0, "wal_init_bytes": 2000 * 16 * 1024.0,
                   "pages_written": 0.0, "pages_added": 4000.0, "sessions": 2.0},
            "checkpoint": {"seconds": 0.5, "wal_before": {"segments": 4, "ahead": 1,
                                                          "bytes": 4 * 2**24},
                           "wal_after": {"segments": 4, "ahead": 3, "bytes": 4 * 2**24}},
            "slices": [{"n": 1000, "delivered": 1000, "usage": slice_usage,
                        "machine_busy": 0.5, "pg": {"wal_init_bytes": 1000 * 16 * 1024.0,
                                                    "pages_written": 0.0}}] * 2}


def test_the_cold_line_and_what_the_summary_keeps(bench_e2e, capsys) -> None:
    run = bench_e2e("run")
    idle = {"wall": 4.0, "cpu": {"kafka": 0.2}}
    kept = run.report_warmup(_cold(), idle, 2)
    out = capsys.readouterr().out
    assert "COLD CPU per credential 2.00ms" in out  # (3.0 + 1.0) s / 2000
    assert "less idle burn 1.80ms" in out           # kafka 0.4 s of idle over 8 s off
    assert "its JIT compiler 0.50" in out
    assert "16.0 KiB zeroing new WAL segments" in out
    assert "3 of them recycled" in out
    assert kept["state"] == "cold" and kept["delivered"] == 2000
    assert kept["net_cpu_ms_per_credential"] == approx({"kafka": 1.3,
                                                        "postgres (all backends)": 0.5})
    assert kept["jit_ms_per_credential"] == approx({"kafka": 0.5})
    assert kept["pg_per_credential"]["wal_init_bytes"] == 16 * 1024
    assert kept["checkpoint"]["wal_after"]["ahead"] == 3
    assert [s["n"] for s in kept["slices"]] == [1000, 1000]
    assert kept["slices"][0]["jit_ms_per_credential"] == approx(0.8)
    assert kept["not_ours_core_s"] == approx(4.0)  # 0.5 busy x 8 s x 2 cores - 4 core-s ours
