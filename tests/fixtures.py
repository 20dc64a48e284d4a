"""Small fixtures in real on-disk formats, built by the tests themselves."""
import os
import os.path as osp
import socket
from typing import Sequence

import numpy as np
from PIL import Image

from mars_mm.utils.io import save_label_png


def make_tiny_voc(root: str, num_train: int = 4, num_val: int = 2,
                  size: int = 32, seed: int = 0) -> Sequence[str]:
    """A VOC-layout folder with squares (class 1) and discs (class 2).

    Writes ``JPEGImages/*.jpg``, palette ``SegmentationClass/*.png`` with a 255
    border ring around each object, and ``ImageSets/Segmentation/{train,val}.txt``.

    Returns:
        list: all image stems.
    """
    rng = np.random.default_rng(seed)
    for sub in ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    stems = [f'img_{index:03d}' for index in range(num_train + num_val)]
    yy, xx = np.mgrid[:size, :size]
    for index, stem in enumerate(stems):
        label = np.zeros((size, size), np.uint8)
        image = rng.integers(0, 40, (size, size, 3)).astype(np.uint8)
        cls = 1 + index % 2
        cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
        radius = size // 5
        if cls == 1:
            inside = (abs(yy - cy) <= radius) & (abs(xx - cx) <= radius)
            ring = (abs(yy - cy) <= radius + 1) & (abs(xx - cx) <= radius + 1)
        else:
            dist = np.hypot(yy - cy, xx - cx)
            inside, ring = dist <= radius, dist <= radius + 1
        label[ring] = 255
        label[inside] = cls
        image[inside] = (200, 40, 40) if cls == 1 else (40, 200, 40)
        Image.fromarray(image).save(osp.join(root, 'JPEGImages', f'{stem}.jpg'),
                                    quality=95)
        save_label_png(osp.join(root, 'SegmentationClass', f'{stem}.png'), label)
    split_dir = osp.join(root, 'ImageSets', 'Segmentation')
    with open(osp.join(split_dir, 'train.txt'), 'w') as f:
        f.write('\n'.join(stems[:num_train]) + '\n')
    with open(osp.join(split_dir, 'val.txt'), 'w') as f:
        f.write('\n'.join(stems[num_train:]) + '\n')
    return stems


def free_port() -> int:
    """A port the OS just handed out, for a torchrun master.

    Fixed or pid-derived ports collide with other distributed tests running on the
    same machine at the same time.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]
