"""Run one function over many objects on a thread pool, with a progress bar; the first failure stops the rest."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TypeVar

from ..progress import progress

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


def run_all(
    jobs: int, fn: Callable[[K], R], items: Iterable[K], desc: str, weights: Mapping[K, int] | None = None
) -> dict[K, R]:
    """``{item: fn(item)}``; with ``weights`` (bytes per item) the bar counts bytes. Re-raises the first failure."""
    items = list(items)
    results: dict[K, R] = {}
    bar = progress(total=sum(weights.values()) if weights else len(items), desc=desc, unit="B" if weights else "obj")
    bar.unit_scale = bool(weights)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(fn, item): item for item in items}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for f in done:
                    item = futures[f]
                    results[item] = f.result()
                    bar.update(weights[item] if weights else 1)
        except BaseException:
            for f in pending:
                f.cancel()
            raise
        finally:
            bar.close()
    return results
