"""CAMs -> pseudo labels: background score, dense CRF, argmax, palette PNGs.

    python tools/cam/make_pseudo_labels.py CAM_DIR --dataset CONFIG --out DIR
        [--split train] [--bg-power 2 | --bg-threshold T] [--crf | --no-crf]
        [--workers N] [--no-resume] [--data-root DIR] [--cfg-options k=v ...]

``--dataset`` is any config with ``<split>_dataloader`` (e.g. a base dataset config);
it gives the image of each CAM file. Rerunning skips finished labels.
"""
import argparse

from mmengine.config import DictAction

from mars_mm.apis.cam import make_pseudo_labels
from mars_mm.apis.launch import load_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='CAMs to pseudo labels (Stage 1)')
    parser.add_argument('cam_dir', help='folder of <stem>.npz CAMs')
    parser.add_argument('--dataset', required=True,
                        help='config with the <split>_dataloader dataset')
    parser.add_argument('--out', required=True, help='output folder of <stem>.png')
    parser.add_argument('--split', default='train', choices=('train', 'val', 'test'))
    parser.add_argument('--data-root', default=None,
                        help='dataset folder (replaces the config\'s data roots)')
    background = parser.add_mutually_exclusive_group()
    background.add_argument('--bg-power', type=float, default=2.0,
                            help='background = (1 - max cam) ** power (default 2)')
    background.add_argument('--bg-threshold', type=float, default=None,
                            help='constant background score instead of the power')
    parser.add_argument('--crf', action=argparse.BooleanOptionalAction, default=True,
                        help='dense-CRF refinement (default on)')
    parser.add_argument('--workers', type=int, default=0, help='worker processes')
    parser.add_argument('--no-resume', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override dataset settings of --dataset, e.g. '
                        'train_infer_dataloader.dataset.ann_file=...')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = load_config(args.dataset, args.cfg_options, work_dir='.',
                      data_root=args.data_root)
    written = make_pseudo_labels(args.cam_dir, cfg, args.out, split=args.split,
                                 bg_power=args.bg_power,
                                 bg_threshold=args.bg_threshold, crf=args.crf,
                                 num_workers=args.workers,
                                 resume=not args.no_resume)
    print(f'wrote {written} pseudo labels to {args.out}')


if __name__ == '__main__':
    main()
