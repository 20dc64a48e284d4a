"""Stage 1 in one job: multi-scale + flip CAMs -> dense-CRF pseudo labels, no CAM files.

    python tools/cam/generate_pseudo_labels.py CONFIG CHECKPOINT --out DIR
        [--split train] [--scales 1.0 0.5 1.5 2.0] [--no-flip] [--max-batch N]
        [--bg-power 2.0 | --bg-threshold T] [--no-crf] [--device cpu] [--no-resume]
        [--cfg-options k=v ...] [--launcher pytorch|slurm]

The same labels as ``generate_cams.py`` followed by ``make_pseudo_labels.py`` with the
same settings (byte for byte), without storing the CAMs (about 64-127 GB on COCO
train; ``docs/en/benchmarks.md``). Keep the two-job path when the CAMs themselves are
needed (``eval_cams.py``, threshold sweeps). Rerunning skips finished images; other
settings into the same ``--out`` are refused.
"""
import argparse

from mars_mm.apis.cam_labels import generate_pseudo_labels
from mars_mm.apis.launch import (
    add_cam_inference_args,
    add_job_args,
    finalize_distributed,
    init_offline_distributed,
    load_config,
    parse_job_args,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='CAMs -> pseudo labels (Stage 1)')
    add_cam_inference_args(parser, '<stem>.png')
    parser.add_argument('--bg-power', type=float, default=2.0,
                        help='background score (1 - max CAM) ** power')
    parser.add_argument('--bg-threshold', type=float, default=None,
                        help='constant background score (overrides --bg-power)')
    parser.add_argument('--no-crf', action='store_true', help='plain argmax')
    add_job_args(parser, device=True, resume=True)
    return parse_job_args(parser)


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, launcher=args.launcher,
                      data_root=args.data_root)
    init_offline_distributed(args.launcher)
    written = generate_pseudo_labels(
        cfg, args.checkpoint, args.out, split=args.split, scales=args.scales,
        flip=not args.no_flip, max_batch=args.max_batch, bg_power=args.bg_power,
        bg_threshold=args.bg_threshold, crf=not args.no_crf, device=args.device,
        resume=not args.no_resume, fast_inference=not args.no_fast)
    print(f'wrote {written} pseudo labels to {args.out}')


if __name__ == '__main__':
    main()
    finalize_distributed()
