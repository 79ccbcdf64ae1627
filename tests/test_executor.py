"""The one executor: order, failure rule, tracebacks (its real multi-node Ray cluster: tests/test_build.py)."""

from __future__ import annotations

import errno

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


def blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.mark.parametrize("workers", [1, 2])
def test_units_run_blas_on_one_thread(workers):
    """Inline or in a pool worker, a unit's BLAS runs on one thread (its own threads use the cores);
    the caller's setting is restored."""
    import numpy  # noqa: F401  (numpy's BLAS is loaded, as in every stage)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        assert before and max(before) == 2
        done = run_units([Unit(f"u{i}", blas_threads) for i in range(2)], ExecutorSettings(workers=workers))
        assert all(o.ok and o.value and set(o.value) == {1} for o in done)
        assert blas_threads() == before


def _full_disk(path):
    raise OSError(errno.ENOSPC, "No space left on device", path)


def test_a_full_disk_or_a_refused_write_is_named_not_called_a_bug(tmp_path, monkeypatch, capsys):
    """A folder it may not write gave "internal error: PermissionError" (order, report); a full disk in a
    unit was recorded as a bug with its traceback."""
    from rb2v.cli import main as rb2v_main
    from rb2v.manifest import validate as validate_module

    out = run_units([Unit("take01", _full_disk, (str(tmp_path / "a.png"),))], report=False)[0]
    assert out.error == f"take01: {tmp_path / 'a.png'}: No space left on device" and out.traceback is None

    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / ".manifest.abcd1234.partial.parquet"))

    monkeypatch.setattr(validate_module, "check_manifest", refused)
    (tmp_path / "manifest.parquet").touch()  # found: the command goes on to the check
    assert rb2v_main(["validate", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"rb2v: error: {tmp_path}: Permission denied\n"  # the folder, not the temp name
