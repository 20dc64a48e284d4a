"""CRF costs: Stage 3's binary refinement variants, and Stage 1's CRF at COCO scale.

1. **Stage 3** (VOC size, the synthetic images of ``benchmarks/debias.py``): for each
   image the debias map is refined by the paper's full-image CRF and by every
   candidate (foreground box + margin, resolution scale, mean-field iterations);
   reported per candidate: median CRF milliseconds, speed-up over the full CRF and
   the share of baseline-foreground pixels on which it decides as the full CRF
   does, all measured in one run, image by image alternately. The projection for
   VOC train_aug (10,582 images) on 2 cores adds the other per-image parts of both
   passes (load, k-means, map, label write) measured in the same run.
2. **Stage 1** (COCO size, 640 x 427-480, tags per image as COCO's, 81 classes):
   seconds per image of the pseudo-label CRF (background + the present classes,
   10 iterations), projected to COCO train (82,783 images) on 2 and 16 cores
   assuming linear scaling over worker processes.

Times are CPU seconds of this process (``time.process_time``, one thread), so that
other jobs on a shared machine inflate them far less than wall-clock times; the
projections assume every core is free for the job.

    OMP_NUM_THREADS=1 python benchmarks/refinement.py [--images 12]
"""
import argparse
import os
import statistics
import time

import numpy as np
import torch

from mars_mm.core import debias as core
from mars_mm.core.cam import cams_to_label
from mars_mm.core.crf import CRFParams

VOC_IMAGES, COCO_IMAGES = 10_582, 82_783
#: name -> Refinement settings; 'full' is the paper's CRF, the reference.
CANDIDATES = {
    'full (paper)': dict(),
    'box+32, scale 0.5 (fast)': dict(crop_margin=32, scale=0.5),
    'box+32, scale 1': dict(crop_margin=32),
    'box+64, scale 1': dict(crop_margin=64),
    'box+64, scale 0.75': dict(crop_margin=64, scale=0.75),
    'box+96, scale 0.75': dict(crop_margin=96, scale=0.75),
    'full, 5 iterations': dict(crf=CRFParams(num_iters=5)),
    'box+64, 5 iterations': dict(crop_margin=64, crf=CRFParams(num_iters=5)),
    'box+32, 5 iterations': dict(crop_margin=32, crf=CRFParams(num_iters=5)),
}


def stage3(num_images: int, seed: int = 0) -> dict:
    import tempfile

    import mmcv
    from debias import load_all, synthetic_image  # benchmarks/debias.py

    from mars_mm.utils.io import save_label_png
    folder = tempfile.mkdtemp()
    rng = np.random.default_rng(seed)
    refinements = {name: core.Refinement('crf', **cfg)
                   for name, cfg in CANDIDATES.items()}
    seconds = {name: [] for name in refinements}
    agree = {name: [0, 0] for name in refinements}
    common = []
    for _ in range(num_images):
        label, image, embedding, classes = synthetic_image(rng)
        paths = [os.path.join(folder, name) for name in ('l.png', 'e.npy', 'i.jpg')]
        save_label_png(paths[0], label)
        np.save(paths[1], embedding)
        mmcv.imwrite(image[..., ::-1], paths[2])
        start = time.process_time()
        load_all(*paths)  # what pass 2 reads
        unit = core.normalise_embedding(embedding)
        grid = core.resize_label_to_grid(label, embedding.shape[1:])
        centroids = core.image_centroids(unit, grid)
        debiased = core.debiased_centroids(centroids.vectors, centroids.class_ids,
                                           centroids.class_ids > 0, 21)
        debias = core.debias_map(unit, debiased[0], classes, label.shape)
        save_label_png(paths[0], core.debias_label(label, debias > 0.5))
        common.append(time.process_time() - start)
        foreground = label > 0
        keeps = {}
        names = list(refinements)
        # rotate the order image by image: load changes hit every candidate alike
        shift = len(common) % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.process_time()
            keeps[name] = core.binarise_map(debias, image, refinements[name],
                                            foreground)
            seconds[name].append(time.process_time() - start)
        reference = keeps['full (paper)'][foreground]
        for name, keep in keeps.items():
            agree[name][0] += int((keep[foreground] == reference).sum())
            agree[name][1] += int(foreground.sum())
    return dict(seconds={n: statistics.median(v) for n, v in seconds.items()},
                agreement={n: a / max(t, 1) for n, (a, t) in agree.items()},
                common=statistics.median(common))


def coco_image(rng):
    """A COCO-size image, its max-normalised CAMs and tag ids (1..80)."""
    height, width = int(rng.integers(427, 481)), 640
    shares = [0.21, 0.20, 0.17, 0.13, 0.10, 0.07, 0.05, 0.03, 0.02, 0.02]
    num_tags = 1 + int(rng.choice(len(shares), p=shares))
    tags = np.sort(rng.choice(np.arange(1, 81), num_tags, replace=False))
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    image = np.full((height, width, 3), 100, np.float32)
    cams = []
    for _ in tags:
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        ry, rx = rng.uniform(0.08, 0.3) * height, rng.uniform(0.08, 0.3) * width
        distance = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
        image[distance <= 1] = rng.uniform(0, 255, 3)
        cams.append(np.exp(-distance / 1.5))
    image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
    cams = np.stack(cams).astype(np.float32)
    return image, cams / cams.max(axis=(1, 2), keepdims=True), tags


def stage1_coco(num_images: int, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    seconds, labels = [], []
    for _ in range(num_images):
        image, cams, tags = coco_image(rng)
        start = time.process_time()
        cams_to_label(cams, tags, image=image)
        seconds.append(time.process_time() - start)
        labels.append(len(tags) + 1)
    return dict(seconds=statistics.mean(seconds), labels=statistics.mean(labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--images', type=int, default=12)
    parser.add_argument('--coco-images', type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f'load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs')
    result = stage3(args.images)
    full = result['seconds']['full (paper)']
    print(f'== Stage 3 refinement, {args.images} VOC-size images (500x375), one '
          f'thread; other per-image parts {1000 * result["common"]:.0f} ms')
    print('| refinement | CRF CPU ms/img | speed-up vs full | agreement with full on '
          'foreground | VOC train_aug, 2 cores |')
    print('| --- | --- | --- | --- | --- |')
    for name, seconds in result['seconds'].items():
        minutes = (result['common'] + seconds) * VOC_IMAGES / 2 / 60
        print(f'| {name} | {1000 * seconds:.0f} | {full / seconds:.2f}x | '
              f'{100 * result["agreement"][name]:.2f}% | {minutes:.1f} min |')
    coco = stage1_coco(args.coco_images)
    print(f'== Stage 1 pseudo-label CRF at COCO scale (81 classes; CRF over '
          f'background + the {coco["labels"] - 1:.1f} tags per image on average), '
          f'{args.coco_images} images of 640x427-480, one thread')
    print(f'  {coco["seconds"]:.2f} s per image; COCO train ({COCO_IMAGES} images): '
          + ', '.join(f'{coco["seconds"] * COCO_IMAGES / cores / 3600:.1f} h on '
                      f'{cores} cores' for cores in (2, 16))
          + ' (linear scaling over worker processes)')


if __name__ == '__main__':
    main()
