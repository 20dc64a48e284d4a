"""GPU readiness check: every stage's real VOC config through the real tools.

One command, no downloads: synthetic VOC-layout data (images, masks, debiased labels
with removed pixels) is written to a work folder and each stage's real config is
run through its real tool, in a child process each:

====================  =========================================================
stage                 what runs
====================  =========================================================
``cam_train``         ``tools/train.py``, CAM ResNetV1c-50 (512 crops, batch 16)
``cam_export``        ``tools/cam/generate_cams.py``, 4 scales + flip
``stego_knn``         ``tools/uss/precompute_knn.py`` (kNN pairs for STEGO)
``stego_train``       ``tools/train.py``, STEGO on ViT-B/8 (224 crops, batch 16)
``stego_export``      ``tools/uss/extract_features.py``, 4 scales + flip
``seg_plain``         ``tools/train.py``, DeepLabV3+ R-101 (512 crops, batch 4)
``seg_mars``          the same as MARS (EMA teacher), teacher CRF off
``seg_mars_crf``      MARS with the teacher's dense CRF on
``seg_plain_amp``     ``seg_plain`` with ``--amp``
``seg_mars_amp``      ``seg_mars`` with ``--amp``
====================  =========================================================

Reported per stage: seconds per training iteration (median of the iterations after
the first, from mmengine's own log) or per exported image (spacing of the output
files' times, so start-up is excluded), peak GPU memory (mmengine's log for training,
``torch.cuda.max_memory_allocated`` for the exports) and peak RSS, and the projected
wall time of the whole stage for VOC train_aug and COCO train on 4 and 8 GPUs. The
projection reads the schedule (iterations or epochs, batch size) from the real VOC
and COCO configs and assumes linear scaling over GPUs: ``samples x seconds per
sample / GPUs``. A stage that fails is reported with its error and the check goes
on; every stage that could not run is listed at the end.

``--size full`` (default where CUDA is available) keeps the configs' crops, batch
sizes and 500x375 images; ``--size tiny`` (default on CPU, what CI runs) runs the
same configs and code paths with 64-pixel crops (32 for the ViT), batch 2 and 48x64
images. Tiny numbers only show that the paths run; they project nothing.

    python benchmarks/gpu_check.py [--size full|tiny] [--iters N] [--work-dir DIR]
        [--out results.json] [--stages cam_train seg_mars ...]

The output format is documented in ``docs/en/benchmarks.md``.
"""
import argparse
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: Train images of each dataset (projections).
DATASET_IMAGES = dict(voc=10_582, coco=82_783)
GPU_COUNTS = (4, 8)
CONFIGS = dict(
    cam=dict(voc='configs/cam/cam_r50-d16_1xb16-5e_voc12aug-512x512.py',
             coco='configs/cam/cam_r50-d16_1xb16-5e_coco2014-512x512.py'),
    stego=dict(voc='configs/uss/stego_vit-b8_1xb16-5k_voc12aug-224x224.py',
               coco='configs/uss/stego_vit-b8_1xb16-5k_coco2014-224x224.py'),
    seg_plain=dict(
        voc='configs/mars/deeplabv3plus_r101-d8_4xb4-40k_voc12aug-512x512.py',
        coco='configs/mars/deeplabv3plus_r101-d8_4xb4-80k_coco2014-512x512.py'),
    seg_mars=dict(
        voc='configs/mars/mars-deeplabv3plus_r101-d8_4xb4-40k_voc12aug-512x512.py',
        coco='configs/mars/mars-deeplabv3plus_r101-d8_4xb4-80k_coco2014-512x512.py'),
)
#: stage name -> (config family, tool, kind)
STAGES = {
    'cam_train': ('cam', 'tools/train.py', 'train'),
    'cam_export': ('cam', 'tools/cam/generate_cams.py', 'export'),
    'stego_knn': ('stego', 'tools/uss/precompute_knn.py', 'once'),
    'stego_train': ('stego', 'tools/train.py', 'train'),
    'stego_export': ('stego', 'tools/uss/extract_features.py', 'export'),
    'seg_plain': ('seg_plain', 'tools/train.py', 'train'),
    'seg_mars': ('seg_mars', 'tools/train.py', 'train'),
    'seg_mars_crf': ('seg_mars', 'tools/train.py', 'train'),
    'seg_plain_amp': ('seg_plain', 'tools/train.py', 'train'),
    'seg_mars_amp': ('seg_mars', 'tools/train.py', 'train'),
}
#: Each child process runs one tool as ``__main__`` and reports its peaks.
CHILD = r'''
import json, resource, runpy, sys, time
tool = sys.argv[1]
sys.argv = sys.argv[1:]
import torch
cuda = torch.cuda.is_available()
if cuda:
    torch.cuda.reset_peak_memory_stats()
start = time.perf_counter()
runpy.run_path(tool, run_name='__main__')
stats = dict(seconds=time.perf_counter() - start,
             peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
if cuda:
    stats['peak_gpu_mb'] = torch.cuda.max_memory_allocated() / 2 ** 20
print('GPU_CHECK_STATS ' + json.dumps(stats))
'''


@dataclass
class Size:
    """Sizes of one check mode."""
    name: str
    image_hw: tuple        # synthetic image (H, W)
    crop: Optional[int]    # None: the configs' crops
    vit_crop: Optional[int]
    batch: Optional[int]   # None: the configs' batch sizes
    iters: int
    export_images: int


SIZES = dict(
    full=Size('full', (375, 500), None, None, None, 10, 8),
    tiny=Size('tiny', (48, 64), 64, 32, 2, 2, 3),
)


@dataclass
class StageResult:
    """What the check measured for one stage (one row of the table)."""
    stage: str
    tool: str
    config: str
    ok: bool = False
    error: str = ''
    unit: str = ''                      # 's/iter' or 's/image'
    seconds: Optional[float] = None     # per iteration or per image
    batch: Optional[int] = None
    peak_gpu_mb: Optional[float] = None
    first_iter_gpu_mb: Optional[float] = None  # training: cuDNN autotuning included
    peak_rss_mb: Optional[float] = None
    wall_s: Optional[float] = None      # the child process, start-up included
    projected_h: Dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------- synthetic data
def write_voc(root: str, size: Size, num_train: int, num_val: int,
              seed: int = 0) -> None:
    """A VOC 2012 layout with 1-3 classes per image and debiased labels.

    ``SegmentationClassAug`` holds the masks of ``train_aug``, ``SegmentationClass``
    those of ``val``; ``debiased/`` holds Stage 3-style labels (a quarter of one
    object removed, value 254) that MARS trains on. No XML: tags come from masks.
    """
    import cv2
    rng = np.random.default_rng(seed)
    height, width = size.image_hw
    folders = ('JPEGImages', 'SegmentationClass', 'SegmentationClassAug',
               'ImageSets/Segmentation', 'debiased')
    for folder in folders:
        os.makedirs(osp.join(root, folder), exist_ok=True)
    yy, xx = np.mgrid[:height, :width]
    splits = dict(train_aug=[], val=[])
    for index in range(num_train + num_val):
        split = 'train_aug' if index < num_train else 'val'
        stem = f'2007_{index:06d}'
        image = np.empty((height, width, 3), np.uint8)
        image[:] = rng.integers(0, 255, 3)
        label = np.zeros((height, width), np.uint8)
        for class_id in rng.choice(np.arange(1, 21), rng.integers(1, 4),
                                   replace=False):
            cy, cx = rng.uniform(0.25, 0.75, 2) * (height, width)
            ry, rx = rng.uniform(0.1, 0.3, 2) * (height, width)
            inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            label[inside] = class_id
            image[inside] = rng.integers(0, 255, 3)
        image = np.clip(image + rng.normal(0, 10, image.shape), 0, 255)
        cv2.imwrite(osp.join(root, 'JPEGImages', stem + '.jpg'),
                    image.astype(np.uint8))
        mask_dir = 'SegmentationClassAug' if split == 'train_aug' else \
            'SegmentationClass'
        cv2.imwrite(osp.join(root, mask_dir, stem + '.png'), label)
        debiased = label.copy()
        debiased[:height // 4, :width // 4][label[:height // 4, :width // 4] > 0] = 254
        cv2.imwrite(osp.join(root, 'debiased', stem + '.png'), debiased)
        splits[split].append(stem)
    for split, stems in splits.items():
        with open(osp.join(root, 'ImageSets/Segmentation', split + '.txt'), 'w') as f:
            f.write('\n'.join(stems) + '\n')


# ------------------------------------------------------------- config rewriting
def _shrink_pipeline(node: Any, crop: int, base_crop: int) -> Any:
    """Scale every crop and resize target of a config subtree to ``crop``."""
    if isinstance(node, list):
        return [_shrink_pipeline(item, crop, base_crop) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _shrink_pipeline(value, crop, base_crop)
            for key, value in node.items()}
    if 'crop_size' in node:
        node['crop_size'] = (crop, crop)
    if node.get('type') in ('RandomResize', 'Resize') and 'scale' in node:
        factor = crop / base_crop
        node['scale'] = tuple(max(crop, int(round(s * factor)))
                              for s in node['scale'])
    return node


def stage_config(stage: str, size: Size, data_root: str, work_dir: str) -> str:
    """The stage's real VOC config with the check's settings, dumped to a file."""
    from mmengine.config import Config

    from mars_mm.apis.pipeline.context import schedule_options
    family = STAGES[stage][0]
    cfg = Config.fromfile(osp.join(REPO, CONFIGS[family]['voc']))
    iters = size.iters
    options: Dict[str, Any] = {}
    batch = size.batch or cfg.train_dataloader.batch_size
    if 'max_epochs' in cfg.train_cfg:   # the CAM recipe: one epoch of `iters` batches
        options.update(schedule_options(cfg, dict(max_epochs=1)))
    else:
        options.update(schedule_options(cfg, dict(max_iters=iters)))
    options['train_cfg.val_interval'] = 10 ** 6   # no validation: speed only
    options['default_hooks.logger.interval'] = 1
    # mmengine logs `time` as a mean over a 10-iteration window by default, which
    # drags the first (cuDNN autotuning) iteration into every later value
    options['log_processor.window_size'] = 1
    options['default_hooks.checkpoint.interval'] = 10 ** 6  # saved at the end only
    options['default_hooks.checkpoint.save_best'] = None
    options['train_dataloader.batch_size'] = batch
    cfg.merge_from_dict(options)
    # random weights: no downloads
    if 'pretrained' in cfg.model:
        cfg.model.pretrained = None
    if family == 'stego':
        cfg.model.backbone.backbone.init_cfg = None
        cfg.knn_file = osp.join(work_dir, 'knn.npz')
        cfg.train_dataloader.dataset.knn_file = cfg.knn_file
    if stage == 'seg_mars_crf':
        cfg.model.teacher_crf = dict()
    if family == 'seg_mars':   # Stage 3 labels, with removed (254) pixels
        cfg.train_dataloader.dataset.pseudo_label_dir = osp.join(data_root, 'debiased')
    elif family == 'seg_plain':  # Stage 1 labels: no removed pixels
        cfg.train_dataloader.dataset.pseudo_label_dir = osp.join(
            data_root, 'SegmentationClassAug')
    if 'max_epochs' in cfg.train_cfg:
        # an epoch of exactly `iters` batches (the kNN search needs more images)
        cfg.train_dataloader.dataset.indices = batch * iters
    if size.crop is not None:
        crop = size.vit_crop if family == 'stego' else size.crop
        base = 224 if family == 'stego' else 512
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                    'train_infer_dataloader'):
            if key in cfg:
                cfg[key] = _shrink_pipeline(cfg[key].to_dict(), crop, base)
        if cfg.model.data_preprocessor.get('size'):
            cfg.model.data_preprocessor.size = (crop, crop)
        if 'knn_cfg' in cfg:
            cfg.knn_cfg.size = (crop, crop)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                'train_infer_dataloader'):
        if key in cfg and size.name == 'tiny':
            # worker start-up would dominate tiny runs
            cfg[key].num_workers = 0
            cfg[key].persistent_workers = False
    cfg.work_dir = osp.join(work_dir, stage)
    path = osp.join(work_dir, 'configs', stage + '.py')
    os.makedirs(osp.dirname(path), exist_ok=True)
    cfg.dump(path)
    return path


# -------------------------------------------------------------------- running
def run_child(tool: str, args: List[str], log_path: str,
              timeout: float) -> Dict[str, Any]:
    """Run ``tool`` with ``args`` in a child; its peaks, or an error string."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get(
        'PYTHONPATH', ''))
    command = [sys.executable, '-c', CHILD, osp.join(REPO, tool)] + args
    start = time.perf_counter()
    with open(log_path, 'w') as log:
        try:
            process = subprocess.run(command, cwd=REPO, env=env, stdout=log,
                                     stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            return dict(error=f'timed out after {timeout:.0f} s (log: {log_path})')
    wall = time.perf_counter() - start
    with open(log_path) as log:
        text = log.read()
    if process.returncode:
        tail = [line for line in text.splitlines() if line.strip()][-1:]
        return dict(error=f'exit {process.returncode}: {" ".join(tail)[:300]} '
                    f'(log: {log_path})', wall_s=wall)
    stats = [line for line in text.splitlines() if line.startswith('GPU_CHECK_STATS')]
    result = json.loads(stats[-1].split(' ', 1)[1]) if stats else {}
    result['wall_s'] = wall
    return result


def training_log(work_dir: str) -> List[dict]:
    """mmengine's per-iteration scalars (``*/vis_data/scalars.json``)."""
    paths = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not paths:
        return []
    with open(paths[-1]) as f:
        entries = [json.loads(line) for line in f if line.strip()]
    # training iterations only: validation/test summaries carry a `time` too
    return [entry for entry in entries if 'lr' in entry and 'time' in entry]


def export_seconds(out_dir: str) -> Optional[float]:
    """Seconds per image from the spacing of the output files' modification times.

    The first file marks the end of start-up and the first (warm-up) image; the
    spacing after it is the steady per-image cost.
    """
    times = sorted(os.path.getmtime(path) for path in glob.glob(osp.join(out_dir, '*'))
                   if not path.endswith('.json'))
    if len(times) < 2:
        return None
    return (times[-1] - times[0]) / (len(times) - 1)


def projections(stage: str, seconds: float, batch: int) -> Dict[str, float]:
    """Hours of the whole stage on VOC and COCO with 4 and 8 GPUs (linear scaling)."""
    from mmengine.config import Config
    family, _, kind = STAGES[stage]
    hours = {}
    for dataset, path in CONFIGS[family].items():
        cfg = Config.fromfile(osp.join(REPO, path))
        if kind == 'export':
            samples = DATASET_IMAGES[dataset]
            per_sample = seconds
        else:
            recipe_batch = cfg.train_dataloader.batch_size
            gpus = _recipe_gpus(path)
            if 'max_epochs' in cfg.train_cfg:
                samples = cfg.train_cfg.max_epochs * DATASET_IMAGES[dataset]
            else:
                samples = cfg.train_cfg.max_iters * recipe_batch * gpus
            per_sample = seconds / batch
        for gpus in GPU_COUNTS:
            hours[f'{dataset}_{gpus}gpu'] = samples * per_sample / gpus / 3600
    return hours


def _recipe_gpus(path: str) -> int:
    """GPUs of a recipe from its name (``_4xb4-``: 4)."""
    name = osp.basename(path)
    for part in name.split('_'):
        if 'xb' in part and part.split('xb')[0].isdigit():
            return int(part.split('xb')[0])
    return 1


def run_stage(stage: str, size: Size, data_root: str, work_dir: str, device: str,
              timeout: float) -> StageResult:
    family, tool, kind = STAGES[stage]
    result = StageResult(stage=stage, tool=tool, config=CONFIGS[family]['voc'])
    if stage.endswith('_amp') and device == 'cpu':
        # mmengine's AmpOptimWrapper asserts an accelerator
        result.error = 'AMP needs a GPU (mmengine AmpOptimWrapper refuses CPU)'
        return result
    try:
        config = stage_config(stage, size, data_root, work_dir)
    except Exception as err:  # report and go on: the check lists what failed
        result.error = f'config: {type(err).__name__}: {err}'
        return result
    log = osp.join(work_dir, stage + '.log')
    common = ['--data-root', data_root]
    if kind == 'train':
        args = [config, '--work-dir', osp.join(work_dir, stage)] + common
        if stage.endswith('_amp'):
            args.append('--amp')
    elif stage == 'stego_knn':
        args = [config, '--out', osp.join(work_dir, 'knn.npz'), '--device',
                device] + common
    else:
        train_dir = osp.join(work_dir, stage.replace('_export', '_train'))
        checkpoints = sorted(glob.glob(osp.join(train_dir, '*.pth')))
        if not checkpoints:
            result.error = f'no checkpoint in {train_dir} (its training failed)'
            return result
        out = osp.join(work_dir, stage + '_out')
        args = [config, checkpoints[-1], '--out', out, '--split', 'val',
                '--device', device] + common
    child = run_child(tool, args, log, timeout)
    result.wall_s = child.get('wall_s')
    result.peak_rss_mb = child.get('peak_rss_mb')
    result.peak_gpu_mb = child.get('peak_gpu_mb')
    if 'error' in child:
        result.error = child['error']
        return result
    result.ok = True
    if kind == 'train':
        entries = training_log(osp.join(work_dir, stage))
        times = [entry['time'] for entry in entries]
        result.unit = 's/iter'
        result.batch = size.batch or _config_batch(config)
        if times:
            result.seconds = statistics.median(times[1:] or times)
        memory = [entry['memory'] for entry in entries if 'memory' in entry]
        if memory:
            # mmengine logs the peak since the last log: the first iteration's holds
            # cuDNN's autotuning workspaces (configs set cudnn_benchmark), the rest
            # are what training needs
            result.first_iter_gpu_mb = memory[0]
            result.peak_gpu_mb = max(memory[1:] or memory)
    elif kind == 'export':
        result.unit = 's/image'
        result.seconds = export_seconds(osp.join(work_dir, stage + '_out'))
    if result.seconds is not None and kind != 'once':
        result.projected_h = projections(stage, result.seconds, result.batch or 1)
    return result


def _config_batch(path: str) -> int:
    from mmengine.config import Config
    return int(Config.fromfile(path).train_dataloader.batch_size)


# -------------------------------------------------------------------- output
def format_table(results: List[StageResult], size: Size, device: str) -> str:
    keys = [f'{d}_{g}gpu' for d in DATASET_IMAGES for g in GPU_COUNTS]
    lines = [
        f'GPU check, size {size.name}, device {device}',
        '',
        '| stage | status | time | batch | peak GPU MiB | peak RSS MiB | '
        + ' | '.join(f'{k.replace("_", " ")} h' for k in keys) + ' |',
        '| --- ' * (6 + len(keys)) + '|',
    ]

    def fmt(value, digits=1):
        return '-' if value is None else f'{value:.{digits}f}'

    for r in results:
        time_text = '-' if r.seconds is None else f'{r.seconds:.3f} {r.unit}'
        lines.append(
            f'| {r.stage} | {"ok" if r.ok else "FAILED"} | {time_text} | '
            f'{r.batch or "-"} | {fmt(r.peak_gpu_mb, 0)} | {fmt(r.peak_rss_mb, 0)} | '
            + ' | '.join(fmt(r.projected_h.get(k), 2) for k in keys) + ' |')
    failed = [r for r in results if not r.ok]
    lines.append('')
    if failed:
        lines.append('could not run:')
        lines.extend(f'  {r.stage}: {r.error}' for r in failed)
    else:
        lines.append('every stage ran')
    if size.name == 'tiny':
        lines.append('tiny size: the code paths ran; times and projections are not '
                     'GPU figures')
    return '\n'.join(lines)


def parse_args() -> argparse.Namespace:
    import torch
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', choices=tuple(SIZES),
                        default='full' if cuda else 'tiny')
    parser.add_argument('--device', default='cuda' if cuda else 'cpu')
    parser.add_argument('--iters', type=int,
                        help='training iterations per stage (full 10, tiny 2)')
    parser.add_argument('--stages', nargs='+', choices=tuple(STAGES),
                        default=list(STAGES))
    parser.add_argument('--work-dir', help='default: a temporary folder, removed')
    parser.add_argument('--out', help='also write the results as JSON here '
                        '(rewritten after every stage)')
    parser.add_argument('--timeout', type=float, default=900,
                        help='seconds per stage before it is reported as failed')
    return parser.parse_args()


def main() -> int:
    # mmengine's `mmseg::` config bases import pkg_resources, which warns
    warnings.filterwarnings('ignore', message='pkg_resources')
    args = parse_args()
    size = SIZES[args.size]
    if args.iters:
        size = Size(**dict(asdict(size), iters=args.iters))
    with tempfile.TemporaryDirectory() as tmp:
        work_dir = osp.abspath(args.work_dir or tmp)
        data_root = osp.join(work_dir, 'VOC2012')
        batch = size.batch or 16  # CAM recipe: one epoch of `iters` batches of 16
        # STEGO's kNN search needs more than 7 candidates per image
        write_voc(data_root, size, num_train=max(batch * size.iters, 12),
                  num_val=size.export_images)
        results = []
        for stage in args.stages:
            start = time.perf_counter()
            result = run_stage(stage, size, data_root, work_dir, args.device,
                               args.timeout)
            results.append(result)
            status = 'ok' if result.ok else f'FAILED: {result.error}'
            measured = '' if result.seconds is None else \
                f', {result.seconds:.3f} {result.unit}'
            print(f'[{stage}] {time.perf_counter() - start:.0f} s, {status}'
                  f'{measured}', flush=True)
            if args.out:   # after every stage: a check killed later keeps these
                write_json(args.out, results, size, args.device)
        print(format_table(results, size, args.device))
    return 0 if all(r.ok for r in results) else 1


def write_json(path: str, results: List[StageResult], size: Size,
               device: str) -> None:
    """The results so far as JSON, replaced atomically (never a half file)."""
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(dict(size=asdict(size), device=device,
                       device_name=_device_name(device),
                       stages=[asdict(r) for r in results]), f, indent=1)
    os.replace(tmp, path)


def _device_name(device: str) -> str:
    import torch
    if device.startswith('cuda') and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return 'cpu'


if __name__ == '__main__':
    sys.exit(main())
