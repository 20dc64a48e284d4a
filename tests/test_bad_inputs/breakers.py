"""Ways a file goes bad: truncation, wrong bit depth, wrong channels, odd values."""
import os

import numpy as np
from PIL import Image

from mars_mm.utils.io import save_label_png


def truncate(path: str, fraction: float = 0.5) -> str:
    """Cut ``path`` to ``fraction`` of its bytes (a copy interrupted midway)."""
    size = os.path.getsize(path)
    with open(path, 'r+b') as handle:
        handle.truncate(max(1, int(size * fraction)))
    return path


def write_png16(path: str, array: np.ndarray) -> str:
    """A 16-bit grey PNG (values above 255 survive in the file)."""
    Image.fromarray(np.asarray(array, np.uint16)).save(path)
    return path


def write_rgb_png(path: str, label: np.ndarray) -> str:
    """The label saved as an RGB image (its value in every channel)."""
    rgb = np.stack([label] * 3, axis=-1).astype(np.uint8)
    Image.fromarray(rgb, mode='RGB').save(path)
    return path


def relabel(path: str, value: int, where=None) -> str:
    """Write ``value`` into a label PNG (everywhere, or where ``where`` is true)."""
    from mars_mm.utils.io import load_label_png
    label = load_label_png(path)
    if where is None:
        label[:4, :4] = value
    else:
        label[where] = value
    save_label_png(path, label)
    return path


def resize_label(path: str, size=(16, 16)) -> str:
    from mars_mm.utils.io import load_label_png
    label = load_label_png(path)
    save_label_png(path, label[:size[0], :size[1]])
    return path


def rewrite_npz(path: str, **arrays) -> str:
    """Replace arrays of an ``.npz`` (others kept)."""
    with np.load(path) as data:
        content = {key: data[key] for key in data.files}
    content.update(arrays)
    os.remove(path)
    np.savez_compressed(path, **content)
    return path


class _RunsCommand:
    """Unpickling this runs a shell command (what a hostile checkpoint does)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def plant_code(path: str, marker: str) -> str:
    """Hide ``touch marker`` in a checkpoint's ``meta``: loading it unsafely
    creates ``marker``."""
    import torch

    # the world's own checkpoint (trusted); plain loading keeps this breaker
    # usable against older checkouts (tests/test_bad_inputs/capture.py)
    checkpoint = torch.load(path, map_location='cpu', weights_only=False)
    checkpoint['meta']['seed'] = _RunsCommand(f'touch {marker}')
    torch.save(checkpoint, path)
    return path
