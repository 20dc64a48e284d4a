"""One training step of MARSEncoderDecoder vs mmseg's plain EncoderDecoder.

Same DeepLabV3+ (mmseg's ``deeplabv3plus_r50-d8`` model base, BN, 21 classes),
same random init, batch and crop; the MARS batch carries removed (254) pixels in
every image, so the teacher always runs (its worst case). Time: the two models'
steps are interleaved in one process and the medians compared. Memory: each model
runs a few steps in its own child process; reported is the peak RSS growth over the
process before the model was built (CPU) or ``torch.cuda.max_memory_allocated``.

    python benchmarks/train_step.py [--depth 50] [--crop 256] [--batch 2]
        [--steps 5] [--device cpu|cuda]
"""
import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
from mmengine.config import Config, ConfigDict
from mmengine.model import ExponentialMovingAverage
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

import mars_mm  # noqa: F401  (registers MARSEncoderDecoder)
from mars_mm.registry import MODELS

NUM_CLASSES = 21


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--depth', type=int, default=50, help='ResNetV1c depth')
    parser.add_argument('--crop', type=int, default=256)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--steps', type=int, default=5, help='timed steps each')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available()
                        else 'cpu')
    parser.add_argument('--memory-child', choices=('plain', 'mars'),
                        help=argparse.SUPPRESS)
    return parser.parse_args()


def model_cfg(kind: str, depth: int, crop: int) -> ConfigDict:
    import os.path as osp

    import mmseg
    base = Config.fromfile(osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs',
                                    '_base_', 'models', 'deeplabv3plus_r50-d8.py'))
    cfg = copy.deepcopy(base.model)
    bn = dict(type='BN', requires_grad=True)
    cfg.pretrained = None
    cfg.data_preprocessor.size = (crop, crop)
    cfg.backbone.update(depth=depth, norm_cfg=bn)
    cfg.decode_head.update(num_classes=NUM_CLASSES, norm_cfg=bn)
    cfg.auxiliary_head.update(num_classes=NUM_CLASSES, norm_cfg=bn)
    if kind == 'mars':
        cfg.type = 'MARSEncoderDecoder'
    return cfg


def make_batch(batch: int, crop: int, seed: int = 0, removed: bool = True) -> dict:
    """Random images and labels; ``removed`` marks a block 254 (else background)."""
    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.from_numpy(
            rng.integers(0, 255, (3, crop, crop)).astype(np.uint8)))
        tags = sorted(rng.choice(np.arange(1, NUM_CLASSES), 2, replace=False))
        label = rng.choice([0] + list(tags), size=(crop, crop))
        quarter = crop // 4
        label[quarter:2 * quarter, quarter:2 * quarter] = 254 if removed else 0
        label[:, :2] = 255
        sample = SegDataSample(metainfo=dict(
            img_tags=np.array(tags), img_shape=(crop, crop), pad_shape=(crop, crop),
            ori_shape=(crop, crop)))
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(label)[None])
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def build(kind: str, args: argparse.Namespace):
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(model_cfg(kind, args.depth, args.crop)).to(args.device)
    model.train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9))
    if kind == 'mars':  # what EMATeacherHook does in a Runner
        student = model.inference_net()
        teacher = ExponentialMovingAverage(student, momentum=0.001).eval()
        teacher.update_parameters(student)
        model.set_teacher(teacher.forward)
        model.benchmark_after_step = lambda: teacher.update_parameters(student)
    return model, optim


def step(model, optim, batch, device: str) -> float:
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    start = time.perf_counter()
    model.train_step(batch, optim)
    if hasattr(model, 'benchmark_after_step'):  # the teacher's EMA step
        model.benchmark_after_step()
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _proc_status_mb(field: str) -> float:
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 1024.0
    raise KeyError(field)


def reset_peak_rss() -> float:
    """Reset the kernel's peak-RSS mark (Linux) and return the current RSS in MB."""
    try:
        with open('/proc/self/clear_refs', 'w') as clear_refs:
            clear_refs.write('5')
        return _proc_status_mb('VmRSS')
    except OSError:  # not Linux: fall back to the lifetime peak
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def peak_rss_mb() -> float:
    try:
        return _proc_status_mb('VmHWM')
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def memory_child(args: argparse.Namespace) -> None:
    batch = make_batch(args.batch, args.crop, removed=args.memory_child == 'mars')
    if args.device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    before = reset_peak_rss()
    model, optim = build(args.memory_child, args)
    for _ in range(2):
        step(model, optim, batch, args.device)
    if args.device.startswith('cuda'):
        used = torch.cuda.max_memory_allocated() / 2**20
    else:
        used = peak_rss_mb() - before
    print(json.dumps(dict(memory_mb=used)))


def measure_memory(kind: str, args: argparse.Namespace) -> float:
    command = [sys.executable, __file__, '--memory-child', kind,
               '--depth', str(args.depth), '--crop', str(args.crop),
               '--batch', str(args.batch), '--device', args.device]
    output = subprocess.run(command, check=True, capture_output=True, text=True,
                            env=dict(os.environ)).stdout
    return json.loads(output.strip().splitlines()[-1])['memory_mb']


def main() -> None:
    args = parse_args()
    if args.memory_child:
        memory_child(args)
        return
    # the plain model cannot read 254: it gets background there (same CE cost)
    plain_batch = make_batch(args.batch, args.crop, removed=False)
    mars_batch = make_batch(args.batch, args.crop)
    plain, plain_optim = build('plain', args)
    mars, mars_optim = build('mars', args)
    times = dict(plain=[], mars=[])
    for index in range(args.warmup + args.steps):
        # interleaved so that load changes on the machine hit both equally
        plain_time = step(plain, plain_optim, plain_batch, args.device)
        mars_time = step(mars, mars_optim, mars_batch, args.device)
        if index >= args.warmup:
            times['plain'].append(plain_time)
            times['mars'].append(mars_time)
    plain_median = statistics.median(times['plain'])
    mars_median = statistics.median(times['mars'])
    del plain, mars
    memory = {kind: measure_memory(kind, args) for kind in ('plain', 'mars')}
    print(f'DeepLabV3+ ResNetV1c-{args.depth}, batch {args.batch}, crop {args.crop}, '
          f'{args.device}, {torch.get_num_threads()} threads, median of '
          f'{args.steps} steps')
    print(f'plain EncoderDecoder   step {plain_median:7.3f} s   '
          f'memory {memory["plain"]:8.0f} MB')
    print(f'MARSEncoderDecoder     step {mars_median:7.3f} s   '
          f'memory {memory["mars"]:8.0f} MB')
    print('per-step times (s): plain ' + ' '.join(f'{t:.2f}' for t in times['plain'])
          + ' | mars ' + ' '.join(f'{t:.2f}' for t in times['mars']))
    print(f'ratio MARS / plain     time {mars_median / plain_median:.3f}x   '
          f'memory {memory["mars"] / memory["plain"]:.3f}x   (target time <= 1.35x)')


if __name__ == '__main__':
    main()
