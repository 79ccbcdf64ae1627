"""``report.html``: a static, offline page on a built dataset (figures embedded as PNG)."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import click
import numpy as np
import pandas as pd

from ..config import project_path
from ..errors import Rb2vError
from ..fsutil import write_text_atomic
from ..io.images import read_image
from ..manifest import MANIFEST_NAME, read_manifest
from .split import table1


def _figure_png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _histograms(df: pd.DataFrame, rejects: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, col, label in ((axes[0], "psnr", "PSNR of C*(y_fake) vs y (dB)"), (axes[1], "psnr_margin", "margin (dB)")):
        acc = df[col].to_numpy(float)
        acc = acc[np.isfinite(acc)]
        rej = rejects[col].to_numpy(float) if not rejects.empty else np.array([])
        rej = rej[np.isfinite(rej)]
        if not acc.size and not rej.size:
            ax.text(
                0.5, 0.5, f"no {col} values (synthetic samples need no search)", ha="center", transform=ax.transAxes
            )
            continue
        bins = np.histogram_bin_edges(np.concatenate([acc, rej]) if rej.size else acc, bins=30)
        if acc.size:
            ax.hist(acc, bins=bins, alpha=0.8, label=f"accepted ({len(acc)})")
        if rej.size:
            ax.hist(rej, bins=bins, alpha=0.6, label=f"rejected ({len(rej)})")
        ax.set_xlabel(label)
        ax.legend()
    return _figure_png(fig)


def _contact_sheet(dataset_dir: Path, df: pd.DataFrame, n: int = 6, seed: int = 0) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..colormatch import synthesize_blur

    picks = df.sample(min(n, len(df)), random_state=seed).sort_values("sample_id")
    fig, axes = plt.subplots(len(picks), 9, figsize=(18, 2.1 * len(picks)), squeeze=False)
    for row, r in zip(axes, picks.itertuples(index=False)):
        blur = read_image(dataset_dir / r.blur_path)
        sharp = np.stack([read_image(dataset_dir / p) for p in r.sharp_paths])
        fake = synthesize_blur(sharp, sub=19, interpolator="linear")
        err = np.abs(fake - blur).mean(axis=-1)
        for ax, img, title in zip(row, [blur, *sharp], ["blurry", *[f"x[p+{i}]" for i in range(len(sharp))]]):
            ax.imshow(np.clip(img, 0, 1))
            ax.set_title(title, fontsize=8)
        row[8].imshow(err, cmap="inferno", vmin=0, vmax=0.1)
        row[8].set_title("|C*(y_fake) - y|", fontsize=8)
        row[0].set_ylabel(r.sample_id.split("-", 1)[1], fontsize=7)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    return _figure_png(fig)


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, border=0, classes="t", float_format=lambda v: f"{v:.4g}")


def write_report(dataset_dir: str | Path) -> Path:
    dataset_dir = Path(dataset_dir)
    df = read_manifest(dataset_dir / MANIFEST_NAME)
    rej_path = dataset_dir / "rejects.parquet"
    rejects = (
        pd.read_parquet(rej_path) if rej_path.exists() else pd.DataFrame(columns=["reason", "psnr", "psnr_margin"])
    )
    build = json.loads((dataset_dir / "build.json").read_text()) if (dataset_dir / "build.json").exists() else {}
    per_take = pd.DataFrame(
        [
            {
                "take": t["take"],
                "sync": t["sync_method"],
                "time_offset_s": t["time_offset_s"],
                "accepted": t["accepted"],
                "rejected": t["rejected"],
                "reasons": ", ".join(f"{k}: {v}" for k, v in sorted(t["reasons"].items())),
            }
            for t in build.get("takes", [])
        ]
    )
    reasons = (
        (
            rejects["reason"]
            .str.split(";")
            .explode()
            .str.split(":")
            .str[0]
            .value_counts()
            .rename_axis("reason")
            .reset_index(name="count")
        )
        if not rejects.empty
        else pd.DataFrame()
    )
    category = dataset_dir.name
    parts = [
        f"<h1>rb2v dataset: {html.escape(category)}</h1>",
        f"<p>{len(df)} samples, {len(rejects)} rejected. "
        f"Settings hash <code>{html.escape(build.get('settings_hash', ''))}</code>.</p>",
        "<h2>Counts (Table 1 of the paper)</h2>",
        _table(table1(df)),
        "<h2>PSNR and margin</h2>",
        f'<img src="{_histograms(df, rejects)}">',
        "<h2>Takes</h2>",
        _table(per_take) if not per_take.empty else "<p>(no take summaries)</p>",
        "<h2>Rejections</h2>",
        _table(reasons) if not reasons.empty else "<p>none</p>",
        "<h2>Random samples</h2><p>blurry frame | the 7 sharp frames | heat map of |C*(y_fake) − y| (0 to 0.1)</p>",
        f'<img src="{_contact_sheet(dataset_dir, df)}" style="max-width:100%">',
    ]
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>rb2v " + html.escape(category) + "</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px} table.t{border-collapse:collapse}"
        "table.t td,table.t th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:right}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )
    out = dataset_dir / "report.html"
    write_text_atomic(out, page)
    return out


@click.command("report")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path), default=None, required=False)
def report_cmd(out):
    """Regenerate OUT/datasets/<category>/report.html for every built dataset under OUT."""
    out = out or project_path("out")
    found = sorted(p.parent for p in (out / "datasets").glob(f"*/{MANIFEST_NAME}"))
    if not found:
        raise Rb2vError(f"{out / 'datasets'}: no built dataset (run rb2v build first)")
    for d in found:
        click.echo(f"wrote {write_report(d)}")
