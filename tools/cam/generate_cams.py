"""Export multi-scale + flip CAMs of a trained CAM classifier, one .npz per image.

    python tools/cam/generate_cams.py CONFIG CHECKPOINT --out DIR [--split train]
        [--scales 1.0 0.5 1.5 2.0] [--no-flip] [--max-batch N] [--device cpu]
        [--no-resume] [--cfg-options k=v ...] [--launcher pytorch|slurm]

Multi-GPU: ``tools/cam/dist_generate_cams.sh CONFIG CHECKPOINT N --out DIR`` (torchrun
with ``--launcher pytorch``; each rank takes every N-th image). Rerunning skips
finished images; a rerun into the same ``--out`` with another checkpoint, other
scales, flip or config is refused (``<out>/job_settings.json``).
"""
import argparse

from mars_mm.apis.cam import generate_cams
from mars_mm.apis.launch import (
    add_cam_inference_args,
    add_job_args,
    finalize_distributed,
    init_offline_distributed,
    load_config,
    parse_job_args,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export CAMs (Stage 1)')
    add_cam_inference_args(parser, '<stem>.npz')
    add_job_args(parser, device=True, resume=True)
    return parse_job_args(parser)


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, launcher=args.launcher,
                      data_root=args.data_root)
    init_offline_distributed(args.launcher)
    written = generate_cams(cfg, args.checkpoint, args.out, split=args.split,
                            scales=args.scales, flip=not args.no_flip,
                            max_batch=args.max_batch, device=args.device,
                            resume=not args.no_resume,
                            fast_inference=not args.no_fast)
    print(f'wrote {written} CAM files to {args.out}')


if __name__ == '__main__':
    main()
    finalize_distributed()
