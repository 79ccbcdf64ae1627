"""``rb2v interpolate A.png B.png OUT.png``: one frame between two images."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import Rb2vError
from ..io.images import read_image, write_image
from ..outputs import check_output
from .base import load_interpolator
from .flow import check_flow_size


@click.command("interpolate")
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--t", "t", type=click.FloatRange(0, 1), default=0.5, show_default=True, help="Time of the new frame, 0 = A, 1 = B."
)
@click.option(
    "--method",
    type=click.Choice(["flow", "cdfi", "linear"]),
    default="flow",
    show_default=True,
    help="Interpolator; cdfi needs --checkpoint.",
)
@click.option(
    "--checkpoint", type=click.Path(path_type=Path), default=None, help="Official CDFI_adacof.pth (for --method cdfi)."
)
@click.option("--device", default=None, help="auto (default), cpu or cuda (cdfi only).")
def interpolate(a: Path, b: Path, out: Path, t: float, method: str, checkpoint: Path | None, device: str | None):
    """Write the frame at time T between images A and B to OUT."""
    for option, value in (("--checkpoint", checkpoint), ("--device", device)):
        if value is not None and method != "cdfi":
            raise Rb2vError(f"{option} is for --method cdfi, not {method}")
    device = device or "auto"
    if out.resolve() in (a.resolve(), b.resolve()):
        raise Rb2vError(f"{out}: is an input image; give the new frame another name")
    check_output(out)
    img_a, img_b = read_image(a), read_image(b)
    if img_a.shape != img_b.shape:
        raise Rb2vError(
            f"{b}: size {img_b.shape[1]}x{img_b.shape[0]} differs from {a} ({img_a.shape[1]}x{img_a.shape[0]})"
        )
    if method == "flow":
        check_flow_size(img_a.shape[1], img_a.shape[0], str(a))
    kwargs = {"checkpoint": checkpoint, "device": device} if method == "cdfi" else {}
    interp = load_interpolator(method, **kwargs)
    write_image(out, interp(img_a, img_b, t))
    click.echo(f"{out}: {method} frame at t={t:g} ({img_a.shape[1]}x{img_a.shape[0]})")
