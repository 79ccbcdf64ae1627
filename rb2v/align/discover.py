"""Find the takes under RAW and pair each take's two camera streams.

Layout (README, "Formats"): ``RAW/<category>/<subject>/<take>/`` holds one
recording per camera (GoPro chapters joined into one stream); ``RAW/calibration/<name>/``
holds calibration takes. The blur camera is the slow one: the two measured frame rates
must be in the rig's ratio (≈4: 25/100 PAL, 29.97/119.88 NTSC …), or the files are named
``blur.*`` / ``sharp.*`` (then the ratio is still checked).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pyarrow as pa

from ..errors import Rb2vError
from ..io.video import VideoSource, group_chapters, open_source
from ..progress import say
from .preflight import check_raw

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

VIDEO_EXTENSIONS = {".mp4", ".mov", ".mkv", ".avi", ".m4v"}  # GoPro .LRV/.THM side files are skipped
CALIBRATION_DIR = "calibration"


@dataclasses.dataclass(frozen=True)
class Take:
    """One take with its two paired camera streams."""

    category: str
    subject: str
    take: str
    folder: Path
    blur: VideoSource
    sharp: VideoSource
    calibration: str | None = None  # calibration take named in take.toml (or by its session's other takes)

    @property
    def key(self) -> str:
        return f"{self.category}/{self.subject}/{self.take}"

    @property
    def fps_ratio(self) -> float:
        return float(self.sharp.fps) / float(self.blur.fps)

    def row(self, raw: Path) -> dict:
        def rel(p: Path) -> str:
            try:
                return str(p.relative_to(raw))
            except ValueError:
                return str(p)

        row = {"category": self.category, "subject": self.subject, "take": self.take, "folder": rel(self.folder)}
        for role, src in (("blur", self.blur), ("sharp", self.sharp)):
            row |= {
                f"{role}_path": rel(src.path),
                f"{role}_files": [rel(p) for p in src.paths],
                f"{role}_fps": float(src.fps),
                f"{role}_frames": src.frames,
                f"{role}_width": src.width,
                f"{role}_height": src.height,
                f"{role}_duration_s": src.duration,
                f"{role}_audio": src.has_audio,
            }
        row["calibration"] = self.calibration
        return row


@dataclasses.dataclass(frozen=True)
class TakeError:
    """A take that could not be paired or aligned, with a one-line reason."""

    category: str
    subject: str
    take: str
    folder: Path
    stage: str
    error: str
    traceback: str | None = None  # for a bug (not a user error): where it happened

    @property
    def key(self) -> str:
        return f"{self.category}/{self.subject}/{self.take}"


TAKES_SCHEMA = pa.schema(
    [
        ("category", pa.string()),
        ("subject", pa.string()),
        ("take", pa.string()),
        ("folder", pa.string()),
        *[
            f
            for role in ("blur", "sharp")
            for f in (
                pa.field(f"{role}_path", pa.string()),
                pa.field(f"{role}_files", pa.list_(pa.string())),
                pa.field(f"{role}_fps", pa.float64()),
                pa.field(f"{role}_frames", pa.int64()),
                pa.field(f"{role}_width", pa.int32()),
                pa.field(f"{role}_height", pa.int32()),
                pa.field(f"{role}_duration_s", pa.float64()),
                pa.field(f"{role}_audio", pa.bool_()),
            )
        ],
        ("calibration", pa.string()),
    ]
)

ERRORS_SCHEMA = pa.schema(
    [
        ("category", pa.string()),
        ("subject", pa.string()),
        ("take", pa.string()),
        ("folder", pa.string()),
        ("stage", pa.string()),
        ("error", pa.string()),
        ("traceback", pa.string()),
    ]
)


def video_files(folder: Path) -> list[Path]:
    """Video files directly in ``folder`` (hidden files and partial writes skipped). A link to a file
    that is gone (a camera's card unmounted) is named, not taken for a missing camera."""
    named = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith("."))
    broken = [p for p in named if p.is_symlink() and not p.exists()]
    if broken:
        raise Rb2vError(f"{broken[0]}: a link to {os.readlink(broken[0])}, which does not exist")
    return [p for p in named if p.is_file()]


TAKE_TOML_KEYS = ("calibration", "notes")


def read_take_toml(folder: Path) -> dict:
    """A take's ``take.toml`` (optional). A misspelt or misplaced key dropped the calibration it meant to
    name without a word; a file that is not UTF-8 text stopped the whole align run."""
    path = folder / "take.toml"
    if not path.exists():
        return {}
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise Rb2vError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise Rb2vError(f"{path}: not UTF-8 text") from None
    except IsADirectoryError:
        raise Rb2vError(f"{path}: a folder, not a file") from None
    unknown = [k for k in data if k not in TAKE_TOML_KEYS]
    if unknown:
        raise Rb2vError(f"{path}: unknown key '{unknown[0]}' (known: {', '.join(TAKE_TOML_KEYS)})")
    return data


def _role_by_name(recording: list[Path]) -> str | None:
    stem = recording[0].stem.lower()
    return stem if stem in ("blur", "sharp") else None


def pair_streams(folder: Path, fps_ratio: float = 4.0, tolerance: float = 0.02) -> tuple[VideoSource, VideoSource]:
    """The (blur, sharp) streams of one take folder; raises ``Rb2vError`` naming the problem."""
    files = video_files(folder)
    if not files:
        raise Rb2vError(f"{folder}: no video files")
    recordings = group_chapters(files)
    if len(recordings) != 2:
        names = ", ".join(r[0].name if len(r) == 1 else f"{r[0].name}(+{len(r) - 1} chapters)" for r in recordings)
        what = "only one camera stream" if len(recordings) == 1 else f"{len(recordings)} camera streams"
        raise Rb2vError(f"{folder}: {what} ({names}); expected exactly two (blur and sharp)")
    sources = [open_source(r) for r in recordings]
    roles = [_role_by_name(r) for r in recordings]
    if sorted(r for r in roles if r) == ["blur", "sharp"]:
        blur, sharp = (sources[0], sources[1]) if roles[0] == "blur" else (sources[1], sources[0])
    else:
        blur, sharp = sorted(sources, key=lambda s: float(s.fps))
    ratio = float(sharp.fps) / float(blur.fps)
    if abs(ratio - fps_ratio) > fps_ratio * tolerance:
        raise Rb2vError(
            f"{folder}: frame rates {float(blur.fps):.3f} ({blur.name}) and {float(sharp.fps):.3f} "
            f"({sharp.name}) are in ratio {ratio:.3f}, expected about {fps_ratio:g}"
        )
    return blur, sharp


def take_folders(raw: Path) -> tuple[list[tuple[str, str, str, Path]], list[tuple[str, Path]]]:
    """(category, subject, take, folder) of every take, and (name, folder) of calibration takes."""
    check_raw(raw)
    takes, calibrations = [], []
    for cat in sorted(p for p in raw.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if cat.name == CALIBRATION_DIR:
            calibrations += [(c.name, c) for c in sorted(cat.iterdir()) if c.is_dir() and not c.name.startswith(".")]
            continue
        for subj in sorted(p for p in cat.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for take in sorted(p for p in subj.iterdir() if p.is_dir() and not p.name.startswith(".")):
                takes.append((cat.name, subj.name, take.name, take))
    return takes, calibrations


def discover(
    raw: str | Path, fps_ratio: float = 4.0, tolerance: float = 0.02
) -> tuple[list[Take], dict[str, Take], list[TakeError]]:
    """All pairable takes, the calibration takes by name, and the takes that failed (with why)."""
    raw = Path(raw)
    folders, calib_folders = take_folders(raw)
    takes, errors, calibrations = [], [], {}
    for name, folder in calib_folders:
        try:
            blur, sharp = pair_streams(folder, fps_ratio, tolerance)
            calibrations[name] = Take(CALIBRATION_DIR, name, "", folder, blur, sharp)
        except Rb2vError as e:
            errors.append(TakeError(CALIBRATION_DIR, name, "", folder, "discover", str(e)))
    for cat, subj, name, folder in folders:
        try:
            blur, sharp = pair_streams(folder, fps_ratio, tolerance)
            calibration = read_take_toml(folder).get("calibration")
            if calibration is not None and not isinstance(calibration, str):
                raise Rb2vError(f"{folder / 'take.toml'}: 'calibration' must be a string")
            known = [n for n, _ in calib_folders]
            if calibration is not None and calibration not in known:  # a typo silently dropped the lens model
                raise Rb2vError(
                    f"{folder / 'take.toml'}: calibration take '{calibration}' is not in {raw / CALIBRATION_DIR} "
                    f"(found: {', '.join(known) or 'none'})"
                )
            if calibration is not None and calibration not in calibrations:  # it was aligned without it, unsaid
                raise Rb2vError(
                    f"{folder / 'take.toml'}: its calibration take '{calibration}' cannot be used (its error is above)"
                )
            takes.append(Take(cat, subj, name, folder, blur, sharp, calibration))
        except Rb2vError as e:
            errors.append(TakeError(cat, subj, name, folder, "discover", str(e)))
    if not takes and not calibrations:
        _no_takes(raw, errors)
    return share_session_calibration(takes), calibrations, errors


def share_session_calibration(takes: list[Take]) -> list[Take]:
    """A take without take.toml gets the calibration take its session folder's other takes all name (DESIGN:
    "a session folder's takes share it"): one forgotten file aligned a take with no lens model, silently
    (an outside check's take beside two that named one: 1.55 px off, every frame rejected). Where they
    name none or several, or its take.toml names none, it has none."""
    named: dict[tuple[str, str], set[str]] = {}
    for t in takes:
        if t.calibration is not None:
            named.setdefault((t.category, t.subject), set()).add(t.calibration)
    shared = []
    for t in takes:
        names = named.get((t.category, t.subject), set())
        if t.calibration is None and len(names) == 1 and not (t.folder / "take.toml").exists():
            (name,) = names
            say(
                f"note: {t.key}: no take.toml; using calibration take '{name}', which the other takes of "
                f"{t.category}/{t.subject} name"
            )
            t = dataclasses.replace(t, calibration=name)
        shared.append(t)
    return shared


def _no_takes(raw: Path, errors: list[TakeError]) -> None:
    """Raise the one-line error of a capture folder that holds no take: with a hint where videos sit
    at the wrong depth (a take or a category folder given as RAW), unless some take failed on its own."""
    level, folders = 0, [raw]
    while folders and level < 3:
        found = next((f for f in folders if video_files(f)), None)
        if found is not None:
            up = 3 - level
            raise Rb2vError(
                f"{raw}: no takes at RAW/<category>/<subject>/<take>/; videos sit {level} level(s) down, in "
                f"{found}: give the folder {up} level{'s' if up > 1 else ''} up as RAW"
            )
        folders = [c for f in folders for c in sorted(f.iterdir()) if c.is_dir() and not c.name.startswith(".")]
        folders = [f for f in folders if f != raw / CALIBRATION_DIR]  # its takes sit 2 down by design
        level += 1
    if not errors:
        raise Rb2vError(f"{raw}: no takes (expected RAW/<category>/<subject>/<take>/ with the two cameras' videos)")


def takes_table(takes: list[Take], raw: Path) -> pa.Table:
    return pa.Table.from_pylist([t.row(raw) for t in takes], schema=TAKES_SCHEMA)


def errors_table(errors: list[TakeError], raw: Path) -> pa.Table:
    rows = []
    for e in errors:
        try:
            folder = str(e.folder.relative_to(raw))
        except ValueError:
            folder = str(e.folder)
        rows.append(
            {
                "category": e.category,
                "subject": e.subject,
                "take": e.take,
                "folder": folder,
                "stage": e.stage,
                "error": e.error,
                "traceback": e.traceback,
            }
        )
    return pa.Table.from_pylist(rows, schema=ERRORS_SCHEMA)
