"""CAM quality: mIoU against ground truth over a sweep of background thresholds.

    python tools/cam/eval_cams.py CAM_DIR --dataset CONFIG [--split train]
        [--thresholds 0.05 0.1 ...] [--workers N] [--out result.json]
        [--data-root DIR] [--cfg-options k=v ...]

Prints mIoU per threshold and the per-class IoU/FP/FN table at the best one.
"""
import argparse
import json

from mmengine.config import DictAction

from mars_mm.apis.cam import DEFAULT_THRESHOLDS, eval_cams
from mars_mm.apis.launch import load_config
from mars_mm.core.metrics import format_table


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='CAM mIoU vs background threshold')
    parser.add_argument('cam_dir', help='folder of <stem>.npz CAMs')
    parser.add_argument('--dataset', required=True,
                        help='config with the <split>_dataloader dataset (with GT)')
    parser.add_argument('--split', default='train', choices=('train', 'val', 'test'))
    parser.add_argument('--data-root', default=None,
                        help='dataset folder (replaces the config\'s data roots)')
    parser.add_argument('--thresholds', type=float, nargs='+',
                        default=DEFAULT_THRESHOLDS)
    parser.add_argument('--workers', type=int, default=0)
    parser.add_argument('--out', help='write the results as JSON')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override dataset settings of --dataset')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = load_config(args.dataset, args.cfg_options, work_dir='.',
                      data_root=args.data_root)
    result = eval_cams(args.cam_dir, cfg, split=args.split,
                       thresholds=args.thresholds, num_workers=args.workers)
    for threshold, miou in zip(result['thresholds'], result['miou']):
        print(f'threshold {threshold:.2f}  mIoU {miou:6.2f}')
    best = result['best']
    print(f'best threshold {result["thresholds"][best]:.2f}: mIoU '
          f'{result["miou"][best]:.2f} over {result["num_images"]} images')
    print(format_table(result['scores'], result['classes']))
    if args.out:
        scores = {key: value.tolist() if hasattr(value, 'tolist') else value
                  for key, value in result['scores'].items()}
        with open(args.out, 'w') as handle:
            json.dump(dict(result, scores=scores), handle, indent=2)


if __name__ == '__main__':
    main()
