"""Export VOC 2012 test predictions for the evaluation server (one command).

    python tools/mars/export_voc_test.py CONFIG CHECKPOINT --out DIR [--tta]
        [--data-root ROOT] [--device DEV] [--no-resume] [--cfg-options k=v ...]
        [--launcher none|pytorch|slurm]

Writes ``DIR/results/VOC2012/Segmentation/comp6_test_cls/<id>.png`` (palette PNGs,
values 0..20, original size) and ``DIR/results.tar.gz`` to upload. The test images
come from the config's ``test_server_dataloader``. Multi-GPU:
``torchrun --nproc_per_node=N tools/mars/export_voc_test.py ... --launcher pytorch``.
"""
import argparse

from mars_mm.apis.launch import (
    add_job_args,
    finalize_distributed,
    init_offline_distributed,
    load_config,
    parse_job_args,
)
from mars_mm.apis.voc_export import export_voc_test


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='VOC test-server export')
    parser.add_argument('config', help='config file (with test_server_dataloader)')
    parser.add_argument('checkpoint', help='trained checkpoint')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--tta', action='store_true',
                        help="use the config's tta_model / tta_pipeline")
    parser.add_argument('--data-root', help='VOC2012 folder (overrides the config)')
    add_job_args(parser, device=True, resume=True)
    return parse_job_args(parser)


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, launcher=args.launcher,
                      data_root=args.data_root)
    if args.data_root:
        cfg.test_server_dataloader.dataset.data_root = args.data_root
    init_offline_distributed(args.launcher)
    archive = export_voc_test(cfg, args.checkpoint, args.out, tta=args.tta,
                              device=args.device, resume=not args.no_resume)
    if archive is not None:
        print(f'wrote {archive}')


if __name__ == '__main__':
    main()
    finalize_distributed()
