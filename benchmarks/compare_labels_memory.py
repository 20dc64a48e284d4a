"""Peak memory and speed of tools/analysis/compare_labels.py against the image count.

    python benchmarks/compare_labels_memory.py [--images 250 2000] [--nproc 2]

Writes two folders of COCO-sized (640 x 480) label PNGs (81 classes, a few
rectangles per image, 254 / 255 patches; B is A with some rectangles relabelled),
then runs the tool on the first N images for each N in a fresh process and prints
the peak resident memory (``ru_maxrss`` of the process and its workers) and
images per second. Constant memory means the peak does not grow with N.
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
import tempfile

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


def make_masks(folder_a: str, folder_b: str, count: int, seed: int = 0) -> None:
    from mars_mm.utils.io import save_label_png
    rng = np.random.default_rng(seed)
    for index in range(count):
        label = np.zeros((480, 640), np.uint8)
        for _ in range(rng.integers(2, 7)):
            y, x = rng.integers(0, 400), rng.integers(0, 560)
            h, w = rng.integers(20, 200), rng.integers(20, 200)
            label[y:y + h, x:x + w] = rng.integers(1, 81)
        other = label.copy()
        y, x = rng.integers(0, 400), rng.integers(0, 560)
        other[y:y + 60, x:x + 60] = rng.integers(0, 81)
        label[:8] = 255
        other[-8:, :100] = 254
        stem = f'{index:06d}'
        save_label_png(osp.join(folder_a, stem + '.png'), label)
        save_label_png(osp.join(folder_b, stem + '.png'), other)


def run(count: int, source: str, work: str, nproc: int) -> tuple:
    """Link the first ``count`` masks into fresh folders, time the tool there."""
    dirs = []
    for side in ('A', 'B'):
        folder = osp.join(work, f'{side}_{count}')
        os.makedirs(folder)
        for index in range(count):
            name = f'{index:06d}.png'
            os.symlink(osp.join(source, side, name), osp.join(folder, name))
        dirs.append(folder)
    code = (
        'import resource, sys, time\n'
        f'sys.path.insert(0, {ROOT!r})\n'
        'from mars_mm.apis.compare_labels import compare_labels, class_names_from\n'
        'start = time.time()\n'
        f'compare_labels({dirs[0]!r}, {dirs[1]!r}, class_names_from("coco"), '
        f'out_dir={osp.join(work, f"out_{count}")!r}, num_workers={nproc})\n'
        'seconds = time.time() - start\n'
        'own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n'
        'kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n'
        'print(seconds, own, kids)\n')
    env = dict(os.environ, OMP_NUM_THREADS='1', TQDM_DISABLE='1')
    output = subprocess.run([sys.executable, '-c', code], check=True, env=env,
                            capture_output=True, text=True).stdout.split()
    seconds, own, kids = float(output[0]), int(output[1]), int(output[2])
    return seconds, own / 1024, kids / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, nargs='+', default=[250, 2000])
    parser.add_argument('--nproc', type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        source = osp.join(work, 'masks')
        os.makedirs(osp.join(source, 'A'))
        os.makedirs(osp.join(source, 'B'))
        make_masks(osp.join(source, 'A'), osp.join(source, 'B'), max(args.images))
        print(f'{"images":>8} {"seconds":>9} {"images/s":>9} {"peak MB main":>13} '
              f'{"peak MB worker":>15}')
        for count in args.images:
            seconds, own, kids = run(count, source, work, args.nproc)
            print(f'{count:>8} {seconds:>9.1f} {count / seconds:>9.1f} {own:>13.0f} '
                  f'{kids:>15.0f}')


if __name__ == '__main__':
    main()
