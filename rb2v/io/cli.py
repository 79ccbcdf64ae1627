"""``rb2v probe``: what rb2v reads from a video."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .video import group_chapters, open_source


@click.command("probe")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def probe(paths, as_json):
    """Show frame rate, frame count, size, duration, audio and timecode of videos (GoPro chapters joined)."""
    for group in group_chapters(paths):
        src = open_source(group)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "paths": [str(p) for p in src.paths],
                        "chapters": [c.as_dict() for c in src.chapters],
                        "frames": src.frames,
                        "duration": src.duration,
                    }
                )
            )
            continue
        first = src.chapters[0]
        chapters = f" ({len(src.paths)} chapters)" if len(src.paths) > 1 else ""
        click.echo(
            f"{src.name}{chapters}: {first.codec} {src.width}x{src.height} @ {float(src.fps):.3f} fps "
            f"({src.fps.numerator}/{src.fps.denominator}), {src.frames} frames, {src.duration:.3f} s, "
            f"audio: {f'{first.audio_rate} Hz' if src.has_audio else 'none'}, "
            f"timecode: {first.timecode or 'none'}"
        )
