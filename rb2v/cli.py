"""The ``rb2v`` command line.

Subcommands live in the modules that do the work and are imported only when run,
so ``rb2v --help`` is instant and a missing optional dependency of one stage never
breaks another. User mistakes (``Rb2vError``) print one line and exit non-zero;
``--debug`` shows the traceback.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import traceback

import click

from .errors import Rb2vError, environment_error

# name -> (module, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "simulate-rig": ("rb2v.simulate.cli", "simulate_rig", "Write a synthetic capture tree with exact ground truth."),
    "probe": ("rb2v.io.cli", "probe", "Show what rb2v reads from a video (fps, frames, size, audio, timecode)."),
    "align": ("rb2v.align.cli", "align", "Pair, synchronise and geometrically align the two cameras of each take."),
    "build": (
        "rb2v.dataset.cli",
        "build",
        "Build a category's dataset from aligned takes (Algorithm 1, matting, QC, split).",
    ),
    "synth-reds": (
        "rb2v.dataset.cli",
        "synth_reds",
        "Make the synthetic REDS-style blur2vid set in the manifest format.",
    ),
    "validate": ("rb2v.manifest.cli", "validate", "Check a manifest: schema, files, sizes and checksums."),
    "report": ("rb2v.dataset.cli", "report_cmd", "Regenerate the HTML report of built datasets."),
    "interpolate": ("rb2v.interpolation.cli", "interpolate", "Interpolate a frame between two images."),
    "bench": ("rb2v.bench", "bench", "Benchmarks that compare rb2v side by side with a reference or a peer."),
    "train-hypercut": ("hypercut_models.cli", "train_hypercut", "Train the HyperCUT ordering network on a manifest."),
    "eval-hypercut": ("hypercut_models.cli", "eval_hypercut", "Report hit / con@2 / con@3 of a HyperCUT checkpoint."),
    "order": ("hypercut_models.cli", "order", "Write HyperCUT order labels into a manifest and metadata.json."),
    "train-blur2vid": ("hypercut_models.blur2vid.cli", "train_blur2vid", "Train a blur2vid (image-to-video) model."),
    "eval-blur2vid": ("hypercut_models.blur2vid.cli", "eval_blur2vid", "pPSNR / pSSIM of a blur2vid model."),
    "deblur": ("hypercut_models.blur2vid.cli", "deblur_cmd", "Any blurry photo -> its 7 sharp frames."),
    "publish": ("rb2v.publish.cli", "publish", "Publish a built dataset to a mirror (folder or S3), resumably."),
    "verify": ("rb2v.publish.cli", "verify", "Check a published mirror against its SHA256SUMS."),
    "fetch": ("rb2v.publish.cli", "fetch", "Download and verify a published dataset."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx, name):
        if name in self.lazy:
            module, attr, _ = self.lazy[name]
            try:
                return getattr(importlib.import_module(module), attr)
            except ModuleNotFoundError as e:
                if e.name and (e.name == module or module.startswith(e.name + ".")):
                    raise click.UsageError(f"command '{name}' is not available in this version of rb2v") from None
                raise Rb2vError(f"command '{name}' needs the Python package '{e.name}': pip install {e.name}") from None
        return super().get_command(ctx, name)

    def format_commands(self, ctx, formatter):
        rows = [(name, self.lazy[name][2]) for name in self.list_commands(ctx) if name in self.lazy]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="rb2v")
@click.pass_context
def cli(ctx, debug):
    """rb2v: build real blur2vid datasets from a beam-splitter camera rig."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv=None) -> int:
    # SIGTERM (`timeout`, a job scheduler) ends a command as Ctrl-C does: finished work is kept, and a
    # benchmark's temporary folder is removed (a stopped `bench build` left 1 GB behind)
    try:
        previous = signal.signal(signal.SIGTERM, _terminated)
    except ValueError:  # not the main thread: signals stay as they are
        previous = None
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminated(signum, frame):
    raise KeyboardInterrupt


def _main(argv) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        # accepted anywhere on the line, not only before the command (click's place for it)
        argv = ["--debug"] + [a for a in argv if a != "--debug"]
        os.environ["RB2V_DEBUG"] = "1"  # worker processes and Ray tasks inherit it: their tracebacks are printed
    # OpenCV's own warnings (e.g. on a truncated PNG) would come before rb2v's one-line error about the same file
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    try:
        cli.main(args=argv, prog_name="rb2v", standalone_mode=False)
        return 0
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.Abort:
        click.echo("rb2v: aborted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("rb2v: interrupted (finished work is kept; re-run to resume)", err=True)
        return 130
    except Rb2vError as e:
        if debug:
            traceback.print_exc()
        click.echo(f"rb2v: error: {e}", err=True)
        return e.exit_code
    except BrokenPipeError:
        return 1
    except Exception as e:  # a bug, not a user mistake: say so in one line unless --debug
        if environment_error(e):
            if debug:
                traceback.print_exc()
            click.echo(f"rb2v: error: {environment_error(e)}", err=True)
            return 2
        if debug:
            traceback.print_exc()
        else:
            click.echo(
                f"rb2v: internal error: {type(e).__name__}: {e} (add --debug to the command for the traceback)",
                err=True,
            )
        return 1


if __name__ == "__main__":  # python -m rb2v.cli
    sys.exit(main())
