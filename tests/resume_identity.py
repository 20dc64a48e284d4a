"""Measure how far a resumed training run is from one that never stopped.

    python -m tests.resume_identity WORK_DIR [--config CONFIG] [--epochs 2]
        [--num-train 16 --num-val 8] [--variants config workers main]

On a planted dataset generated in ``WORK_DIR/data`` (the 24-image set of issue
13 by default), the config is trained for ``--epochs`` epochs straight, and again
for one epoch then ``--resume``d to the end (with the same LR schedule), once per
data-loading variant:

* ``config``: the config's own loader (planted CAM recipe: 1 persistent worker);
* ``workers``: the same workers, not persistent (restarted every epoch);
* ``main``: no worker process (``num_workers=0``).

It prints, per variant, the loss of the last iteration of both runs and the
largest absolute difference between their final weights, and writes them to
``WORK_DIR/resume_identity.json``. Each run is a ``tools/train.py`` subprocess,
exactly as a user runs it.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/cam/cam_plain7-d8_1xb16-30e_planted-128x128.py'
VARIANTS = {
    'config': [],
    'workers': ['train_dataloader.persistent_workers=False'],
    'main': ['train_dataloader.num_workers=0',
             'train_dataloader.persistent_workers=False'],
}


def _train(config, data, work, epochs, total, extra, resume=False):
    options = [f'train_cfg.max_epochs={epochs}', f'train_cfg.val_interval={total}',
               f'param_scheduler.0.end={total}', 'default_hooks.logger.interval=1',
               'default_hooks.checkpoint.interval=1', *extra]
    command = [sys.executable, osp.join(REPO, 'tools', 'train.py'), config,
               '--work-dir', work, '--data-root', data,
               *(['--resume'] if resume else []), '--cfg-options', *options]
    os.makedirs(work, exist_ok=True)
    with open(osp.join(work, f'train_{epochs}.log'), 'w') as log:
        subprocess.run(command, cwd=REPO, check=True, stdout=log, stderr=log)


def _last_loss(work):
    """The loss of the last logged iteration (mmengine's scalars.json)."""
    lines = []
    for path in sorted(glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))):
        with open(path) as handle:
            lines += [json.loads(line) for line in handle if '"loss"' in line]
    return lines[-1]['loss'] if lines else None


def _weights(path):
    import torch
    return torch.load(path, map_location='cpu', weights_only=False)['state_dict']


def measure(root, config, epochs, num_train, num_val, variants=tuple(VARIANTS)):
    from mars_mm.datasets.generators.planted_bias import generate_planted_bias
    data = osp.join(root, 'data')
    if not osp.isdir(data):
        generate_planted_bias(data, num_train=num_train, num_val=num_val)
    results = {}
    for name in variants:
        extra = VARIANTS[name]
        straight = osp.join(root, name, 'straight')
        resumed = osp.join(root, name, 'resumed')
        _train(config, data, straight, epochs, epochs, extra)
        _train(config, data, resumed, 1, epochs, extra)
        _train(config, data, resumed, epochs, epochs, extra, resume=True)
        final = f'epoch_{epochs}.pth'
        expected, got = _weights(osp.join(straight, final)), \
            _weights(osp.join(resumed, final))
        diff = max(float((expected[key].double() - got[key].double()).abs().max())
                   for key in expected if expected[key].is_floating_point())
        results[name] = dict(loss_straight=_last_loss(straight),
                             loss_resumed=_last_loss(resumed),
                             max_abs_weight_diff=diff,
                             identical=diff == 0.0)
        print(f'{name:8s} last loss {results[name]["loss_straight"]} (straight) '
              f'vs {results[name]["loss_resumed"]} (resumed); max |weight diff| '
              f'{diff:.3g}', flush=True)
    with open(osp.join(root, 'resume_identity.json'), 'w') as handle:
        json.dump(dict(config=config, epochs=epochs, num_train=num_train,
                       num_val=num_val, results=results), handle, indent=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dir')
    parser.add_argument('--config', default=CONFIG)
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--num-train', type=int, default=16)
    parser.add_argument('--num-val', type=int, default=8)
    parser.add_argument('--variants', nargs='+', choices=tuple(VARIANTS),
                        default=tuple(VARIANTS))
    args = parser.parse_args()
    measure(args.work_dir, args.config, args.epochs, args.num_train, args.num_val,
            args.variants)


if __name__ == '__main__':
    main()
