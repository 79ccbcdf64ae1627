"""Simulate a capture session: takes on disk, exactly as the rig would record them, plus truth.

One call is one session: one rig geometry (homography, flip, colour responses) shared by
all takes; every take has its own time offset, clock drift and scene. See
``/rb2v/simulate`` docs in the README for the tree and ``truth.json``.

Time convention: frame k of a camera integrates light from ``k / fps + start_s`` to
``k / fps + start_s + length_s`` (top row; row r of H starts ``r / (H - 1) * readout_s`` later, earlier
for a camera mounted upside down, whose readout is negative),
its ``Exposure`` in the alignment contract's terms; by default the timestamp ``k / fps`` is the
exposure's centre with a global shutter, and ``SimConfig`` (or ``randomize``) sets any other
convention. Audio sample ``n`` is at ``n / rate``, both on the camera's own clock. The blur
camera's clock is world time; the sharp camera's is ``t_sharp = clock_ratio * t_blur + time_offset_s``.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from ..colorspace import srgb_to_linear
from ..errors import Rb2vError
from ..fsutil import atomic_dir, write_json_atomic
from ..io.images import apply_flip, write_image
from ..io.video import VideoWriter
from ..manifest import FRAMES_PER_SEQ
from .audio import WorldSound, record
from .camera import (
    Camera,
    border_mask,
    compose_colour,
    falloff_field,
    random_colour_response,
    random_homography,
    rig_drift,
)
from .config import FOCAL_FRACTION, SimConfig
from .lens import BoardScene, SimLens, board_seconds, board_toml, effective_pinhole, pinhole, pixel_scaling, scale_lens
from .photos import SourceFrames
from .scene import Scene, at_depth
from .timing import Drift, take_settings

TRUTH_SCHEMA = "rb2v.truth/1"
CATEGORY_IDS = {"street": 1, "face": 2, "hand": 3, "calibration": 9}
BORDER_BAND = 16  # px of rig housing visible at the blur camera's left/right edges
SHARP_BORDER_BAND = 12  # ... and at the sharp camera's top/bottom edges
UPSAMPLE = 2
WINDOW = FRAMES_PER_SEQ  # the manifest's sample length: truth's sharp_start is for such windows


class TakeSimulation:
    """One take: its scene, both cameras, their clocks — renders any frame on demand."""

    def __init__(self, cfg: SimConfig, subject_index: int, take_index: int, calibration: bool = False):
        self.cfg = cfg
        self.subject_index, self.take_index = subject_index, take_index
        self.calibration = calibration
        W, H = cfg.width, cfg.height
        # the sharp camera's recorded frame; S maps rendered pixels to recorded ones (pixel centres kept)
        self.sharp_size = (int(cfg.sharp_size[0]), int(cfg.sharp_size[1])) if cfg.sharp_size else (W, H)
        self.sharp_scale = pixel_scaling(self.sharp_size[0] / W, self.sharp_size[1] / H)
        rig = np.random.default_rng([cfg.seed, 1])  # the session's rig: shared by all takes
        self.homography = rig_homography = random_homography(rig, W, H)
        blur_colour, sharp_colour = random_colour_response(rig), random_colour_response(rig)
        self.color_matrix = compose_colour(blur_colour, sharp_colour)
        cat_id = CATEGORY_IDS["calibration" if calibration else cfg.category]
        self._key = [cfg.seed, cat_id, subject_index, take_index]
        if cfg.rig_drift_px and not calibration:  # the sharp camera moved since the calibration take
            moved = rig_drift(np.random.default_rng([8, *self._key]), W, H, cfg.rig_drift_px, cfg.rig_moves_3d)
            self.homography = self.homography @ np.linalg.inv(moved)
            self.homography /= self.homography[2, 2]
        rng = np.random.default_rng([2, *self._key])
        self.time_offset_s = float(rng.uniform(0.05, 0.45))
        self.clock_ratio = float(1 + rng.uniform(-50e-6, 50e-6))
        source = SourceFrames(cfg.source) if (cfg.source and not calibration and cfg.category == "street") else None
        motion = cfg.motion_scale * (0.25 if calibration else 1.0)
        self.scene = Scene(
            cfg.category,
            rng,
            W,
            H,
            motion,
            subject_index=subject_index,
            source=source,
            calibration=calibration,
            rig_motion=cfg.rig_motion,
            subject_size=cfg.subject_size,
        )
        self.settings = take_settings(cfg, self._key)
        self.exposure = self.settings.exposure  # the true windows, rb2v.alignment.Exposure per camera
        # lens distortion (a session's rig: the same for all its takes); truth states both cameras' lenses
        # Each lens is centred on its camera's principal point: the sharp camera's is that of the rig's
        # homography before any drift (a bumped rig moves the camera with its lens).
        K_blur = pinhole(W, H)
        pinholes = {"blur": K_blur, "sharp": effective_pinhole(rig_homography, K_blur)}
        coeffs = {"blur": cfg.distortion_blur, "sharp": cfg.distortion_sharp}
        lenses = {c: SimLens.make(coeffs[c], pinholes[c], W, H) for c in coeffs}
        self.lens = None  # {"blur": Lens, "sharp": Lens} when the simulated lenses distort
        if cfg.distorted:
            flips = {"blur": "none", "sharp": cfg.flip}
            self.lens = {
                c: (v or SimLens(pinholes[c], np.zeros(5), (W, H))).to_lens(flips[c]) for c, v in lenses.items()
            }
            self.lens["sharp"] = scale_lens(self.lens["sharp"], self.sharp_scale, self.sharp_size)
        # a distorted session's calibration take films a board (board.toml, cfg.board) in front of its backdrop
        self.board = calibration and cfg.distorted
        if self.board:
            self.scene = BoardScene(
                self.scene, np.random.default_rng([5, *self._key]), K_blur, reach=cfg.board_reach, kind=cfg.board
            )
        eb, es = self.exposure["blur"], self.exposure["sharp"]
        offset = np.asarray(cfg.centre_offset_mm, np.float64)
        self.parallax = offset * 1e-3 * FOCAL_FRACTION * W if offset.any() else None  # f t, px m
        self.blur = Camera(
            "blur",
            cfg.blur_fps,
            eb.length_s,
            np.eye(3),
            "none",
            blur_colour,
            read_noise=0.002,
            shot_noise=5e-5,
            borders=border_mask(W, H, "lr", BORDER_BAND),
            vignette=falloff_field(W, H, cfg.vignetting[0], cfg.splitter_gradient),
            lens=lenses["blur"],
            start_s=eb.start_s,
            readout_s=eb.readout_s,
        )
        self.sharp = Camera(
            "sharp",
            cfg.sharp_fps,
            es.length_s,
            self.homography,
            cfg.flip,
            sharp_colour,
            read_noise=0.004,
            shot_noise=3e-4,
            borders=border_mask(W, H, "tb", SHARP_BORDER_BAND),
            vignette=falloff_field(W, H, cfg.vignetting[1], -cfg.splitter_gradient),
            lens=lenses["sharp"],
            start_s=es.start_s,
            readout_s=es.readout_s,
            parallax=self.parallax,
        )
        st = self.settings
        self.drift = {
            c: Drift(np.random.default_rng([7, *self._key, i]), st.exposure_drift, st.wb_drift)
            for i, c in enumerate(("blur", "sharp"))
        }
        self._renders: OrderedDict = OrderedDict()  # rolling shutter: renders shared by consecutive frames
        self.flicker_phase = float(np.random.default_rng([11, *self._key]).uniform(0, 2 * np.pi))  # of the light
        seconds = (board_seconds() if self.board else 1.2) if calibration else cfg.seconds
        self.blur_frames = int(round(seconds * cfg.blur_fps))
        if cfg.bump_px and not calibration:  # the rig knocked halfway through the take
            knock = rig_drift(np.random.default_rng([9, *self._key]), W, H, cfg.bump_px, cfg.rig_moves_3d)
            after = self.homography @ np.linalg.inv(knock)
            self.sharp.moved = (self.blur_frames / 2 / cfg.blur_fps, after / after[2, 2])
        last_centre = self.to_sharp_clock((self.blur_frames - 1) / cfg.blur_fps)
        self.sharp_frames = int(math.ceil((last_centre + 0.12) * cfg.sharp_fps)) + 1

    # ------------------------------------------------------------------ clocks
    def to_sharp_clock(self, t_blur):
        return self.clock_ratio * np.asarray(t_blur) + self.time_offset_s

    def sharp_to_world(self, t_sharp):
        return (np.asarray(t_sharp) - self.time_offset_s) / self.clock_ratio

    def sharp_start_exact(self, k: int) -> float:
        """p such that the upsampled window x[p..p+6] is centred on blur frame k's exposure.

        Centres of the middle row (under rolling shutter): the blur exposure's, mapped to the sharp
        clock, is where the window's centre ``x[p + 3]`` (sharp frame ``(p + 3) / 2``) has its middle
        row's exposure centre — ``Alignment.predicted_start`` with the true exposures.
        """
        t_blur = k / self.cfg.blur_fps + self.exposure["blur"].centre_s()
        i = (self.to_sharp_clock(t_blur) - self.exposure["sharp"].centre_s()) * self.cfg.sharp_fps
        return float(UPSAMPLE * i - (WINDOW - 1) / 2)

    # ------------------------------------------------------------------ filming
    def _noise_rng(self, cam: str, index: int, noise: bool):
        return np.random.default_rng([3, *self._key, 0 if cam == "blur" else 1, index]) if noise else None

    def _backdrop(self, backdrop: np.ndarray | None, camera: Camera) -> np.ndarray | None:
        if backdrop is None:
            return None
        img = np.asarray(backdrop, np.float32)
        if img.shape != (self.cfg.height, self.cfg.width, 3):
            raise Rb2vError(f"backdrop must be ({self.cfg.height}, {self.cfg.width}, 3), got {img.shape}")
        return np.ascontiguousarray(apply_flip(srgb_to_linear(img), camera.flip))

    def _to_world(self, cam: Camera):
        return (lambda t: np.asarray(t)) if cam is self.blur else self.sharp_to_world

    def gain(self, cam: str, index: int) -> np.ndarray | None:
        """Per-frame gains (3,) of the camera's encoded colours (exposure and white-balance drift), or None."""
        drift = self.drift[cam]
        if not drift.active:
            return None
        fps = self.cfg.blur_fps if cam == "blur" else self.cfg.sharp_fps
        return drift.gain(index / fps)

    def light(self, cam: Camera, index: int, rows: np.ndarray | float = 0.5) -> np.ndarray | float:
        """The scene's light (``SimConfig.flicker_*``) averaged over frame ``index``'s exposure, exactly: that
        of the recorded rows at ``rows`` (fractions of the frame's height: a rolling shutter exposes them at
        their own times, so a pulsing light draws bands; default the middle row's); 1 under a steady light."""
        depth, hz = self.cfg.flicker_depth, self.cfg.flicker_hz
        if not depth or not hz:
            return np.ones(np.shape(rows)) if np.ndim(rows) else 1.0
        start = index / cam.fps + cam.exposure_start_s + np.asarray(rows, np.float64) * cam.readout_s
        a, b = self._to_world(cam)(start), self._to_world(cam)(start + cam.exposure_s)
        w, phase = 2 * np.pi * hz, self.flicker_phase
        light = 1 + depth * (np.cos(w * a + phase) - np.cos(w * b + phase)) / (w * (b - a))
        return light if np.ndim(rows) else float(light)

    def _render(self, cam: Camera, j: int, dt: float, backdrop: np.ndarray | None, capacity: int):
        """The scene through ``cam`` at grid time ``(j + 0.5) * dt`` of its clock (cached without a backdrop)."""
        key = (cam.name, j)
        if backdrop is None and key in self._renders:
            self._renders.move_to_end(key)
            return self._renders[key]
        tau = float(self._to_world(cam)((j + 0.5) * dt))
        out = cam.render(self.scene, tau, (self.cfg.width, self.cfg.height), backdrop=backdrop)
        if backdrop is None:
            self._renders[key] = out
            while len(self._renders) > capacity:
                self._renders.popitem(last=False)
        return out

    def _film(self, cam: Camera, index: int, noise: bool, backdrop: np.ndarray | None):
        ts = index / cam.fps
        rng = self._noise_rng(cam.name, index, noise)
        bd = self._backdrop(backdrop, cam)
        gain = self.gain(cam.name, index)
        if cam.readout_s == 0:
            times = self._to_world(cam)(cam.exposure_times(ts, self.cfg.internal_fps))
            light = self.light(cam, index)
            return cam.film(self.scene, times, (self.cfg.width, self.cfg.height), rng, bd, gain=gain, light=light)
        js, dt, weights = cam.rolling_grid(ts, self.cfg.internal_fps, self.cfg.height)
        renders = [self._render(cam, int(j), dt, bd, capacity=len(js) + 2) for j in js]
        radiance, alpha = cam.integrate_rows(renders, weights)
        if self.cfg.flicker_depth and self.cfg.flicker_hz:  # each recorded row under its own light: bands
            recorded = self.light(cam, index, np.arange(self.cfg.height) / max(self.cfg.height - 1, 1))
            rendered = recorded[::-1] if cam.flip == "vertical" else recorded  # as integrate_rows reads rows
            radiance *= rendered.astype(np.float32)[:, None, None]
        return cam.develop(radiance, alpha, rng, gain)

    def film_blur(self, k: int, noise: bool = True, backdrop: np.ndarray | None = None):
        """Blur frame k as recorded (float32 RGB) and its true alpha.

        ``backdrop`` (sRGB (H,W,3) in [0,1], in the recorded frame's geometry) replaces the
        green screen: the frame the camera would have filmed in front of that backdrop.
        """
        return self._film(self.blur, k, noise, backdrop)

    def film_sharp(self, i: int, noise: bool = True, backdrop: np.ndarray | None = None):
        """Sharp frame i as recorded (mirror-flipped; at ``sharp_size``, area-resampled from the render)
        and its true alpha (same geometry). ``backdrop`` is in the rendered geometry."""
        rgb, alpha = self._film(self.sharp, i, noise, backdrop)
        if self.sharp_size == (self.cfg.width, self.cfg.height):
            return rgb, alpha
        return tuple(cv2.resize(a, self.sharp_size, interpolation=cv2.INTER_AREA) for a in (rgb, alpha))

    def blur_subframe_times(self, k: int) -> np.ndarray:
        """World times the blur camera integrates for frame k under a global shutter (tests of the exposure model)."""
        return self.blur.exposure_times(k / self.cfg.blur_fps, self.cfg.internal_fps)

    def row_times(self, cam: str, index: int) -> np.ndarray:
        """World time of each recorded row's exposure centre for frame ``index`` of camera ``cam`` (H,)."""
        e, fps = self.exposure[cam], (self.cfg.blur_fps if cam == "blur" else self.cfg.sharp_fps)
        rows = np.arange(self.cfg.height) / (self.cfg.height - 1)
        if cam == "sharp":  # recorded rows at their centres in the rendered frame
            S = self.sharp_scale
            rows = (np.arange(self.sharp_size[1]) - S[1, 2]) / S[1, 1] / (self.cfg.height - 1)
        own = index / fps + e.start_s + e.length_s / 2 + rows * e.readout_s
        return self._to_world(self.blur if cam == "blur" else self.sharp)(own)

    def colour_matrix_of(self, k: int) -> np.ndarray:
        """The true sharp->blur 3x4 colour map for blur frame k under drift (the sharp frame at its window's centre)."""
        gb = self.gain("blur", k)
        if gb is None:
            return self.color_matrix
        i = int(round((self.sharp_start_exact(k) + (WINDOW - 1) / 2) / UPSAMPLE))
        gs = self.gain("sharp", i)
        return compose_colour(gb[:, None] * self.blur.colour, gs[:, None] * self.sharp.colour)

    # ------------------------------------------------------------------ audio
    def audio_tracks(self) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.cfg
        rng = np.random.default_rng([4, *self._key])
        t_end = self.blur_frames / cfg.blur_fps + 1.0
        sound = WorldSound(rng, -1.0, t_end)
        rate = cfg.audio_rate
        n_blur = int(round(self.blur_frames / cfg.blur_fps * rate))
        n_sharp = int(round(self.sharp_frames / cfg.sharp_fps * rate))
        # sample n of a track is heard audio_start + n / rate after its camera's first frame
        blur_start, sharp_start = cfg.audio_start_s
        blur = record(sound, n_blur, rate, lambda t: t + blur_start, rng, gain=0.9, noise=0.004)
        delay = cfg.sharp_audio_delay_s
        sharp = record(
            sound, n_sharp, rate, lambda t: self.sharp_to_world(t + sharp_start - delay), rng, gain=0.7, noise=0.006
        )
        return blur, sharp

    # ------------------------------------------------------------------ truth
    def view_truth(self) -> dict:
        """The part of truth.json that says where each camera sees: frame size, flip, homography, lenses
        and the blur camera's valid region (inside its dark sides)."""
        cfg = self.cfg
        return {
            "width": cfg.width,
            "height": cfg.height,
            "sharp_width": self.sharp_size[0],
            "sharp_height": self.sharp_size[1],
            "flip_sharp": cfg.flip,
            "homography": self.recorded_homography(self.layer_homography()).tolist(),
            "lens": None if self.lens is None else {c: v.to_json() for c, v in self.lens.items()},
            "valid_region": {
                "x": BORDER_BAND + 4,
                "y": 0,
                "width": cfg.width - 2 * (BORDER_BAND + 4),
                "height": cfg.height,
            },
        }

    def layer_homography(self) -> np.ndarray:
        """The rendered sharp view's homography of the layer that matters (the subject's, the board's or the
        street's backdrop's): the layers' differ where the cameras' centres do (parallax)."""
        if self.parallax is None:
            return self.homography
        subject = self.cfg.green_screen and not self.calibration
        return at_depth(
            self.homography, self.parallax, self.scene.objects[0].depth if subject else self.scene.backdrop_depth
        )

    def recorded_homography(self, H: np.ndarray) -> np.ndarray:
        """A rendered sharp view's homography (flipped sharp -> blur) from the recorded sharp pixels."""
        if self.sharp_size != (self.cfg.width, self.cfg.height):
            H = H @ np.linalg.inv(self.sharp_scale)
        return H / H[2, 2]

    def truth(self, names: dict) -> dict:
        cfg = self.cfg
        view = self.view_truth()
        max_p = UPSAMPLE * (self.sharp_frames - 1) - (WINDOW - 1)
        exact = [self.sharp_start_exact(k) for k in range(self.blur_frames)]
        starts = [int(round(p)) if 0 <= round(p) <= max_p else None for p in exact]
        centred = all(e.readout_s == 0 and e.start_s == -e.length_s / 2 for e in self.exposure.values())
        bump = self.sharp.moved
        per_frame = gains = None
        if self.drift["blur"].active:
            per_frame = [self.colour_matrix_of(k).tolist() for k in range(self.blur_frames)]
            gains = {
                "blur": [self.gain("blur", k).tolist() for k in range(self.blur_frames)],
                "sharp": [self.gain("sharp", i).tolist() for i in range(self.sharp_frames)],
            }
        return {
            "schema": TRUTH_SCHEMA,
            "category": "calibration" if self.calibration else cfg.category,
            "subject": names["subject"],
            "take": names["take"],
            "seed": cfg.seed,
            "subject_index": self.subject_index,
            "take_index": self.take_index,
            "blur_files": names["blur_files"],
            "sharp_files": names["sharp_files"],
            "blur_fps": cfg.blur_fps,
            "sharp_fps": cfg.sharp_fps,
            "blur_frames": self.blur_frames,
            "sharp_frames": self.sharp_frames,
            **view,  # size, flip, homography, lenses, valid region: one owner
            "time_offset_s": self.time_offset_s,
            "clock_ratio": self.clock_ratio,
            "color_matrix": self.color_matrix.tolist(),
            "blur_exposure_s": self.exposure["blur"].length_s,
            "sharp_exposure_s": self.exposure["sharp"].length_s,
            "timestamp_convention": "exposure centre" if centred else "see exposure",
            "exposure": {c: e.to_json() for c, e in self.exposure.items()},
            "camera_settings": self.settings.to_json(),
            "color_matrix_per_frame": per_frame,
            "gains": gains,
            # the light each frame's exposure saw (SimConfig.flicker_*), or None under a steady light
            "light": {
                "blur": [self.light(self.blur, k) for k in range(self.blur_frames)],
                "sharp": [self.light(self.sharp, i) for i in range(self.sharp_frames)],
            }
            if cfg.flicker_depth and cfg.flicker_hz
            else None,
            "upsample_factor": UPSAMPLE,
            "sharp_start_exact": exact,
            "sharp_start": starts,
            "green_screen": self.scene.green_screen,
            "alpha_blur": "alpha/blur/%06d.png" if self.scene.green_screen else None,
            "alpha_sharp": "alpha/sharp/%06d.png" if self.scene.green_screen else None,
            "audio": cfg.audio,
            "timecode": cfg.timecode,
            "calibration": names.get("calibration"),
            # a rig knocked mid-take: from this time on (blur clock, s) the sharp view has this homography
            "bump": None
            if bump is None
            else {"at_s": bump[0], "homography": self.recorded_homography(bump[1]).tolist()},
            "sim_config": cfg.as_dict(),
        }


# ---------------------------------------------------------------------- writing
def _timecode(seconds: float, fps: float) -> str:
    nominal = int(round(fps))
    frames = int(round(seconds * fps))
    ff = frames % nominal
    s = frames // nominal
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{ff:02d}"


def _write_camera(
    sim: TakeSimulation, folder: Path, cam: str, number: int, audio: np.ndarray | None, tick: Callable[[], None]
) -> list[str]:
    cfg = sim.cfg
    fps = cfg.blur_fps if cam == "blur" else cfg.sharp_fps
    total = sim.blur_frames if cam == "blur" else sim.sharp_frames
    film = sim.film_blur if cam == "blur" else sim.film_sharp
    width, height = (cfg.width, cfg.height) if cam == "blur" else sim.sharp_size
    # an upside-down camera with a rotation tag stores its sensor's frames turned, for players to turn back
    turned = cfg.mounted_upside_down(cam) and cfg.rotation_tag
    per_chapter = int(round(cfg.chapter_seconds * fps)) if cfg.chapter_seconds > 0 else total
    timecode = None
    if cfg.timecode:
        # Both cameras are jammed to the same wall clock; each start is quantised to its frame rate.
        start_wall = 36000.0 + 60.0 * sim.take_index + (0.0 if cam == "blur" else -sim.time_offset_s / sim.clock_ratio)
        timecode = _timecode(start_wall, fps)
    names = []
    alpha_dir = folder / "alpha" / cam
    for chapter, start in enumerate(range(0, total, per_chapter), start=1):
        count = min(per_chapter, total - start)
        name = f"GX{chapter:02d}{number:04d}.MP4"
        chunk_audio = None
        if audio is not None:
            a0, a1 = int(round(start / fps * cfg.audio_rate)), int(round((start + count) / fps * cfg.audio_rate))
            chunk_audio = (audio[a0:a1], cfg.audio_rate)
        with VideoWriter(
            folder / name,
            fps,
            width,
            height,
            crf=cfg.crf,
            bitrate=sim.settings.bitrate_bps(width, height),
            audio=chunk_audio,
            audio_start=cfg.audio_start_s[0 if cam == "blur" else 1],
            codec=cfg.codec,
            # H.265: a sync sample every half second, open GOPs as x265 makes them, so that seeks land
            # beside CRA pictures as they would in a long recording (x265's own interval, 250 frames,
            # is longer than a simulated take)
            gop=max(1, round(fps / 2)) if cfg.codec == "hevc" else None,
            timecode=timecode if chapter == 1 else None,
            rotation=180 if turned else 0,
        ) as vw:
            for i in range(start, start + count):
                rgb, alpha = film(i)
                vw.write(rgb[::-1, ::-1] if turned else rgb)
                if sim.scene.green_screen:
                    write_image(alpha_dir / f"{i:06d}.png", alpha, bits=16)
                tick()
        names.append(name)
    return names


def _take_total(sim: TakeSimulation) -> int:
    return sim.blur_frames + sim.sharp_frames


def write_take(
    sim: TakeSimulation,
    take_dir: Path,
    subject: str,
    take: str,
    file_number: int,
    calibration: str | None,
    tick: Callable[[], None],
) -> Path:
    """Write one take folder atomically: nothing appears until every file is complete."""
    with atomic_dir(take_dir) as tmp:
        blur_audio, sharp_audio = sim.audio_tracks() if sim.cfg.audio else (None, None)
        blur_files = _write_camera(sim, tmp, "blur", file_number, blur_audio, tick)
        sharp_files = _write_camera(sim, tmp, "sharp", file_number + 1, sharp_audio, tick)
        truth = sim.truth(
            {
                "subject": subject,
                "take": take,
                "blur_files": blur_files,
                "sharp_files": sharp_files,
                "calibration": calibration,
            }
        )
        if getattr(sim, "board", False):
            (tmp / "board.toml").write_text(board_toml(sim.cfg.board))
        if calibration:
            (tmp / "take.toml").write_text(f'# simulated take\ncalibration = "{calibration}"\n')
        write_json_atomic(tmp / "truth.json", truth)
    return take_dir


def iter_takes(cfg: SimConfig) -> Iterator[tuple[int, int, str, str]]:
    for s in range(cfg.subjects):
        for t in range(cfg.takes):
            yield s, t, f"subject{s + 1:02d}", f"take{t + 1:02d}"


def check_crop_fits(sims: list[TakeSimulation], crop: tuple[int, int]) -> None:
    """Refuse a session whose takes ``rb2v align`` would reject: the rig's crop (with the align stage's
    margin) must fit inside both cameras' valid views, as truth states them, in every take."""
    from ..align.geometry import CROP_MARGIN_PX
    from .oracle import valid_crop

    cw, ch = crop
    for sim in sims:
        try:
            valid_crop(sim.view_truth(), cw + 2 * CROP_MARGIN_PX, ch + 2 * CROP_MARGIN_PX)
        except ValueError:
            cfg = sim.cfg
            raise Rb2vError(
                f"simulate-rig: at {cfg.width}x{cfg.height} (seed {cfg.seed}) the rig's {cw}x{ch} crop does not fit "
                f"inside both cameras' valid views (the blur camera's dark sides, the sharp camera's top and bottom, "
                f"the rig's homography{' and lenses' if sim.lens else ''}), so rb2v align would reject the takes; "
                f"use a larger --size"
            ) from None


def simulate_session(
    raw: str | Path, cfg: SimConfig, progress: bool = True, crop: tuple[int, int] | None = None
) -> list[Path]:
    """Write the session's takes (and calibration take for green-screen categories) under ``raw``.
    With ``crop`` (the rig's crop size), refuse before rendering a session that crop cannot be aligned in.

    Takes already on disk (a complete folder with truth.json) are kept: a re-run resumes.
    """
    from ..progress import progress as bar

    cfg.validate()
    raw = Path(raw)
    jobs = []
    calibration = f"{cfg.category}-rig" if cfg.green_screen or cfg.distorted else None
    if calibration:
        jobs.append(
            (TakeSimulation(cfg, 0, 0, calibration=True), raw / "calibration" / calibration, "", calibration, None)
        )
    for s, t, subject, take in iter_takes(cfg):
        jobs.append((TakeSimulation(cfg, s, t), raw / cfg.category / subject / take, subject, take, calibration))
    if crop:
        check_crop_fits([j[0] for j in jobs], crop)
    todo = [j for j in jobs if not (j[1] / "truth.json").exists()]
    # a folder without truth.json is not a simulated take: a real capture of the same name, never replaced
    taken = [folder for _, folder, *_ in todo if folder.exists() and any(folder.iterdir())]
    if taken:
        raise Rb2vError(
            f"{taken[0]}: holds files but no truth.json, so it is not a simulated take; simulate into another "
            f"RAW folder ({len(taken)} such folder(s))"
        )
    total = sum(_take_total(j[0]) for j in todo)
    with bar(total=total, desc=f"simulate {cfg.category}", unit="frame", disable=not progress) as pb:
        for sim, folder, subject, take, calib in todo:
            # each camera has its own file counter, as two GoPros would
            number = 1000 + 10 * (sim.subject_index * 100 + sim.take_index) + (500 if sim.calibration else 0)
            write_take(sim, folder, subject, take, number, calib, lambda: pb.update(1))
    return [j[1] for j in jobs]


def load_take(take_dir: str | Path) -> TakeSimulation:
    """Rebuild the simulation of a simulated take from its truth.json (to re-render any frame)."""
    path = Path(take_dir) / "truth.json"
    try:
        truth = json.loads(path.read_text())
    except FileNotFoundError:
        raise Rb2vError(f"{path}: not a simulated take (no truth.json)") from None
    if truth.get("schema") != TRUTH_SCHEMA:
        raise Rb2vError(f"{path}: unknown truth schema {truth.get('schema')!r}")
    cfg = SimConfig(**truth["sim_config"])
    return TakeSimulation(
        cfg, truth["subject_index"], truth["take_index"], calibration=truth["category"] == "calibration"
    )
