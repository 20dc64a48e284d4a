"""Evaluate a checkpoint (mIoU and per-class FP/FN with mars_mm's metric configs).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR] [--show]
        [--show-dir DIR] [--tta] [--cfg-options k=v ...] [--launcher ...]

``--tta`` switches to the config's ``tta_model``/``tta_pipeline`` (scales 1.0, 0.5,
1.5, 2.0 + flip in mars_mm configs). ``--out`` saves the predicted label maps.
The checkpoint must hold every weight of the model (mmengine alone would test a
foreign checkpoint on random weights) and the model as many classes as the data.
Multi-GPU: ``tools/dist_test.sh CONFIG CHECKPOINT GPUS``.
"""
import argparse
import os

from mmengine.runner import Runner

from mars_mm.apis.config_checks import check_class_counts
from mars_mm.apis.launch import (
    add_job_args,
    finalize_distributed,
    load_config,
    parse_job_args,
    prepare_launcher,
    to_tta,
)
from mars_mm.utils.checkpoint import check_checkpoint_file, check_weights_fit
from mars_mm.utils.compat import drop_save_best_for_testing


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (evaluate) a segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument('--out', help='dir to save the predicted label maps')
    parser.add_argument('--show', action='store_true', help='show predictions')
    parser.add_argument('--show-dir', help='dir to save painted predictions')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='seconds between shown images')
    parser.add_argument('--tta', action='store_true',
                        help='multi-scale + flip test-time augmentation')
    add_job_args(parser)
    return parse_job_args(parser)


def enable_visualization(cfg, args: argparse.Namespace) -> None:
    """Switch on mmseg's visualisation hook for ``--show``/``--show-dir``."""
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise ValueError('--show/--show-dir need a `visualization` hook in '
                         'default_hooks (mmseg schedules define one)')
    hook = hooks.visualization
    hook.draw = True
    if args.show:
        hook.show = True
        hook.wait_time = args.wait_time
    if args.show_dir:
        cfg.visualizer.save_dir = cfg.work_dir
        hook.img_dir = args.show_dir


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher,
                      data_root=args.data_root)
    check_checkpoint_file(args.checkpoint)
    check_class_counts(cfg, 'test_dataloader')
    cfg.load_from = args.checkpoint
    drop_save_best_for_testing(cfg)
    if args.show or args.show_dir:
        enable_visualization(cfg, args)
    if args.tta:
        to_tta(cfg)
    if args.out is not None:
        evaluators = cfg.test_evaluator if isinstance(
            cfg.test_evaluator, list) else [cfg.test_evaluator]
        for evaluator in evaluators:
            evaluator['output_dir'] = args.out
            evaluator['keep_results'] = True
        # mmseg's IoUMetric creates output_dir on rank 0 only, while every rank
        # writes its predictions there: another rank could write first (seen as a
        # flaky 2-rank test under load). Every rank makes it.
        os.makedirs(args.out, exist_ok=True)
    prepare_launcher(cfg, args.launcher)
    runner = Runner.from_cfg(cfg)
    check_weights_fit(runner.model, args.checkpoint, args.config)
    runner.test()


if __name__ == '__main__':
    main()
    finalize_distributed()
