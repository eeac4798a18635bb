"""A generated image set with known latent factors, for controlled transferability experiments.

Each image is one coloured shape on a background. Latents (all drawn independently, seeded):
shape (6), colour (8 hues), size, x/y position, rotation, filled vs outline, stripes, background
brightness and tint, and an optional small dot. Tasks are functions of the latents: the multi-class
`shape` and `colour`, and binary tasks that are related to each other by construction (`is_circle`
implies `round_shape`; `warm_on_dark` = `warm_colour` and `dark_background`; `tiny` excludes `large`)
or independent (`striped` vs `left_half`), so the ground-truth relations between tasks are known.
`noise` flips each binary label independently with that probability: label noise, which raises
H(target | source) without touching the images.

The label table is computed from the latents alone; pixels are rendered (vectorised numpy) only
when `images.array(size)` is called, so a 10^6-row table for the CE engine's scale test is cheap.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import DatasetConfig
from ..errors import UserError
from .images import check_size
from .labels import LabelTable
from .parsing import parse_params
from .quantiles import check_quantiles, quantile_tasks
from .registry import Dataset

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "hexagon")
COLOURS = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "magenta")
PALETTE = np.array([[0.90, 0.10, 0.10], [1.00, 0.55, 0.00], [0.95, 0.90, 0.10], [0.10, 0.75, 0.20],
                    [0.10, 0.80, 0.85], [0.15, 0.25, 0.90], [0.55, 0.20, 0.80], [0.90, 0.20, 0.70]],
                   dtype=np.float32)
TINT = np.array([0.75, 0.90, 1.15], np.float32)  # a bluish cast on tinted backgrounds
SIZE_RANGE = (0.12, 0.32)     # shape radius, as a fraction of the image side
ROTATION = 15.0               # degrees either way: a square never turns into a diamond
OUTLINE = 0.3                 # outline thickness, as a fraction of the radius
DOT_RADIUS = 0.07


@dataclass(frozen=True)
class ShapesParams:
    n: int = 6000               # number of images
    seed: int = 0               # latents, label noise and split all follow from it
    noise: float = 0.0          # probability each binary label is flipped (per task and image)
    test_fraction: float = 0.3
    quantiles: list | None = None  # cut the continuous latents at these quantiles (see `measures`)

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantiles", check_quantiles(self.quantiles, "shapes"))
        if self.n < 10:
            raise UserError(f"shapes n={self.n}: expected at least 10 images")
        if not 0.0 <= self.noise <= 0.5:
            raise UserError(f"shapes noise={self.noise}: expected a flip probability in [0, 0.5]")
        if not 0.0 < self.test_fraction < 1.0:
            raise UserError(f"shapes test_fraction={self.test_fraction}: expected a number in (0, 1)")


def sample_latents(n: int, seed: int) -> dict[str, np.ndarray]:
    """n independent draws of every latent factor."""
    rng = np.random.default_rng([seed, 0])
    u = lambda lo, hi: rng.uniform(lo, hi, n).astype(np.float32)  # noqa: E731
    return {
        "shape": rng.integers(0, len(SHAPES), n).astype(np.int8),
        "colour": rng.integers(0, len(COLOURS), n).astype(np.int8),
        "size": u(*SIZE_RANGE),
        "x": u(0.22, 0.78),
        "y": u(0.22, 0.78),
        "rotation": u(-ROTATION, ROTATION),
        "filled": rng.random(n) < 0.5,
        "striped": rng.random(n) < 0.4,
        "background": u(0.05, 0.95),
        "tinted": rng.random(n) < 0.3,
        "has_dot": rng.random(n) < 0.35,
        "dot_x": u(0.08, 0.92),
        "dot_y": u(0.08, 0.92),
    }


def binary_tasks(lat: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The binary tasks as boolean functions of the latents."""
    shape, colour = lat["shape"], lat["colour"]
    S, C = {s: i for i, s in enumerate(SHAPES)}, {c: i for i, c in enumerate(COLOURS)}
    is_shape = lambda *names: np.isin(shape, [S[s] for s in names])  # noqa: E731
    is_colour = lambda *names: np.isin(colour, [C[c] for c in names])  # noqa: E731
    large = lat["size"] > np.mean(SIZE_RANGE)
    left, top = lat["x"] < 0.5, lat["y"] < 0.5
    dark = lat["background"] < 0.5
    warm = is_colour("red", "orange", "yellow")
    luminance = PALETTE[colour] @ np.array([0.299, 0.587, 0.114], np.float32)
    return {
        "round_shape": is_shape("circle", "hexagon"),
        "pointy": is_shape("triangle", "diamond"),
        "four_sided": is_shape("square", "diamond"),
        "is_circle": is_shape("circle"),
        "is_square": is_shape("square"),
        "is_triangle": is_shape("triangle"),
        "warm_colour": warm,
        "cool_colour": is_colour("green", "cyan", "blue"),
        "is_red": is_colour("red"),
        "reddish": is_colour("red", "orange", "magenta"),
        "large": large,
        "tiny": lat["size"] < SIZE_RANGE[0] + 0.2 * (SIZE_RANGE[1] - SIZE_RANGE[0]),
        "left_half": left,
        "top_half": top,
        "top_left": left & top,
        "near_centre": np.hypot(lat["x"] - 0.5, lat["y"] - 0.5) < 0.14,
        "dark_background": dark,
        "tinted_background": lat["tinted"],
        "filled": lat["filled"],
        "striped": lat["striped"],
        "tilted_clockwise": lat["rotation"] > 0,  # invisible on a circle: a task no image can solve
        "has_dot": lat["has_dot"],
        "high_contrast": np.abs(luminance - lat["background"]) > 0.35,
        "big_filled": large & lat["filled"],
        "warm_on_dark": warm & dark,
    }


def measures(lat: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The continuous latents behind the binary tasks of the same names, signed so that a high value means
    label 1: with `quantiles` these tasks are cut at those quantiles instead (`large@q25`, ...)."""
    return {
        "large": lat["size"],
        "left_half": -lat["x"],
        "top_half": -lat["y"],
        "near_centre": -np.hypot(lat["x"] - 0.5, lat["y"] - 0.5),
        "dark_background": -lat["background"],
        "tilted_clockwise": lat["rotation"],
    }


def build_table(params: ShapesParams) -> tuple[LabelTable, dict[str, np.ndarray]]:
    """The label table (no pixels) and the latents it was computed from."""
    n = params.n
    lat = sample_latents(n, params.seed)
    cols: dict[str, np.ndarray] = {"shape": lat["shape"], "colour": lat["colour"]}
    flip_rng = np.random.default_rng([params.seed, 1])
    tasks = binary_tasks(lat)
    if params.quantiles is not None:   # each measured task becomes its quantile cuts, in its place
        cut = measures(lat)
        tasks = {k: v for name, y in tasks.items()
                 for k, v in (quantile_tasks({name: cut[name]}, params.quantiles).items() if name in cut
                              else [(name, y)])}
    for name, y in tasks.items():
        if params.noise > 0:
            y = y ^ (flip_rng.random(n) < params.noise)
        cols[name] = y.astype(np.int8)
    split = np.full(n, "train", dtype=object)
    n_test = min(max(int(round(n * params.test_fraction)), 1), n - 1)
    split[np.random.default_rng([params.seed, 2]).permutation(n)[:n_test]] = "test"
    width = max(4, len(str(n - 1)))
    index = pd.Index([f"shapes_{i:0{width}d}" for i in range(n)], name="image_id")
    table = LabelTable(pd.DataFrame(cols, index=index, copy=False),
                       pd.Series(split, index=index, name="split"), multiclass=("shape", "colour"))
    return table, lat


def _shape_field(k: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A gauge f(u, v) of shape k in its own frame (radius 1, v pointing down): inside iff f <= 1."""
    au, av = np.abs(u), np.abs(v)
    name = SHAPES[k]
    if name == "circle":
        return np.hypot(u, v)
    if name == "square":
        return np.maximum(au, av) * 1.25  # a square's half-side of 0.8 matches the circle's area
    if name == "diamond":
        return au + av
    if name == "triangle":  # apex up, inradius 0.5, circumradius 1
        c, s = np.float32(np.sqrt(3) / 2), np.float32(0.5)
        return 2 * np.maximum(np.maximum(v, c * u - s * v), -c * u - s * v)
    if name == "cross":  # two bars of half-width 0.3
        return np.minimum(np.maximum(au, av / 0.3), np.maximum(au / 0.3, av))
    c = np.float32(np.sqrt(3) / 2)  # hexagon, flat top and bottom
    return np.maximum(av, c * au + 0.5 * av) / c


def render(lat: dict[str, np.ndarray], size: int) -> np.ndarray:
    """(N, size, size, 3) uint8 images of the latents, in chunks of about 4M pixels."""
    n = len(lat["shape"])
    out = np.empty((n, size, size, 3), np.uint8)
    step = max(1, (1 << 22) // (size * size))
    for lo in range(0, n, step):
        out[lo:lo + step] = _render_chunk({k: v[lo:lo + step] for k, v in lat.items()}, size)
    return out


def _render_chunk(lat: dict[str, np.ndarray], size: int) -> np.ndarray:
    # Whole-chunk (m, size, size) float32 planes, one colour channel at a time: numpy is an order of
    # magnitude slower on a trailing length-3 axis, and on python-scalar clip bounds or float modulo.
    g = (np.arange(size, dtype=np.float32) + 0.5) / size  # pixel centres in [0, 1]
    col = lambda a: a.astype(np.float32)[:, None, None]  # noqa: E731
    clip01 = lambda a: np.clip(a, np.float32(0), np.float32(1), out=a)  # noqa: E731
    radius = col(lat["size"])
    px = radius * size  # one pixel of soft edge, whatever the shape's size: no jaggies
    dx, dy = g[None, None, :] - col(lat["x"]), g[None, :, None] - col(lat["y"])
    theta = np.deg2rad(col(lat["rotation"]))
    u = (np.cos(theta) * dx + np.sin(theta) * dy) / radius
    v = (-np.sin(theta) * dx + np.cos(theta) * dy) / radius
    f = np.empty(u.shape, np.float32)
    for k in range(len(SHAPES)):
        rows = lat["shape"] == k
        if rows.any():
            f[rows] = _shape_field(k, u[rows], v[rows])
    alpha = clip01((1 - f) * px + 0.5)
    outline = ~lat["filled"]
    alpha[outline] -= clip01((1 - OUTLINE - f[outline]) * px[outline] + 0.5)
    dark_stripe = lat["striped"][:, None, None] & (np.floor((u + 2) * 2.5).astype(np.int32) & 1).astype(bool)
    fg_alpha = np.where(dark_stripe, np.float32(0.45), np.float32(1.0)) * alpha
    dots = np.flatnonzero(lat["has_dot"])
    dist = np.hypot(g[None, None, :] - col(lat["dot_x"][dots]), g[None, :, None] - col(lat["dot_y"][dots]))
    dot = clip01((DOT_RADIUS - dist) * size + 0.5)
    dot_grey = np.where(lat["background"][dots] < 0.5, np.float32(0.95), np.float32(0.05))[:, None, None]
    tint = np.where(lat["tinted"][:, None], TINT, np.float32(1.0)) * lat["background"][:, None]
    fg = PALETTE[lat["colour"]]
    out = np.empty((3, *u.shape), np.uint8)
    for c in range(3):
        img = tint[:, c, None, None] * (1 - alpha) + fg[:, c, None, None] * fg_alpha
        img[dots] = img[dots] * (1 - dot) + dot * dot_grey
        out[c] = clip01(img) * 255 + 0.5
    return np.moveaxis(out, 0, -1)


class RenderedShapes:
    """The ArrayImages interface over latents: renders at the requested size on first use, then
    keeps that array in memory (a 32x32 set of 6,000 images is 18 MB)."""

    channels = 3

    def __init__(self, latents: dict[str, np.ndarray], ids: list[str]):
        self.latents = latents
        self.ids = list(ids)
        self._rendered: dict[int, np.ndarray] = {}

    def fingerprint(self) -> str:
        """sha256 of the latents, the ids and this module's source: the pixels follow from these alone, so a
        changed seed, size of the set or drawing code changes every cache key made from them."""
        h = hashlib.sha256(json.dumps(self.ids).encode())
        for name in sorted(self.latents):
            h.update(name.encode())
            h.update(np.ascontiguousarray(self.latents[name]).tobytes())
        h.update(inspect.getsource(sys.modules[__name__]).encode())   # the drawing code, whole
        return h.hexdigest()[:20]

    def array(self, size: int, cache_dir=None, workers=None) -> np.ndarray:
        """(N, size, size, 3) uint8. `cache_dir` and `workers` are the file sources' options: rendering a
        6,000-image set takes a fraction of a second, so nothing is cached on disk."""
        check_size(size)
        if size not in self._rendered:
            self._rendered[size] = render(self.latents, int(size))
        return self._rendered[size]


def load(cfg: DatasetConfig) -> Dataset:
    params = parse_params(ShapesParams, cfg.params, "shapes")
    table, lat = build_table(params)
    return Dataset(name="shapes", labels=table, images=RenderedShapes(lat, list(table.labels.index)))
