"""The one executor of rb2v: align, build and synth-reds hand it units of work.

A unit is a picklable call ``fn(*args)`` with an id. It runs inline, in a process pool or on
Ray; wherever it runs, it comes back as an ``Outcome``: ``done`` with its value, or ``failed``
with a one-line error naming the unit and, for a bug (anything but ``Rb2vError``), the
formatted traceback. One failing unit never stops the others. Outcomes come back in the
order of the units, whatever finished first, so what a stage assembles from them does not
depend on the number of workers. ``--debug`` (``RB2V_DEBUG=1``) prints recorded tracebacks.
"""

from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from threadpoolctl import threadpool_limits

from .errors import Rb2vError, environment_error
from .progress import progress, say

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class Unit:
    id: str  # what an error line names (a take, a chunk of a take, a sequence)
    fn: Callable[..., Any]  # module-level, so a worker process or a Ray node can import it
    args: tuple = ()
    weight: int = 1  # progress units (e.g. blurry frames) the unit stands for


@dataclass(frozen=True)
class Outcome:
    unit: str
    status: str  # "done" | "failed"
    value: Any = None
    error: str | None = None
    traceback: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "done"


@dataclass(frozen=True)
class ExecutorSettings:
    workers: int = 1
    backend: str = "local"  # "local": inline for one worker, else a process pool; "ray": a Ray cluster
    ray_address: str | None = None  # join this cluster ("auto", "HOST:PORT"); None starts a local one

    def validate(self) -> None:
        if self.workers < 1:
            raise Rb2vError(f"--workers must be at least 1, got {self.workers}")
        if self.backend not in BACKENDS:
            raise Rb2vError(f"executor {self.backend!r} is not one of {', '.join(BACKENDS)}")


INLINE = ExecutorSettings()


def debug_enabled() -> bool:
    return os.environ.get("RB2V_DEBUG", "") not in ("", "0")


def run_unit(unit_id: str, fn: Callable[..., Any], args: tuple) -> Outcome:
    """Run one unit and fold any exception into its outcome (runs inside the worker).

    BLAS runs on one thread inside a unit: a unit spreads over its cores with its own threads (a build
    searches and writes beside the upsampling), and a BLAS pool beside those oversubscribes them, its
    threads spinning between calls. A 4 s street build, 1 worker on 2 cores: 44.4 s wall and 68 s of
    user CPU with numpy's OpenBLAS on 2 threads, 33.8-36.4 s and 50-54 s on one (2026-12-04).
    """
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            return Outcome(unit_id, "done", fn(*args))
    except Rb2vError as e:
        return Outcome(unit_id, "failed", error=_named(unit_id, str(e)))
    except Exception as e:  # a bug in one unit must not lose the others: keep its traceback
        if environment_error(e):  # a full disk or a folder it may not write: the unit is named, not a bug
            return Outcome(unit_id, "failed", error=_named(unit_id, environment_error(e)))
        return Outcome(
            unit_id,
            "failed",
            error=_named(unit_id, f"internal error: {type(e).__name__}: {e}"),
            traceback=traceback.format_exc(),
        )


def _named(unit_id: str, message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    return first if unit_id in first else f"{unit_id}: {first}"


def run_units(
    units: Sequence[Unit],
    settings: ExecutorSettings = INLINE,
    *,
    desc: str = "",
    unit_name: str = "unit",
    report: bool = True,
) -> list[Outcome]:
    """Run every unit; return their outcomes in the units' order. Failures are said as they happen
    (with the traceback under ``--debug``) when ``report`` is set."""
    settings = settings or INLINE
    settings.validate()
    units = list(units)
    total = sum(u.weight for u in units)
    label = desc if settings.workers == 1 and settings.backend == "local" else f"{desc} ({_where(settings)})"
    outcomes: dict[int, Outcome] = {}
    with progress(total=total, desc=label, unit=unit_name) as bar:
        for i, outcome in _dispatch(units, settings):
            outcomes[i] = outcome
            if report and not outcome.ok:
                say_failure(outcome)
            bar.update(units[i].weight)
    return [outcomes[i] for i in range(len(units))]


def say_failure(outcome: Outcome) -> None:
    say(f"rb2v: error: {outcome.error}")
    if outcome.traceback and debug_enabled():
        say(outcome.traceback.rstrip())


def _where(settings: ExecutorSettings) -> str:
    if settings.backend == "ray":
        return f"ray {settings.ray_address}" if settings.ray_address else f"ray, {settings.workers} workers"
    return f"{settings.workers} workers"


def _dispatch(units: list[Unit], settings: ExecutorSettings):
    if not units:
        return
    if settings.backend == "ray":
        yield from _dispatch_ray(units, settings)
    elif settings.workers == 1 or len(units) == 1:
        for i, u in enumerate(units):
            yield i, run_unit(u.id, u.fn, u.args)
    else:
        import multiprocessing

        # spawn, not fork: workers must not inherit a parent's threads (BLAS, torch, tqdm)
        ctx = multiprocessing.get_context("spawn")
        workers = min(settings.workers, len(units))
        threads = max(1, available_cores() // workers)
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_share_cores, initargs=(threads,)
        ) as pool:
            futures = {pool.submit(run_unit, u.id, u.fn, u.args): i for i, u in enumerate(units)}
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    yield i, fut.result()
                except Exception as e:  # the worker process itself died (killed, out of memory)
                    yield i, Outcome(units[i].id, "failed", error=_named(units[i].id, f"worker lost: {e!r}"))


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. under ``taskset``), else all of them."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_threads() -> int:
    """Threads this process may keep busy: its share of the cores in a pool worker (``_share_cores``), else all."""
    return int(os.environ.get("OMP_NUM_THREADS") or 0) or available_cores()


def _share_cores(threads: int) -> None:
    """A pool worker's thread budget: the cores split between the workers (OpenCV's flow and remaps,
    OpenMP/BLAS, torch would each start one thread per core in every worker). It runs before any
    unit imports numpy or torch, which read these variables when first imported."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    import cv2

    cv2.setNumThreads(threads)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise Rb2vError("--executor ray needs Ray: pip install 'rb2v[ray]'") from None
    return ray


RAY_ANSWER_TIMEOUT_S = 5.0


def check_executor(settings: ExecutorSettings) -> None:
    """Check the executor before any work is written: Ray installed, and a cluster address that
    answers (``ray.init`` retries a wrong address for minutes, then fails deep inside)."""
    settings.validate()
    if settings.backend != "ray":
        return
    _import_ray()
    address = settings.ray_address
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise Rb2vError(f"--ray-address {address}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=RAY_ANSWER_TIMEOUT_S).close()
    except OSError as e:
        raise Rb2vError(f"--ray-address {address}: no Ray cluster answers there ({e.strerror or e})") from None


def _dispatch_ray(units: list[Unit], settings: ExecutorSettings):
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(
                address=settings.ray_address,
                num_cpus=None if settings.ray_address else settings.workers,
                include_dashboard=False,
                log_to_driver=False,
                ignore_reinit_error=True,
            )
        except Exception as e:  # a cluster of another Ray version, a dead head node, ...
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise Rb2vError(
                f"Ray could not start or join {settings.ray_address or 'a local cluster'} ({type(e).__name__}: {first})"
            ) from None
    try:
        remote = ray.remote(run_unit)
        pending = {remote.remote(u.id, u.fn, u.args): i for i, u in enumerate(units)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(done[0])
            try:
                yield i, ray.get(done[0])
            except Exception as e:  # the task's worker died, or the node was lost
                yield i, Outcome(units[i].id, "failed", error=_named(units[i].id, f"ray task lost: {e!r}"))
    finally:
        if started:
            ray.shutdown()


def failures_table(outcomes: Sequence[Outcome]) -> list[dict]:
    """The failed outcomes as rows (unit, error, traceback) for a stage's error table."""
    return [{"unit": o.unit, "error": o.error, "traceback": o.traceback} for o in outcomes if not o.ok]


def chunks(items: Sequence[Any], size: int) -> list[list[Any]]:
    """Consecutive chunks of at most ``size`` items (``size`` < 1: one chunk)."""
    items = list(items)
    if size < 1 or len(items) <= size:
        return [items] if items else []
    return [items[i : i + size] for i in range(0, len(items), size)]


def executor_options(what: str):
    """The click options every stage shares: ``--workers``, ``--executor``, ``--ray-address``."""
    import click

    def decorate(fn):
        fn = click.option("--ray-address", default=None, help="Join an existing Ray cluster (HOST:PORT or auto).")(fn)
        fn = click.option(
            "--executor",
            "backend",
            type=click.Choice(BACKENDS),
            default="local",
            show_default=True,
            help="local: this machine (processes); ray: a Ray cluster.",
        )(fn)
        return click.option(
            "--workers",
            "-j",
            type=click.IntRange(min=1),  # refused before any work (a build withdraws its manifest first)
            default=1,
            show_default=True,
            help=f"{what} in parallel (processes or Ray tasks).",
        )(fn)

    return decorate
