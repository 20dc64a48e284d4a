"""Score a folder of label PNGs against a dataset's ground truth.

Prints per-class IoU, FP = (P - TP) / union, FN = (T - TP) / union and their means
(ground-truth 255 ignored; label values 254/255 count as background unless
``--ignore-special``). Example::

    python tools/analysis/eval_labels.py work_dirs/pseudo_labels/planted_bias \\
        --dataset configs/_base_/datasets/planted_bias.py \\
        --data-root data/planted_bias --out scores.json
"""
import argparse

from mars_mm.apis.eval_labels import eval_labels
from mars_mm.apis.launch import load_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('pred_dir', help='folder of <stem>.png labels')
    parser.add_argument('--dataset', required=True,
                        help='config with the dataloaders (any training config or '
                        'configs/_base_/datasets/*.py)')
    parser.add_argument('--split', default='train', choices=['train', 'val', 'test'])
    parser.add_argument('--split-file', help='list of stems to score (a subset)')
    parser.add_argument('--data-root', help='replace the config\'s data_root')
    parser.add_argument('--suffix', default='.png')
    parser.add_argument('--ignore-special', action='store_true',
                        help='drop pixels labelled 254/255 instead of counting '
                        'them as background')
    parser.add_argument('--out', help='write the scores to a .json or .csv file')
    parser.add_argument('--nproc', type=int, default=1, help='worker processes')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from mmengine.registry import init_default_scope
    config = load_config(args.dataset)
    init_default_scope(config.get('default_scope', 'mmseg'))
    import mars_mm  # noqa: F401  (registers the datasets)
    summary = eval_labels(args.pred_dir, config, split=args.split,
                          split_file=args.split_file, data_root=args.data_root,
                          special='ignore' if args.ignore_special else 'background',
                          suffix=args.suffix,
                          num_workers=args.nproc if args.nproc > 1 else 0,
                          out=args.out)
    print(summary['table'])
    print(f'{summary["num_images"]} images, mIoU {summary["miou"]:.2f}')
    if args.out:
        print(f'scores written to {args.out}')


if __name__ == '__main__':
    main()
