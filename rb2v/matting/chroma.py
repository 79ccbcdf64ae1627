"""A green-screen keyer that un-mixes motion-blurred edges.

Motion blur integrates light: a pixel of an edge band sees ``I = a*F + (1-a)*S`` in
linear light, ``a`` the fraction of the exposure the subject covered it, ``F`` the
subject's colour and ``S`` the screen's. The keyer therefore works in linear light:

1. screen model ``S(x, y)``: a low-order polynomial per channel fitted to the pixels
   that are clearly screen (shading and vignetting), estimated once per take by
   :meth:`ChromaKeyer.fit` for temporal stability, or from the frame when unfitted;
2. a first alpha from the key signal ``G - max(R, B)`` relative to the screen's, which
   finds the confidently opaque subject pixels, less those that are a nearby subject colour
   mixed with the screen (``screen_mixtures``: a fast hand smeared over the gaps between its
   fingers leaves flat, partly transparent areas that this key reads as opaque);
3. a colour plane through black, ``G = lr*R + lb*B``, fitted to the subject colours
   around each pixel (moments propagated outward from the opaque pixels by push-pull,
   regularised toward the take's global plane). Skin, hair and shadows of one subject
   lie close to such a plane whatever their brightness, and the key ``L = G - lr*R - lb*B``
   is linear in the mix, so ``a = 1 - L(I) / L(S)`` holds for every subject colour on
   the plane, however dark or bright the blurred part was;
4. soft thresholds at a multiple of the noise measured on the screen (last);
5. in the mixed band, alpha by projection onto the line between the local subject colour
   (the nearest opaque pixels') and the screen (``mix_alpha``) wherever that colour is one
   colour: the edge is un-mixed against the colour that was smeared over the screen, and the
   screen light the subject's rim reflects (spill), which the plane reads as transparency,
   barely moves the projection;
6. the foreground colour by un-mixing ``F = S + (I - S) / a``: the screen's share is
   removed, not just desaturated.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..colorspace import linear_to_srgb, srgb_to_linear
from ..errors import Rb2vError
from ..pixels import per_channel
from .frames import as_frame, as_frames

OPAQUE = 0.97  # first-pass alpha above which a pixel counts as subject colour
MIN_SCREEN_FRACTION = 0.02  # below this share of green pixels there is no screen to key
MIX_OPAQUE = 0.8  # plane alpha above which a pixel's colour is taken as the local subject colour
MIX_BAND = (0.02, 0.98)  # plane alpha of the pixels that are re-estimated as mixtures
MIX_FLAT = 0.025  # px^-1: largest alpha gradient of an opaque plateau pixel
MIX_SPREAD = 0.1  # colour variance / |F - S|^2 of the filled subject colour at which the projection is not used
MIX_MIN_CONTRAST = 0.05  # |F - S|^2 below this share of |S|^2: subject too close to the screen colour
MIXTURE_SCATTER = 3.0  # a screen mixture keys this many times the subject's own scatter (away from S) below it
MIXTURE_REACH = 8.0  # px: sigma of the neighbourhood that measures that scatter
MIXTURE_EVIDENCE = 4.0  # ... and its screen share must exceed its colour left unexplained this many times


@dataclass
class ScreenModel:
    """The screen in linear RGB: a per-channel polynomial (lighting, vignetting) plus a smooth
    residual image (wrinkles, uneven lights) measured where the screen was seen."""

    coeffs: np.ndarray  # (terms, 3)
    degree: int
    noise: float  # robust std of the key's alpha over screen pixels
    bounds: tuple[float, float, float, float] = (-1.0, 1.0, -1.0, 1.0)  # x0, x1, y0, y1 of the fitted pixels
    residual: np.ndarray | None = None  # (H,W,3) for the take's frame size

    def evaluate(self, h: int, w: int) -> np.ndarray:
        base = (design_matrix(h, w, self.degree, bounds=self.bounds) @ self.coeffs).reshape(h, w, 3).astype(np.float32)
        if self.residual is None:
            return base
        if self.residual.shape[:2] != (h, w):
            rh, rw = self.residual.shape[:2]
            raise Rb2vError(f"chroma: frame is {w}x{h} but the keyer was fitted on {rw}x{rh} frames")
        return base + self.residual


def design_matrix(h: int, w: int, degree: int, rows=None, cols=None, bounds=(-1.0, 1.0, -1.0, 1.0)) -> np.ndarray:
    """Polynomial terms of normalised coordinates, held constant outside ``bounds`` (a polynomial
    fitted on part of the frame must not be extrapolated)."""
    if rows is None:
        rows, cols = np.mgrid[0:h, 0:w]
        rows, cols = rows.ravel(), cols.ravel()
    y = np.clip(rows * (2.0 / max(h - 1, 1)) - 1.0, bounds[2], bounds[3])
    x = np.clip(cols * (2.0 / max(w - 1, 1)) - 1.0, bounds[0], bounds[1])
    return np.stack([x**i * y**j for i in range(degree + 1) for j in range(degree + 1 - i)], axis=1)


def key_signal(lin: np.ndarray) -> np.ndarray:
    """How much greener than its other two channels a colour is (positive on the screen)."""
    return lin[..., 1] - np.maximum(lin[..., 0], lin[..., 2])


def same_chroma(lin: np.ndarray, screen: np.ndarray, tol: float = 0.025) -> np.ndarray:
    """Pixels whose chromaticity (r, b shares of R+G+B) is the screen's, at any brightness."""
    share = lin / np.maximum(lin.sum(-1, keepdims=True), 1e-6)
    ref = screen / np.maximum(screen.sum(-1, keepdims=True), 1e-6)
    return np.abs(share - ref)[..., [0, 2]].max(-1) < tol


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot products of colours over the last axis, per pixel or row (several times faster than ``(a * b).sum(-1)``)."""
    return np.einsum("...c,...c->...", a, b)


def plane_key(planes: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """``G - lr*R - lb*B`` of colour planes (3,H,W): zero on the subject's colour plane ``lam = (lr, lb)``
    (two numbers, or two planes), linear in mixtures."""
    return planes[1] - lam[0] * planes[0] - lam[1] * planes[2]


def global_plane(colors: np.ndarray, mask: np.ndarray | None, screen: np.ndarray) -> np.ndarray:
    """``(lr, lb)`` of the plane ``G = lr*R + lb*B`` that the given subject colours fit best relative
    to the screen's distance from it: the key ``v·C`` of least energy over the colours with ``v·S = 1``.

    Normalising on the screen, not on G, keeps the plane away from the screen colour. A set that
    still holds subject/screen mixtures (the first key's "opaque" pixels) spans the plane through
    the subject colour and the screen; a plain least-squares fit takes that plane when the subject
    is nearly one colour (skin), and every mixture then keys opaque. The fit is repeated without
    the colours keyed clearly toward the screen (mixtures), which would still tilt it.
    """
    c = (colors[mask] if mask is not None else colors).reshape(-1, 3)
    c = c[:: len(c) // 20_000 + 1].astype(np.float64)  # a 3x3 moment: a spread-out sample is plenty
    s = np.asarray(screen, np.float64).reshape(-1, 3).mean(axis=0)
    keep = np.ones(len(c), bool)
    for _ in range(3):
        A = c[keep].T @ c[keep] / max(int(keep.sum()), 1)
        v = np.linalg.solve(A + (1e-6 * np.trace(A) + 1e-12) * np.eye(3), s)
        # v·C = 1 - alpha: the subject scatters to both sides of its level, mixtures only toward
        # the screen (up); the side away from the screen measures the scatter, refit without mixtures
        k = c @ v
        level = np.median(k[keep])
        below = k[keep & (k < level)] - level
        if below.size < 16:
            break
        keep = k < level + MIXTURE_SCATTER * np.sqrt(np.mean(below**2))
    if v[1] <= 1e-6 * np.abs(v).max():  # no key weighs green positively: no plane of this form
        return np.zeros(2, np.float32)
    return np.array([-v[0] / v[1], -v[2] / v[1]], np.float32)


def colour_products(planes: np.ndarray) -> np.ndarray:
    """The planes ``R², RB, B², GR, GB`` (5,H,W) of colour planes (3,H,W): ``local_planes``' moments."""
    r, g, b = planes
    return np.stack([r * r, r * b, b * b, g * r, g * b])


def local_planes(products: np.ndarray, weights: np.ndarray, prior: np.ndarray, strength: float = 0.05) -> np.ndarray:
    """Per-pixel ``(lr, lb)`` planes (2,H,W) from the nearby opaque pixels' colour moments (of
    ``colour_products``), pulled toward ``prior``."""
    rr, rb, bb, gr, gb = push_pull(products, weights, planar=True)
    mu = strength * (rr + bb) + 1e-8
    rr, bb = rr + mu, bb + mu
    gr, gb = gr + mu * prior[0], gb + mu * prior[1]
    det = rr * bb - rb * rb
    return np.stack([(gr * bb - gb * rb) / det, (gb * rr - gr * rb) / det]).astype(np.float32, copy=False)


def push_pull(values: np.ndarray, weights: np.ndarray, min_weight: float = 1e-3, planar: bool = False) -> np.ndarray:
    """Fill ``values`` (H,W,C) where ``weights`` is 0 from the nearest weighted neighbourhood (coarse to fine).

    ``planar``: ``values`` is (C,H,W), each plane filtered on its own: OpenCV's pyramid and resize have
    fast paths for 1-4 interleaved channels only (5 interleaved channels take 3x as long as 5 planes).
    """
    layers = list(values) if planar else [values]

    def spread(weight: np.ndarray) -> np.ndarray:  # a weight for every channel of a layer
        return weight if planar else per_channel(weight, values.shape[-1])

    den = [weights.astype(np.float32, copy=False)]
    num = [[layer * spread(den[0]) for layer in layers]]
    while min(den[-1].shape[:2]) > 2:
        num.append([cv2.pyrDown(layer) for layer in num[-1]])
        den.append(cv2.pyrDown(den[-1]))
    coarsest = spread(np.maximum(den[-1], 1e-8))
    filled = [layer / coarsest for layer in num[-1]]
    per_weight = np.float32(1.0 / (min_weight * 50.0))
    out = np.empty(values.shape, np.float32)  # the finest level is summed straight into it
    for level, (n, d) in enumerate(zip(reversed(num[:-1]), reversed(den[:-1]))):
        support, trust = spread(np.maximum(d, 1e-8)), spread(np.clip(d * per_weight, 0.0, 1.0))
        finest = level == len(num) - 2
        for i, own in enumerate(n):
            up = cv2.resize(filled[i], (d.shape[1], d.shape[0]), interpolation=cv2.INTER_LINEAR).reshape(own.shape)
            # trust * own + (1 - trust) * up, in place (the keyer's hot loop; each level is read once):
            # enough support -> own estimate
            own /= support
            own -= up
            own *= trust
            filled[i] = np.add(up, own, out=(out[i] if planar else out) if finest else up)
    if len(num) == 1:  # no finer level than the coarsest
        out[...] = np.stack(filled) if planar else filled[0]
    return out


class ChromaKeyer:
    """Green-screen keyer: ``alpha, fg = keyer(frame)``; ``keyer.fit(frames)`` once per take."""

    name = "chroma"
    space = "linear"  # composite with rb2v.matting.composite(..., space="linear")

    def __init__(self, degree: int = 2, passes: int = 3, fit_samples: int = 40_000, seed: int = 0):
        self.degree = degree
        self.passes = passes
        self.fit_samples = fit_samples
        self.seed = seed
        self.screen: ScreenModel | None = None
        self.plane: np.ndarray | None = None  # (lr, lb) of the take's subject colours
        self._screen_cache: tuple | None = None  # (model, (h, w), screen image): the same for every frame

    # -- screen model -------------------------------------------------------------
    def _fit_screen(self, lins: np.ndarray, masks: np.ndarray) -> ScreenModel:
        n, h, w, _ = lins.shape
        idx = np.flatnonzero(masks.ravel())
        rng = np.random.default_rng(self.seed)
        if idx.size > self.fit_samples:
            idx = np.sort(rng.choice(idx, self.fit_samples, replace=False))
        f, rem = np.divmod(idx, h * w)
        rows, cols = np.divmod(rem, w)
        ys, xs = rows * (2.0 / max(h - 1, 1)) - 1.0, cols * (2.0 / max(w - 1, 1)) - 1.0
        bounds = (float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max()))
        A = design_matrix(h, w, self.degree, rows, cols, bounds)
        b = lins[f, rows, cols].astype(np.float64)
        keep = np.ones(len(b), bool)
        for _ in range(3):  # refit without outliers (shadows, edge pixels mistaken for screen)
            coeffs, *_ = np.linalg.lstsq(A[keep], b[keep], rcond=None)
            resid = np.abs(A @ coeffs - b).max(axis=1)
            scale = 1.4826 * np.median(resid[keep]) + 1e-4
            keep = resid < 3.0 * scale
        return ScreenModel(coeffs=coeffs, degree=self.degree, noise=0.0, bounds=bounds)

    def _screen_candidates(self, lin: np.ndarray, what: str) -> np.ndarray:
        k = key_signal(lin)
        green = k[k > 0]
        if green.size < MIN_SCREEN_FRACTION * k.size:
            raise Rb2vError(f"{what}: no green screen found (only {green.size / k.size:.1%} of the pixels are green)")
        k_screen = np.percentile(green, 90)
        if k_screen < 0.02:
            raise Rb2vError(f"{what}: no green screen found (green excess {k_screen:.3f} too weak)")
        return k > 0.6 * k_screen

    def fit(self, frames, what: str = "take") -> ChromaKeyer:
        """Estimate the screen (and the subject's colour plane) from a few frames of one take."""
        frames = as_frames(frames, what)
        pick = np.unique(np.linspace(0, len(frames) - 1, min(8, len(frames))).round().astype(int))
        lins = srgb_to_linear(frames[pick])
        n, h, w, _ = lins.shape
        masks = np.stack([self._screen_candidates(lin, what) for lin in lins])
        model = self._fit_screen(lins, masks)
        screen = model.evaluate(h, w)
        model.noise = self._alpha_noise(np.stack([self._first_alpha(lin, screen) for lin in lins]), masks)
        # Pixels of the screen's own chromaticity measure its fine shading (wrinkles, uneven
        # light change brightness, a mix with the subject changes chroma): per-pixel median
        # over the frames, smoothed, holes filled.
        clean = (
            np.stack(
                [cv2.erode(same_chroma(lin, screen).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0 for lin in lins]
            )
            & masks
        )
        if clean.any():
            resid = np.where(clean[..., None], lins - screen[None], np.nan)
            seen = clean.any(axis=0)
            med = np.zeros((h, w, 3), np.float32)
            med[seen] = np.nanmedian(resid[:, seen], axis=0)
            weight = seen.astype(np.float32)
            blur = cv2.GaussianBlur(med * weight[..., None], (0, 0), 3.0)
            norm = cv2.GaussianBlur(weight, (0, 0), 3.0)
            smooth = blur / np.maximum(norm, 1e-6)[..., None]
            model.residual = push_pull(smooth, (norm > 0.5).astype(np.float32) * norm)
            screen = model.evaluate(h, w)
            model.noise = self._alpha_noise(np.stack([self._first_alpha(lin, screen) for lin in lins]), clean)
        self.screen = model
        # The take's subject plane, from the opaque pixels of the keyed fit frames.
        self.plane = None
        alphas = np.stack([self._alpha(lin, screen, model.noise, None) for lin in lins])
        opaque = np.stack([cv2.erode((a > OPAQUE).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0 for a in alphas])
        self.plane = global_plane(lins[opaque], None, screen) if opaque.sum() >= 16 else None
        return self

    @staticmethod
    def _first_alpha(lin: np.ndarray, screen: np.ndarray) -> np.ndarray:
        k_s = np.maximum(key_signal(screen), 1e-3)
        return 1.0 - key_signal(lin) / k_s

    @staticmethod
    def _alpha_noise(alphas: np.ndarray, masks: np.ndarray) -> float:
        """Robust std of the key's pixel noise on the screen (smooth shading and ramps cancel out)."""
        highpass = np.stack([a - cv2.blur(a.astype(np.float32), (5, 5)) for a in alphas])
        vals = highpass[masks & (np.abs(alphas) < 0.2)]
        if vals.size == 0:
            return 0.01
        return float(1.4826 * np.median(np.abs(vals)) / np.sqrt(1 - 1 / 25))

    # -- keying ------------------------------------------------------------------
    def _alpha(self, lin: np.ndarray, screen: np.ndarray, noise: float, prior: np.ndarray | None) -> np.ndarray:
        a0 = self._first_alpha(lin, screen)
        alpha = a0
        # The first alpha overshoots on subject colours redder than green (skin): a skin/screen mix
        # of a > ~0.5 keys opaque. Thin rims are cleaned by the passes below (each refits the planes
        # on a cleaner set), wide flat mixtures (gaps between smeared fingers) are not: a plane fitted
        # to them passes through the mixture and calls it opaque. They are found by colour first.
        candidates = a0 > OPAQUE
        plane = prior if prior is not None else global_plane(lin, candidates, screen)
        mixed = screen_mixtures(lin, screen, plane, candidates)
        # colour planes (3,H,W): the per-pixel arithmetic below reads contiguous planes
        lin_planes, screen_planes = (np.ascontiguousarray(c.transpose(2, 0, 1)) for c in (lin, screen))
        products = colour_products(lin_planes)  # the same in every pass
        for _ in range(self.passes):
            opaque = cv2.erode(((alpha > OPAQUE) & ~mixed).astype(np.uint8), np.ones((5, 5), np.uint8))
            opaque = opaque.astype(np.float32)
            if opaque.sum() < 16:
                break
            lam = local_planes(products, opaque, prior if prior is not None else global_plane(lin, opaque > 0, screen))
            key_s = plane_key(screen_planes, lam)
            # Where the subject's plane passes near the screen colour the key cannot tell them apart.
            usable = key_s > 0.25 * screen_planes[1]
            alpha = np.where(usable, 1.0 - plane_key(lin_planes, lam) / np.maximum(key_s, 1e-6), a0)
        alpha = mix_alpha(lin_planes, screen_planes, alpha.astype(np.float32))
        return soft_threshold(alpha, max(3.0 * noise, 0.004))

    def __call__(self, frame) -> tuple[np.ndarray, np.ndarray]:
        alpha, fg_lin = self.key_linear(frame)
        return alpha, linear_to_srgb(fg_lin)

    def key_linear(self, frame) -> tuple[np.ndarray, np.ndarray]:
        """``alpha`` and the foreground in linear light (what ``composite_linear`` mixes: no round trip
        through sRGB)."""
        img = as_frame(frame)
        h, w = img.shape[:2]
        keyer = (
            self
            if self.screen is not None
            else ChromaKeyer(self.degree, self.passes, self.fit_samples, self.seed).fit(img[None], "frame")
        )
        lin = srgb_to_linear(img)
        cache = keyer._screen_cache
        if cache is None or cache[0] is not keyer.screen or cache[1] != (h, w):
            cache = keyer._screen_cache = (keyer.screen, (h, w), keyer.screen.evaluate(h, w))
        screen = cache[2]
        alpha = self._alpha(lin, screen, keyer.screen.noise, keyer.plane)

        return alpha, unmix(lin, screen, alpha)

    def screen_image(self, h: int, w: int) -> np.ndarray:
        """The fitted screen (sRGB), e.g. as a clean plate for other matters."""
        if self.screen is None:
            raise Rb2vError("chroma: call fit(frames) before asking for the screen image")
        return linear_to_srgb(self.screen.evaluate(h, w))


def screen_mixtures(lin: np.ndarray, screen: np.ndarray, plane: np.ndarray, opaque: np.ndarray) -> np.ndarray:
    """Pixels of ``opaque`` that are a nearby subject colour mixed with the screen (partly transparent).

    Mixing with the screen can only move a colour toward the screen: under the take's colour plane
    such a pixel keys clearly below opaque, while the subject's own scatter about the plane (texture,
    noise) shows on both sides, so the pixels keyed *above* opaque nearby measure it. A pixel keyed
    further below opaque than that is suspect, and confirmed when its colour decomposes as
    ``c1 * F + c2 * S`` (``F`` the nearest unsuspected opaque colour) with a screen share ``c2 * |S|``
    well above what the two colours leave unexplained: a differently coloured part of the subject
    (a greener garment, grey) is not such a mix of its neighbour and the screen.
    """
    lam = np.asarray(plane, np.float32)
    a = 1.0 - plane_key(lin.transpose(2, 0, 1), lam) / np.maximum(plane_key(screen.transpose(2, 0, 1), lam), 1e-6)
    a = cv2.GaussianBlur(a.astype(np.float32), (0, 0), 1.0)
    w = opaque.astype(np.float32)
    above = cv2.GaussianBlur(w * (a > 1.0), (0, 0), MIXTURE_REACH)
    scatter = np.sqrt(
        cv2.GaussianBlur(w * np.maximum(a - 1.0, 0.0) ** 2, (0, 0), MIXTURE_REACH) / np.maximum(above, 1e-6)
    )
    suspect = opaque & (a < 1.0 - MIXTURE_SCATTER * scatter)
    clean = w * ~suspect
    if clean.sum() < 16:
        return np.zeros_like(suspect)
    F, S, I = push_pull(lin, clean)[suspect], screen[suspect], lin[suspect]
    ff, fs, ss = _dot(F, F), _dot(F, S), _dot(S, S)
    fi, si = _dot(F, I), _dot(S, I)
    det = np.maximum(ff * ss - fs * fs, 1e-12)
    c1, c2 = (fi * ss - si * fs) / det, (si * ff - fi * fs) / det
    resid = I - c1[:, None] * F - c2[:, None] * S
    mixed = np.zeros_like(suspect)
    mixed[suspect] = c2 * np.sqrt(ss) > MIXTURE_EVIDENCE * np.sqrt(_dot(resid, resid))
    # Only areas wider than the opaque set's erosion: thinner mixed rims are eroded away anyway, and
    # there the screen light an opaque rim reflects (spill) is the same colour as a mix.
    return cv2.morphologyEx(mixed.astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)) > 0


def mix_alpha(lin_planes: np.ndarray, screen_planes: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Alpha of the mixed pixels (the motion-blurred band) by projection onto the line between the
    *local* subject colour and the screen: ``a = (I - S)·(F - S) / |F - S|²``; ``I`` and ``S`` as colour
    planes (3,H,W).

    ``F`` is the colour of the nearest opaque plateau (pixels keyed nearly opaque where the key is
    flat: inside the subject, not on a blur ramp), filled outwards by push-pull, so a blurred edge
    is un-mixed against the colour that was actually smeared over the screen, including the screen
    light its rim reflects (spill), which the colour plane reads as partial coverage (spill adds
    light along ``S``, nearly orthogonal to ``F - S`` for skin on green). All three channels vote,
    so noise costs less than on one key axis. The projection is trusted as far as the filled colour
    is one colour (its variance, pooled over the wider area the fill comes from far from a plateau,
    is small against |F - S|^2), however far the plateau is: a fast edge smears the same colour over
    a wide band; and not where the subject's colour is too close to the screen's (|F - S| small).
    """
    smooth = cv2.GaussianBlur(alpha, (0, 0), 1.0)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3) / 8
    plateau = ((alpha > MIX_OPAQUE) & (gx * gx + gy * gy < MIX_FLAT**2)).astype(np.float32)
    if plateau.sum() < 16:
        return alpha
    moments = push_pull(np.concatenate([lin_planes, lin_planes * lin_planes]), plateau, planar=True)
    d = moments[:3] - screen_planes
    dd = (d * d).sum(axis=0)
    spread = np.maximum(moments[3:] - moments[:3] ** 2, 0).sum(axis=0)  # its variance
    projected = ((lin_planes - screen_planes) * d).sum(axis=0) / np.maximum(dd, 1e-6)
    # Trusted where the subject colour there is one colour: a fill across differently coloured parts
    # (skin and hair) is no colour the edge had, the plane key is right for all of them.
    trust = np.clip(1.0 - spread / np.maximum(dd, 1e-6) / MIX_SPREAD, 0.0, 1.0)
    contrast = MIX_MIN_CONTRAST * (screen_planes * screen_planes).sum(axis=0)
    trust *= (alpha > MIX_BAND[0]) & (alpha < MIX_BAND[1]) & (dd > contrast)
    return (trust * projected + (1.0 - trust) * alpha).astype(np.float32)


def unmix(lin: np.ndarray, screen: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Foreground colour (linear) of ``lin = a*F + (1-a)*screen``: the screen's share removed.

    At tiny alpha the division amplifies noise, so the colour leans on the nearby subject
    colour there (its weight in any composite is tiny anyway).
    """
    unmixed = lin - screen
    unmixed /= per_channel(np.maximum(alpha, 1e-3))
    np.clip(screen + unmixed, 0.0, 1.0, out=unmixed)
    nearby = push_pull(unmixed, alpha * alpha)
    trust = per_channel(np.clip(alpha / 0.2, 0.0, 1.0))
    fg = trust * unmixed
    fg += (1.0 - trust) * nearby
    return fg.astype(np.float32, copy=False)


def soft_threshold(alpha: np.ndarray, t: float) -> np.ndarray:
    """Clamp to [0,1] and snap noise within ``t`` of 0 or 1, with a continuous ramp over [t, 2t]."""

    def snap(a: np.ndarray) -> np.ndarray:
        return np.where(a < t, 0.0, np.where(a < 2 * t, 2.0 * (a - t), a))

    return (1.0 - snap(1.0 - snap(np.clip(alpha, 0.0, 1.0)))).astype(np.float32)
