"""Score MARS debiasing: baseline vs debiased pseudo labels, and removal vs context.

    python tools/analysis/eval_debias.py BASELINE_DIR DEBIASED_DIR --data-root ROOT
        [--split ImageSets/Segmentation/train.txt] [--context-dir PlantedContext]
        [--classes background,boat,...] [--biased boat,train] [--out result.json]

ROOT is a VOC-layout folder (``SegmentationClass/`` GT masks). Classes default to
``ROOT/meta.json`` (planted-bias datasets) and the biased classes to its bias pairs.
Prints mIoU and per-class IoU of both label sets (254/255 as background), and with
a context folder the removal precision, recall and share of object pixels removed.
"""
import argparse
import json
import os.path as osp

import numpy as np

from mars_mm.datasets.wsss_base import read_split_file
from mars_mm.debias.analysis import evaluate_debiasing


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('baseline_dir')
    parser.add_argument('debiased_dir')
    parser.add_argument('--data-root', required=True)
    parser.add_argument('--split', default='ImageSets/Segmentation/train.txt')
    parser.add_argument('--gt-dir', default='SegmentationClass')
    parser.add_argument('--context-dir', default='PlantedContext',
                        help="relative to the data root; 'none' to skip")
    parser.add_argument('--classes', help='comma-separated, background first')
    parser.add_argument('--biased', help='comma-separated biased class names')
    parser.add_argument('--out', help='write the numbers as JSON')
    return parser.parse_args()


def _under(root: str, path: str) -> str:
    return path if osp.isabs(path) else osp.join(root, path)


def main() -> None:
    args = parse_args()
    meta_path = osp.join(args.data_root, 'meta.json')
    meta = {}
    if osp.isfile(meta_path):
        with open(meta_path) as handle:
            meta = json.load(handle)
    classes = args.classes.split(',') if args.classes else meta.get('classes')
    if not classes:
        raise SystemExit(f'no --classes given and no classes in {meta_path}')
    biased = args.biased.split(',') if args.biased else \
        [pair['cls'] for pair in meta.get('bias_pairs', [])]
    stems = read_split_file(_under(args.data_root, args.split))
    context_dir = None if args.context_dir == 'none' else \
        _under(args.data_root, args.context_dir)
    result = evaluate_debiasing(
        stems, _under(args.data_root, args.gt_dir), args.baseline_dir,
        args.debiased_dir, len(classes), context_dir,
        [classes.index(name) for name in biased])
    print(f'{len(stems)} images')
    print(f'{"class":<14}{"baseline":>10}{"debiased":>10}{"delta":>8}')
    for index, name in enumerate(classes):
        before, after = result['baseline']['iou'][index], result['debiased']['iou'][
            index]
        flag = '  (biased)' if name in biased else ''
        print(f'{name:<14}{before:10.2f}{after:10.2f}{after - before:+8.2f}{flag}')
    before, after = result['baseline']['miou'], result['debiased']['miou']
    print(f'{"mIoU":<14}{before:10.2f}{after:10.2f}{after - before:+8.2f}')
    if 'removal' in result:
        for label, removal in [('all', result['removal'])] + [
                (classes[c], r) for c, r in result['removal_per_class'].items()]:
            print(f'removal [{label}]: precision {_pct(removal["precision"])}, '
                  f'recall {_pct(removal["recall"])}, object pixels removed '
                  f'{_pct(removal["object_removed"])} (of all object pixels '
                  f'{_pct(removal["object_removed_of_all"])}); removed '
                  f'{removal["removed"]} px, context called fg '
                  f'{removal["context_fg"]} px')
    if args.out:
        with open(args.out, 'w') as out:
            json.dump(result, out, indent=1, default=_json_default)


def _pct(value) -> str:
    return 'n/a' if value is None else f'{value:.1f}%'


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(type(value))


if __name__ == '__main__':
    main()
