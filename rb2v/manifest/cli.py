"""``rb2v validate``: a thin command over ``rb2v.manifest.validate.check_manifest``.

It finds the manifest before it imports the check (pandas, pyarrow, OpenCV: a second), so a wrong path is told at once.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import Rb2vError
from .names import manifest_file


@click.command("validate")
@click.argument("manifest", type=click.Path(path_type=Path))
@click.option("--no-files", is_flag=True, help="Check the table only, not the files it names.")
def validate(manifest, no_files):
    """Check a manifest: schema, splits, files, image sizes and sha256; report every problem."""
    manifest_file(manifest)
    from .validate import check_manifest

    problems, df = check_manifest(manifest, check_files=not no_files)
    for p in problems:
        click.echo(p, err=True)
    if problems:
        raise Rb2vError(f"{manifest}: {len(problems)} problem(s) found (listed above)")
    subjects = df["subject"].nunique()
    click.echo(f"{manifest}: valid ({len(df)} samples, {subjects} subject{'' if subjects == 1 else 's'})")
