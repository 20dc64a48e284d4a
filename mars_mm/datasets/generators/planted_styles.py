"""How the planted-bias generator draws objects and context bands.

Shapes are boolean masks and textures float RGB arrays on *local* unit coordinates of
a box: ``yy``/``xx`` are ``(h, w)`` grids in [0, 1] (top-left origin), so every shape
scales with its box. Context textures cover a whole band of the image.

Context looks come in three families, so that a family of datasets can test whether
an embedding separates context from objects without being tuned to one look:

* periodic patterns: ``water`` (ripples), ``rails`` (ties and steel), ``brick``,
  ``tiles`` (checkerboard), ``road`` (asphalt with dashes);
* smooth gradients: ``sky`` (a top band), ``snow``, ``sand`` (low-frequency blotches);
* random texture: ``grass`` (blades).
"""
import hashlib
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import numpy as np

ShapeFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
TextureFn = Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class ObjectStyle:
    """How a foreground class is drawn.

    Args:
        shape: ``(yy, xx) -> bool mask`` on unit box coordinates.
        texture: ``(yy, xx, rng) -> (h, w, 3)`` float RGB.
        aspect: box width / height.
        height: (min, max) box height as a fraction of the image height.
    """
    shape: ShapeFn
    texture: TextureFn
    aspect: float
    height: Tuple[float, float]


@dataclass(frozen=True)
class ContextStyle:
    """How a context band is drawn.

    Args:
        texture: ``(yy, xx, rng) -> (h, w, 3)`` float RGB over the whole band.
        height: (min, max) band height as a fraction of the image height.
        position: ``'bottom'`` (stacked upwards from the bottom edge; objects of the
            biased class rest on it, as a boat on the sea) or ``'top'`` (stacked
            downwards from the top edge; objects of the class sit inside it, as an
            aeroplane in the sky).
    """
    texture: TextureFn
    height: Tuple[float, float]
    position: str = 'bottom'


# ------------------------------------------------------------------------- shapes
def _ellipse(yy, xx, cy, cx, ry, rx):
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _shape_hull(yy, xx):
    # trapezoid hull (wide deck, narrower keel) with a cabin on top
    hull = (yy >= 0.55) & (np.abs(xx - 0.5) <= 0.5 - 0.25 * (yy - 0.55) / 0.45)
    cabin = (yy >= 0.2) & (yy < 0.55) & (xx >= 0.3) & (xx <= 0.65)
    return hull | cabin


def _shape_train(yy, xx):
    body = (yy >= 0.1) & (yy <= 0.9)
    nose = _ellipse(yy, xx, 0.5, 0.85, 0.4, 0.15) | (xx <= 0.85)  # rounded front
    wheels = (yy > 0.9) & (np.mod(xx * 6, 1.0) < 0.5)
    return (body & nose) | wheels


def _shape_bird(yy, xx):
    body = _ellipse(yy, xx, 0.6, 0.45, 0.28, 0.38)
    head = _ellipse(yy, xx, 0.3, 0.78, 0.18, 0.14)
    beak = (xx >= 0.88) & (np.abs(yy - 0.3) <= 0.08 * (1.0 - (xx - 0.88) / 0.12))
    wing = (yy >= 0.05) & (yy <= 0.6) & (np.abs(xx - 0.4) <= 0.3 * (yy - 0.05) / 0.55)
    return body | head | beak | wing


def _shape_cat(yy, xx):
    body = _ellipse(yy, xx, 0.68, 0.5, 0.3, 0.45)
    head = _ellipse(yy, xx, 0.35, 0.5, 0.22, 0.25)
    ear_left = (yy < 0.25) & (np.abs(xx - 0.35) <= 0.1 * yy / 0.25)
    ear_right = (yy < 0.25) & (np.abs(xx - 0.65) <= 0.1 * yy / 0.25)
    return body | head | ear_left | ear_right


def _shape_car(yy, xx):
    lower = (yy >= 0.4) & (yy <= 0.8)
    cabin = (yy >= 0.05) & (yy < 0.4) & (xx >= 0.2) & (xx <= 0.75)
    wheel_left = _ellipse(yy, xx, 0.8, 0.25, 0.2, 0.12)
    wheel_right = _ellipse(yy, xx, 0.8, 0.75, 0.2, 0.12)
    return lower | cabin | wheel_left | wheel_right


def _shape_bottle(yy, xx):
    body = (yy >= 0.35) & (np.abs(xx - 0.5) <= 0.45)
    neck = (yy < 0.35) & (np.abs(xx - 0.5) <= 0.18)
    return body | neck


def _shape_aeroplane(yy, xx):
    fuselage = _ellipse(yy, xx, 0.5, 0.5, 0.14, 0.5)
    wing = (np.abs(xx - 0.45) <= 0.12 - 0.1 * np.abs(yy - 0.5)) & (yy >= 0.05) \
        & (yy <= 0.95)
    tail = (xx <= 0.12) & (yy >= 0.15) & (yy <= 0.5)
    return fuselage | wing | tail


def _shape_person(yy, xx):
    head = _ellipse(yy, xx, 0.1, 0.5, 0.1, 0.22)
    torso = (yy >= 0.2) & (yy <= 0.6) & (np.abs(xx - 0.5) <= 0.38)
    legs = (yy > 0.6) & (np.abs(np.abs(xx - 0.5) - 0.18) <= 0.13)
    return head | torso | legs


def _shape_bus(yy, xx):
    body = (yy >= 0.05) & (yy <= 0.85)
    wheels = _ellipse(yy, xx, 0.85, 0.2, 0.15, 0.08) | _ellipse(yy, xx, 0.85, 0.8,
                                                                  0.15, 0.08)
    return body | wheels


def _shape_quadruped(yy, xx):
    body = _ellipse(yy, xx, 0.45, 0.45, 0.22, 0.38)
    head = _ellipse(yy, xx, 0.25, 0.85, 0.15, 0.13)
    legs = (yy >= 0.45) & (np.mod(xx * 4 + 0.25, 1.0) < 0.3) & (xx > 0.12) \
        & (xx < 0.8)
    return body | head | legs


def _shape_sheep(yy, xx):
    fleece = _ellipse(yy, xx, 0.45, 0.45, 0.32, 0.42)
    head = _ellipse(yy, xx, 0.35, 0.88, 0.14, 0.1)
    legs = (yy >= 0.6) & (np.mod(xx * 3 + 0.2, 1.0) < 0.2) & (xx > 0.15) & (xx < 0.8)
    return fleece | head | legs


def _shape_monitor(yy, xx):
    screen = (yy <= 0.78)
    stand = (yy > 0.78) & (np.abs(xx - 0.5) <= 0.08 + 0.25 * (yy > 0.92))
    return screen | stand


def _shape_ellipse(yy, xx):
    return _ellipse(yy, xx, 0.5, 0.5, 0.5, 0.5)


def _shape_diamond(yy, xx):
    return np.abs(yy - 0.5) + np.abs(xx - 0.5) <= 0.5


def _shape_rectangle(yy, xx):
    return np.ones_like(yy, dtype=bool)


# ----------------------------------------------------------------------- textures
def _stripes(colour_a, colour_b, freq, angle):
    """Two-colour stripes, ``freq`` per box, rotated by ``angle`` degrees."""
    colour_a, colour_b = np.asarray(colour_a, float), np.asarray(colour_b, float)
    rad = np.deg2rad(angle)

    def texture(yy, xx, rng):
        phase = rng.uniform(0, 1)
        wave = np.mod((xx * np.cos(rad) + yy * np.sin(rad)) * freq + phase, 1.0) < 0.5
        return np.where(wave[..., None], colour_a, colour_b)
    return texture


def _spots(colour, spot_colour, density):
    colour, spot_colour = np.asarray(colour, float), np.asarray(spot_colour, float)

    def texture(yy, xx, rng):
        spots = rng.random(yy.shape) < density
        return np.where(spots[..., None], spot_colour, colour)
    return texture


def _windows(body, window, rows, cols):
    body, window = np.asarray(body, float), np.asarray(window, float)

    def texture(yy, xx, rng):
        in_window = ((np.mod(xx * cols, 1.0) > 0.25) & (np.mod(xx * cols, 1.0) < 0.75)
                     & (yy > 0.2) & (yy < 0.2 + 0.35 * rows / 2))
        return np.where(in_window[..., None], window, body)
    return texture


def _gradient(top, bottom):
    top, bottom = np.asarray(top, float), np.asarray(bottom, float)

    def texture(yy, xx, rng):
        return top + (bottom - top) * yy[..., None]
    return texture


def _framed(frame, screen, border):
    frame, screen = np.asarray(frame, float), np.asarray(screen, float)

    def texture(yy, xx, rng):
        inside = ((yy > border) & (yy < 0.78 - border) & (xx > border)
                  & (xx < 1 - border))
        return np.where(inside[..., None], screen, frame)
    return texture


def _smooth_noise(shape, rng, cells):
    """Bilinearly upsampled random grid: low-frequency noise in [0, 1]."""
    height, width = shape
    grid = rng.random((cells + 1, cells + 1))
    ys = np.linspace(0, cells, height)
    xs = np.linspace(0, cells, width)
    y0 = np.minimum(ys.astype(int), cells - 1)
    x0 = np.minimum(xs.astype(int), cells - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _water_texture(yy, xx, rng):
    phase = rng.uniform(0, 2 * np.pi)
    ripple = np.sin(yy * 40 + 3 * np.sin(xx * 12 + phase)) > 0.6
    base = np.array([30, 90, 170], float) * (1.0 - 0.35 * yy[..., None])
    return np.where(ripple[..., None], np.array([150, 200, 235], float), base)


def _rails_texture(yy, xx, rng):
    gravel = np.array([120, 110, 100], float) + rng.normal(0, 18, yy.shape + (1,))
    ties = (np.mod(xx * 10 + rng.uniform(0, 1), 1.0) < 0.3) & (yy > 0.15) & (yy < 0.85)
    steel = (np.abs(yy - 0.3) < 0.06) | (np.abs(yy - 0.7) < 0.06)
    image = np.where(ties[..., None], np.array([95, 60, 30], float), gravel)
    return np.where(steel[..., None], np.array([200, 200, 210], float), image)


def _grass_texture(yy, xx, rng):
    blades = rng.random(yy.shape) < 0.3
    return np.where(blades[..., None], np.array([40, 160, 40], float),
                    np.array([70, 120, 40], float))


def _sky_texture(yy, xx, rng):
    # smooth: deep blue at the top edge, pale near the horizon, faint haze
    top = np.array([40, 110, 215], float) + rng.uniform(-15, 15, 3)
    bottom = np.array([175, 210, 240], float)
    haze = 12 * _smooth_noise(yy.shape, rng, 3)[..., None]
    return top + (bottom - top) * yy[..., None] + haze


def _snow_texture(yy, xx, rng):
    top = np.array([205, 215, 235], float)
    bottom = np.array([250, 250, 255], float)
    return top + (bottom - top) * yy[..., None] - 10 * _smooth_noise(
        yy.shape, rng, 4)[..., None]


def _sand_texture(yy, xx, rng):
    blotch = _smooth_noise(yy.shape, rng, 6)[..., None]
    return np.array([225, 190, 120], float) * (0.8 + 0.25 * blotch)


def _brick_texture(yy, xx, rng):
    rows = 5.0
    row = np.floor(yy * rows)
    shift = np.where(np.mod(row, 2) == 0, 0.0, 0.5)
    mortar = (np.mod(yy * rows, 1.0) < 0.18) | (np.mod(xx * 8 + shift, 1.0) < 0.08)
    return np.where(mortar[..., None], np.array([205, 200, 190], float),
                    np.array([160, 60, 40], float))


def _tiles_texture(yy, xx, rng):
    phase = rng.uniform(0, 1)
    check = (np.floor(yy * 4) + np.floor(xx * 14 + phase)) % 2 == 0
    return np.where(check[..., None], np.array([235, 235, 200], float),
                    np.array([40, 120, 120], float))


def _road_texture(yy, xx, rng):
    asphalt = np.array([70, 70, 75], float) + rng.normal(0, 6, yy.shape + (1,))
    dashes = (np.abs(yy - 0.5) < 0.07) & (np.mod(xx * 6 + rng.uniform(0, 1), 1.0) < 0.5)
    return np.where(dashes[..., None], np.array([240, 220, 60], float), asphalt)


OBJECT_STYLES: Dict[str, ObjectStyle] = dict(
    boat=ObjectStyle(_shape_hull, _stripes((220, 30, 30), (245, 245, 245), 4, 90),
                     aspect=1.6, height=(0.22, 0.34)),
    train=ObjectStyle(_shape_train, _windows((235, 200, 20), (40, 40, 60), 1, 5),
                      aspect=2.4, height=(0.22, 0.3)),
    bird=ObjectStyle(_shape_bird, _spots((140, 90, 40), (60, 35, 20), 0.25),
                     aspect=1.2, height=(0.2, 0.32)),
    cat=ObjectStyle(_shape_cat, _stripes((240, 150, 40), (170, 90, 20), 5, 45),
                    aspect=1.1, height=(0.25, 0.38)),
    car=ObjectStyle(_shape_car, _gradient((200, 40, 200), (110, 20, 120)),
                    aspect=1.8, height=(0.2, 0.3)),
    bottle=ObjectStyle(_shape_bottle, _stripes((30, 150, 90), (140, 230, 170), 3, 0),
                       aspect=0.4, height=(0.3, 0.45)),
    aeroplane=ObjectStyle(_shape_aeroplane,
                          _stripes((215, 215, 225), (200, 30, 60), 6, 0),
                          aspect=1.8, height=(0.18, 0.28)),
    person=ObjectStyle(_shape_person, _gradient((235, 185, 150), (40, 50, 150)),
                       aspect=0.45, height=(0.3, 0.45)),
    bus=ObjectStyle(_shape_bus, _windows((250, 140, 0), (30, 30, 50), 1, 6),
                    aspect=2.0, height=(0.25, 0.35)),
    dog=ObjectStyle(_shape_quadruped, _spots((150, 100, 55), (250, 245, 235), 0.35),
                    aspect=1.4, height=(0.22, 0.32)),
    horse=ObjectStyle(_shape_quadruped, _gradient((120, 60, 25), (70, 35, 15)),
                      aspect=1.3, height=(0.3, 0.42)),
    sheep=ObjectStyle(_shape_sheep, _spots((240, 238, 225), (190, 185, 175), 0.4),
                      aspect=1.4, height=(0.22, 0.32)),
    tvmonitor=ObjectStyle(_shape_monitor, _framed((25, 25, 25), (90, 200, 250), 0.08),
                          aspect=1.3, height=(0.25, 0.35)),
)

CONTEXT_STYLES: Dict[str, ContextStyle] = dict(
    water=ContextStyle(_water_texture, height=(0.25, 0.35)),
    rails=ContextStyle(_rails_texture, height=(0.14, 0.2)),
    grass=ContextStyle(_grass_texture, height=(0.2, 0.3)),
    sky=ContextStyle(_sky_texture, height=(0.35, 0.5), position='top'),
    snow=ContextStyle(_snow_texture, height=(0.25, 0.35)),
    sand=ContextStyle(_sand_texture, height=(0.2, 0.3)),
    brick=ContextStyle(_brick_texture, height=(0.3, 0.45), position='top'),
    tiles=ContextStyle(_tiles_texture, height=(0.2, 0.3)),
    road=ContextStyle(_road_texture, height=(0.15, 0.22)),
)

_FALLBACK_SHAPES = (_shape_ellipse, _shape_diamond, _shape_rectangle)


def _name_seed(name: str) -> int:
    # stable across processes and Python runs (unlike hash())
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


def object_style(name: str) -> ObjectStyle:
    """The built-in style of class ``name``, or one derived from the name itself."""
    if name in OBJECT_STYLES:
        return OBJECT_STYLES[name]
    rng = np.random.default_rng(_name_seed(name))
    colour_a = rng.integers(40, 256, 3)
    colour_b = np.clip(colour_a + rng.integers(-90, 90, 3), 0, 255)
    shape = _FALLBACK_SHAPES[rng.integers(len(_FALLBACK_SHAPES))]
    texture = _stripes(colour_a, colour_b, int(rng.integers(2, 6)),
                       float(rng.uniform(0, 180)))
    return ObjectStyle(shape, texture, aspect=float(rng.uniform(0.6, 1.8)),
                       height=(0.2, 0.35))


def context_style(name: str) -> ContextStyle:
    """The built-in style of context ``name``, or a striped band derived from it."""
    if name in CONTEXT_STYLES:
        return CONTEXT_STYLES[name]
    rng = np.random.default_rng(_name_seed('context:' + name))
    colour_a = rng.integers(0, 256, 3)
    colour_b = np.clip(colour_a + rng.integers(-60, 60, 3), 0, 255)
    return ContextStyle(_stripes(colour_a, colour_b, 12, 0), height=(0.15, 0.3))
