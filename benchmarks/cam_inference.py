"""Multi-scale + flip CAM inference: batched path vs the naive loop.

Both paths run the same model on the same images and produce the stored CAMs
(scales 1.0, 0.5, 1.5, 2.0 + flip, ReLU, resized to the image, summed, tag classes
only, max-normalised):

* ``naive``: one forward per (scale, flip), all C maps upsampled to the image,
  un-flipped, summed; tag classes selected at the end.
* ``batched``: :func:`mars_mm.core.cam.image_cams` - the mirrored image rides in the
  batch, tag classes are selected before resizing, mirrored maps are added at the
  network's resolution (one upsampling per scale). Same model object.
* ``batched+fast``: the same with BatchNorm folded into the convolutions and
  channels-last tensors, eager (what :func:`mars_mm.apis.cam.cam_function` returns
  for a CUDA model).
* ``images+fast``: also all same-size images in one batch per scale
  (:func:`mars_mm.core.cam.batch_image_cams`; e.g. the planted-bias dataset).
* ``unbatched+fast``: ``batched+fast`` with ``max_batch=1`` (one image per forward,
  the other savings kept): large images on a CPU run faster with a small working set.
* ``frozen``: ``batched`` through :func:`mars_mm.apis.cam.cam_function` on CPU, i.e.
  :func:`mars_mm.apis.cam_fast.frozen_cam_function` (BN folded, ``model.cam`` traced
  once and frozen by ``torch.jit.optimize_for_inference``: oneDNN fused kernels and
  prepacked weights); what ``tools/cam/generate_cams.py`` runs on CPU.

``--cpu-time`` times with ``time.process_time`` instead of the wall clock: on a
machine shared with other jobs the ratios are then far less disturbed (use it with
one thread).

Each image keeps its fastest of ``--repeats`` runs per path, and the paths alternate
image by image, so that load from other processes hits them alike. Run with one
thread for a CPU-core figure::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/cam_inference.py

On a GPU (wall time after ``torch.cuda.synchronize``; ``frozen`` is then the eager
fast path that ``cam_function`` returns for CUDA models)::

    python benchmarks/cam_inference.py --device cuda --height 375 --width-px 500
"""
import argparse
import copy
import os
import time

import torch
import torch.nn.functional as F
from mmcv.cnn import fuse_conv_bn
from mmengine.registry import init_default_scope

import mars_mm  # noqa: F401  (registers the model)
from mars_mm.apis.cam import cam_function
from mars_mm.core.cam import DEFAULT_SCALES, batch_image_cams, image_cams
from mars_mm.registry import MODELS


def naive_cams(cam_fn, image, tags, scales=DEFAULT_SCALES):
    """The obvious loop: one forward per scale and flip, everything upsampled."""
    height, width = image.shape[-2:]
    total = None
    for scale in scales:
        size = (int(round(height * scale)), int(round(width * scale)))
        for mirrored in (False, True):
            x = image[None]
            if scale != 1.0:
                x = F.interpolate(x, size=size, mode='bilinear', align_corners=False)
            if mirrored:
                x = x.flip(-1)
            cam = F.relu(cam_fn(x))
            cam = F.interpolate(cam, size=(height, width), mode='bilinear',
                                align_corners=False)
            if mirrored:
                cam = cam.flip(-1)
            total = cam if total is None else total + cam
    selected = total[0, torch.as_tensor(sorted(tags)) - 1]
    return selected / (selected.flatten(1).max(dim=1).values[:, None, None] + 1e-5)


def build_model(depth: int, width: int, num_classes: int):
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='CAMClassifier',
        backbone=dict(type='ResNetV1c', depth=depth, stem_channels=width,
                      base_channels=width, strides=(1, 2, 2, 1),
                      dilations=(1, 1, 1, 2), out_indices=(3, )),
        head=dict(type='CAMHead', in_channels=width * (32 if depth >= 50 else 8),
                  num_classes=num_classes)))
    model.init_weights()
    # random BN statistics so that folding BN is not a no-op
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--depth', type=int, default=50)
    parser.add_argument('--width', type=int, default=64, help='ResNet base channels')
    parser.add_argument('--num-classes', type=int, default=20)
    parser.add_argument('--height', type=int, default=188)
    parser.add_argument('--width-px', type=int, default=250)
    parser.add_argument('--num-images', type=int, default=4)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--cpu-time', action='store_true',
                        help='time with process_time (CPU seconds of this process)')
    parser.add_argument('--device', default='cpu',
                        help="'cpu' or 'cuda' (on CUDA every timing waits for the GPU)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == 'cuda':
        if args.cpu_time:
            parser.error('--cpu-time measures this process, not the GPU')

        def clock() -> float:
            # kernels run asynchronously: a timing is only over when they are done
            torch.cuda.synchronize(device)
            return time.perf_counter()
    else:
        clock = time.process_time if args.cpu_time else time.perf_counter

    model = build_model(args.depth, args.width, args.num_classes).to(device)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.num_images, 3, args.height, args.width_px,
                         generator=generator).to(device)
    tags = [sorted(torch.randperm(args.num_classes, generator=generator)[:1 + i % 3]
                   .add(1).tolist()) for i in range(args.num_images)]
    frozen_fn = cam_function(model)  # frozen on CPU, the eager fast path on CUDA
    eager = fuse_conv_bn(copy.deepcopy(model)).to(memory_format=torch.channels_last)

    def fast_fn(inputs):
        return eager.cam(inputs.contiguous(memory_format=torch.channels_last))
    pairs = list(zip(images, tags))
    # each path maps a group of images (with their tags) to their CAMs
    paths = {
        'naive': lambda group: [naive_cams(model.cam, image, t) for image, t in group],
        'batched': lambda group: [image_cams(model.cam, image, t)
                                  for image, t in group],
        'batched+fast': lambda group: [image_cams(fast_fn, image, t)
                                       for image, t in group],
        'unbatched+fast': lambda group: [image_cams(fast_fn, image, t, max_batch=1)
                                         for image, t in group],
        'frozen': lambda group: [image_cams(frozen_fn, image, t)
                                 for image, t in group],
        'images+fast': lambda group: batch_image_cams(
            fast_fn, torch.stack([image for image, _ in group]),
            [t for _, t in group]),
    }
    # timing unit: one image for the per-image paths, all images for images+fast;
    # paths alternate inside every unit so that load changes hit them alike, and
    # each unit keeps its fastest repeat (the least disturbed one)
    units = [[pair] for pair in pairs]
    best = {name: [float('inf')] * len(units) for name in paths}
    best_all = {name: float('inf') for name in paths}
    outputs = {}
    with torch.inference_mode():
        for run in paths.values():  # warm-up (allocator, oneDNN kernels)
            run(pairs[:1])
        for repeat in range(args.repeats):
            names = list(paths)
            names = names[repeat % len(names):] + names[:repeat % len(names)]
            for index, unit in enumerate(units):
                for name in names:
                    if name == 'images+fast':
                        continue
                    start = clock()
                    result = paths[name](unit)
                    best[name][index] = min(best[name][index],
                                            clock() - start)
                    outputs.setdefault(name, {})[index] = result[0]
            start = clock()
            grouped = paths['images+fast'](pairs)
            best_all['images+fast'] = min(best_all['images+fast'],
                                          clock() - start)
            outputs['images+fast'] = dict(enumerate(grouped))

    print(f'model ResNetV1c-{args.depth} (base width {args.width}), '
          f'{args.num_classes} classes, {args.num_images} images of '
          f'{args.height}x{args.width_px}, scales {DEFAULT_SCALES} + flip, '
          f'{_device_text(device)}, best of {args.repeats} per image '
          f'({"CPU" if args.cpu_time else "wall"} time), '
          f'load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs')
    totals = {name: sum(best[name]) for name in paths if name != 'images+fast'}
    totals['images+fast'] = best_all['images+fast']
    for name, total in totals.items():
        diff = max(float((outputs['naive'][i] - outputs[name][i]).abs().max())
                   for i in range(len(units)))
        print(f'{name:<15} {total / args.num_images * 1000:8.1f} ms/image  '
              f'{args.num_images / total:7.2f} images/s  '
              f'speed-up {totals["naive"] / total:5.2f}x  '
              f'max |diff| vs naive {diff:.2e}')


def _device_text(device: torch.device) -> str:
    if device.type == 'cuda':
        return f'GPU {torch.cuda.get_device_name(device)}'
    return f'{torch.get_num_threads()} thread(s)'


if __name__ == '__main__':
    main()
