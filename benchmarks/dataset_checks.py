"""What the mask-size check costs when a dataset is read.

A WSSS dataset with masks reads every mask's and image's header when it is built
(:func:`mars_mm.datasets.wsss_base.check_mask_sizes`: a mask of another size than
its image is named at once instead of stages later). This times building the
training split of a generated planted-bias dataset in VOC layout (tags from the
XML, as for VOC) with the check and without it, alternating the two, fastest of
``--repeats``; and the check alone in one thread against its thread pool::

    python benchmarks/dataset_checks.py [--images 2000] [--size 128] [--repeats 3]

The file cache is warm after the first build (as for every build after the
first on a machine); on a network file system the check costs more, and the
thread pool then matters more.
"""
import argparse
import os.path as osp
import tempfile
import time
from unittest import mock

from mmengine.registry import init_default_scope

import mars_mm  # noqa: F401  (registers the datasets)
from mars_mm.datasets import wsss_base
from mars_mm.datasets.generators.planted_bias import generate_planted_bias
from mars_mm.registry import DATASETS


def _build(root: str) -> float:
    start = time.perf_counter()
    dataset = DATASETS.build(dict(type='PlantedBiasDataset', data_root=root,
                                  ann_file='ImageSets/Segmentation/train.txt',
                                  pipeline=[]))
    assert len(dataset) > 0
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=2000)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()
    init_default_scope('mmseg')
    with tempfile.TemporaryDirectory() as folder:
        root = osp.join(folder, 'planted')
        generate_planted_bias(root, num_train=args.images, num_val=0,
                              image_size=(args.size, args.size))
        _build(root)  # warm the file cache for both
        checked, unchecked = [], []
        for _ in range(args.repeats):
            checked.append(_build(root))
            with mock.patch.object(wsss_base, 'check_mask_sizes'):
                unchecked.append(_build(root))
        pairs = [(osp.join(root, 'JPEGImages', f'{i:06d}.jpg'),
                  osp.join(root, 'SegmentationClass', f'{i:06d}.png'))
                 for i in range(args.images)]
        alone = {}
        for threads in (1, 8):
            runs = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                wsss_base.check_mask_sizes(pairs, threads=threads)
                runs.append(time.perf_counter() - start)
            alone[threads] = min(runs)
    with_check, without = min(checked), min(unchecked)
    print(f'{args.images} images of {args.size}x{args.size}, fastest of '
          f'{args.repeats}')
    print(f'dataset build without the size check: {without:.3f} s')
    print(f'dataset build with the size check:    {with_check:.3f} s '
          f'(x{with_check / without:.2f}, '
          f'+{(with_check - without) / args.images * 1e6:.0f} us per image)')
    print(f'the check alone: 1 thread {alone[1]:.3f} s, 8 threads {alone[8]:.3f} s '
          f'(x{alone[1] / alone[8]:.2f})')


if __name__ == '__main__':
    main()
