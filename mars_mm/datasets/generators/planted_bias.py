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
                                       (VOC's ids with ``voc_ids=True``)
    Annotations/<stem>.xml             VOC XML, one <object> per visible object
    PlantedContext/<stem>.png          1 where planted context is visible, else 0
    ImageSets/Segmentation/train.txt   stems of the train split (val.txt likewise)
    meta.json                          classes, bias pairs, settings, co-occurrence

Drawing lives in :mod:`.planted_styles` (shapes, object and context looks) and
:mod:`.planted_sample` (one image); :mod:`.planted_presets` names a family of
datasets (:func:`generate_preset`) across which mars_mm's defaults are chosen.

Everything is a pure function of the arguments: image ``i`` draws from
``numpy.random.default_rng([seed, i])``, so any image can be regenerated alone.
"""
import json
import os
import os.path as osp
from typing import Callable, List, Optional, Sequence, Tuple, Union
from xml.etree import ElementTree

import numpy as np
from PIL import Image

from mars_mm.utils.io import save_label_png, save_with
from mars_mm.utils.offline import claim_folder

from ..class_names import VOC_CLASSES
from .planted_presets import preset_kwargs
from .planted_sample import PlantedSample, generate_sample  # noqa: F401

#: Foreground classes of the default dataset (VOC names, background excluded).
DEFAULT_CLASSES = ('boat', 'train', 'bird', 'cat', 'car', 'bottle')

#: Default bias pairs: class -> context band it rests on.
DEFAULT_BIAS_PAIRS = (
    dict(cls='boat', context='water'),
    dict(cls='train', context='rails'),
)

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


SizeSpec = Union[Tuple[int, int], Tuple[Tuple[int, int], Tuple[int, int]]]


def _size_ranges(image_size: SizeSpec) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """``((h_min, h_max), (w_min, w_max))`` from ``(H, W)`` or ranges."""
    if len(image_size) != 2:
        raise ValueError(f'image_size must be (H, W) or ((h_min, h_max), (w_min, '
                         f'w_max)), got {image_size!r}')
    ranges = []
    for side in image_size:
        low, high = (side, side) if np.isscalar(side) else tuple(side)
        if not 8 <= int(low) <= int(high):
            raise ValueError(f'image sides must be at least 8 px (and min <= max), '
                             f'got image_size={image_size!r}')
        ranges.append((int(low), int(high)))
    return ranges[0], ranges[1]


def _class_ids(classes: Sequence[str], voc_ids: bool) -> Tuple[List[str], List[int]]:
    """All class names (background first) and the label id of each class."""
    if not voc_ids:
        return ['background'] + list(classes), list(range(1, len(classes) + 1))
    unknown = [name for name in classes if name not in VOC_CLASSES[1:]]
    if unknown:
        raise ValueError(f'voc_ids=True needs VOC class names; unknown: {unknown} '
                         f'(VOC: {", ".join(VOC_CLASSES[1:])})')
    return list(VOC_CLASSES), [VOC_CLASSES.index(name) for name in classes]


def generate_planted_bias(out_dir: str,
                          num_train: int = 400,
                          num_val: int = 100,
                          image_size: SizeSpec = (128, 128),
                          classes: Sequence[str] = DEFAULT_CLASSES,
                          bias_pairs: Sequence[dict] = DEFAULT_BIAS_PAIRS,
                          p_with: float = 0.9,
                          p_without: float = 0.1,
                          seed: int = 0,
                          max_objects: int = 3,
                          noise_std: float = 8.0,
                          jpeg_quality: int = 95,
                          object_scale: float = 1.0,
                          voc_ids: bool = False,
                          preset_name: Optional[str] = None,
                          progress: Optional[Callable[[int, int], None]] = None
                          ) -> dict:
    """Write a planted-bias dataset in VOC layout to ``out_dir``.

    Args:
        out_dir: destination (created). A folder that is not empty must hold
            this dataset, finished or interrupted, with the same settings (it is
            completed); any other is refused, so no file of the user is replaced.
        num_train: images in ``ImageSets/Segmentation/train.txt``.
        num_val: images in ``val.txt``.
        image_size: ``(H, W)``, or ``((h_min, h_max), (w_min, w_max))`` for sizes
            drawn per image (uniform integers, bounds included).
        classes: foreground class names (background is added as class 0). Names
            without a built-in style get a shape and colours derived from the name.
        bias_pairs: dicts ``cls`` (a class name), ``context`` (a built-in context of
            :mod:`.planted_styles` or any name, which gets a derived striped
            texture), and optionally ``p_with`` / ``p_without`` overriding the
            global values.
        p_with: probability of the context when its class is in the image.
        p_without: probability of the context when its class is absent.
        seed: image ``i`` uses ``default_rng([seed, i])``.
        max_objects: 1..max_objects distinct classes per image.
        noise_std: Gaussian pixel noise.
        jpeg_quality: JPEG quality of ``JPEGImages``.
        object_scale: multiplies every object's height range.
        voc_ids: write PASCAL VOC's 21 class names and ids (``classes`` must be VOC
            names; unused VOC classes never appear), so that ``WSSSVOCDataset`` and
            VOC configs read the folder unchanged.
        preset_name: recorded in ``meta.json`` (see :func:`generate_preset`).
        progress: optional ``callback(done, total)``.

    Returns:
        dict: the content of ``meta.json`` (``classes`` with background first,
        ``bias_pairs``, ``settings`` including ``preset``, ``splits`` sizes,
        ``co_occurrence`` per split and overall, ``class_image_counts``).
    """
    classes = list(classes)
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f'classes must be non-empty and distinct, got {classes}')
    if 'background' in classes:
        raise ValueError('classes lists the foreground only; background is added')
    if len(classes) > 253:
        raise ValueError('at most 253 classes (254 and 255 are reserved)')
    if num_train < 0 or num_val < 0 or num_train + num_val == 0:
        raise ValueError(f'need at least one image, got num_train={num_train}, '
                         f'num_val={num_val}')
    if object_scale <= 0:
        raise ValueError(f'object_scale must be positive, got {object_scale}')
    heights, widths = _size_ranges(image_size)
    pairs = _normalise_pairs(bias_pairs, classes, p_with, p_without)
    class_names, label_ids = _class_ids(classes, voc_ids)
    size_setting = ([heights[0], widths[0]] if heights[0] == heights[1]
                    and widths[0] == widths[1] else [list(heights), list(widths)])
    record = dict(
        classes=class_names, bias_pairs=pairs,
        settings=dict(num_train=num_train, num_val=num_val,
                      image_size=size_setting, seed=seed, p_with=p_with,
                      p_without=p_without, max_objects=max_objects,
                      noise_std=noise_std, jpeg_quality=jpeg_quality,
                      object_scale=object_scale, voc_ids=voc_ids,
                      classes=classes, preset=preset_name))
    # Never overwrite files the generator did not make: a non-empty folder must be
    # this dataset, finished (meta.json) or interrupted (meta.partial.json).
    claim_folder(out_dir, record, ('meta.json', 'meta.partial.json'),
                 'a planted-bias dataset')
    for folder in ('JPEGImages', 'SegmentationClass', 'Annotations', 'PlantedContext',
                   'ImageSets/Segmentation'):
        os.makedirs(osp.join(out_dir, folder), exist_ok=True)
    partial_path = osp.join(out_dir, 'meta.partial.json')
    if not osp.isfile(osp.join(out_dir, 'meta.json')):
        _write_bytes(partial_path, (json.dumps(record, indent=2) + '\n').encode())

    total = num_train + num_val
    stems = [f'{index:06d}' for index in range(total)]
    tags, contexts = [], []
    for index, stem in enumerate(stems):
        rng = np.random.default_rng([seed, index])
        size = (heights[0], widths[0])
        if heights[0] != heights[1] or widths[0] != widths[1]:
            size = (int(rng.integers(heights[0], heights[1] + 1)),
                    int(rng.integers(widths[0], widths[1] + 1)))
        sample = generate_sample(rng, size, classes, pairs, max_objects=max_objects,
                                 noise_std=noise_std, object_scale=object_scale,
                                 class_ids=label_ids)
        save_with(osp.join(out_dir, 'JPEGImages', f'{stem}.jpg'),
                  lambda tmp, image=sample.image: Image.fromarray(image).save(
                      tmp, format='JPEG', quality=jpeg_quality))
        save_label_png(osp.join(out_dir, 'SegmentationClass', f'{stem}.png'),
                       sample.label)
        save_label_png(osp.join(out_dir, 'PlantedContext', f'{stem}.png'),
                       sample.context)
        xml = voc_xml(stem, size, class_names, sample.objects)
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
        record,
        splits={split: len(names) for split, names in splits.items()},
        class_image_counts={class_names[label_id]: sum(label_id in t for t in tags)
                            for label_id in label_ids},
        co_occurrence=co_occurrence)
    _write_bytes(osp.join(out_dir, 'meta.json'),
                 (json.dumps(meta, indent=2) + '\n').encode())
    if osp.isfile(partial_path):
        os.remove(partial_path)
    return meta


def generate_preset(out_dir: str, preset: str = 'default',
                    progress: Optional[Callable[[int, int], None]] = None,
                    **overrides) -> dict:
    """Write the dataset of a preset of :data:`.planted_presets.PRESETS`.

    Args:
        out_dir: destination.
        preset: preset name.
        progress: optional ``callback(done, total)``.
        **overrides: any :func:`generate_planted_bias` argument, replacing the
            preset's value (e.g. ``num_train=40`` for a quick run, ``seed=1``).

    Returns:
        dict: the content of ``meta.json``; ``settings.preset`` names the preset.
    """
    settings = preset_kwargs(preset)
    settings.update(overrides)
    return generate_planted_bias(out_dir, preset_name=preset, progress=progress,
                                 **settings)
