"""``make demo``: simulate a small capture session and run the whole pipeline on it.

Runs the same commands a user would type, in a fresh folder ``demo-out/``:
simulate a hand session (2 subjects, green screen) and a street take, align both
cameras, build the two datasets, validate them and say where the reports are.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path("demo-out")


def run(*args: str) -> None:
    print(f"\n$ rb2v {' '.join(args)}", flush=True)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rb2v", *args])
    if proc.returncode != 0:
        sys.exit(f"demo: `rb2v {' '.join(args)}` failed (exit {proc.returncode})")
    print(f"  ({time.perf_counter() - started:.1f} s)", flush=True)


def main() -> None:
    started = time.perf_counter()
    if ROOT.exists():
        shutil.rmtree(ROOT)
    raw, out = ROOT / "raw", ROOT / "out"
    run(
        "simulate-rig",
        str(raw),
        "--category",
        "hand",
        "--subjects",
        "2",
        "--takes",
        "1",
        "--seconds",
        "2",
        "--seed",
        "1",
    )
    run(
        "simulate-rig",
        str(raw),
        "--category",
        "street",
        "--subjects",
        "1",
        "--takes",
        "1",
        "--seconds",
        "2",
        "--seed",
        "2",
    )
    run("align", str(raw), str(out))
    for category in ("hand", "street"):
        run("build", "--category", category, "--out", str(out), "--stride", "3")
        run("validate", str(out / "datasets" / category / "manifest.parquet"))
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s")
    for category in ("hand", "street"):
        d = out / "datasets" / category
        print(f"  {category}: manifest {d / 'manifest.parquet'}\n  {' ' * len(category)}  report   {d / 'report.html'}")


if __name__ == "__main__":
    main()
