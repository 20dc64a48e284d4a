"""Throughput of the COCO instances -> WSSS mask converter.

Builds an instances JSON at COCO 2014's density (640x480 images, ~7 instances per
image as 16-40-vertex polygons, overlapping, ~1% crowd regions as uncompressed RLE,
~1% images without annotation), then converts it

* baseline: decode each instance separately (as ``COCO.annToMask`` does) and paint
  it, one process;
* optimised: :func:`mars_mm.datasets.converters.coco.convert_coco` (one batched RLE
  decode per image, worker pool) with 1 and with 2 workers;

and prints images/s, the speed-up and the projected time for COCO 2014's 123,287
images (train + val) on 2 cores.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/coco_convert.py [--images 600] [--seed 0]
"""
import argparse
import json
import os
import os.path as osp
import resource
import shutil
import tempfile
import time

import numpy as np
from pycocotools import mask as mask_utils

from mars_mm.datasets.converters.coco import convert_coco, load_instances
from mars_mm.utils.io import IGNORE_INDEX, save_label_png

COCO2014_IMAGES = 82_783 + 40_504


def random_polygon(rng, cx, cy, radius, vertices):
    angles = np.sort(rng.uniform(0, 2 * np.pi, vertices))
    radii = radius * rng.uniform(0.5, 1.0, vertices)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)],
                    axis=1).ravel().round(2).tolist()


def synthetic_instances(num_images, seed=0, width=640, height=480):
    """An instances JSON dict at COCO density, with crowd and overlapping objects."""
    rng = np.random.default_rng(seed)
    categories = [dict(id=int(cat_id), name=f'class_{cat_id}', supercategory='x')
                  for cat_id in sorted(rng.choice(np.arange(1, 91), 80, replace=False))]
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        images.append(dict(id=image_id, width=width, height=height,
                           file_name=f'COCO_synth2014_{image_id:012d}.jpg'))
        count = 0 if rng.random() < 0.01 else max(1, rng.poisson(7))
        for _ in range(count):
            cat = int(categories[rng.integers(80)]['id'])
            radius = rng.uniform(15, 160)
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            polygon = random_polygon(rng, cx, cy, radius, int(rng.integers(16, 41)))
            rle = mask_utils.merge(mask_utils.frPyObjects([polygon], height, width))
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id, category_id=cat,
                segmentation=[polygon], area=float(mask_utils.area(rle)), iscrowd=0,
                bbox=[0, 0, 1, 1]))
        if rng.random() < 0.01:
            # a crowd region as uncompressed RLE, like COCO's
            mask = np.zeros((height, width), np.uint8)
            y0, x0 = rng.integers(0, height - 100), rng.integers(0, width - 200)
            mask[y0:y0 + 100, x0:x0 + 200] = 1
            flat = mask.ravel(order='F')
            changes = np.flatnonzero(np.diff(flat)) + 1
            runs = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
            if flat[0]:
                runs = [0] + runs
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id,
                category_id=int(categories[0]['id']),
                segmentation=dict(counts=[int(r) for r in runs], size=[height, width]),
                area=float(mask.sum()), iscrowd=1, bbox=[0, 0, 1, 1]))
    return dict(images=images, annotations=annotations, categories=categories)


def baseline_convert(json_path, out_dir):
    """Per-instance decoding and painting, single process (the naive approach)."""
    items, labels, _ = load_instances(json_path)
    os.makedirs(out_dir, exist_ok=True)
    for item in items:
        height, width = item['height'], item['width']
        label = np.zeros((height, width), np.uint8)
        anns = sorted(item['annotations'], key=lambda a: (-a['area'], a['id']))
        claimed = np.zeros((height, width), bool)
        crowd = np.zeros((height, width), bool)
        for ann in anns:
            segm = ann['segmentation']
            if isinstance(segm, list):
                rle = mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
            else:
                rle = mask_utils.frPyObjects(segm, height, width)
            mask = mask_utils.decode(rle).astype(bool)
            if ann['iscrowd']:
                crowd |= mask
            else:
                label[mask] = labels[ann['category_id']]
                claimed |= mask
        label[crowd & ~claimed] = IGNORE_INDEX
        save_label_png(osp.join(out_dir, f'{item["stem"]}.png'), label)
    return len(items)


def _cpu_seconds():
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn, cpu=None):
    """Run ``fn``; wall seconds, and CPU seconds (this process and its children)."""
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    result = fn()
    if cpu is not None:
        cpu.append(_cpu_seconds() - cpu_start)
    return result, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=600)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix='coco_convert_bench_')
    try:
        content, build_time = timed(lambda: synthetic_instances(args.images, args.seed))
        json_path = osp.join(work, 'instances_synth2014.json')
        with open(json_path, 'w') as handle:
            json.dump(content, handle)
        anns = content['annotations']
        print(f'synthetic JSON: {args.images} images 640x480, {len(anns)} annotations '
              f'({len(anns) / args.images:.2f}/image, '
              f'{sum(a["iscrowd"] for a in anns)} crowd), built in {build_time:.1f} s')

        cpu = []
        _, base_time = timed(lambda: baseline_convert(json_path,
                                                      osp.join(work, 'baseline')), cpu)
        rates = {'baseline (per-instance decode, 1 process)': args.images / base_time}
        for workers in (1, 2):
            out_root = osp.join(work, f'opt{workers}')
            # num_workers=0 runs in this process: the 1-worker case without pool cost
            _, opt_time = timed(lambda out_root=out_root, workers=workers: convert_coco(
                json_path, out_root, 'synth2014',
                num_workers=0 if workers == 1 else workers, resume=False), cpu)
            rates[f'convert_coco, {workers} worker(s)'] = args.images / opt_time
        # same output both ways
        stem = content['images'][0]['file_name'][:-4]
        from mars_mm.utils.io import load_label_png
        for index in range(0, args.images, max(1, args.images // 20)):
            stem = content['images'][index]['file_name'][:-4]
            np.testing.assert_array_equal(
                load_label_png(osp.join(work, 'baseline', f'{stem}.png')),
                load_label_png(osp.join(work, 'opt2', 'SegmentationClass',
                                        'synth2014', f'{stem}.png')))

        print(f'{"path":<46}{"images/s":>10}{"vs baseline":>13}'
              f'{"123k images":>13}')
        base_rate = rates['baseline (per-instance decode, 1 process)']
        for name, rate in rates.items():
            print(f'{name:<46}{rate:>10.1f}{rate / base_rate:>12.2f}x'
                  f'{COCO2014_IMAGES / rate / 60:>10.1f} min')
        print(f'CPU ms per image: baseline {cpu[0] / args.images * 1e3:.2f}, '
              f'convert_coco {cpu[1] / args.images * 1e3:.2f} (1 worker), '
              f'{cpu[2] / args.images * 1e3:.2f} (2 workers)')
        print(f'projected from CPU time on 2 idle cores: '
              f'{COCO2014_IMAGES * cpu[2] / args.images / 2 / 60:.1f} min')
        _, load_time = timed(lambda: load_instances(json_path))
        print(f'JSON loading + indexing: {load_time * 1e3 / args.images:.3f} ms per '
              f'image, {load_time / args.images * COCO2014_IMAGES:.0f} s projected '
              'for 123k images (single process, included below)')
        total = COCO2014_IMAGES / rates['convert_coco, 2 worker(s)'] + \
            load_time / args.images * COCO2014_IMAGES
        print(f'projected COCO 2014 (123,287 images) on 2 cores with 2 workers, '
              f'wall clock as measured now: {total / 60:.1f} min (target < 15 min)')
        print(f'cpu count: {os.cpu_count()}, load average: {os.getloadavg()}')
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
