"""``report.html``: a static, offline page on a built dataset (figures embedded as PNG)."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import html
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..alignment import read_alignment
from ..errors import Rb2vError
from ..fsutil import write_text_atomic
from ..io.images import encode_png, read_image
from ..manifest import MANIFEST_NAME, read_manifest
from .records import REJECT_REASONS, TakeSummary, stage_failures
from .split import table1


def _pyplot():
    """pyplot off-screen, with names (subjects, takes, sequences) drawn as written: a "$" in one was read
    as mathematics ("cost$5^{$" stopped the build at its report)."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt

    return plt


def _figure_png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _histograms(df: pd.DataFrame, rejects: pd.DataFrame) -> str:
    plt = _pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, col, label in ((axes[0], "psnr", "PSNR of C*(y_fake) vs y (dB)"), (axes[1], "psnr_margin", "margin (dB)")):
        acc = df[col].to_numpy(float)
        acc = acc[np.isfinite(acc)]
        rej = rejects[col].to_numpy(float) if not rejects.empty else np.array([])
        rej = rej[np.isfinite(rej)]
        if not acc.size and not rej.size:
            ax.text(0.5, 0.5, f"no {col} values\n(synthetic samples need no search)", ha="center", va="center")
            ax.set_axis_off()
            continue
        bins = np.histogram_bin_edges(np.concatenate([acc, rej]) if rej.size else acc, bins=30)
        if acc.size:
            ax.hist(acc, bins=bins, alpha=0.8, label=f"accepted ({len(acc)})")
        if rej.size:
            ax.hist(rej, bins=bins, alpha=0.6, label=f"rejected ({len(rej)})")
        ax.set_xlabel(label)
        ax.legend()
    return _figure_png(fig)


THUMB_PX = 144  # a contact sheet's cell: a row of 9 fits the page (1400 px) unscaled


def _thumbnail(img: np.ndarray, title: str) -> str:
    """A cell of the contact sheet: the image reduced (area average) to THUMB_PX wide, as an embedded PNG."""
    h, w = img.shape[:2]
    if w > THUMB_PX:
        img = cv2.resize(img, (THUMB_PX, max(1, round(h * THUMB_PX / w))), interpolation=cv2.INTER_AREA)
    uri = "data:image/png;base64," + base64.b64encode(encode_png(img, compression=6)).decode()
    return f'<figure><img src="{uri}" alt="{html.escape(title)}"><figcaption>{html.escape(title)}</figcaption></figure>'


def _error_map(err: np.ndarray) -> np.ndarray:
    """|C*(y_fake) - y| (0 to 0.1) in the inferno colour map, RGB uint8."""
    level = np.clip(np.rint(err * (255 / 0.1)), 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(level, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def _contact_sheet(dataset_dir: Path, df: pd.DataFrame, n: int = 6, seed: int = 0) -> str:
    """Random samples as rows of thumbnails (HTML, the pixels as stored, reduced): drawing them through
    matplotlib took 2.4 s a report."""
    from ..colormatch import synthesize_blur

    picks = df.sample(min(n, len(df)), random_state=seed).sort_values("sample_id")
    rows = []
    for r in picks.itertuples(index=False):
        blur = read_image(dataset_dir / r.blur_path)
        sharp = np.stack([read_image(dataset_dir / p) for p in r.sharp_paths])
        fake = synthesize_blur(sharp, sub=19, interpolator="linear")
        cells = [_thumbnail(blur, "blurry")]
        cells += [_thumbnail(img, f"x[p+{i}]") for i, img in enumerate(sharp)]
        cells.append(_thumbnail(_error_map(np.abs(fake - blur).mean(axis=-1)), "|C*(y_fake) - y|"))
        sample = r.sample_id.split("-", 1)[-1]  # rb2v's ids: <category>-<rest>
        rows.append(f"<div class=row><div class=id>{html.escape(sample)}</div>{''.join(cells)}</div>")
    return "<div class=sheet>" + "\n".join(rows) + "</div>"


def _failures(units: list[dict], rejects: pd.DataFrame) -> str:
    """What failed, with its message: units of work (``build.json``'s failures) and samples whose stage raised."""
    rows = [{"failed": f"unit {u['unit']}", "message": u["error"]} for u in units]
    samples = stage_failures(rejects["reason"]) if not rejects.empty else {}
    rows += [{"failed": f"{n} sample(s)", "message": message} for message, n in samples.items()]
    if not rows:
        return ""
    note = (
        "<p>A re-run redoes these. A failed unit's traceback is in <code>build.json</code>; "
        "<code>--debug</code> prints a bug's.</p>"
    )
    return "<h2>Failures</h2>" + _table(pd.DataFrame(rows)) + note


def _table(df: pd.DataFrame) -> str:
    """An HTML table: numbers right-aligned (4 significant digits), text left-aligned, empty cells blank."""
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]

    def cell(tag: str, value, num: bool) -> str:
        if isinstance(value, float):
            text = "" if np.isnan(value) else f"{value:.4g}"
        else:
            text = "" if value is None else str(value)
        return f"<{tag}{' class=n' if num else ''}>{html.escape(text)}</{tag}>"

    head = "".join(cell("th", c, n) for c, n in zip(df.columns, numeric))
    body = "".join(
        "<tr>" + "".join(cell("td", v, n) for v, n in zip(row, numeric)) + "</tr>" for row in df.itertuples(index=False)
    )
    return f"<table class=t><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


TAKE_COLUMNS = [
    "take",
    "sync",
    "offset (ms)",
    "homography",
    "residual (px)",
    "blur exposure (ms)",
    "accepted",
    "rejected",
    "reasons",
    "placed by clock",
    "build (s)",
    "align note",
]


def _take_table(dataset_dir: Path, build: dict) -> pd.DataFrame:
    """One row per take: what the build kept and, where the aligned take lies beside the dataset
    (``OUT/aligned``), how align placed it (columns no take has are left out)."""
    aligned = dataset_dir.parent.parent / "aligned"
    rows = []
    for t in build.get("takes", []):
        # a build.json of another version (or edited) may lack a field or hold another type: its cell stays empty
        offset = t.get("time_offset_s")
        reasons = t.get("reasons") if isinstance(t.get("reasons"), dict) else {}
        row = {
            "take": t["take"],
            "sync": t.get("sync_method"),
            "offset (ms)": 1e3 * offset if isinstance(offset, (int, float)) else None,
            "accepted": t.get("accepted"),
            "rejected": t.get("rejected"),
            "reasons": ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items())),
            "placed by clock": t.get("clock_moved") or None,  # none anywhere: the column is left out
            "build (s)": t.get("seconds"),
        }
        meta = None
        with contextlib.suppress(Rb2vError, OSError):  # missing or unreadable: its cells stay empty
            meta = read_alignment(aligned / t["take"])
        if meta is not None:
            calibration = meta.extra.get("calibration")
            row["homography"] = f"calibration take {calibration}" if calibration else "the take's own"
            row["residual (px)"] = meta.residual_px
            blur = (meta.exposure or {}).get("blur")
            if blur is not None:
                # readout_s is the blur rows' skew relative to the sharp camera's (signed: an upside-down camera's adds)
                readout = f", row skew {1e3 * blur.readout_s:+.1f} vs sharp" if blur.readout_s else ""
                row["blur exposure (ms)"] = f"{1e3 * blur.length_s:.1f} {blur.method}{readout}"
            # align's note names its take first ("hand/s01/take01: matches span …"): the row names it already
            row["align note"] = meta.extra.get("note", "").removeprefix(f"{t['take']}: ") or None
        rows.append(row)
    table = pd.DataFrame(rows, columns=TAKE_COLUMNS)
    return table.dropna(axis=1, how="all")


def _stage_times(build: dict) -> str:
    """Seconds per stage of the work, summed over the units (from each unit's clock in build.json)."""
    known = {f.name for f in dataclasses.fields(TakeSummary)}  # a build.json of another version may differ
    takes = [TakeSummary(**{k: v for k, v in t.items() if k in known}) for t in build.get("takes", [])]
    try:
        total = TakeSummary.merge(takes) if takes else None
    except (TypeError, AttributeError):  # fields of other types (an edited record): no stage times to show
        total = None
    if total is None or not total.stage_seconds:
        return "<p>(not recorded)</p>"
    stages = total.stage_seconds
    table = pd.DataFrame(
        [{"stage": k, "seconds": v, "share": f"{100 * v / sum(stages.values()):.0f} %"} for k, v in stages.items()]
    ).sort_values("seconds", ascending=False, kind="stable")
    return (
        _table(table) + f"<p>The units of work took {total.seconds:.1f} s in all. Stages run on threads beside "
        "each other (the PNG writes, Algorithm 1 and matting beside the upsampling) count each their own time, "
        "so they may add up to more. "
        "<code>rb2v bench build</code> sets these against the I/O floor.</p>"
    )


# rejection colours, most frequent reason first (accepted frames are blue): one for each of REJECT_REASONS,
# repeated only for reasons a build of another version recorded
PALETTE = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#2ca02c", "#ffbb78")


def _timeline(df: pd.DataFrame, rejects: pd.DataFrame, most: int = 12) -> tuple[str, int]:
    """Each take's blurry frames in order, their fit's PSNR, coloured by what QC decided: where in a take the
    rejections fall (all after some frame: the rig moved then). The takes with the most rejections, at most
    ``most`` of them, in take order; returns the figure and how many takes it shows."""
    plt = _pyplot()

    from .build import reason_names

    kept = df[["take", "blur_index", "psnr"]].assign(outcome="accepted")
    if not rejects.empty:
        first = reason_names(rejects).str[0]  # a frame rejected for several reasons is drawn under its first
        gone = rejects[["take", "blur_index", "psnr"]].assign(outcome=first.to_numpy())
        frames = pd.concat([kept, gone], ignore_index=True)
    else:
        frames = kept
    takes = frames.groupby("take")["outcome"].apply(lambda o: int((o != "accepted").sum()))
    shown = sorted(takes.sort_values(ascending=False, kind="stable").index[:most])
    if not shown:  # an empty manifest and no rejections: nothing to draw
        return "", 0
    outcomes = ["accepted", *[o for o in frames["outcome"].value_counts().index if o != "accepted"]]
    colours = {o: PALETTE[(i - 1) % len(PALETTE)] if i else "#1f77b4" for i, o in enumerate(outcomes)}
    fig, axes = plt.subplots(len(shown), 1, figsize=(10, 0.35 + 1.05 * len(shown)), squeeze=False, sharey=True)
    finite = frames["psnr"].to_numpy(float)
    finite = finite[np.isfinite(finite)]
    floor = float(finite.min()) - 1.0 if finite.size else 0.0
    for ax, take in zip(axes[:, 0], shown):
        mine = frames[frames["take"] == take]
        for outcome in outcomes:
            o = mine[mine["outcome"] == outcome]
            if o.empty:
                continue
            y = o["psnr"].to_numpy(float)
            y = np.where(np.isfinite(y), y, floor)  # no fit (a failed or out-of-range frame): on the floor line
            ax.scatter(o["blur_index"], y, s=9, color=colours[outcome], label=outcome)
        ax.set_title(take, fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("blurry frame", fontsize=8)
    axes[len(shown) // 2, 0].set_ylabel("PSNR (dB)", fontsize=8)
    handles = [plt.Line2D([], [], marker="o", ls="", color=colours[o], label=o) for o in outcomes]
    fig.legend(handles=handles, loc="upper right", fontsize=7, ncol=len(outcomes))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))
    return _figure_png(fig), len(shown)


def _build_records(dataset_dir: Path) -> tuple[pd.DataFrame, dict]:
    """``rejects.parquet`` and ``build.json`` (either may be absent); a damaged one is a one-line error."""
    rej_path, build_path = dataset_dir / "rejects.parquet", dataset_dir / "build.json"
    try:
        rejects = (
            pd.read_parquet(rej_path)
            if rej_path.exists()
            else pd.DataFrame(columns=["take", "blur_index", "reason", "psnr", "psnr_margin"])
        )
    except Exception as e:  # pyarrow's errors share no base class
        raise Rb2vError(f"{rej_path}: not a readable parquet table ({type(e).__name__}); rebuild the dataset") from e
    try:
        build = json.loads(build_path.read_text()) if build_path.exists() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise Rb2vError(f"{build_path}: not valid JSON ({e}); rebuild the dataset") from e
    if not isinstance(build, dict):
        raise Rb2vError(f"{build_path}: not a build record (a JSON object)")
    takes = build.get("takes", [])
    if not isinstance(takes, list) or not all(isinstance(t, dict) and isinstance(t.get("take"), str) for t in takes):
        raise Rb2vError(
            f"{build_path}: 'takes' is not a list of take records (each with its 'take'); rebuild the dataset"
        )
    return rejects, build


def write_report(dataset_dir: str | Path) -> Path:
    from .build import reason_table

    dataset_dir = Path(dataset_dir)
    df = read_manifest(dataset_dir / MANIFEST_NAME)
    rejects, build = _build_records(dataset_dir)
    takes = _take_table(dataset_dir, build)
    reasons = reason_table(rejects)
    reasons["meaning"] = reasons["reason"].map(REJECT_REASONS).fillna("")
    timeline, shown = _timeline(df, rejects)
    n_takes = len(set(df["take"]) | set(rejects["take"]))
    which = "each take" if shown == n_takes else f"the {shown} takes with the most rejections (of {n_takes})"
    failures = build.get("failures", [])
    category = dataset_dir.name
    parts = [
        f"<h1>rb2v dataset: {html.escape(category)}</h1>",
        f"<p>{len(df)} samples from {n_takes} take(s), {len(rejects)} blurry frames rejected"
        + (f", {len(failures)} unit(s) failed (<code>build.json</code>'s <code>failures</code>)" if failures else "")
        + f". Settings hash <code>{html.escape(build.get('settings_hash', ''))}</code>.</p>",
        "<h2>Counts (Table 1 of the paper)</h2>",
        _table(table1(df)),
        "<h2>Takes</h2>",
        _table(takes) if not takes.empty else "<p>(no take summaries)</p>",
        _failures(failures, rejects),
        "<h2>Rejections</h2>",
        _table(reasons) if not reasons.empty else "<p>none</p>",
        "<h2>Along each take</h2>",
        f"<p>Every blurry frame of {which}"
        ": the PSNR of its best fit, coloured by what QC decided (by the first reason where there are several; a frame "
        "without a fit sits on the bottom line). "
        "Rejections from some frame on mean that something changed there (a knocked rig, a clock that drifts).</p>",
        f'<img src="{timeline}" style="max-width:100%">' if timeline else "<p>(no blurry frames)</p>",
        "<h2>PSNR and margin</h2>",
        f'<img src="{_histograms(df, rejects)}">',
        "<h2>Where the time went</h2>",
        _stage_times(build),
        "<h2>Random samples</h2><p>blurry frame | the 7 sharp frames | heat map of |C*(y_fake) − y| (0 to 0.1)</p>",
        _contact_sheet(dataset_dir, df) if len(df) else "<p>(no samples)</p>",
    ]
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>rb2v " + html.escape(category) + "</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px} table.t{border-collapse:collapse}"
        "table.t td,table.t th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}"
        "table.t .n{text-align:right;white-space:nowrap}"
        ".sheet .row{display:flex;align-items:flex-start;gap:4px;margin-bottom:6px}"
        ".sheet .id{writing-mode:vertical-rl;transform:rotate(180deg);font-size:11px;align-self:center}"
        ".sheet figure{margin:0;max-width:11%} .sheet img{max-width:100%;display:block}"
        ".sheet figcaption{font-size:11px;text-align:center}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )
    out = dataset_dir / "report.html"
    write_text_atomic(out, page)
    return out
