"""Click commands ``rb2v publish``, ``rb2v verify`` and ``rb2v fetch`` (wired in ``rb2v/cli.py``)."""

from __future__ import annotations

import re

import click

from ..errors import PartialFailure, Rb2vError
from .fetch import fetch as fetch_dataset
from .publish import DEFAULT_JOBS, FORMATS, describe
from .publish import publish as publish_dataset
from .verify import verify as verify_mirror

UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(text: str, what: str) -> int:
    """'1GB' -> 10**9, '512MiB' -> 2**29, '2.5M' -> 2_500_000 (decimal units; *iB binary)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in UNITS:
        raise Rb2vError(f"{what} {text!r}: expected a size like 1GB, 500MB or 512MiB")
    value = int(float(m.group(1)) * UNITS[m.group(2).lower()])
    if value <= 0:
        raise Rb2vError(f"{what} {text!r}: must be positive")
    return value


endpoint_option = click.option(
    "--endpoint-url",
    default=None,
    metavar="URL",
    help="S3-compatible endpoint (MinIO, Ceph...), e.g. http://127.0.0.1:9000.",
)
jobs_option = click.option(
    "--jobs",
    "-j",
    default=DEFAULT_JOBS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Objects transferred at once.",
)


@click.command("publish")
@click.argument("dataset", type=click.Path(file_okay=False, path_type=str))
@click.option("--to", "to", required=True, metavar="URL", help="Mirror: a folder, file://PATH or s3://bucket/prefix.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="files",
    show_default=True,
    help="files: the dataset folder as built; parquet: Hugging Face Hub shards with the images as bytes.",
)
@click.option("--shard-size", default="1GB", show_default=True, help="Largest image payload per Parquet shard.")
@endpoint_option
@jobs_option
@click.option("--max-rate", default=None, metavar="SIZE/s", help="Cap the upload rate, e.g. 20MB (per second).")
def publish(dataset, to, fmt, shard_size, endpoint_url, jobs, max_rate):
    """Publish DATASET (a folder with manifest.parquet) to a mirror; re-run to resume."""
    report = publish_dataset(
        dataset,
        to,
        fmt=fmt,
        shard_bytes=parse_size(shard_size, "--shard-size"),
        endpoint_url=endpoint_url,
        jobs=jobs,
        max_rate=parse_size(max_rate, "--max-rate") if max_rate else None,
    )
    click.echo(describe(report))


@click.command("verify")
@click.argument("url")
@endpoint_option
@jobs_option
def verify(url, endpoint_url, jobs):
    """Check every object of the mirror at URL against its SHA256SUMS (exit 1 on any problem)."""
    report = verify_mirror(url, endpoint_url=endpoint_url, jobs=jobs)
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        raise PartialFailure(f"{report.url}: {len(report.lines())} problem(s) found")
    click.echo(f"{report.url}: OK ({report.listed} objects, {report.bytes_checked / 1e6:.1f} MB checked)")


@click.command("fetch")
@click.argument("url")
@click.argument("dest", metavar="DIR", type=click.Path(file_okay=False, path_type=str))
@endpoint_option
@jobs_option
@click.option(
    "--no-unpack",
    is_flag=True,
    help="Parquet-format mirrors: keep the shards only (by default their images are also written to the "
    "paths the manifest names, so DIR is a dataset like the one published).",
)
def fetch(url, dest, endpoint_url, jobs, no_unpack):
    """Download the dataset published at URL into DIR, verified; re-run to resume."""
    report = fetch_dataset(url, dest, endpoint_url=endpoint_url, jobs=jobs, unpack=not no_unpack)
    unpacked = (
        f"; {report.unpacked} image(s) unpacked from the Parquet shards ({report.unpacked_kept} already there)"
        if report.unpacked or report.unpacked_kept
        else ""
    )
    click.echo(
        f"{report.url} -> {report.dest}: {report.objects} objects "
        f"({len(report.downloaded)} downloaded, {report.kept} already there), all sha256 verified{unpacked}"
    )
