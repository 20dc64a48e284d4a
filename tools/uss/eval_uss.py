"""Score a STEGO checkpoint with the standard USS protocol.

    python tools/uss/eval_uss.py CONFIG CKPT [--split test] [--work-dir DIR]
        [--cfg-options k=v ...] [--launcher pytorch|slurm]

Cluster-probe predictions are matched one-to-one to the ground-truth classes by the
Hungarian algorithm over the whole split; prints the matched mIoU and pixel accuracy
(and the linear probe's, when the model has one). Per-class IoU goes to the log.
"""
import argparse

from mars_mm.apis.launch import (
    add_job_args,
    finalize_distributed,
    load_config,
    parse_job_args,
    prepare_launcher,
)
from mars_mm.apis.uss import evaluate_uss


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='USS evaluation (Hungarian mIoU)')
    parser.add_argument('config', help='USS (STEGO) config')
    parser.add_argument('checkpoint', help='trained STEGO checkpoint')
    parser.add_argument('--split', default='test', choices=('train', 'val', 'test'),
                        help='which <split>_dataloader to score')
    parser.add_argument('--work-dir', default=None, help='where logs go')
    add_job_args(parser)
    return parse_job_args(parser)


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, work_dir=args.work_dir,
                      launcher=args.launcher,
                      data_root=args.data_root)
    prepare_launcher(cfg, args.launcher)
    metrics = evaluate_uss(cfg, args.checkpoint, split=args.split)
    print(' '.join(f'{name}={value}' for name, value in metrics.items()))


if __name__ == '__main__':
    main()
    finalize_distributed()
