"""A small manifest-conformant blur2vid dataset from real images, for tests and accuracy runs.

Until ``rb2v build`` / ``rb2v synth-reds`` datasets exist, HyperCUT is trained and measured on:

* *photo takes*: a real photograph (scikit-image's bundled photos) filmed by a virtual camera
  whose window moves smoothly (translation with acceleration, rotation, zoom; 1.5-5 px/frame),
  plus a little sensor noise; each photo is one subject;
* *video takes* (optional): consecutive frames of a real video (a folder of images, e.g. a
  static street camera with moving cars and people), the subject being the folder's name.

A take is one continuous stream x[0..T-1]; sample k uses the window p = 2 + 8k, its 7 sharp
frames x[p..p+6] and the blurry frame y = mean of those 7 frames (8-bit). ``psnr`` is the PSNR of
that mean against the stored y, and ``psnr_margin`` its lead over the windows at p-2 and p+2, as
Algorithm 1 would score them. Subjects never cross splits.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import click
import cv2
import numpy as np

from rb2v.errors import Rb2vError
from rb2v.fsutil import sha256_file
from rb2v.io.images import bundled_photo, image_files, is_image_file, read_image, to_float, to_uint8, write_image
from rb2v.manifest import FRAMES_PER_SEQ, MANIFEST_NAME, sample_row, write_manifest, write_metadata_json
from rb2v.metrics import psnr

# scikit-image's bundled photographs (``cat`` is ``chelsea`` again, so it is left out)
PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "camera",
    "grass",
    "gravel",
    "brick",
    "moon",
    "coins",
    "clock",
    "page",
    "text",
    "stereo_motorcycle",
    "cell",
)
CATEGORY = "synthetic"
# camera speed in px per sharp frame: a 7-frame blur of 4.5-18 px on a 96 px frame that sees
# 35-70 % of a photo's side, i.e. about 2-10 % of the scene's width, the range of real blur
# datasets (GoPro, REDS). Faster motion (1.5-5 px) made the three pairs of a sequence disagree:
# con@3 fell to 67 % where x_2 -> x_4 moved 8-12 px, vs 94 % under 4 px (measured).
DEFAULT_SPEED = (0.75, 3.0)


def load_photo(name: str) -> np.ndarray:
    return bundled_photo(name)


def _smooth_motion(rng: np.random.Generator, n: int, speed: tuple[float, float] = DEFAULT_SPEED) -> list[np.ndarray]:
    """Per-frame 2x3 maps (output window -> photo), for a smooth random similarity motion."""
    speed, angle = rng.uniform(*speed), rng.uniform(0, 2 * np.pi)
    velocity = speed * np.array([np.cos(angle), np.sin(angle)])
    accel = rng.normal(0, 0.01, 2)
    spin = np.deg2rad(rng.uniform(-0.3, 0.3))
    zoom = rng.uniform(-0.005, 0.005)
    t = np.arange(n) - (n - 1) / 2
    maps = []
    for ti in t:
        shift = velocity * ti + 0.5 * accel * ti**2
        theta, scale = spin * ti, np.exp(zoom * ti)
        c, s = scale * np.cos(theta), scale * np.sin(theta)
        maps.append(np.array([[c, -s, shift[0]], [s, c, shift[1]]]))
    return maps


def render_photo_take(
    photo: np.ndarray, n: int, size: int, rng: np.random.Generator, speed: tuple[float, float] = DEFAULT_SPEED
) -> np.ndarray:
    """(n, size, size, 3) frames of a moving window over the photo (scaled so the window sees
    35-70 % of its shorter side, drawn per take), with sensor noise."""
    scale = size / (rng.uniform(0.35, 0.7) * min(photo.shape[:2]))
    photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = photo.shape[:2]
    centre = np.array([rng.uniform(0.4, 0.6) * w, rng.uniform(0.4, 0.6) * h])
    frames = []
    for m in _smooth_motion(rng, n, speed):
        # window pixel u (centred) -> photo pixel centre + A u + shift
        a = m[:, :2]
        offset = centre + m[:, 2] - a @ np.array([size / 2 - 0.5, size / 2 - 0.5])
        warp = np.hstack([a, offset[:, None]])
        frame = cv2.warpAffine(
            photo, warp, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT
        )
        frames.append(frame + rng.normal(0, 0.005, frame.shape).astype(np.float32))
    return np.clip(np.stack(frames), 0, 1)


def render_static_take(
    photo: np.ndarray,
    sprite_photos: list[np.ndarray],
    n: int,
    size: int,
    rng: np.random.Generator,
    speed: tuple[float, float] = DEFAULT_SPEED,
) -> np.ndarray:
    """(n, size, size, 3) frames of a still camera on the photo (framed as in ``render_photo_take``)
    while one to three objects cross it: elliptical patches (12-40 px) of ``sprite_photos``, each
    moving at its own constant velocity (a speed in ``speed`` px per frame), drawn over the scene
    with soft edges; with sensor noise."""
    scale = size / (rng.uniform(0.35, 0.7) * min(photo.shape[:2]))
    scene = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    y0 = int(rng.uniform(0.2, 0.8) * (scene.shape[0] - size))
    x0 = int(rng.uniform(0.2, 0.8) * (scene.shape[1] - size))
    frames = np.repeat(scene[None, y0 : y0 + size, x0 : x0 + size], n, axis=0).astype(np.float32)
    t = np.arange(n) - (n - 1) / 2
    for _ in range(int(rng.integers(1, 4))):
        source = sprite_photos[int(rng.integers(len(sprite_photos)))]
        side = int(rng.integers(12, 41))
        sy, sx = (int(rng.integers(0, d - side)) for d in source.shape[:2])
        patch = source[sy : sy + side, sx : sx + side].astype(np.float32)
        yy, xx = (np.mgrid[:side, :side] - (side - 1) / 2) / (side / 2)
        mask = np.clip((1 - np.hypot(yy, xx)) * side / 4, 0, 1).astype(np.float32)  # ~2 px soft edge
        angle, v = rng.uniform(0, 2 * np.pi), rng.uniform(*speed)
        velocity = v * np.array([np.cos(angle), np.sin(angle)])
        centre = rng.uniform(0.25, 0.75, 2) * size  # where it is at the middle frame
        for i, ti in enumerate(t):
            x, y = centre + velocity * ti - (side - 1) / 2
            warp = np.float32([[1, 0, x], [0, 1, y]])
            a = cv2.warpAffine(mask, warp, (size, size), flags=cv2.INTER_LINEAR)[..., None]
            rgb = cv2.warpAffine(patch, warp, (size, size), flags=cv2.INTER_LINEAR)
            frames[i] = frames[i] * (1 - a) + rgb * a
    frames += rng.normal(0, 0.005, frames.shape).astype(np.float32)
    return np.clip(frames, 0, 1)


def folder_photos(folder: Path) -> list[tuple[str, Path]]:
    """(subject, image) of a folder of photographs: each image in it (named by its stem), and the
    first image of each subfolder (named by the subfolder, e.g. Middlebury's ``input/<scene>/``)."""
    photos = []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            images = image_files(entry)
            if images:
                photos.append((entry.name, images[0]))
        elif is_image_file(entry):
            photos.append((entry.stem, entry))
    if not photos:
        raise Rb2vError(f"{folder}: no images (PNG, JPEG, BMP, TIFF, WebP) in it or its subfolders")
    return photos


def video_takes(folder: Path, size: int) -> list[np.ndarray]:
    """Three takes (left, centre, right square crops) of a folder of consecutive video frames."""
    files = image_files(folder)
    if len(files) < 11:
        raise Rb2vError(f"{folder}: needs at least 11 consecutive frames, found {len(files)}")
    frames = []
    for f in files:
        img = read_image(f)
        s = size / img.shape[0]
        frames.append(cv2.resize(img, (max(size, round(img.shape[1] * s)), size), interpolation=cv2.INTER_AREA))
    stream = np.stack(frames)
    w = stream.shape[2]
    return [stream[:, :, x : x + size] for x in sorted({0, (w - size) // 2, w - size})]


def write_take(out: Path, split: str, subject: str, take: str, stream: np.ndarray, n_samples: int) -> list[dict]:
    stream = to_float(to_uint8(stream))  # what the PNGs will hold
    rows = []
    for k in range(n_samples):
        p = 2 + 8 * k
        if p + 8 >= len(stream):
            break
        blur = to_float(to_uint8(stream[p : p + FRAMES_PER_SEQ].mean(axis=0)))
        score = psnr(stream[p : p + FRAMES_PER_SEQ].mean(axis=0), blur)
        rival = max(psnr(stream[q : q + FRAMES_PER_SEQ].mean(axis=0), blur) for q in (p - 2, p + 2))
        folder = Path("samples") / subject / take / f"{k:04d}"
        write_image(out / folder / "blur.png", blur)
        sharp = []
        for i in range(FRAMES_PER_SEQ):
            write_image(out / folder / f"{i:03d}.png", stream[p + i])
            sharp.append(str(folder / f"{i:03d}.png"))
        files = [str(folder / "blur.png")] + sharp
        rows.append(
            sample_row(
                sample_id=hashlib.sha1(f"{CATEGORY}/{subject}/{take}/{k}".encode()).hexdigest()[:16],
                category=CATEGORY,
                subject=subject,
                take=f"{CATEGORY}/{subject}/{take}",
                split=split,
                blur_path=files[0],
                sharp_paths=sharp,
                blur_index=k,
                sharp_start=p,
                upsample_factor=2,
                psnr=score,
                psnr_margin=score - rival,
                width=stream.shape[2],
                height=stream.shape[1],
                sha256=[sha256_file(out / f) for f in files],
            )
        )
    return rows


def make_dataset(
    out: str | Path,
    *,
    photos: tuple[str, ...] = PHOTOS,
    test_subjects: tuple[str, ...] = (),
    video_dirs: tuple[str | Path, ...] = (),
    photo_dirs: tuple[str | Path, ...] = (),
    takes: int = 2,
    samples: int = 8,
    size: int = 96,
    seed: int = 0,
    speed: tuple[float, float] = DEFAULT_SPEED,
) -> Path:
    """Write the dataset and its manifest under ``out``; return the manifest path."""
    out = Path(out)
    rows = []
    subjects = [(name, None) for name in photos]
    for folder in map(Path, photo_dirs):
        subjects += folder_photos(folder)
    names = [name for name, _ in subjects]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise Rb2vError(f"photo subjects named twice: {', '.join(twice)}")
    for name, path in subjects:
        split = "test" if name in test_subjects else "train"
        photo = load_photo(name) if path is None else read_image(path)
        for t in range(takes):
            rng = np.random.default_rng([seed, zlib.crc32(name.encode()), t])
            stream = render_photo_take(photo, 8 * samples + 3, size, rng, speed)
            rows += write_take(out, split, name, f"take{t:02d}", stream, samples)
    for folder in map(Path, video_dirs):
        split = "test" if folder.name in test_subjects else "train"
        for t, stream in enumerate(video_takes(folder, size)):
            rows += write_take(out, split, folder.name, f"take{t:02d}", stream, samples)
    if not rows:
        raise Rb2vError(f"{out}: nothing to write (no subjects)")
    manifest = write_manifest(
        out / MANIFEST_NAME,
        rows,
        {"settings": {"generator": "hypercut_models.synthetic", "size": size, "seed": seed, "speed": list(speed)}},
    )
    write_metadata_json(out)
    return manifest


@click.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--test-subjects",
    default="coffee,camera,brick,hubble_deep_field",
    help="Comma-separated subjects (photo names or video folder names) for the test split.",
)
@click.option(
    "--video-dir",
    "video_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="A folder of consecutive real video frames (one subject); repeatable.",
)
@click.option(
    "--photo-dir",
    "photo_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="A folder of photographs (each image, or each subfolder's first image, is one subject); repeatable.",
)
@click.option("--takes", default=3, show_default=True, help="Takes per photo.")
@click.option("--samples", default=10, show_default=True, help="Samples per take.")
@click.option("--size", default=96, show_default=True, help="Frame side in pixels.")
@click.option(
    "--speed",
    nargs=2,
    type=float,
    default=DEFAULT_SPEED,
    show_default=True,
    help="Range of the virtual camera's speed, px per sharp frame.",
)
@click.option("--seed", default=0, show_default=True)
def main(out, test_subjects, video_dirs, photo_dirs, takes, samples, size, speed, seed):
    """Make a small real-image blur2vid dataset (python -m hypercut_models.synthetic OUT)."""
    path = make_dataset(
        out,
        test_subjects=tuple(s for s in test_subjects.split(",") if s),
        video_dirs=video_dirs,
        photo_dirs=photo_dirs,
        takes=takes,
        samples=samples,
        size=size,
        seed=seed,
        speed=speed,
    )
    click.echo(path)


if __name__ == "__main__":
    main()
