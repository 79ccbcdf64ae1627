"""``rb2v probe``: what rb2v reads from a video."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import PartialFailure, Rb2vError
from ..progress import say
from .video import group_chapters, open_source


@click.command("probe")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def probe(paths, as_json):
    """Show frame rate, frame count, size, duration, audio and timecode of videos (GoPro chapters joined).

    Each recording is described even where rb2v cannot use it (dropped frames, a variable frame rate:
    said on its own line); such recordings and unreadable ones make the exit status non-zero."""
    groups = group_chapters(paths)
    unusable = 0
    for group in groups:
        try:
            src = open_source(group, constant_rate=False)
        except Rb2vError as e:
            if len(groups) == 1:
                raise
            problems = [str(e)]
        else:
            problems = [f"{c.path}: {c.rate_problem}" for c in src.chapters if c.rate_problem]
            _describe(src, problems, as_json)
        if problems and len(groups) == 1:
            raise Rb2vError(problems[0] + (f" (and {len(problems) - 1} more chapter(s))" if len(problems) > 1 else ""))
        for problem in problems:
            say(f"rb2v: error: {problem}")
        unusable += bool(problems)
    if unusable:
        raise PartialFailure(f"{unusable} of {len(groups)} recording(s) not usable by rb2v (named above)")


def _describe(src, problems: list[str], as_json: bool) -> None:
    if as_json:
        record = {"paths": [str(p) for p in src.paths], "chapters": [c.as_dict() for c in src.chapters]}
        click.echo(json.dumps({**record, "frames": src.frames, "duration": src.duration, "usable": not problems}))
        return
    first = src.chapters[0]
    chapters = f" ({len(src.paths)} chapters)" if len(src.paths) > 1 else ""
    click.echo(
        f"{src.paths[0]}{chapters}: {first.codec} {src.width}x{src.height} @ {float(src.fps):.3f} fps "
        f"({src.fps.numerator}/{src.fps.denominator}), {src.frames} frames, {src.duration:.3f} s, "
        f"audio: {f'{first.audio_rate} Hz' if src.has_audio else 'none'}, "
        f"timecode: {first.timecode or 'none'}"
    )
