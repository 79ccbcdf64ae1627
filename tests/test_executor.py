"""The one executor: order, failure rule, tracebacks, and a real multi-node Ray cluster on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rb2v.errors import Rb2vError
from rb2v.executor import ExecutorSettings, Unit, chunks, run_units


def square_or_fail(x: int) -> int:
    if x == 3:
        raise Rb2vError("input 3: unreadable")
    if x == 5:
        return [][x]  # a bug: IndexError
    return x * x


def units(n: int) -> list[Unit]:
    return [Unit(f"unit{x}", square_or_fail, (x,)) for x in range(n)]


@pytest.mark.parametrize("workers", [1, 2])
def test_outcomes_in_unit_order_and_one_failure_never_stops_the_others(workers):
    out = run_units(units(7), ExecutorSettings(workers=workers), report=False)
    assert [o.unit for o in out] == [f"unit{x}" for x in range(7)]
    assert [o.value for o in out if o.ok] == [0, 1, 4, 16, 36]
    user, bug = out[3], out[5]
    assert user.status == "failed" and user.error == "unit3: input 3: unreadable" and user.traceback is None
    assert bug.status == "failed" and bug.error.startswith("unit5: internal error: IndexError")
    assert "square_or_fail" in bug.traceback and "IndexError" in bug.traceback  # where the bug is, kept


def test_debug_prints_the_recorded_traceback(capsys, monkeypatch):
    monkeypatch.setenv("RB2V_DEBUG", "1")
    run_units(units(6), ExecutorSettings(workers=1))
    err = capsys.readouterr().err
    assert "rb2v: error: unit5: internal error: IndexError" in err
    assert "Traceback (most recent call last)" in err and "return [][x]" in err
    monkeypatch.setenv("RB2V_DEBUG", "0")
    run_units(units(6), ExecutorSettings(workers=1))
    assert "Traceback" not in capsys.readouterr().err


def test_chunks_cover_every_item_once_in_order():
    assert chunks(range(7), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert chunks(range(2), 5) == [[0, 1]]
    assert chunks([], 4) == []
    with pytest.raises(Rb2vError, match="--workers"):
        run_units(units(1), ExecutorSettings(workers=0))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ray_cluster_of_two_nodes_builds_the_manifest_of_a_local_run(oracle_session, tmp_path):
    """`ray start --head` plus a second `ray start --address` node on loopback, then
    `rb2v build --executor ray --ray-address`: the same manifest bytes as the inline build."""
    pytest.importorskip("ray")
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists():
        pytest.skip("the ray command is not installed next to this Python")
    _, out = oracle_session
    port = _free_port()
    # A clean Ray environment: a ray.init() earlier in this process leaves RAY_* variables, and a
    # ~/.ray/auth_token of another run makes the head demand a token the joining node never sends.
    (tmp_path / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(tmp_path / "home"), RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled", RB2V_PROGRESS="0")
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    head = [str(ray_bin), "start", "--head", "--port", str(port), "--include-dashboard", "false", *common]
    worker = [str(ray_bin), "start", "--address", f"127.0.0.1:{port}", *common]
    try:
        for cmd in (head, worker):
            started = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
            assert started.returncode == 0, (started.stdout + started.stderr)[-3000:]
        for _ in range(30):  # the second node registers with the head within seconds
            status = subprocess.run(
                [str(ray_bin), "status", "--address", f"127.0.0.1:{port}"],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            active = status.stdout.split("Active:")[-1].split("Pending:")[0]
            if active.count("node_") >= 2:
                break
            time.sleep(2)
        assert active.count("node_") >= 2, status.stdout  # two nodes really joined
        results = {}
        for name, extra in (
            ("inline", []),
            (
                "ray",
                ["--executor", "ray", "--ray-address", f"127.0.0.1:{port}", "--workers", "2", "--chunk-frames", "4"],
            ),
        ):
            root = tmp_path / name
            shutil.copytree(out / "aligned" / "street", root / "aligned" / "street")
            args = [
                "build",
                "--category",
                "street",
                "--out",
                str(root),
                "--interpolator",
                "linear",
                "--stride",
                "2",
                "--no-report",
                *extra,
            ]
            proc = subprocess.run(
                [sys.executable, "-m", "rb2v", *args], capture_output=True, text=True, env=env, timeout=600
            )
            assert proc.returncode == 0, proc.stderr[-2000:]
            results[name] = (root / "datasets" / "street" / "manifest.parquet").read_bytes()
        assert results["ray"] == results["inline"]
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, env=env, timeout=120)
