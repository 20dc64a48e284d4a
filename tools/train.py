"""Train a model from a config (any stage that trains: CAM, USS, segmentation).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

``--resume`` alone continues from the newest complete checkpoint in the work dir
(the one ``last_checkpoint`` names, or the newest ``epoch_N``/``iter_N.pth`` that is
complete if that one is missing or truncated); with a path it continues from that
checkpoint. The config's hooks are used as written: mars_mm's configs name
``AtomicCheckpointHook`` (kill-safe saves) and ``RandomStateHook`` (bit-identical
resumes) in ``default_hooks``, so mmseg's own ``tools/train.py`` saves the same way.
Multi-GPU: ``tools/dist_train.sh CONFIG GPUS``.
"""
import argparse

from mmengine.runner import Runner

from mars_mm.apis.config_checks import check_class_counts
from mars_mm.apis.launch import (
    add_job_args,
    apply_resume,
    enable_amp,
    finalize_distributed,
    load_config,
    parse_job_args,
    prepare_launcher,
)
from mars_mm.apis.splits import check_disjoint_splits


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a mars_mm/mmseg model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or without a value from the '
        'latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='enable automatic mixed precision training')
    add_job_args(parser)
    return parse_job_args(parser)


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher,
                      data_root=args.data_root)
    if args.amp:
        enable_amp(cfg)
    check_class_counts(cfg, 'train_dataloader')
    check_disjoint_splits(cfg)
    apply_resume(cfg, args.resume)
    prepare_launcher(cfg, args.launcher)
    if 'runner_type' in cfg:
        from mars_mm.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    main()
    finalize_distributed()
