"""A synthetic VOC-layout dataset with *planted* context biases.

MARS removes class-correlated background ("biased objects": sea under boats, rails
under trains) from pseudo labels. No real dataset is available on every machine, so
this generator draws one in which the bias is known pixel-exactly:

* foreground objects are shapes with a class-specific colour and texture (plus noise);
* each *bias pair* links a foreground class to a *context* texture band (``water``
  at the bottom, ``rails`` under trains). The band appears in an image with
  probability ``p_with`` when the class is present and ``p_without`` when it is not,
  and objects of the class rest on it, touching it as a boat touches the sea;
* context is always background (0) in the ground truth, and ``PlantedContext/`` marks
  its visible pixels so that removal precision/recall can be measured.

A classifier trained on image tags learns the band as evidence for its class (it is
present in ``p_with`` of the class's images and large), so its CAMs light up the band:
the bias MARS removes. The band's colour and texture differ from every object's, and it
also appears in images without the class, so an embedding can tell it apart and find
it among background regions elsewhere in the dataset.

Layout written under ``out_dir`` (VOC 2012 names)::

    JPEGImages/<stem>.jpg              RGB, JPEG quality 95
    SegmentationClass/<stem>.png       palette PNG, 0 background, 1..C classes
    Annotations/<stem>.xml             VOC XML, one <object> per visible object
    PlantedContext/<stem>.png          1 where planted context is visible, else 0
    ImageSets/Segmentation/train.txt   stems of the train split (val.txt likewise)
    meta.json                          classes, bias pairs, settings, co-occurrence

Everything is a pure function of the arguments: image ``i`` draws from
``numpy.random.default_rng([seed, i])``, so any image can be regenerated alone.
"""
import hashlib
import json
import os
import os.path as osp
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple
from xml.etree import ElementTree

import numpy as np
from PIL import Image

from mars_mm.utils.io import save_label_png, save_with

#: Foreground classes of the default dataset (VOC names, background excluded).
DEFAULT_CLASSES = ('boat', 'train', 'bird', 'cat', 'car', 'bottle')

#: Default bias pairs: class -> context band it rests on.
DEFAULT_BIAS_PAIRS = (
    dict(cls='boat', context='water'),
    dict(cls='train', context='rails'),
)

# ----------------------------------------------------------------------------------
# Drawing primitives. All work on local coordinates of a box: ``yy``/``xx`` are
# ``(h, w)`` grids in [0, 1] (top-left origin), so shapes scale with the box.
# ----------------------------------------------------------------------------------

ShapeFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
TextureFn = Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


def _ellipse(yy, xx, cy, cx, ry, rx):
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _shape_hull(yy, xx):
    # trapezoid hull (wide deck, narrower keel) with a cabin on top
    hull = (yy >= 0.55) & (np.abs(xx - 0.5) <= 0.5 - 0.25 * (yy - 0.55) / 0.45)
    cabin = (yy >= 0.2) & (yy < 0.55) & (xx >= 0.3) & (xx <= 0.65)
    return hull | cabin


def _shape_train(yy, xx):
    body = (yy >= 0.1) & (yy <= 0.9)
    # rounded front on the right
    nose = _ellipse(yy, xx, 0.5, 0.85, 0.4, 0.15) | (xx <= 0.85)
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
    ear_left = (yy < 0.25) & (yy >= 0.0) & (np.abs(xx - 0.35) <= 0.1 * yy / 0.25)
    ear_right = (yy < 0.25) & (yy >= 0.0) & (np.abs(xx - 0.65) <= 0.1 * yy / 0.25)
    return body | head | ear_left | ear_right


def _shape_car(yy, xx):
    lower = (yy >= 0.4) & (yy <= 0.8)
    cabin = (yy >= 0.05) & (yy < 0.4) & (xx >= 0.2) & (xx <= 0.75)
    wheel_left = _ellipse(yy, xx, 0.8, 0.25, 0.2, 0.12)
    wheel_right = _ellipse(yy, xx, 0.8, 0.75, 0.2, 0.12)
    return lower | cabin | wheel_left | wheel_right


def _shape_bottle(yy, xx):
    body = (yy >= 0.35) & (np.abs(xx - 0.5) <= 0.45)
    neck = (yy >= 0.0) & (yy < 0.35) & (np.abs(xx - 0.5) <= 0.18)
    return body | neck


def _shape_ellipse(yy, xx):
    return _ellipse(yy, xx, 0.5, 0.5, 0.5, 0.5)


def _shape_diamond(yy, xx):
    return np.abs(yy - 0.5) + np.abs(xx - 0.5) <= 0.5


def _shape_rectangle(yy, xx):
    return np.ones_like(yy, dtype=bool)


def _stripes(colour_a, colour_b, freq, angle):
    """Texture of two-colour stripes ``freq`` per box, rotated by ``angle`` degrees."""
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
    """
    texture: TextureFn
    height: Tuple[float, float]


def _water_texture(yy, xx, rng):
    phase = rng.uniform(0, 2 * np.pi)
    # wavy horizontal ripples, darker with depth
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
)

CONTEXT_STYLES: Dict[str, ContextStyle] = dict(
    water=ContextStyle(_water_texture, height=(0.25, 0.35)),
    rails=ContextStyle(_rails_texture, height=(0.14, 0.2)),
    grass=ContextStyle(_grass_texture, height=(0.2, 0.3)),
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


# ----------------------------------------------------------------------------------
# One image
# ----------------------------------------------------------------------------------


@dataclass
class PlantedSample:
    """One generated image with its annotations.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        label: ``(H, W)`` uint8, 0 background, 1..C classes.
        context: ``(H, W)`` uint8, 1 where a planted context band is visible.
        objects: ``(class id, (xmin, ymin, xmax, ymax))`` of visible objects, boxes
            inclusive, 0-based pixels.
        contexts: names of the context bands drawn.
    """
    image: np.ndarray
    label: np.ndarray
    context: np.ndarray
    objects: List[Tuple[int, Tuple[int, int, int, int]]]
    contexts: List[str]


def _background(height, width, rng):
    """Muted colour gradient with a few soft clutter blobs (never a class)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(float)
    yy, xx = yy / max(height - 1, 1), xx / max(width - 1, 1)
    top = rng.uniform(120, 220, 3)
    bottom = rng.uniform(80, 180, 3)
    image = top + (bottom - top) * yy[..., None]
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(0, 1, 2)
        ry, rx = rng.uniform(0.08, 0.25, 2)
        blob = _ellipse(yy, xx, cy, cx, ry, rx)
        tone = rng.uniform(90, 200) + rng.uniform(-15, 15, 3)  # near-grey
        image[blob] = 0.6 * image[blob] + 0.4 * tone
    return image


def _local_grid(height, width):
    yy, xx = np.mgrid[0:height, 0:width].astype(float)
    return (yy + 0.5) / height, (xx + 0.5) / width


def generate_sample(rng: np.random.Generator,
                    image_size: Tuple[int, int],
                    classes: Sequence[str],
                    bias_pairs: Sequence[dict],
                    max_objects: int = 3,
                    noise_std: float = 8.0) -> PlantedSample:
    """Draw one image.

    Args:
        rng: the image's random generator.
        image_size: ``(H, W)``.
        classes: foreground class names; class ``i`` gets label ``i + 1``.
        bias_pairs: dicts with ``cls``, ``context``, ``p_with``, ``p_without``.
        max_objects: objects per image are drawn uniformly from 1..max_objects
            (distinct classes).
        noise_std: std of the Gaussian pixel noise added to the whole image.

    Returns:
        PlantedSample: at least one object is always visible.
    """
    height, width = image_size
    num_objects = int(rng.integers(1, min(max_objects, len(classes)) + 1))
    present = sorted(rng.choice(len(classes), size=num_objects, replace=False).tolist())
    present_names = {classes[i] for i in present}

    # decide the context bands, then stack them from the bottom of the image upwards
    wanted: List[str] = []
    for pair in bias_pairs:
        prob = pair['p_with'] if pair['cls'] in present_names else pair['p_without']
        if rng.random() < prob and pair['context'] not in wanted:
            wanted.append(pair['context'])
    image = _background(height, width, rng)
    context = np.zeros((height, width), dtype=bool)
    band_top: Dict[str, int] = {}
    band_rows: Dict[str, Tuple[int, int]] = {}
    bottom = height
    for name in wanted:
        style = context_style(name)
        band_h = max(2, int(round(rng.uniform(*style.height) * height)))
        top = max(bottom - band_h, height // 3)
        if top >= bottom:
            break
        yy, xx = _local_grid(bottom - top, width)
        image[top:bottom] = style.texture(yy, xx, rng)
        context[top:bottom] = True
        band_top[name] = top
        band_rows[name] = (top, bottom)
        bottom = top
    context_of = {pair['cls']: pair['context'] for pair in bias_pairs}

    placements = []
    for class_index in present:
        name = classes[class_index]
        style = object_style(name)
        obj_h = max(4, int(round(rng.uniform(*style.height) * height)))
        obj_w = max(4, min(width - 2, int(round(obj_h * style.aspect
                                                  * rng.uniform(0.85, 1.15)))))
        x0 = int(rng.integers(0, max(width - obj_w, 0) + 1))
        anchor = band_top.get(context_of.get(name, ''), None)
        if anchor is not None:
            # rest on the band: bottom edge a little inside it, as a hull sits in water
            sink = int(round(obj_h * rng.uniform(0.05, 0.2)))
            y0 = anchor + sink - obj_h
        else:
            y0 = int(rng.integers(0, max(height - obj_h, 0) + 1))
        y0 = int(np.clip(y0, 0, height - obj_h))
        placements.append((obj_h * obj_w, class_index, style, y0, x0, obj_h, obj_w))

    label = np.zeros((height, width), dtype=np.uint8)
    # larger boxes first, so that smaller objects stay visible on top
    for _, class_index, style, y0, x0, obj_h, obj_w in sorted(
            placements, key=lambda p: -p[0]):
        yy, xx = _local_grid(obj_h, obj_w)
        mask = style.shape(yy, xx)
        texture = style.texture(yy, xx, rng) * rng.uniform(0.85, 1.15)
        region = (slice(y0, y0 + obj_h), slice(x0, x0 + obj_w))
        image[region][mask] = texture[mask]
        label[region][mask] = class_index + 1

    image = image + rng.normal(0, noise_std, image.shape)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    visible_context = (context & (label == 0)).astype(np.uint8)

    objects = []
    for class_index in present:
        ys, xs = np.nonzero(label == class_index + 1)
        if ys.size:
            objects.append((class_index + 1,
                            (int(xs.min()), int(ys.min()), int(xs.max()),
                             int(ys.max()))))
    contexts = [name for name, (top, stop) in band_rows.items()
                if visible_context[top:stop].any()]
    return PlantedSample(image, label, visible_context, objects, contexts)


# ----------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------


def voc_xml(stem: str, image_size: Tuple[int, int], class_names: Sequence[str],
            objects: Sequence[Tuple[int, Tuple[int, int, int, int]]]) -> bytes:
    """A VOC 2012 annotation XML (boxes 1-based inclusive, as in the devkit)."""
    height, width = image_size
    root = ElementTree.Element('annotation')
    ElementTree.SubElement(root, 'folder').text = 'PlantedBias'
    ElementTree.SubElement(root, 'filename').text = f'{stem}.jpg'
    size = ElementTree.SubElement(root, 'size')
    ElementTree.SubElement(size, 'width').text = str(width)
    ElementTree.SubElement(size, 'height').text = str(height)
    ElementTree.SubElement(size, 'depth').text = '3'
    ElementTree.SubElement(root, 'segmented').text = '1'
    for class_id, (xmin, ymin, xmax, ymax) in objects:
        obj = ElementTree.SubElement(root, 'object')
        ElementTree.SubElement(obj, 'name').text = class_names[class_id]
        ElementTree.SubElement(obj, 'pose').text = 'Unspecified'
        ElementTree.SubElement(obj, 'truncated').text = '0'
        ElementTree.SubElement(obj, 'difficult').text = '0'
        box = ElementTree.SubElement(obj, 'bndbox')
        for key, value in zip(('xmin', 'ymin', 'xmax', 'ymax'),
                              (xmin + 1, ymin + 1, xmax + 1, ymax + 1)):
            ElementTree.SubElement(box, key).text = str(value)
    ElementTree.indent(root)
    return ElementTree.tostring(root, encoding='utf-8')


def _write_bytes(path: str, data: bytes) -> None:
    def writer(tmp: str) -> None:
        with open(tmp, 'wb') as handle:
            handle.write(data)
    save_with(path, writer)


def _normalise_pairs(bias_pairs, classes, p_with, p_without):
    pairs = []
    for pair in bias_pairs:
        pair = dict(pair)
        if 'cls' not in pair or 'context' not in pair:
            raise ValueError(f'a bias pair needs "cls" and "context": {pair}')
        if pair['cls'] not in classes:
            raise ValueError(f'bias pair class {pair["cls"]!r} is not among the '
                             f'classes {list(classes)}')
        pair.setdefault('p_with', p_with)
        pair.setdefault('p_without', p_without)
        for key in ('p_with', 'p_without'):
            if not 0.0 <= pair[key] <= 1.0:
                raise ValueError(f'{key} of {pair["cls"]!r} must lie in [0, 1], '
                                 f'got {pair[key]}')
        pairs.append(pair)
    return pairs


def co_occurrence_table(tags: Sequence[Sequence[int]],
                        contexts: Sequence[Sequence[str]],
                        class_names: Sequence[str],
                        bias_pairs: Sequence[dict]) -> List[dict]:
    """Measured co-occurrence of each bias pair's class and context.

    Args:
        tags: per image, the class ids (1..C) present.
        contexts: per image, the names of the context bands visible.
        class_names: all class names, background first.
        bias_pairs: normalised pairs (``cls``, ``context``, ``p_with``, ``p_without``).

    Returns:
        list[dict]: per pair the image counts ``with_class``,
        ``with_class_and_context``,
        ``without_class``, ``context_without_class`` and the measured
        ``p_context_given_class`` / ``p_context_given_no_class``.
    """
    rows = []
    for pair in bias_pairs:
        class_id = class_names.index(pair['cls'])
        has_class = np.array([class_id in t for t in tags], dtype=bool)
        has_context = np.array([pair['context'] in c for c in contexts], dtype=bool)
        n_with, n_without = int(has_class.sum()), int((~has_class).sum())
        both = int((has_class & has_context).sum())
        context_only = int((~has_class & has_context).sum())
        rows.append(dict(
            cls=pair['cls'], context=pair['context'],
            p_with=pair['p_with'], p_without=pair['p_without'],
            with_class=n_with, with_class_and_context=both,
            without_class=n_without, context_without_class=context_only,
            p_context_given_class=both / n_with if n_with else None,
            p_context_given_no_class=context_only / n_without if n_without else None))
    return rows


def format_co_occurrence(rows: Sequence[dict]) -> str:
    """Plain-text table of :func:`co_occurrence_table` rows."""
    lines = [f'{"class":<10}{"context":<10}{"images":>7}{"+ctx":>6}{"P(ctx|c)":>10}'
             f'{"asked":>7}{"no c":>7}{"+ctx":>6}{"P(ctx|!c)":>11}{"asked":>7}']
    for row in rows:
        given = row['p_context_given_class']
        given_not = row['p_context_given_no_class']
        lines.append(
            f'{row["cls"]:<10}{row["context"]:<10}{row["with_class"]:>7}'
            f'{row["with_class_and_context"]:>6}'
            f'{(given if given is not None else float("nan")):>10.3f}'
            f'{row["p_with"]:>7.2f}{row["without_class"]:>7}'
            f'{row["context_without_class"]:>6}'
            f'{(given_not if given_not is not None else float("nan")):>11.3f}'
            f'{row["p_without"]:>7.2f}')
    return '\n'.join(lines)


def generate_planted_bias(out_dir: str,
                          num_train: int = 400,
                          num_val: int = 100,
                          image_size: Tuple[int, int] = (128, 128),
                          classes: Sequence[str] = DEFAULT_CLASSES,
                          bias_pairs: Sequence[dict] = DEFAULT_BIAS_PAIRS,
                          p_with: float = 0.9,
                          p_without: float = 0.1,
                          seed: int = 0,
                          max_objects: int = 3,
                          noise_std: float = 8.0,
                          jpeg_quality: int = 95,
                          progress: Optional[Callable[[int, int], None]] = None
                          ) -> dict:
    """Write a planted-bias dataset in VOC layout to ``out_dir``.

    Args:
        out_dir: destination (created; existing files of the same names are
            replaced).
        num_train: images in ``ImageSets/Segmentation/train.txt``.
        num_val: images in ``val.txt``.
        image_size: ``(H, W)``.
        classes: foreground class names (background is added as class 0). Names
            without a built-in style get a shape and colours derived from the name.
        bias_pairs: dicts ``cls`` (a class name), ``context`` (``water``, ``rails``,
            ``grass`` or any name, which gets a derived striped texture), and
            optionally ``p_with`` / ``p_without`` overriding the global values.
        p_with: probability of the context when its class is in the image.
        p_without: probability of the context when its class is absent.
        seed: image ``i`` uses ``default_rng([seed, i])``.
        max_objects: 1..max_objects distinct classes per image.
        noise_std: Gaussian pixel noise.
        jpeg_quality: JPEG quality of ``JPEGImages``.
        progress: optional ``callback(done, total)``.

    Returns:
        dict: the content of ``meta.json`` (``classes`` with background first,
        ``bias_pairs``, ``settings``, ``splits`` sizes, ``co_occurrence`` per split
        and overall, ``class_image_counts``).
    """
    classes = list(classes)
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f'classes must be non-empty and distinct, got {classes}')
    if 'background' in classes:
        raise ValueError('classes lists the foreground only; background is added')
    if len(classes) > 253:
        raise ValueError('at most 253 classes (254 and 255 are reserved)')
    pairs = _normalise_pairs(bias_pairs, classes, p_with, p_without)
    class_names = ['background'] + classes
    height, width = image_size
    for folder in ('JPEGImages', 'SegmentationClass', 'Annotations', 'PlantedContext',
                   'ImageSets/Segmentation'):
        os.makedirs(osp.join(out_dir, folder), exist_ok=True)

    total = num_train + num_val
    stems = [f'{index:06d}' for index in range(total)]
    tags, contexts = [], []
    for index, stem in enumerate(stems):
        rng = np.random.default_rng([seed, index])
        sample = generate_sample(rng, (height, width), classes, pairs,
                                 max_objects=max_objects, noise_std=noise_std)
        save_with(osp.join(out_dir, 'JPEGImages', f'{stem}.jpg'),
                  lambda tmp, image=sample.image: Image.fromarray(image).save(
                      tmp, format='JPEG', quality=jpeg_quality))
        save_label_png(osp.join(out_dir, 'SegmentationClass', f'{stem}.png'),
                       sample.label)
        save_label_png(osp.join(out_dir, 'PlantedContext', f'{stem}.png'),
                       sample.context)
        xml = voc_xml(stem, (height, width), class_names, sample.objects)
        _write_bytes(osp.join(out_dir, 'Annotations', f'{stem}.xml'), xml)
        tags.append(sorted({class_id for class_id, _ in sample.objects}))
        contexts.append(sample.contexts)
        if progress is not None:
            progress(index + 1, total)

    splits = dict(train=stems[:num_train], val=stems[num_train:])
    for split, names in splits.items():
        _write_bytes(osp.join(out_dir, 'ImageSets', 'Segmentation', f'{split}.txt'),
                     ''.join(f'{name}\n' for name in names).encode())

    co_occurrence = dict(all=co_occurrence_table(tags, contexts, class_names, pairs))
    for split, (start, stop) in dict(train=(0, num_train),
                                     val=(num_train, total)).items():
        co_occurrence[split] = co_occurrence_table(
            tags[start:stop], contexts[start:stop], class_names, pairs)
    meta = dict(
        classes=class_names,
        bias_pairs=pairs,
        settings=dict(num_train=num_train, num_val=num_val,
                      image_size=[height, width], seed=seed, p_with=p_with,
                      p_without=p_without, max_objects=max_objects,
                      noise_std=noise_std, jpeg_quality=jpeg_quality),
        splits={split: len(names) for split, names in splits.items()},
        class_image_counts={name: sum(class_id in t for t in tags)
                            for class_id, name in enumerate(class_names)
                            if class_id},
        co_occurrence=co_occurrence)
    _write_bytes(osp.join(out_dir, 'meta.json'),
                 (json.dumps(meta, indent=2) + '\n').encode())
    return meta
