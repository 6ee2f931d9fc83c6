"""Generated saliency scenes: images with a known fixation density, simulated observers, masks, labels.

Why: the book must run offline in seconds, so its default dataset is generated.  It is built so
that the effects the chapters measure on real eye-tracking data also exist here (centre bias,
low-level pop-out, semantic attractors such as faces and text, observer noise), and the generator
knows the *true* fixation density, which real data never gives.

Design of one scene (all randomness drawn from ``numpy.random.default_rng`` seeded by
``(seed, split, index, GENERATOR_VERSION)``, so a scene is a pure function of those):

1. **Background** (natural-image-like): a smooth two-colour field (linear gradient, and with
   probability 1/2 a soft "horizon" with a third colour below), plus 1/f ("pink", amplitude
   spectrum ~ 1/f^1.2) luminance and chroma texture taken from a precomputed bank of FFT noise fields
   (random circular shifts and flips), plus 4-12 small *clutter* items (short bars sharing a
   dominant orientation, dots) mostly at low contrast.
2. **Objects**: one primary object (radius 10-22 % of the shorter side, drawn last so it is
   visible) and 0-3 secondary ones (6-14 %), placed with a central tendency (photographer's bias).
   Twelve categories (``CATEGORIES``): face, text, person, disk, square, triangle, star, ring,
   cross, bar, crescent, stripes, drawn with probabilities 0.15, 0.13, 0.11 and 0.068 for each
   shape.  Each gets a colour at a drawn contrast from the local background: *low* (0.03-0.08 RMS)
   with probability ``p_low_contrast_semantic`` = 0.7 for faces, text and persons and
   ``p_low_contrast`` = 0.35 for the shapes, else high (0.15-0.5).  Faces keep darker eyes and
   mouth, text is rows of 5x3 glyphs; objects carry a little of the background texture as shading.
3. **True density** ``D`` (on the map grid h x w, sums to 1) is a mixture
   ``D = pi_0 * C + sum_k pi_k * G_k``: ``C`` a centre Gaussian (sigma 0.22 of each side),
   ``G_k`` a Gaussian on object ``k`` (spread 0.45 of its radius, centred on the eyes for faces,
   on the head for persons, elongated along the lines for text; floor 0.5 degree of eye-tracker
   blur, i.e. 12/1024 of the width).  The object weight is
   ``pi_k ∝ g(position) * size^0.5 * (low_k + category_gain * semantic[category])`` where
   ``low_k`` is the *low-level contrast* (colour contrast above a threshold, orientation pop-out of
   bars against the clutter orientation, size pop-out against the other objects) and
   ``semantic`` is 1.0 for faces, 0.8 text, 0.6 persons and 0 for the geometric shapes (which
   attract only through contrast); ``category_gain`` = 1.5.  ``g`` is a mild centre modulation
   (Gaussian of sigma 0.35).  The background weight is a constant ``background_weight`` = 0.25
   relative to the summed object weights (so a scene without salient objects has central,
   scattered fixations).  Clutter items are small components with half-weighted contrast only.
   :meth:`SyntheticSaliency.components` returns the three additive parts (``centre``,
   ``contrast``, ``category``) which sum exactly to ``D``.
4. **Observers**: ``observers`` (15) simulated viewers, each with ``2 + Poisson(2)`` fixations.
   Observer ``o`` draws its own mixture weights from ``Dirichlet(kappa * pi)`` (kappa 8: some
   viewers look mostly at the face, others at the pop-out), then each fixation picks a component
   and a pixel from it.  In expectation over observers the fixations follow ``D`` exactly.
5. **Targets**: ``fixation_map`` = fixation counts blurred by a Gaussian of sigma
   ``24/1024 * w`` map pixels (MIT's "1 degree at 1024 px"), max 1; ``mask`` = visible pixels of
   the objects whose weight is at least half the largest object weight; ``label`` = category of the
   object with the largest weight (the most salient object).

Splits ``train``, ``val``, ``test`` and ``unlabelled`` (images only) use different seed streams,
so they never share a scene.  Sizes per profile are in ``PROFILES``.  Samples are cached on disk
(one ``.npz`` per split and parameter set, written atomically, keyed by ``stable_hash`` of every
generator parameter and ``GENERATOR_VERSION``); ``cache=False`` generates on the fly and gives
identical samples.

Measured (``salbook.analysis.realism.synthetic_realism``, 500 train / 200 test scenes, 192×256,
default parameters): AUC-Judd centre bias 0.784, true density 0.932, inter-observer (half vs
half) 0.890, contrast only 0.884, category only 0.851, uniform 0.5 (NSS 1.06 / 3.91 / 3.24 / 2.92
/ 2.77 / 0; CC 0.31 / 0.88 / 0.72 / 0.66 / 0.63 / 0); at 96×96 with 48×48 maps (100 test scenes)
0.779 / 0.923 / 0.872 / 0.878 / 0.844.
Speed: about 350 scenes/s (250 full samples/s) on one core at 192×256
(``benchmarks/bench_synthetic.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..maps import fixation_map_from_points, mit_sigma
from ..utils import atomic_open, cache_dir, progress_enabled, stable_hash
from .transforms import _as_hw, finish_sample, sample_transforms

__all__ = [
    "GENERATOR_VERSION",
    "CATEGORIES",
    "SPLITS",
    "PROFILES",
    "SceneParams",
    "Scene",
    "SyntheticSaliency",
    "generate_scene",
]

GENERATOR_VERSION = 1

CATEGORIES: tuple[str, ...] = (
    "face", "text", "person", "disk", "square", "triangle",
    "star", "ring", "cross", "bar", "crescent", "stripes",
)
_CAT = {name: i for i, name in enumerate(CATEGORIES)}

SPLITS: tuple[str, ...] = ("train", "val", "test", "unlabelled")
_SPLIT_CODE = {"train": 11, "val": 23, "test": 37, "unlabelled": 53}

#: Number of scenes per split for each profile (``n=`` overrides).
PROFILES: dict[str, dict[str, int]] = {
    "smoke": {"train": 64, "val": 16, "test": 16, "unlabelled": 64},
    "default": {"train": 2000, "val": 250, "test": 250, "unlabelled": 2000},
    "full": {"train": 10000, "val": 1000, "test": 1000, "unlabelled": 10000},
}


@dataclasses.dataclass(frozen=True)
class SceneParams:
    """Every tunable of the generator (all hashed into the cache key)."""

    observers: int = 15
    fixations_base: int = 2  # each observer makes fixations_base + Poisson(fixations_poisson)
    fixations_poisson: float = 2.0
    dirichlet_kappa: float = 8.0  # per-observer variation (higher = observers agree more)
    background_weight: float = 0.25  # pi_0 relative to the sum of object weights
    centre_sigma: tuple[float, float] = (0.22, 0.22)  # centre Gaussian, fraction of (H, W)
    position_sigma: tuple[float, float] = (0.16, 0.19)  # object placement spread around the centre
    centre_modulation: float = 0.35  # sigma of g(position) in normalised units
    category_gain: float = 1.5
    semantic: tuple[float, ...] = (1.0, 0.8, 0.6, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    category_probs: tuple[float, ...] = (0.15, 0.13, 0.11) + (0.61 / 9,) * 9
    p_low_contrast: float = 0.35  # geometric shapes
    p_low_contrast_semantic: float = 0.7  # faces, text, persons: often low contrast, still looked at
    low_contrast: tuple[float, float] = (0.03, 0.08)
    high_contrast: tuple[float, float] = (0.15, 0.5)
    contrast_threshold: float = 0.08  # colour contrast below this adds no low-level salience
    contrast_saturation: float = 0.20
    orientation_gain: float = 0.8
    size_gain: float = 0.5
    clutter_gain: float = 0.5
    spread: float = 0.45  # object fixation spread, fraction of the radius
    tracker_blur_deg: float = 0.5  # floor on spread, degrees (1 degree = 24/1024 of the width)
    texture_amplitude: tuple[float, float] = (0.03, 0.10)
    mask_fraction: float = 0.5

    def __post_init__(self) -> None:
        if len(self.semantic) != len(CATEGORIES) or len(self.category_probs) != len(CATEGORIES):
            raise ValueError(f"semantic and category_probs need {len(CATEGORIES)} entries")
        if self.observers < 1:
            raise ValueError(f"observers must be >= 1, got {self.observers}")


@dataclasses.dataclass
class Scene:
    """One generated scene before conversion to tensors.

    ``image`` uint8 3×H×W; ``components`` float64 M×7 rows ``(pi_centre, pi_contrast,
    pi_category, mu_row, mu_col, sigma_row, sigma_col)`` (row 0 is the centre Gaussian, means and
    sigmas as fractions of the height/width); ``fixations`` int64 K×2 (row, col) on the map grid;
    ``observers`` int64 K; ``mask`` bool h×w; ``label`` int (category index).
    """

    image: np.ndarray
    components: np.ndarray
    fixations: np.ndarray
    observers: np.ndarray
    mask: np.ndarray
    label: int


# ----------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=8)
def _noise_bank(h: int, w: int, seed: int, n: int = 12) -> np.ndarray:
    """n zero-mean, unit-std 1/f^1.2-amplitude noise fields of size h×w (float32), from FFT with random phase."""
    rng = np.random.default_rng([seed, h, w, 7919])
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fy**2 + fx**2)
    amp = np.maximum(f, 1.0 / max(h, w)) ** -1.2  # amplitude ~ 1/f^1.2 (natural images: 0.9-1.4)
    amp[0, 0] = 0.0
    spec = (rng.standard_normal((n, h, w // 2 + 1)) + 1j * rng.standard_normal((n, h, w // 2 + 1))) * amp
    fields = np.fft.irfft2(spec, s=(h, w), axes=(-2, -1))
    fields -= fields.mean(axis=(1, 2), keepdims=True)
    fields /= fields.std(axis=(1, 2), keepdims=True)
    return fields.astype(np.float32)


def _glyph_bank() -> np.ndarray:
    """24 fixed 5×3 binary glyphs (a pseudo-alphabet for text-like objects)."""
    rng = np.random.default_rng(20160627)
    glyphs = []
    while len(glyphs) < 24:
        g = rng.random((5, 3)) < 0.55
        if 6 <= g.sum() <= 12 and g[:, 0].any() and g[:, 2].any() and g[0].any() and g[4].any():
            glyphs.append(g)
    return np.stack(glyphs)


_GLYPHS = _glyph_bank()

_PALETTE = np.array(
    [  # natural-ish background colours (RGB in [0, 1])
        [0.55, 0.65, 0.80], [0.35, 0.50, 0.30], [0.60, 0.55, 0.45], [0.45, 0.45, 0.48],
        [0.75, 0.72, 0.65], [0.30, 0.35, 0.45], [0.55, 0.45, 0.35], [0.70, 0.78, 0.85],
        [0.40, 0.38, 0.30], [0.62, 0.60, 0.55], [0.25, 0.30, 0.25], [0.80, 0.70, 0.55],
    ],
    dtype=np.float32,
)


def _shape_mask(cat: int, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Binary mask of category ``cat`` in local coordinates u (right), v (down), both in [-1, 1]."""
    r2 = u * u + v * v
    name = CATEGORIES[cat]
    if name == "face":
        return (u / 0.78) ** 2 + v**2 <= 1.0
    if name == "text":
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)  # refined by the glyph bitmap
    if name == "person":
        head = (u / 0.8) ** 2 + (v + 0.66) ** 2 <= 0.3**2
        body = (np.abs(u) <= 0.38 + 0.25 * (v + 0.4)) & (v >= -0.4) & (v <= 1.0)
        return head | body
    if name == "disk":
        return r2 <= 1.0
    if name == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.82
    if name == "triangle":
        return (v <= 0.75) & (v >= -0.95 + 1.9 * np.abs(u) / 1.1)
    if name == "star":
        phi = np.arctan2(v, u)
        return np.sqrt(r2) <= 0.55 + 0.42 * np.cos(5 * phi) ** 4
    if name == "ring":
        return (r2 <= 1.0) & (r2 >= 0.55**2)
    if name == "cross":
        return ((np.abs(u) <= 0.3) & (np.abs(v) <= 0.95)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 0.95))
    if name == "bar":
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 0.24)
    if name == "crescent":
        return (r2 <= 1.0) & ((u - 0.45) ** 2 + v**2 >= 0.78**2)
    if name == "stripes":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.85
    raise ValueError(f"unknown category {cat}")


def _text_bitmap(rng: np.random.Generator, aspect: float) -> np.ndarray:
    """A binary bitmap of 1-3 lines of glyphs whose width/height is about ``aspect``."""
    lines = int(rng.integers(1, 4))
    rows = lines * 7 - 2
    chars = max(2, int(round(aspect * rows / 4.0)))
    bmp = np.zeros((rows, chars * 4 - 1), dtype=bool)
    for li in range(lines):
        for ci in range(chars):
            if rng.random() < 0.12:  # a space between words
                continue
            bmp[li * 7 : li * 7 + 5, ci * 4 : ci * 4 + 3] = _GLYPHS[rng.integers(len(_GLYPHS))]
    return bmp


def _colour_at_contrast(bg: np.ndarray, contrast: float, rng: np.random.Generator) -> np.ndarray:
    """A colour about ``contrast`` (RMS over channels) away from ``bg``, inside [0.02, 0.98]."""
    lum = np.ones(3) / math.sqrt(3.0)
    chroma = rng.standard_normal(3)
    chroma -= chroma.mean()
    chroma /= np.linalg.norm(chroma) + 1e-9
    mix = rng.uniform(0.2, 0.9)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    direction = sign * mix * lum + math.sqrt(1 - mix**2) * chroma
    direction /= np.linalg.norm(direction)
    colour = bg + contrast * math.sqrt(3.0) * direction
    if np.any(colour < 0.02) or np.any(colour > 0.98):  # try the opposite direction before clipping
        alt = bg - contrast * math.sqrt(3.0) * direction
        if np.abs(np.clip(alt, 0.02, 0.98) - alt).sum() < np.abs(np.clip(colour, 0.02, 0.98) - colour).sum():
            colour = alt
    return np.clip(colour, 0.02, 0.98)


# ----------------------------------------------------------------------------- the generator


def _gauss_1d(n: int, mu: float, sigma: float) -> np.ndarray:
    x = (np.arange(n) + 0.5) / n
    g = np.exp(-0.5 * ((x - mu) / sigma) ** 2)
    s = g.sum()
    if s <= 0 or not np.isfinite(s):  # far outside the grid: put it at the nearest pixel
        g = np.zeros(n)
        g[int(np.clip(mu * n, 0, n - 1))] = 1.0
        s = 1.0
    return g / s


def density_from_components(components: np.ndarray, shape: Sequence[int], parts: bool = False):
    """The mixture density on an h×w grid (float64, sums to 1) from a component table.

    Each component is a separable Gaussian evaluated at pixel centres and normalised over the
    grid (so fixations drawn pixel-exactly from it follow it exactly).  With ``parts=True`` return
    ``{"centre", "contrast", "category"}`` maps that sum to the density.
    """
    h, w = int(shape[0]), int(shape[1])
    comps = np.asarray(components, dtype=np.float64).reshape(-1, 7)
    gy = np.stack([_gauss_1d(h, c[3], c[5]) for c in comps])  # M×h
    gx = np.stack([_gauss_1d(w, c[4], c[6]) for c in comps])  # M×w
    if parts:
        return {
            name: (gy * comps[:, col, None]).T @ gx
            for col, name in ((0, "centre"), (1, "contrast"), (2, "category"))
        }
    dens = (gy * comps[:, :3].sum(axis=1, keepdims=True)).T @ gx
    return dens / dens.sum()


def generate_scene(
    rng: np.random.Generator,
    size: Sequence[int],
    target_size: Sequence[int],
    params: SceneParams,
    bank: np.ndarray,
    labelled: bool = True,
) -> Scene:
    """Draw one scene (see the module docstring).  ``size`` = image (H, W), ``target_size`` =
    map grid (h, w); ``bank`` the 1/f noise bank at (H, W).  With ``labelled=False`` only the image
    is produced (the other fields are empty)."""
    H, W = int(size[0]), int(size[1])
    h, w = int(target_size[0]), int(target_size[1])
    P = params
    side = float(min(H, W))

    # ---- 1. background: colour field + horizon + 1/f texture
    yy = ((np.arange(H, dtype=np.float32) + 0.5) / H)[:, None]
    xx = ((np.arange(W, dtype=np.float32) + 0.5) / W)[None, :]
    c1, c2, c3 = _PALETTE[rng.choice(len(_PALETTE), 3, replace=False)]
    c1 = np.clip(c1 + rng.normal(0, 0.06, 3), 0.05, 0.95).astype(np.float32)
    c2 = np.clip(c2 + rng.normal(0, 0.06, 3), 0.05, 0.95).astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    # gradient coordinate t in [0, 1]; built channel-first (3×H×W) so every pass is contiguous
    t = (1.2 * math.sin(ang) * (yy - 0.5)) + (1.2 * math.cos(ang) * (xx - 0.5) + 0.5)
    np.clip(t, 0.0, 1.0, out=t)
    if rng.random() < 0.5:  # a soft horizon: the third colour below it
        horizon = rng.uniform(0.35, 0.7)
        soft = rng.uniform(0.01, 0.06)
        s = (1.0 / (1.0 + np.exp(-(yy[:, 0] - horizon) / soft))).astype(np.float32)  # H
    else:
        s = np.zeros(H, np.float32)
    offset = c1[:, None] * (1 - s)[None, :] + c3[:, None] * s[None, :]  # 3×H: colour at t = 0
    slope = (c2 - c1)[:, None] * (1 - s)[None, :]  # 3×H
    i1, i2 = rng.choice(len(bank), 2, replace=False)
    tex_l = np.roll(bank[i1], (int(rng.integers(H)), int(rng.integers(W))), axis=(0, 1))
    tex_c = np.roll(bank[i2], (int(rng.integers(H)), int(rng.integers(W))), axis=(0, 1))
    if rng.random() < 0.5:
        tex_l = tex_l[:, ::-1]
    amp = rng.uniform(*P.texture_amplitude)
    chroma = rng.normal(0, 1, 3).astype(np.float32)
    chroma = 0.35 * amp * (chroma - chroma.mean()) / (np.linalg.norm(chroma - chroma.mean()) + 1e-6)
    lum = (amp * tex_l).astype(np.float32)
    img = np.empty((3, H, W), np.float32)
    for ch in range(3):
        np.multiply(t, slope[ch][:, None], out=img[ch])
        img[ch] += offset[ch][:, None]
        img[ch] += lum
        img[ch] += chroma[ch] * tex_c
    np.clip(img, 0.0, 1.0, out=img)
    idmap = np.zeros((H, W), dtype=np.int16)

    # ---- 2. clutter and objects: geometry first
    dom_orient = rng.uniform(0, np.pi)
    n_clutter = int(rng.integers(4, 13))
    n_sec = int(rng.choice(4, p=[0.2, 0.35, 0.3, 0.15]))
    cats = rng.choice(len(CATEGORIES), n_sec + 1, p=np.asarray(P.category_probs) / sum(P.category_probs))
    objs: list[dict[str, Any]] = []
    for j in range(n_clutter):
        is_bar = rng.random() < 0.6
        r = rng.uniform(0.02, 0.045) * side
        objs.append(dict(
            cat=_CAT["bar"] if is_bar else _CAT["disk"], clutter=True, r=r,
            cy=rng.uniform(0.05, 0.95), cx=rng.uniform(0.05, 0.95),
            orient=(dom_orient + rng.normal(0, 0.12)) if is_bar else 0.0,
            contrast=rng.uniform(0.03, 0.12) if rng.random() < 0.8 else rng.uniform(0.12, 0.25),
        ))
    for j in range(n_sec + 1):
        primary = j == n_sec
        cat = int(cats[j])
        r = (rng.uniform(0.10, 0.22) if primary else rng.uniform(0.06, 0.14)) * side
        cy = float(np.clip(0.5 + rng.normal(0, P.position_sigma[0]), 0.12, 0.88))
        cx = float(np.clip(0.5 + rng.normal(0, P.position_sigma[1]), 0.10, 0.90))
        if CATEGORIES[cat] in ("face", "text", "person"):
            orient = rng.normal(0, 0.12)
        elif rng.random() < 0.5:
            orient = dom_orient + rng.normal(0, 0.1)  # aligned with the clutter: no pop-out
        else:
            orient = rng.uniform(0, np.pi)
        p_low = P.p_low_contrast_semantic if P.semantic[cat] > 0 else P.p_low_contrast
        low = rng.random() < p_low
        contrast = rng.uniform(*P.low_contrast) if low else rng.uniform(*P.high_contrast)
        objs.append(dict(cat=cat, clutter=False, r=r, cy=cy, cx=cx, orient=orient, contrast=contrast))

    # ---- 3. render (clutter first, primary last)
    for k, ob in enumerate(objs):
        cat, r = ob["cat"], ob["r"]
        name = CATEGORIES[cat]
        ry, rx = r, r
        if name == "text":
            rx, ry = r * 1.3, r * rng.uniform(0.35, 0.7)
        elif name == "person":
            rx, ry = r * 0.75, r
        ext = max(rx, ry) * 1.05
        y0, y1 = max(0, int(ob["cy"] * H - ext)), min(H, int(math.ceil(ob["cy"] * H + ext)) + 1)
        x0, x1 = max(0, int(ob["cx"] * W - ext)), min(W, int(math.ceil(ob["cx"] * W + ext)) + 1)
        ob.update(ry=ry, rx=rx)
        if y1 - y0 < 2 or x1 - x0 < 2:
            ob["contrast_eff"] = 0.0
            continue
        ly = (np.arange(y0, y1) + 0.5 - ob["cy"] * H)[:, None]
        lx = (np.arange(x0, x1) + 0.5 - ob["cx"] * W)[None, :]
        co, si = math.cos(ob["orient"]), math.sin(ob["orient"])
        u = (co * lx + si * ly) / rx
        v = (-si * lx + co * ly) / ry
        region = img[:, y0:y1, x0:x1]
        shape = _shape_mask(cat, u, v, rng)
        if name == "text":
            bmp = _text_bitmap(rng, rx / ry)
            bi = np.clip(((v + 1) / 2 * bmp.shape[0]).astype(int), 0, bmp.shape[0] - 1)
            bj = np.clip(((u + 1) / 2 * bmp.shape[1]).astype(int), 0, bmp.shape[1] - 1)
            shape = shape & bmp[bi, bj]
        if not shape.any():
            ob["contrast_eff"] = 0.0
            continue
        bg = region.mean(axis=(1, 2))
        colour = _colour_at_contrast(bg, ob["contrast"], rng).astype(np.float32)
        ob["contrast_eff"] = float(np.sqrt(np.mean((colour - bg) ** 2)))
        # the fill colour plus a little shading so that objects are not flat
        fill = colour[:, None, None] + 0.35 * lum[None, y0:y1, x0:x1]
        if name == "stripes":
            second = _colour_at_contrast(bg, ob["contrast"], rng).astype(np.float32)
            band = np.floor((u + 1) * 3.0) % 2 == 1
            fill[:, band] += (second - colour)[:, None]
        if name == "face":
            dark = min(0.5, 0.12 + 0.8 * ob["contrast"])
            feats = (((np.abs(u) - 0.32) ** 2 + (v + 0.2) ** 2) <= 0.13**2) | (
                (np.abs(u) <= 0.33) & (np.abs(v - 0.45) <= 0.07)
            )
            fill[:, feats] -= dark
        region[:, shape] = np.clip(fill[:, shape], 0.0, 1.0)
        if not ob["clutter"]:
            idmap[y0:y1, x0:x1][shape] = k + 1

    img *= 255.0
    img += 0.5
    image = img.astype(np.uint8)  # 3×H×W
    if not labelled:
        return Scene(image, np.zeros((0, 7)), np.zeros((0, 2), np.int64), np.zeros(0, np.int64),
                     np.zeros((0, 0), bool), -1)

    # ---- 4. salience of each object -> mixture weights
    main = [ob for ob in objs if not ob["clutter"]]
    areas = np.array([ob["rx"] * ob["ry"] for ob in main])
    med_area = float(np.median(areas)) if len(areas) else 1.0
    ref = 0.12 * side
    rows = []
    floor_col = P.tracker_blur_deg * 24.0 / 1024.0  # fraction of the width
    floor_row = floor_col * W / H
    for ob in objs:
        name = CATEGORIES[ob["cat"]]
        colour_term = np.clip((ob["contrast_eff"] - P.contrast_threshold) / P.contrast_saturation, 0, 1)
        low = float(colour_term)
        visible = ob["contrast_eff"] > P.contrast_threshold  # pop-out needs a visible item
        if name in ("bar", "stripes") and visible:
            low += P.orientation_gain * abs(math.sin(ob["orient"] - dom_orient)) ** 2
        if not ob["clutter"] and visible:
            low += P.size_gain * float(np.clip(math.log2(ob["rx"] * ob["ry"] / med_area), 0, 1))
        semantic = 0.0 if ob["clutter"] else P.semantic[ob["cat"]] * P.category_gain
        if ob["clutter"]:
            low *= P.clutter_gain
        gpos = math.exp(-((ob["cy"] - 0.5) ** 2 + (ob["cx"] - 0.5) ** 2) / (2 * P.centre_modulation**2))
        sizef = math.sqrt(max(ob["rx"], ob["ry"]) / ref)
        wl, wc = gpos * sizef * low, gpos * sizef * semantic
        my, mx = ob["cy"], ob["cx"]
        sy = P.spread * ob["ry"] / H
        sx = P.spread * ob["rx"] / W
        if name == "face":
            my -= 0.2 * ob["ry"] / H
            sy, sx = 0.35 * ob["ry"] / H, 0.35 * ob["rx"] / W
        elif name == "person":
            my -= 0.5 * ob["ry"] / H
            sy, sx = 0.35 * ob["ry"] / H, 0.35 * ob["rx"] / W
        elif name == "text":
            sy, sx = 0.4 * ob["ry"] / H, 0.5 * ob["rx"] / W
        rows.append([0.0, wl, wc, my, mx, math.hypot(sy, floor_row), math.hypot(sx, floor_col)])
    rows_arr = np.array(rows, dtype=np.float64).reshape(-1, 7)
    obj_total = rows_arr[:, 1:3].sum()
    centre = [P.background_weight, 0.0, 0.0, 0.5, 0.5, P.centre_sigma[0], P.centre_sigma[1]]
    comps = np.vstack([np.array(centre)[None], rows_arr])
    comps[:, :3] /= P.background_weight + obj_total

    # ---- 5. observers and fixations (exact discrete sampling from each separable component)
    pi = comps[:, :3].sum(axis=1)
    n_obs = P.observers
    counts = P.fixations_base + rng.poisson(P.fixations_poisson, n_obs)
    alpha = np.maximum(P.dirichlet_kappa * pi, 1e-6)
    obs_weights = rng.gamma(alpha[None, :].repeat(n_obs, 0))
    obs_weights /= obs_weights.sum(axis=1, keepdims=True) + 1e-300
    observers = np.repeat(np.arange(n_obs), counts)
    cum = np.cumsum(obs_weights, axis=1)
    cum[:, -1] = 1.0
    choice = (rng.random(len(observers))[:, None] > cum[observers]).sum(axis=1)
    fix = np.zeros((len(observers), 2), dtype=np.int64)
    for c in np.unique(choice):
        sel = np.nonzero(choice == c)[0]
        _, _, _, my, mx, sy, sx = comps[c]
        cy_cdf = np.cumsum(_gauss_1d(h, my, sy))
        cx_cdf = np.cumsum(_gauss_1d(w, mx, sx))
        fix[sel, 0] = np.minimum(np.searchsorted(cy_cdf, rng.random(len(sel)) * cy_cdf[-1], side="right"), h - 1)
        fix[sel, 1] = np.minimum(np.searchsorted(cx_cdf, rng.random(len(sel)) * cx_cdf[-1], side="right"), w - 1)

    # ---- 6. mask and label
    main_idx = [k for k, ob in enumerate(objs) if not ob["clutter"]]
    obj_w = pi[1:][main_idx]
    best = main_idx[int(np.argmax(obj_w))]
    label = int(objs[best]["cat"])
    salient_ids = [k + 1 for k, wk in zip(main_idx, obj_w) if wk >= P.mask_fraction * obj_w.max()]
    ri = np.minimum(((np.arange(h) + 0.5) * H / h).astype(int), H - 1)
    ci = np.minimum(((np.arange(w) + 0.5) * W / w).astype(int), W - 1)
    mask = np.isin(idmap[ri][:, ci], salient_ids)
    return Scene(image, comps, fix, observers.astype(np.int64), mask, label)


# ----------------------------------------------------------------------------- the Dataset


def _hw(size: int | Sequence[int]) -> tuple[int, int]:
    h, w = _as_hw(size)
    if h < 8 or w < 8:
        raise ValueError(f"synthetic scenes need a size of at least 8×8, got {(h, w)}")
    return h, w


class SyntheticSaliency(torch.utils.data.Dataset):
    """Generated saliency scenes as a torch Dataset of sample dicts (see :mod:`salbook.data`).

    Args:
        split: ``"train"``, ``"val"``, ``"test"`` or ``"unlabelled"`` (images only).
        size: image (H, W) in pixels, default (192, 256).
        target_size: (h, w) of ``fixation_map``, ``density``, ``mask`` and of the fixation grid;
            default ``size``.
        n: number of scenes; default from ``PROFILES[profile][split]``.
        seed: dataset seed; scene ``i`` of a split depends only on (seed, split, i, parameters).
        observers: simulated observers per image (15).
        profile: ``"smoke"``, ``"default"`` or ``"full"`` (split sizes).
        cache: keep the scenes in a ``.npz`` under ``cache_dir("data", "synthetic")`` (built on
            first use, atomically); ``False`` generates every sample on the fly (same values).
        normalize: apply ImageNet mean/std to ``image``.
        flip: ``True`` for a seeded random horizontal flip (p 0.5), or a transform object.
        transform: an extra callable applied to each sample dict last.
        params: a :class:`SceneParams`, or keyword overrides of its fields via ``**overrides``.

    Sample fields: ``image`` float32 3×H×W in [0, 1]; ``fixations`` int64 K×2 (row, col) on the
    h×w grid; ``observers`` int64 K; ``fixation_map`` float32 h×w (max 1); ``density`` float32 h×w
    (sum 1); ``mask`` float32 h×w; ``label`` int; ``name`` str.  The unlabelled split has only
    ``image`` and ``name``.
    """

    def __init__(
        self,
        split: str = "train",
        size: int | Sequence[int] = (192, 256),
        target_size: int | Sequence[int] | None = None,
        n: int | None = None,
        seed: int = 0,
        observers: int = 15,
        profile: str = "default",
        cache: bool = True,
        normalize: bool = False,
        flip: bool | Callable | None = None,
        transform: Callable | None = None,
        params: SceneParams | None = None,
        **overrides: Any,
    ):
        if split not in SPLITS:
            raise ValueError(f"unknown synthetic split {split!r}; choose one of {SPLITS}")
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
        self.split = split
        self.size = _hw(size)
        self.target_size = _hw(target_size) if target_size is not None else self.size
        self.n = int(PROFILES[profile][split] if n is None else n)
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.seed = int(seed)
        base = params or SceneParams()
        if observers != base.observers:
            overrides.setdefault("observers", observers)
        try:
            self.params = dataclasses.replace(base, **overrides)
        except TypeError as exc:
            fields = sorted(f.name for f in dataclasses.fields(SceneParams))
            raise TypeError(f"unknown synthetic option ({exc}); generator parameters are {fields}") from None
        self.labelled = split != "unlabelled"
        self.transforms = sample_transforms(flip, transform, self.seed)
        self.normalize = bool(normalize)
        self._store: dict[str, np.ndarray] | None = None
        if cache and self.n > 0:
            self._store = self._load_or_build_cache()

    # -- identity and caching
    def cache_key(self) -> dict[str, Any]:
        """Everything a scene depends on (hashed into the cache file name)."""
        return {
            "version": GENERATOR_VERSION,
            "split": self.split,
            "size": list(self.size),
            "target_size": list(self.target_size),
            "n": self.n,
            "seed": self.seed,
            "params": dataclasses.asdict(self.params),
        }

    @property
    def cache_path(self) -> Path:
        key = stable_hash(self.cache_key())
        name = f"{self.split}-{self.size[0]}x{self.size[1]}-{self.target_size[0]}x{self.target_size[1]}-n{self.n}-{key}.npz"
        return cache_dir("data", "synthetic") / name

    def _load_or_build_cache(self) -> dict[str, np.ndarray]:
        path = self.cache_path
        if path.exists():
            try:
                with np.load(path) as z:
                    return {k: z[k] for k in z.files}
            except Exception:  # a corrupt file (should not happen with atomic writes): rebuild
                pass
        scenes = [self.scene(i) for i in _progress(range(self.n), f"synthetic {self.split}")]
        store = _pack(scenes, self.target_size)
        with atomic_open(path, "wb") as fh:
            np.savez(fh, **store)
        return store

    # -- generation
    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, _SPLIT_CODE[self.split], int(index), GENERATOR_VERSION])

    def scene(self, index: int) -> Scene:
        """Generate scene ``index`` (no cache)."""
        if not 0 <= index < self.n:
            raise IndexError(f"scene index {index} out of range for a split of {self.n}")
        bank = _noise_bank(self.size[0], self.size[1], self.seed)
        return generate_scene(self._rng(index), self.size, self.target_size, self.params, bank, self.labelled)

    def _raw(self, index: int) -> Scene:
        if self._store is None:
            return self.scene(index)
        return _unpack(self._store, index, self.target_size)

    def components(self, index: int) -> dict[str, np.ndarray]:
        """The true density's additive parts on the map grid (float64 h×w each).

        ``centre`` (centre-bias Gaussian times its weight), ``contrast`` (objects' low-level
        contrast weights), ``category`` (objects' semantic weights) and ``density`` (their sum,
        which sums to 1).  ``centre + contrast`` renormalised is the "contrast-only" predictor,
        ``centre + category`` the "category-only" one.
        """
        if not self.labelled:
            raise ValueError("the unlabelled split has no density")
        comps = self._raw(index).components
        parts = density_from_components(comps, self.target_size, parts=True)
        parts["density"] = parts["centre"] + parts["contrast"] + parts["category"]
        return parts

    def __len__(self) -> int:
        return self.n

    def fixation_sigma(self, width: int) -> float:
        """Blur (pixels) of this dataset's fixation maps for a map ``width`` wide (24/1024 of it)."""
        return mit_sigma(width)

    def fixation_record(self, index: int) -> tuple[np.ndarray, tuple[int, int]]:
        """(fixations int64 K×2, map size (h, w)) of sample ``index``, without building the image
        or the maps: the cheap path of the centre-bias fit and the sAUC shuffle map. With a
        transform that may move fixations (a flip), the full sample is built instead."""
        if not self.labelled:
            raise ValueError("the unlabelled split has no fixations")
        if self.transforms:
            s = self[index]
            return s["fixations"].numpy(), tuple(s["fixation_map"].shape[-2:])
        if index < 0:
            index += self.n
        return self._raw(index).fixations.astype(np.int64), self.target_size

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            index += self.n
        raw = self._raw(index)
        image = torch.from_numpy(np.ascontiguousarray(raw.image)).float().div_(255.0)
        sample: dict[str, Any] = {"image": image}
        if self.labelled:
            dens = density_from_components(raw.components, self.target_size)
            sample["fixations"] = torch.from_numpy(raw.fixations.astype(np.int64))
            sample["observers"] = torch.from_numpy(raw.observers.astype(np.int64))
            sample["fixation_map"] = fixation_map_from_points(raw.fixations, self.target_size)
            sample["density"] = torch.from_numpy(dens.astype(np.float32))
            sample["mask"] = torch.from_numpy(raw.mask.astype(np.float32))
            sample["label"] = int(raw.label)
        sample["name"] = f"synthetic-{self.split}-s{self.seed}-{index:06d}"
        return finish_sample(sample, self.transforms, self.normalize)

    def __repr__(self) -> str:
        return (f"SyntheticSaliency(split={self.split!r}, n={self.n}, size={self.size}, "
                f"target_size={self.target_size}, seed={self.seed})")


def _progress(it, desc: str):
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, disable=not progress_enabled(), leave=False)


def _pack(scenes: list[Scene], target_size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Stack scenes into flat arrays for one ``.npz`` (masks bit-packed, ragged fields + offsets)."""
    store: dict[str, np.ndarray] = {"images": np.stack([s.image for s in scenes])}
    store["labels"] = np.array([s.label for s in scenes], dtype=np.int64)
    store["comp_offsets"] = np.cumsum([0] + [len(s.components) for s in scenes]).astype(np.int64)
    store["components"] = np.concatenate([s.components for s in scenes]).astype(np.float64)
    store["fix_offsets"] = np.cumsum([0] + [len(s.fixations) for s in scenes]).astype(np.int64)
    store["fixations"] = np.concatenate([s.fixations for s in scenes]).astype(np.int64).reshape(-1, 2)
    store["observers"] = np.concatenate([s.observers for s in scenes]).astype(np.int64)
    if scenes[0].mask.size:
        store["masks"] = np.stack([np.packbits(s.mask.ravel()) for s in scenes])
    return store


def _unpack(store: dict[str, np.ndarray], i: int, target_size: tuple[int, int]) -> Scene:
    c0, c1 = store["comp_offsets"][i : i + 2]
    f0, f1 = store["fix_offsets"][i : i + 2]
    h, w = target_size
    if "masks" in store:
        mask = np.unpackbits(store["masks"][i], count=h * w).reshape(h, w).astype(bool)
    else:
        mask = np.zeros((0, 0), bool)
    return Scene(
        image=store["images"][i],
        components=store["components"][c0:c1],
        fixations=store["fixations"][f0:f1],
        observers=store["observers"][f0:f1],
        mask=mask,
        label=int(store["labels"][i]),
    )
