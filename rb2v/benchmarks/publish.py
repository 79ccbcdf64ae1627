"""``rb2v bench publish``: publish throughput vs the standard tools on the same files, side by side.

Folder mirror: ``rb2v publish`` vs ``cp -r`` followed by ``sha256sum`` of every copied file (publish
hashes anyway; the target is >= 0.8x). S3 mirror (moto's S3 server on 127.0.0.1): ``rb2v publish``
vs ``aws s3 sync`` (awscli, when installed: ``pip install awscli``; the target is >= 1.0x), and a
plain single-threaded upload of each file in turn. The methods alternate run by run, so load
on a shared machine falls on both sides alike; the fastest run of each is reported. Publish does
more per object (hash, check, atomic placement), so the ratios say what those guarantees cost.
Also timed: a re-publish with nothing to upload, and ``rb2v verify``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from ..fsutil import sha256_file
from ..io.images import bundled_photo, write_image
from ..manifest import FRAMES_PER_SEQ, sample_row, write_manifest, write_metadata_json

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina", "cat")


def write_photo_dataset(
    folder: str | Path, samples: int = 8, size: int = 64, subjects: int = 4, category: str = "street", seed: int = 0
) -> Path:
    """A small manifest-conformant dataset made from scikit-image's photographs.

    Each sample: 7 sharp crops sliding 2 px per frame across a real photo, and their average as
    the blurry frame (a true box-filter motion blur). Subjects alternate train/test (never both).
    Also an extra file in a folder with a space in its name, as a built dataset may hold.
    """
    dataset = Path(folder) / category
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(samples):
        photo = bundled_photo(PHOTOS[i % len(PHOTOS)])
        span = size + 2 * FRAMES_PER_SEQ
        scale = int(np.ceil(span / min(photo.shape[:2])))
        photo = np.tile(photo, (scale, scale, 1)) if scale > 1 else photo
        y = int(rng.integers(0, photo.shape[0] - size + 1))
        x = int(rng.integers(0, photo.shape[1] - span + 1))
        frames = [photo[y : y + size, x + 2 * t : x + 2 * t + size] for t in range(FRAMES_PER_SEQ)]
        subject = f"subject{i % subjects:02d}"
        sample_id = f"{category}-{subject}-take00-{i:06d}"
        rel = Path("samples") / sample_id
        blur_path = (rel / "blur.png").as_posix()
        sharp_paths = [(rel / f"sharp_{t}.png").as_posix() for t in range(FRAMES_PER_SEQ)]
        write_image(dataset / blur_path, np.mean(frames, axis=0))
        for p, frame in zip(sharp_paths, frames):
            write_image(dataset / p, frame)
        rows.append(
            sample_row(
                sample_id=sample_id,
                category=category,
                subject=subject,
                take=f"{category}/{subject}/take00",
                split="train" if (i % subjects) % 2 == 0 else "test",
                blur_path=blur_path,
                sharp_paths=sharp_paths,
                blur_index=i,
                sharp_start=2 * i,
                upsample_factor=2,
                psnr=40.0,
                psnr_margin=3.0,
                interpolator="linear",
                width=size,
                height=size,
                sha256=[sha256_file(dataset / p) for p in [blur_path, *sharp_paths]],
            )
        )
    write_manifest(dataset / "manifest.parquet", rows, {"settings_hash": "bench0000"})
    write_metadata_json(dataset)
    extra = dataset / "report files" / "table 1.csv"
    extra.parent.mkdir(parents=True, exist_ok=True)
    extra.write_text(
        "category,train,test\n" + f"{category},{sum(r['split'] == 'train' for r in rows)},"
        f"{sum(r['split'] == 'test' for r in rows)}\n"
    )
    return dataset


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def best_of(repeats: int, run) -> float:
    """Fastest of ``repeats`` runs (``run(i)`` must start from scratch each time), in seconds."""
    return min(interleaved(repeats, {"run": run})["run"])


def interleaved(repeats: int, runs: dict) -> dict[str, list[float]]:
    """Seconds of each ``runs[name](i)``, the methods alternating within each repeat."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run(i)
            times[name].append(time.perf_counter() - start)
    return times


def cp_and_sha256sum(source: Path, target: Path) -> None:
    """The folder baseline: ``cp -r``, then ``sha256sum`` of every copied file."""
    subprocess.run(["cp", "-r", str(source), str(target)], check=True)
    files = sorted(str(p) for p in target.rglob("*") if p.is_file())
    subprocess.run(["sha256sum", "--", *files], check=True, stdout=subprocess.DEVNULL)


def aws_cli() -> str | None:
    """The ``aws`` command of this environment (next to the interpreter) or of PATH."""
    beside = Path(sys.executable).parent / "aws"
    return str(beside) if beside.exists() else shutil.which("aws")


def aws_s3_sync(aws: str, dataset: Path, url: str, endpoint: str) -> None:
    subprocess.run(
        [aws, "s3", "sync", str(dataset), url, "--endpoint-url", endpoint, "--only-show-errors"],
        check=True,
        env=dict(os.environ),
    )


def plain_s3_upload(dataset: Path, url: str, endpoint: str) -> None:
    """The baseline: each file put in turn, one PUT per file, no checks."""
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True)
    root = url[len("s3://") :]
    for path in sorted(p for p in dataset.rglob("*") if p.is_file()):
        fs.put_file(str(path), f"{root}/{path.relative_to(dataset).as_posix()}")


def concurrent_s3_upload(dataset: Path, url: str, endpoint: str) -> None:
    """A second baseline: s3fs's own recursive put (concurrent PUTs, as ``aws s3 sync`` does), no checks."""
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True)
    fs.put(str(dataset) + "/", url[len("s3://") :] + "/", recursive=True)


@click.command()
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=24,
    show_default=True,
    help="Samples in the benchmark dataset (8 PNGs each).",
)
@click.option(
    "--size",
    type=click.IntRange(min=16),
    default=448,
    show_default=True,
    help="Frame size in pixels (RB2V crops are 448).",
)
@click.option(
    "--jobs", type=click.IntRange(min=1), default=8, show_default=True, help="Concurrent transfers of rb2v publish."
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Runs per method; the fastest is reported.",
)
def main(samples, size, jobs, repeats):
    """Publish throughput (MB/s) to a folder and to a loopback S3 server, vs a plain copy."""
    import s3fs

    from ..progress import say
    from ..publish import publish, verify
    from ..publish.loopback_s3 import dummy_aws_env, loopback_s3_server

    os.environ.setdefault("RB2V_PROGRESS", "0")  # bars would interleave with the table
    with tempfile.TemporaryDirectory(prefix="rb2v-bench-publish-") as tmp:
        tmp = Path(tmp)
        say(f"writing a {samples}-sample dataset of {size}x{size} PNGs ...")
        dataset = write_photo_dataset(tmp / "src", samples=samples, size=size)
        nbytes = folder_bytes(dataset)
        nfiles = sum(1 for p in dataset.rglob("*") if p.is_file())

        def fresh(name: str, i: int) -> Path:
            target = tmp / f"{name}{i}"
            shutil.rmtree(target, ignore_errors=True)
            return target

        say("folder mirror ...")
        t = interleaved(
            repeats,
            {
                "cp": lambda i: cp_and_sha256sum(dataset, fresh("cp", i)),
                "pub": lambda i: publish(dataset, str(fresh("pub", i)), jobs=jobs),
            },
        )
        t_cp, t_pub = min(t["cp"]), min(t["pub"])
        t_pub1 = best_of(repeats, lambda i: publish(dataset, str(fresh("pub1-", i)), jobs=1))
        t_again = best_of(repeats, lambda i: publish(dataset, str(tmp / "pub0"), jobs=jobs))
        t_ver = best_of(repeats, lambda i: verify(str(tmp / "pub0"), jobs=jobs))
        rows = [
            ("folder", "cp -r + sha256sum", t_cp, t_cp),
            ("folder", f"rb2v publish -j {jobs}", t_pub, t_cp),
            ("folder", "rb2v publish -j 1", t_pub1, t_cp),
            ("folder", "re-publish (nothing to do)", t_again, t_cp),
            ("folder", "rb2v verify", t_ver, t_cp),
        ]
        ratios = [f"folder {t_cp / t_pub:.2f}x of cp -r + sha256sum (target >= 0.8x)"]

        say("S3 mirror (moto server on 127.0.0.1) ...")
        aws = aws_cli()
        with dummy_aws_env(), loopback_s3_server() as endpoint:
            s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True).mkdir("bench")
            runs = {
                "plain": lambda i: plain_s3_upload(dataset, f"s3://bench/plain{i}", endpoint),
                "pub": lambda i: publish(dataset, f"s3://bench/pub{i}", endpoint_url=endpoint, jobs=jobs),
            }
            if aws:
                runs["aws"] = lambda i: aws_s3_sync(aws, dataset, f"s3://bench/aws{i}", endpoint)
            t = interleaved(repeats, runs)
            t_plain, t_s3 = min(t["plain"]), min(t["pub"])
            t_conc = best_of(repeats, lambda i: concurrent_s3_upload(dataset, f"s3://bench/conc{i}", endpoint))
            t_s3_1 = best_of(repeats, lambda i: publish(dataset, f"s3://bench/pub1-{i}", endpoint_url=endpoint, jobs=1))
            t_s3_again = best_of(
                repeats, lambda i: publish(dataset, "s3://bench/pub0", endpoint_url=endpoint, jobs=jobs)
            )
            t_s3_ver = best_of(repeats, lambda i: verify("s3://bench/pub0", endpoint_url=endpoint, jobs=jobs))
        base = min(t["aws"]) if aws else t_plain
        rows += [("s3 loopback", "aws s3 sync", base, base)] if aws else []
        rows += [
            ("s3 loopback", "plain single-threaded PUTs", t_plain, base),
            ("s3 loopback", "s3fs put -r (concurrent)", t_conc, base),
            ("s3 loopback", f"rb2v publish -j {jobs}", t_s3, base),
            ("s3 loopback", "rb2v publish -j 1", t_s3_1, base),
            ("s3 loopback", "re-publish (nothing to do)", t_s3_again, base),
            ("s3 loopback", "rb2v verify", t_s3_ver, base),
        ]
        ratios.append(
            f"s3 {base / t_s3:.2f}x of aws s3 sync (target >= 1.0x)"
            if aws
            else "s3: awscli not installed (pip install awscli), baseline = plain single-threaded PUTs"
        )

    click.echo(
        f"dataset: {samples} samples, {nfiles} files, {nbytes / 1e6:.1f} MB ({size}x{size} PNGs); "
        f"fastest of {repeats} runs"
    )
    click.echo(f"{'mirror':<12} {'method':<30} {'seconds':>8} {'MB/s':>8} {'speed vs baseline':>18}")
    for target, method, seconds, baseline in rows:
        click.echo(
            f"{target:<12} {method:<30} {seconds:8.3f} {nbytes / 1e6 / seconds:8.1f} {baseline / seconds:17.2f}x"
        )
    click.echo(f"publish: {'; '.join(ratios)}; load average {os.getloadavg()[0]:.1f}")
