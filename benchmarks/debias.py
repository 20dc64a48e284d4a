"""MARS Stage 3 cost at PASCAL VOC size, and pass-1 memory at COCO scale.

Three measurements, all on synthetic data in the real file formats:

1. **Per image, per part** (VOC size: 500x375 images, D = 70 stride-8 embeddings of
   63x47, 2-3 foreground classes): load, k-means, debias map, CRF, threshold, PNG
   write; median of ``--images`` images on one thread. Two baselines run in the same
   process for the ratios: k-means class by class (vs batched over the classes of an
   image) and the O(N^2) pairwise distance to all background centroids of a
   10,582-image dataset (vs the O(N) background-mean form).
2. **The real job** (``mars_mm.debias.debias_pseudo_labels``, 2 workers) on
   ``--job-images`` VOC-size images on disk: seconds per pass and the projection to
   10,582 images on 2 cores (target: 19 min, the paper's time on 64 cores).
3. **Pass-1 peak memory** (centroids with 2 workers + merge, in a fresh process each)
   at N = 1k and N = 80k simulated images: tiny 32x32 images (4x4 grid, files
   hard-linked) but D = 70 and 3 foreground classes + background each, i.e. COCO's
   centroid bookkeeping (8 centroids per image); target flat (<= 1.5x).

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/debias.py [--skip-memory]
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from mars_mm import debias as stage3
from mars_mm.core import debias as core
from mars_mm.core.kmeans import batched_spherical_kmeans
from mars_mm.utils.io import load_label_png, save_label_png

VOC_IMAGES = 10_582
#: The fast CRF option: foreground box + 32 px, at half resolution.
FAST_CRF = core.Refinement('crf', crop_margin=32, scale=0.5)
FAST_CRF_CFG = dict(type='crf', crop_margin=32, scale=0.5)
HEIGHT, WIDTH, DIM, STRIDE = 375, 500, 70, 8


def synthetic_image(rng, height=HEIGHT, width=WIDTH, dim=DIM, num_classes=21):
    """A label with 2-3 foreground blobs, its RGB image and a (D, h, w) embedding."""
    label = np.zeros((height, width), np.uint8)
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = rng.integers(0, 255, 3)
    yy, xx = np.mgrid[:height, :width]
    classes = rng.choice(np.arange(1, num_classes), rng.integers(2, 4), replace=False)
    for class_id in classes:
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        ry, rx = rng.uniform(0.1, 0.3) * height, rng.uniform(0.1, 0.3) * width
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        label[inside] = class_id
        image[inside] = rng.integers(0, 255, 3)
    image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
    grid = core.resize_label_to_grid(label, (-(-height // STRIDE), -(-width // STRIDE)))
    directions = rng.normal(size=(num_classes, dim))
    embedding = directions[grid].transpose(2, 0, 1) + rng.normal(size=(dim,) +
                                                                 grid.shape)
    return label, image, embedding.astype(np.float16), classes


def kmeans_class_by_class(unit, grid, k_fg=2, k_bg=2):
    """Baseline: one k-means call per class (what a per-class loop does)."""
    points = unit.reshape(unit.shape[0], -1).t()
    flat = torch.as_tensor(grid.ravel().astype(np.int64))
    out = []
    for class_id in torch.unique(flat).tolist():
        if class_id in (254, 255):
            continue
        members = points[flat == class_id]
        result = batched_spherical_kmeans(
            members[None], torch.ones(1, len(members), dtype=torch.bool),
            k_bg if class_id == 0 else k_fg)
        out.append(result.centroids[0][result.valid[0]])
    return out


def load_all(label_path, emb_path, image_path):
    return load_label_png(label_path), np.load(emb_path), stage3.load_rgb(image_path)


def centroids_batched(embedding, label):
    unit = core.normalise_embedding(embedding)
    grid = core.resize_label_to_grid(label, embedding.shape[1:])
    return core.image_centroids(unit, grid)


def centroids_class_by_class(embedding, label):
    unit = core.normalise_embedding(embedding)
    grid = core.resize_label_to_grid(label, embedding.shape[1:])
    return kmeans_class_by_class(unit, grid)


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def per_part(num_images, seed=0):
    rng = np.random.default_rng(seed)
    parts = {name: [] for name in ('load', 'kmeans (batched)', 'kmeans (per class)',
                                   'map', 'crf', 'crf (fast)', 'threshold', 'write')}
    agreement = []
    fg_counts, bg_counts = [], []
    refinement_crf = core.Refinement('crf')
    refinement_thr = core.Refinement('threshold')
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(num_images):
            label, image, embedding, classes = synthetic_image(rng)
            label_path = osp.join(tmp, f'{index}.png')
            emb_path = osp.join(tmp, f'{index}.npy')
            image_path = osp.join(tmp, f'{index}.jpg')
            save_label_png(label_path, label)
            np.save(emb_path, embedding)
            import mmcv
            mmcv.imwrite(image[..., ::-1], image_path)
            seconds, _ = timed(load_all, label_path, emb_path, image_path)
            parts['load'].append(seconds)
            seconds, centroids = timed(centroids_batched, embedding, label)
            parts['kmeans (batched)'].append(seconds)
            parts['kmeans (per class)'].append(
                timed(centroids_class_by_class, embedding, label)[0])
            fg_counts.append(int((centroids.class_ids > 0).sum()))
            bg_counts.append(int((centroids.class_ids == 0).sum()))
            debiased = core.debiased_centroids(
                centroids.vectors, centroids.class_ids,
                centroids.class_ids > 0, 21)
            unit = core.normalise_embedding(embedding)
            seconds, debias = timed(core.debias_map, unit, debiased[0], classes,
                                    label.shape)
            parts['map'].append(seconds)
            seconds, keep = timed(core.binarise_map, debias, image, refinement_crf)
            parts['crf'].append(seconds)
            foreground = label > 0
            seconds, fast_keep = timed(core.binarise_map, debias, image,
                                       FAST_CRF, foreground)
            parts['crf (fast)'].append(seconds)
            agreement.append(np.mean(fast_keep[foreground] == keep[foreground]))
            parts['threshold'].append(timed(core.binarise_map, debias, image,
                                            refinement_thr)[0])
            out = core.debias_label(label, keep)
            parts['write'].append(timed(save_label_png,
                                        osp.join(tmp, f'out{index}.png'), out)[0])
    medians = {name: statistics.median(values) for name, values in parts.items()}
    return (medians, statistics.mean(fg_counts), statistics.mean(bg_counts),
            float(np.mean(agreement)))


def distance_costs(fg_per_image, bg_per_image, images=VOC_IMAGES, dim=DIM):
    rng = np.random.default_rng(1)
    foreground = rng.normal(size=(int(fg_per_image * images), dim)).astype(np.float32)
    background = rng.normal(size=(int(bg_per_image * images), dim)).astype(np.float32)
    foreground /= np.linalg.norm(foreground, axis=1, keepdims=True)
    background /= np.linalg.norm(background, axis=1, keepdims=True)

    def pairwise():
        total = np.zeros(len(foreground))
        for start in range(0, len(foreground), 4096):  # chunked: bounded memory
            block = foreground[start:start + 4096] @ background.T
            total[start:start + 4096] = ((1 - block) / 2).mean(axis=1)
        return total

    quadratic, slow = timed(pairwise)
    linear, fast = timed(lambda: core.distance_to_background(
        foreground, core.background_mean(background)))
    error = float(np.abs(slow - fast).max())
    return quadratic, linear, error, len(foreground), len(background)


def real_job(num_images, refinement, workers=2, seed=2):
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        folders = {name: osp.join(tmp, name) for name in ('img', 'lab', 'emb')}
        for folder in folders.values():
            os.makedirs(folder)
        samples = []
        import mmcv
        for index in range(num_images):
            label, image, embedding, classes = synthetic_image(rng)
            stem = f'{index:05d}'
            save_label_png(osp.join(folders['lab'], stem + '.png'), label)
            np.save(osp.join(folders['emb'], stem + '.npy'), embedding)
            mmcv.imwrite(image[..., ::-1], osp.join(folders['img'], stem + '.jpg'))
            samples.append(stage3.Sample(stem, osp.join(folders['img'], stem + '.jpg'),
                                      np.sort(classes)))
        settings = stage3.DebiasSettings(
            pseudo_label_dir=folders['lab'], embedding_dir=folders['emb'],
            work_dir=osp.join(tmp, 'work'), num_classes=21, num_workers=workers,
            refinement=refinement)
        pass1, _ = timed(stage3.compute_centroids, samples, settings, None)
        merge, _ = timed(stage3.merge_centroids, [s.stem for s in samples], settings,
                         None)
        pass2, _ = timed(stage3.write_debiased_labels, samples, settings)
    return pass1, merge, pass2


MEMORY_CHILD = r'''
import json, os, os.path as osp, resource, sys, time
import numpy as np
from mars_mm import debias as stage3
from mars_mm.utils.io import save_label_png
num, root = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(0)
lab, emb = osp.join(root, 'lab'), osp.join(root, 'emb')
os.makedirs(lab, exist_ok=True); os.makedirs(emb, exist_ok=True)
label = np.zeros((32, 32), np.uint8)
label[:, 8:16], label[:, 16:24], label[:, 24:] = 1, 2, 3
# 64 distinct embeddings, hard-linked under N names: cheap to create, and every
# image still goes through the full per-image path (read, k-means, centroid file)
# (64 sources each: a file system caps the links per inode, ext4 at 65,000)
for j in range(64):
    save_label_png(osp.join(root, f'label{j}.png'), label)
    np.save(osp.join(root, f'emb{j}.npy'),
            rng.normal(size=(70, 4, 4)).astype(np.float16))
samples = []
for i in range(num):
    stem = f'{i:06d}'
    os.link(osp.join(root, f'label{i % 64}.png'), osp.join(lab, stem + '.png'))
    os.link(osp.join(root, f'emb{i % 64}.npy'), osp.join(emb, stem + '.npy'))
    samples.append(stage3.Sample(stem, None, np.array([1, 2, 3])))
settings = stage3.DebiasSettings(pseudo_label_dir=lab, embedding_dir=emb,
                              work_dir=osp.join(root, 'work'), num_classes=81,
                              num_workers=int(sys.argv[3]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.time()
stage3.compute_centroids(samples, settings, None)
pass1 = time.time() - start
start = time.time()
arrays = stage3.merge_centroids([s.stem for s in samples], settings, None)
merge = time.time() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps(dict(images=num, centroids=int(len(arrays['class_ids'])),
                      rss_before_mb=before / 1024, peak_mb=peak / 1024,
                      worker_peak_mb=workers / 1024, pass1_s=pass1, merge_s=merge)))
'''


def pass1_memory(num_images, workers=2):
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
        process = subprocess.run(
            [sys.executable, '-c', MEMORY_CHILD, str(num_images), tmp, str(workers)],
            env=env, capture_output=True, text=True)
    if process.returncode:
        raise RuntimeError(f'memory run at N={num_images} failed:\n'
                           f'{process.stderr[-3000:]}')
    return json.loads(process.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--images', type=int, default=20)
    parser.add_argument('--job-images', type=int, default=40)
    parser.add_argument('--memory-sizes', type=int, nargs='+', default=[1000, 80000])
    parser.add_argument('--skip-memory', action='store_true')
    parser.add_argument('--skip-job', action='store_true')
    args = parser.parse_args()
    torch.set_num_threads(1)

    print(f'load average at start: {os.getloadavg()[0]:.1f} (2 cores)')
    medians, fg, bg, agreement = per_part(args.images)
    print(f'== per image, VOC size (500x375, D={DIM}, grid 47x63), median of '
          f'{args.images}, 1 thread')
    for name, seconds in medians.items():
        print(f'  {name:<20}{1000 * seconds:9.1f} ms')
    ratio = medians['kmeans (per class)'] / medians['kmeans (batched)']
    print(f'  k-means batched over classes: {ratio:.2f}x faster than class by class')
    print(f'  centroids per image: {fg:.1f} foreground, {bg:.1f} background')
    speedup = medians['crf'] / medians['crf (fast)']
    print(f'  fast CRF (box + 32 px, scale 0.5): {speedup:.1f}x faster than the '
          f'full CRF; same decision on {100 * agreement:.2f}% of foreground pixels')

    common = medians['load'] + medians['kmeans (batched)'] + medians['map'] + \
        medians['write']
    print(f'  CPU-time projection, {VOC_IMAGES} images on 2 cores without contention:'
          + ''.join(f' {name} {(common + medians[part]) * VOC_IMAGES / 2 / 60:.1f} min;'
                    for name, part in (('full CRF', 'crf'), ('fast CRF', 'crf (fast)'),
                                       ('threshold', 'threshold'))))
    quadratic, linear, error, num_fg, num_bg = distance_costs(fg, bg)
    print(f'== distance to background, {VOC_IMAGES} images ({num_fg} fg x {num_bg} '
          f'bg centroids)')
    print(f'  O(N^2) pairwise mean {quadratic:8.3f} s   O(N) via b_mean '
          f'{linear:8.4f} s   ratio {quadratic / max(linear, 1e-9):.0f}x   '
          f'max |diff| {error:.1e}')

    jobs = () if args.skip_job else (('full CRF', dict(type='crf')),
                                     ('fast CRF', FAST_CRF_CFG),
                                     ('threshold', dict(type='threshold')))
    for name, refinement in jobs:
        pass1, merge, pass2 = real_job(args.job_images, refinement)
        per1, per2 = pass1 / args.job_images, pass2 / args.job_images
        merge_projected = merge / args.job_images * VOC_IMAGES
        total = (per1 + per2) * VOC_IMAGES + merge_projected
        print(f'== the real job on {args.job_images} VOC-size images, 2 workers, '
              f'{name}')
        print(f'  pass 1 (centroids) {1000 * per1:7.1f} ms/img   merge {merge:.2f} s'
              f'   pass 2 (labels) {1000 * per2:7.1f} ms/img')
        print(f'  projection for {VOC_IMAGES} images on 2 cores: {total / 60:.1f} min '
              f'(pass 1 {per1 * VOC_IMAGES / 60:.1f}, merge '
              f'{merge_projected / 60:.1f}, pass 2 {per2 * VOC_IMAGES / 60:.1f}); '
              'target <= 19 min')

    if not args.skip_memory:
        print('== pass-1 peak memory (centroids + merge), fresh process each')
        results = [pass1_memory(n) for n in args.memory_sizes]
        for result in results:
            print(f'  N={result["images"]:>6}  centroids {result["centroids"]:>7}  '
                  f'RSS after imports {result["rss_before_mb"]:7.1f} MB  peak '
                  f'{result["peak_mb"]:7.1f} MB  workers '
                  f'{result["worker_peak_mb"]:.0f} MB  '
                  f'(pass 1 {result["pass1_s"]:.0f} s, '
                  f'merge {result["merge_s"]:.1f} s)')
        growth = results[-1]['peak_mb'] / results[0]['peak_mb']
        print(f'load average at end: {os.getloadavg()[0]:.1f}')
        print(f'  peak ratio N={results[-1]["images"]} / N={results[0]["images"]}: '
              f'{growth:.2f}x (target <= 1.5x)')


if __name__ == '__main__':
    main()
