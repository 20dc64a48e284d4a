"""A tiny planted-context scene for Stage 3 tests, in the real on-disk formats.

Every image is 48x64 (feature grid 6x8 at stride 8, regions aligned to the grid):

* "boat" images (class 1): sky on top, a boat block in the middle, a water band at the
  bottom. The GT labels water background; the *baseline* pseudo label paints it boat
  (the bias MARS must remove). ``context/<stem>.png`` marks the water.
* "car" images (class 2): sky, a car block, and the same water band as background in
  both GT and baseline, so water is seen as background elsewhere in the dataset.

Embeddings are one direction per region (sky, water, boat, car) plus noise, so the
expected outcome is known: water inside boat labels is removed, nothing else.
"""
import os
import os.path as osp
from typing import Dict, List

import numpy as np
from PIL import Image

from mars_mm.debias.settings import DebiasSettings, Sample
from mars_mm.utils.io import save_label_png

HEIGHT, WIDTH, STRIDE, DIM = 48, 64, 8, 8
NUM_CLASSES = 3
CLASS_NAMES = ('background', 'boat', 'car')
COLOURS = dict(sky=(90, 150, 230), water=(20, 60, 140), boat=(230, 200, 40),
               car=(200, 30, 30))


def make_scene(root: str, num_images: int = 9, seed: int = 0,
               noise: float = 0.15) -> Dict[str, object]:
    """Write the scene under ``root``; returns paths, stems and tags."""
    rng = np.random.default_rng(seed)
    directions = np.linalg.qr(rng.normal(size=(DIM, DIM)))[0][:4] * 3.0
    region_vector = dict(zip(('sky', 'water', 'boat', 'car'), directions))
    folders = {name: osp.join(root, sub) for name, sub in (
        ('images', 'JPEGImages'), ('gt', 'SegmentationClass'),
        ('pseudo', 'pseudo_labels'), ('emb', 'embeddings'), ('context', 'context'),
        ('split', 'ImageSets/Segmentation'))}
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)
    stems: List[str] = []
    tags: Dict[str, List[int]] = {}
    grid_h, grid_w = HEIGHT // STRIDE, WIDTH // STRIDE
    for index in range(num_images):
        stem = f'scene_{index:03d}'
        is_car = index % 3 == 2
        cls, thing = (2, 'car') if is_car else (1, 'boat')
        regions = np.full((grid_h, grid_w), 'sky', dtype=object)
        regions[4:, :] = 'water'
        left = 1 + index % 3
        regions[2:4, left:left + 4] = thing
        if not is_car:  # the boat sits on the water: a slightly taller hull
            regions[3:5, left:left + 4] = thing
        embedding = np.stack([region_vector[name] for name in regions.ravel()])
        embedding = embedding + noise * rng.normal(size=embedding.shape)
        embedding = embedding.T.reshape(DIM, grid_h, grid_w).astype(np.float16)
        pixel_regions = np.repeat(np.repeat(regions, STRIDE, 0), STRIDE, 1)
        image = np.zeros((HEIGHT, WIDTH, 3), np.float64)
        for name, colour in COLOURS.items():
            image[pixel_regions == name] = colour
        image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
        gt = np.where(pixel_regions == thing, cls, 0).astype(np.uint8)
        context = (pixel_regions == 'water') & (not is_car)
        pseudo = gt.copy()
        pseudo[context] = cls  # the bias: water painted as boat
        pseudo[0, :] = 255  # an ignored row, which must stay 255
        Image.fromarray(image).save(osp.join(folders['images'], stem + '.jpg'),
                                    quality=95)
        save_label_png(osp.join(folders['gt'], stem + '.png'), gt)
        save_label_png(osp.join(folders['pseudo'], stem + '.png'), pseudo)
        save_label_png(osp.join(folders['context'], stem + '.png'),
                       context.astype(np.uint8))
        np.save(osp.join(folders['emb'], stem + '.npy'), embedding)
        stems.append(stem)
        tags[stem] = [cls]
    with open(osp.join(folders['split'], 'train.txt'), 'w') as file:
        file.write('\n'.join(stems) + '\n')
    return dict(root=root, stems=stems, tags=tags, **folders)


def scene_samples(scene: Dict[str, object]) -> list:
    """:class:`mars_mm.debias.settings.Sample` list of a scene."""
    return [Sample(stem, osp.join(scene['images'], stem + '.jpg'),
                   np.asarray(scene['tags'][stem]),
                   osp.join(scene['gt'], stem + '.png'))
            for stem in scene['stems']]


def scene_settings(scene: Dict[str, object], work_dir: str,
                   **overrides) -> DebiasSettings:
    """Settings of a run on the scene: CRF, no centring, a gallery of 3."""
    options = dict(pseudo_label_dir=scene['pseudo'], embedding_dir=scene['emb'],
                   work_dir=str(work_dir), num_classes=NUM_CLASSES,
                   class_names=CLASS_NAMES, refinement=dict(type='crf'),
                   num_workers=0, report=dict(gallery=3, dpi=60))
    options.update(overrides)
    return DebiasSettings(**options)


def gallery_rows(path: str) -> int:
    """Image rows drawn in a bias-report ``gallery.png``.

    Every panel is opaque (image, colourised labels, debias map), so along the pixel
    column crossing the most non-white pixels of the left third (the image panels;
    the colour bar on the right spans all rows) each row is one long non-white run;
    titles, legend and the white gaps between rows are not.
    """
    image = np.asarray(Image.open(path).convert('RGB'))
    ink = (image < 245).any(axis=-1)[:, :image.shape[1] // 3]
    column = np.concatenate([[False], ink[:, ink.mean(axis=0).argmax()], [False]])
    edges = np.flatnonzero(np.diff(column.astype(np.int8)))
    lengths = edges[1::2] - edges[::2]
    return int(np.sum(lengths >= 0.5 * lengths.max()))
