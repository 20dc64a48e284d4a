"""One planted-bias image: background, context bands, objects, annotations."""
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .planted_styles import context_style, object_style


@dataclass
class PlantedSample:
    """One generated image with its annotations.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        label: ``(H, W)`` uint8 class indices: ``class_ids[i]`` for class ``i`` of
            the ``classes`` list, 0 background.
        context: ``(H, W)`` uint8, 1 where a planted context band is visible.
        objects: ``(label id, (xmin, ymin, xmax, ymax))`` of visible objects, boxes
            inclusive, 0-based pixels.
        contexts: names of the context bands visible.
    """
    image: np.ndarray
    label: np.ndarray
    context: np.ndarray
    objects: List[Tuple[int, Tuple[int, int, int, int]]]
    contexts: List[str]


def _ellipse(yy, xx, cy, cx, ry, rx):
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


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


def _draw_bands(image, wanted, rng):
    """Paint the wanted context bands; returns the context mask and band rows.

    Bottom bands stack upwards from the bottom edge (never above a third of the
    height), top bands downwards from the top edge (never below 60% of it); a band
    that does not fit is dropped (and so not counted as present).
    """
    height, width = image.shape[:2]
    context = np.zeros((height, width), dtype=bool)
    rows: Dict[str, Tuple[int, int]] = {}
    top_edge, bottom_edge = 0, height
    for name in wanted:
        style = context_style(name)
        band_h = max(2, int(round(rng.uniform(*style.height) * height)))
        if style.position == 'top':
            start = top_edge
            stop = min(start + band_h, int(0.6 * height), bottom_edge)
        else:
            stop = bottom_edge
            start = max(stop - band_h, height // 3, top_edge)
        if stop - start < 2:
            continue
        yy, xx = _local_grid(stop - start, width)
        image[start:stop] = style.texture(yy, xx, rng)
        context[start:stop] = True
        rows[name] = (start, stop)
        if style.position == 'top':
            top_edge = stop
        else:
            bottom_edge = start
    return context, rows


def _place(rng, style_position, band, obj_h, height):
    """Top row of an object box: resting on a bottom band, inside a top band."""
    if band is None:
        return int(rng.integers(0, max(height - obj_h, 0) + 1))
    start, stop = band
    if style_position == 'top':
        room = stop - start - obj_h
        y0 = start + int(rng.integers(0, room + 1)) if room >= 0 else start + room // 2
    else:
        # bottom edge a little inside the band, as a hull sits in the water
        y0 = start + int(round(obj_h * rng.uniform(0.05, 0.2))) - obj_h
    return int(np.clip(y0, 0, height - obj_h))


def generate_sample(rng: np.random.Generator,
                    image_size: Tuple[int, int],
                    classes: Sequence[str],
                    bias_pairs: Sequence[dict],
                    max_objects: int = 3,
                    noise_std: float = 8.0,
                    object_scale: float = 1.0,
                    class_ids: Sequence[int] = ()) -> PlantedSample:
    """Draw one image.

    Args:
        rng: the image's random generator.
        image_size: ``(H, W)``.
        classes: foreground class names.
        bias_pairs: dicts with ``cls``, ``context``, ``p_with``, ``p_without``.
        max_objects: objects per image are drawn uniformly from 1..max_objects
            (distinct classes).
        noise_std: std of the Gaussian pixel noise added to the whole image.
        object_scale: multiplies every object's height range (small/large objects).
        class_ids: label value of each class (default ``1..C``).

    Returns:
        PlantedSample: at least one object is always visible.
    """
    height, width = image_size
    class_ids = list(class_ids) or list(range(1, len(classes) + 1))
    num_objects = int(rng.integers(1, min(max_objects, len(classes)) + 1))
    present = sorted(rng.choice(len(classes), size=num_objects, replace=False).tolist())
    present_names = {classes[i] for i in present}

    wanted: List[str] = []
    for pair in bias_pairs:
        prob = pair['p_with'] if pair['cls'] in present_names else pair['p_without']
        if rng.random() < prob and pair['context'] not in wanted:
            wanted.append(pair['context'])
    image = _background(height, width, rng)
    context, band_rows = _draw_bands(image, wanted, rng)
    context_of = {pair['cls']: pair['context'] for pair in bias_pairs}

    placements = []
    for index in present:
        style = object_style(classes[index])
        low, high = style.height
        obj_h = max(4, min(height, int(round(
            rng.uniform(low, high) * object_scale * height))))
        obj_w = max(4, min(width - 2, int(round(obj_h * style.aspect
                                                  * rng.uniform(0.85, 1.15)))))
        x0 = int(rng.integers(0, max(width - obj_w, 0) + 1))
        context_name = context_of.get(classes[index], '')
        y0 = _place(rng, context_style(context_name).position if context_name else '',
                    band_rows.get(context_name), obj_h, height)
        placements.append((obj_h * obj_w, index, style, y0, x0, obj_h, obj_w))

    label = np.zeros((height, width), dtype=np.uint8)
    # larger boxes first, so that smaller objects stay visible on top
    for _, index, style, y0, x0, obj_h, obj_w in sorted(placements,
                                                        key=lambda p: -p[0]):
        yy, xx = _local_grid(obj_h, obj_w)
        mask = style.shape(yy, xx)
        texture = style.texture(yy, xx, rng) * rng.uniform(0.85, 1.15)
        region = (slice(y0, y0 + obj_h), slice(x0, x0 + obj_w))
        image[region][mask] = texture[mask]
        label[region][mask] = class_ids[index]

    image = image + rng.normal(0, noise_std, image.shape)
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    visible_context = (context & (label == 0)).astype(np.uint8)

    objects = []
    for index in present:
        ys, xs = np.nonzero(label == class_ids[index])
        if ys.size:
            objects.append((class_ids[index], (int(xs.min()), int(ys.min()),
                                               int(xs.max()), int(ys.max()))))
    contexts = [name for name, (start, stop) in band_rows.items()
                if visible_context[start:stop].any()]
    return PlantedSample(image, label, visible_context, objects, contexts)
