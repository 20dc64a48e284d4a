"""Disk use of every stage's outputs, projected to COCO train and VOC train_aug.

Part 1 writes each stage's real output files, with the project's own writers, for a
sample of synthetic images whose sizes and tag counts follow VOC's and COCO's
(``SIZE_MODELS``: long side 500 / 640, short side uniform in the datasets' usual
range, tags per image drawn from the shares below), and projects the bytes per
stage to the whole train set (mean bytes per image x images, plus the dataset-level
centroid files of Stage 3 from the centroids counted per image):

==========================  =====================================================
row                         file
==========================  =====================================================
CAMs (lossless)             ``generate_cams``: float16 ``(K, H, W)`` npz, K tags
CAMs (fused job)            none: ``generate_pseudo_labels`` keeps no CAM file
pseudo labels               PNG (``save_label_png``)
embeddings (lossless)       float16 ``(70, H/8, W/8)`` ``.npy``
embeddings (q8)             ``mars_mm.debias.quantised``, uint8, same grid
embeddings (q8, pool 2)     the same on a stride-16 grid
embeddings (q4)             4-bit codes, two per byte, stride-8 grid
Stage 3 centroids           per image ``centroids/<stem>.npz`` + dataset files
debiased labels             PNG
==========================  =====================================================

The synthetic CAMs are smooth blobs (like real CAMs, they compress) and the
embeddings class directions plus spatially smooth noise at float16 (their low bits
are noise, as in real codes, so they hardly compress).

Part 2 (``--planted PRESET ...``) measures what the compact embeddings cost in
labels: on a planted-bias dataset (``tools/dataset_converters/planted_bias.py``,
oracle-biased baseline labels, the training-free colour/texture embedding) Stage 3
runs with the lossless embeddings and with each compact format decoded, and the
debiased labels' mIoU against the ground truth is compared.

    python benchmarks/disk.py [--images 24] [--planted default textures]
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
import tempfile
from typing import Dict, List

import numpy as np

from mars_mm.apis.cam import save_cams
from mars_mm.core import debias as core
from mars_mm.core.cam import cams_to_label
from mars_mm.debias.formats import save_image_centroids
from mars_mm.debias.quantised import (
    QUANTISED_SUFFIX,
    load_quantised_embedding,
    save_quantised_embedding,
)
from mars_mm.utils.io import save_label_png

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DIM, STRIDE = 70, 8
#: images, long side, short side range, shares of 1, 2, 3, ... tags per image
SIZE_MODELS = dict(
    voc=dict(images=10_582, long=500, short=(281, 375),
             tags=[0.64, 0.25, 0.08, 0.03]),
    coco=dict(images=82_783, long=640, short=(427, 480),
              tags=[0.21, 0.20, 0.17, 0.13, 0.10, 0.07, 0.05, 0.03, 0.02, 0.02]),
)
#: compact embedding rows: (pool, bits)
COMPACT = {'embeddings (q8)': (1, 8), 'embeddings (q8, pool 2)': (2, 8),
           'embeddings (q4)': (1, 4)}
ROWS = ('CAMs (lossless)', 'CAMs (fused job)', 'pseudo labels',
        'embeddings (lossless)', 'embeddings (q8)', 'embeddings (q8, pool 2)',
        'embeddings (q4)', 'Stage 3 centroids', 'debiased labels')


def smooth_noise(rng, shape, cells=6):
    """Spatially smooth noise: a coarse random grid resized bilinearly."""
    import cv2
    channels, height, width = shape
    coarse = rng.normal(size=(cells, cells, channels)).astype(np.float32)
    out = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
    return out.reshape(height, width, channels).transpose(2, 0, 1)


def synthetic_outputs(rng, model: dict, num_classes: int):
    """Image-size label, CAMs, embedding and tags of one synthetic image."""
    height = int(rng.integers(model['short'][0], model['short'][1] + 1))
    width = model['long']
    if rng.random() < 0.3:  # portrait images
        height, width = width, height
    num_tags = 1 + int(rng.choice(len(model['tags']), p=model['tags']))
    tags = np.sort(rng.choice(np.arange(1, num_classes), num_tags, replace=False))
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    label = np.zeros((height, width), np.uint8)
    cams = []
    for tag in tags:
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        ry, rx = rng.uniform(0.08, 0.3) * height, rng.uniform(0.08, 0.3) * width
        distance = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
        label[distance <= 1] = tag
        cams.append(np.exp(-distance / 1.5))
    cams = np.stack(cams)
    cams /= cams.max(axis=(1, 2), keepdims=True)
    grid_hw = (-(-height // STRIDE), -(-width // STRIDE))
    grid = core.resize_label_to_grid(label, grid_hw)
    directions = rng.normal(size=(num_classes, DIM)).astype(np.float32)
    embedding = directions[grid].transpose(2, 0, 1) + 0.5 * smooth_noise(
        rng, (DIM,) + grid_hw) + 0.05 * rng.normal(size=(DIM,) + grid_hw)
    return label, cams.astype(np.float32), embedding.astype(np.float16), tags


def measure_dataset(name: str, num_images: int, folder: str, seed: int = 0) -> Dict:
    """Mean bytes per image of each row, and centroids per image."""
    model = SIZE_MODELS[name]
    num_classes = 21 if name == 'voc' else 81
    rng = np.random.default_rng(seed)
    sizes = {row: [] for row in ROWS}
    centroid_counts = []
    for index in range(num_images):
        label, cams, embedding, tags = synthetic_outputs(rng, model, num_classes)
        stem = f'{name}_{index:04d}'

        def size_of(path):
            return os.path.getsize(path)

        path = osp.join(folder, stem + '.npz')
        save_cams(path, cams, tags)
        sizes['CAMs (lossless)'].append(size_of(path))
        sizes['CAMs (fused job)'].append(0)
        pseudo = cams_to_label(cams, tags, crf_params=None)
        path = osp.join(folder, stem + '.png')
        save_label_png(path, pseudo)
        sizes['pseudo labels'].append(size_of(path))
        path = osp.join(folder, stem + '.npy')
        np.save(path, embedding)
        sizes['embeddings (lossless)'].append(size_of(path))
        for row, (pool, bits) in COMPACT.items():
            path = osp.join(folder, f'{stem}_p{pool}b{bits}{QUANTISED_SUFFIX}')
            save_quantised_embedding(path, embedding, pool, bits)
            sizes[row].append(size_of(path))
        unit = core.normalise_embedding(embedding)
        grid = core.resize_label_to_grid(pseudo, embedding.shape[1:])
        centroids = core.image_centroids(unit, grid)
        path = osp.join(folder, stem + '_centroids.npz')
        save_image_centroids(path, centroids, np.zeros(4, np.int64))
        sizes['Stage 3 centroids'].append(size_of(path))
        centroid_counts.append(len(centroids.class_ids))
        debiased = pseudo.copy()
        debiased[: pseudo.shape[0] // 5][pseudo[: pseudo.shape[0] // 5] > 0] = 254
        path = osp.join(folder, stem + '_debiased.png')
        save_label_png(path, debiased)
        sizes['debiased labels'].append(size_of(path))
    per_image = {row: float(np.mean(values)) for row, values in sizes.items()}
    # dataset-level files: centroid_vectors.npy (T x D float32) and centroids.npz
    # (about 6 numbers per row besides)
    rows = float(np.mean(centroid_counts)) * model['images']
    dataset_bytes = rows * (DIM * 4 + 6 * 8)
    return dict(per_image=per_image, images=model['images'],
                centroids_per_image=float(np.mean(centroid_counts)),
                stage3_dataset_bytes=dataset_bytes)


def totals(result: Dict, cams: str, embeddings: str) -> float:
    per_image = result['per_image']
    rows = (cams, 'pseudo labels', embeddings, 'Stage 3 centroids', 'debiased labels')
    return sum(per_image[row] for row in rows) * result['images'] + \
        result['stage3_dataset_bytes']


def print_disk_table(results: Dict[str, Dict], num_images: int) -> None:
    print(f'== bytes per stage, projected from {num_images} synthetic images per '
          'dataset')
    print('| output | VOC KB/img | VOC train_aug GB | COCO KB/img | COCO train GB |')
    print('| --- | --- | --- | --- | --- |')
    for row in ROWS:
        cells = []
        for name in ('voc', 'coco'):
            per = results[name]['per_image'][row]
            cells += [f'{per / 1e3:.1f}', f'{per * results[name]["images"] / 1e9:.2f}']
        print(f'| {row} | ' + ' | '.join(cells) + ' |')
    cells = []
    for name in ('voc', 'coco'):
        cells += ['', f'{results[name]["stage3_dataset_bytes"] / 1e9:.2f}']
    print('| Stage 3 dataset files | ' + ' | '.join(cells) + ' |')
    for title, cams, embeddings in (
            ('lossless (before)', 'CAMs (lossless)', 'embeddings (lossless)'),
            ('fused CAM job + lossless embeddings', 'CAMs (fused job)',
             'embeddings (lossless)'),
            ('fused CAM job + q8 embeddings', 'CAMs (fused job)', 'embeddings (q8)'),
            ('fused CAM job + q8 pool-2 embeddings', 'CAMs (fused job)',
             'embeddings (q8, pool 2)'),
            ('fused CAM job + q4 embeddings', 'CAMs (fused job)', 'embeddings (q4)')):
        voc = totals(results['voc'], cams, embeddings) / 1e9
        coco = totals(results['coco'], cams, embeddings) / 1e9
        print(f'  total, {title:<40} VOC {voc:6.2f} GB (target 2)   '
              f'COCO {coco:6.2f} GB (target 15)')
    for name in ('voc', 'coco'):
        print(f'  {name}: {results[name]["centroids_per_image"]:.1f} centroids per '
              'image')


# ------------------------------------------------------------- label change
def _run(command: List[str]) -> None:
    process = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if process.returncode:
        raise RuntimeError(f'{" ".join(command)} failed:\n{process.stdout[-2000:]}'
                           f'\n{process.stderr[-3000:]}')


def decode_folder(source: str, target: str, pool: int, bits: int) -> None:
    """Encode every ``.npy`` of ``source`` compactly, write the decoded ``.npy``."""
    os.makedirs(target, exist_ok=True)
    for name in sorted(os.listdir(source)):
        if not name.endswith('.npy'):
            continue
        packed = osp.join(target, name[:-4] + QUANTISED_SUFFIX)
        save_quantised_embedding(packed, np.load(osp.join(source, name)), pool, bits)
        np.save(osp.join(target, name), load_quantised_embedding(packed))
        os.remove(packed)


def label_change(preset: str, folder: str, num_train: int) -> Dict[str, float]:
    """Debiased-label mIoU with lossless and compact embeddings on one preset."""
    import json

    from mars_mm.debias.analysis import evaluate_debiasing
    python = sys.executable
    data = osp.join(folder, preset, 'data')
    _run([python, 'tools/dataset_converters/planted_bias.py', data, '--preset',
          preset, '--num-train', str(num_train), '--num-val', '4'])
    oracle = osp.join(folder, preset, 'oracle')
    _run([python, 'tools/analysis/oracle_debias_inputs.py', data, oracle])
    embeddings = osp.join(folder, preset, 'emb_lossless')
    _run([python, 'tools/uss/extract_features.py',
          'configs/uss/colourtexture-d8_planted.py', '--out', embeddings,
          '--split', 'train', '--device', 'cpu', '--data-root', data])
    variants = dict(lossless=embeddings)
    for row, (pool, bits) in COMPACT.items():
        name = row[len('embeddings ('):-1]
        variants[name] = osp.join(folder, preset, f'emb_p{pool}b{bits}')
        decode_folder(embeddings, variants[name], pool, bits)
    meta = json.load(open(osp.join(data, 'meta.json')))
    num_classes = len(meta['classes'])
    stems = [line.strip() for line in open(
        osp.join(data, 'ImageSets/Segmentation/train.txt')) if line.strip()]
    scores = {}
    for name, emb_dir in variants.items():
        work = osp.join(folder, preset, 'debias_' + name.replace(', ', '_'))
        _run([python, 'tools/mars/debias.py', 'configs/mars/debias_planted.py',
              '--work-dir', work, '--no-report', '--data-root', data,
              '--cfg-options', f'debias.pseudo_label_dir={oracle}/labels',
              f'debias.embedding_dir={emb_dir}'])
        result = evaluate_debiasing(stems, osp.join(data, 'SegmentationClass'),
                                    osp.join(oracle, 'labels'),
                                    osp.join(work, 'labels'), num_classes)
        scores[name] = float(result['debiased']['miou'])  # already in %
        labels = {stem: np.asarray(_png(osp.join(work, 'labels', stem + '.png')))
                  for stem in stems}
        if name == 'lossless':
            reference = labels
        else:
            changed = sum(int((labels[s] != reference[s]).sum()) for s in stems)
            total = sum(reference[s].size for s in stems)
            scores[name + ' changed %'] = 100 * changed / total
    return scores


def _png(path: str) -> np.ndarray:
    from mars_mm.utils.io import load_label_png
    return load_label_png(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--images', type=int, default=24,
                        help='synthetic images per dataset')
    parser.add_argument('--planted', nargs='*', default=['default', 'textures'],
                        help='planted presets for the label change (none: skip)')
    parser.add_argument('--planted-train', type=int, default=60)
    parser.add_argument('--skip-disk', action='store_true',
                        help='only the label change (part 2)')
    args = parser.parse_args()
    if not args.skip_disk:
        with tempfile.TemporaryDirectory() as folder:
            results = {name: measure_dataset(name, args.images, folder)
                       for name in ('voc', 'coco')}
        print_disk_table(results, args.images)
    if not args.planted:
        return
    print(f'== debiased labels with compact embeddings, planted presets, '
          f'{args.planted_train} train images (mIoU vs GT, oracle-biased baseline, '
          'colour/texture embedding)')
    names = [row[len('embeddings ('):-1] for row in COMPACT]
    print('| preset | lossless mIoU | ' + ' | '.join(
        f'{name} mIoU (change) | {name} pixels changed' for name in names) + ' |')
    print('| --- ' * (2 + 2 * len(names)) + '|')
    for preset in args.planted:
        with tempfile.TemporaryDirectory() as folder:
            scores = label_change(preset, folder, args.planted_train)
        base = scores['lossless']
        print(f'| {preset} | {base:.2f} | ' + ' | '.join(
            f'{scores[name]:.2f} ({scores[name] - base:+.2f}) | '
            f'{scores[name + " changed %"]:.3f}%' for name in names) + ' |',
            flush=True)


if __name__ == '__main__':
    main()
