"""Reading and writing label maps and arrays, always atomically.

Every file an offline stage writes goes through :func:`atomic_write`: the data lands
in a temporary file in the destination folder and is renamed into place, so a job
killed at any moment leaves either the old state or the complete new file, never a
truncated one. Resume logic can then trust that an existing file is complete.
"""
import contextlib
import functools
import os
import os.path as osp
import tempfile
from typing import Callable, Iterator, Optional

import numpy as np
from PIL import Image

#: Value of ignored pixels in every label map (VOC object borders, padding).
IGNORE_INDEX = 255
#: Value MARS writes for foreground pixels removed as biased (Stage 3 output).
BIASED_INDEX = 254


def voc_palette(num_entries: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map.

    Returns:
        np.ndarray: ``(num_entries, 3)`` uint8 palette, entry ``i`` the colour of
        label ``i`` (0 black, 255 the light border colour), as in the devkit.
    """
    palette = np.zeros((num_entries, 3), dtype=np.uint8)
    for label in range(num_entries):
        value, red, green, blue = label, 0, 0, 0
        for bit in range(8):
            red |= ((value >> 0) & 1) << (7 - bit)
            green |= ((value >> 1) & 1) << (7 - bit)
            blue |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette[label] = (red, green, blue)
    return palette


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str, suffix: Optional[str] = None) -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    The temporary name keeps the real extension (libraries pick the format from it)
    and starts with ``.tmp-`` so that :func:`is_temporary` can recognise leftovers of a
    killed job. On an exception the temporary file is removed.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    ext = suffix if suffix is not None else osp.splitext(path)[1]
    fd, tmp_path = tempfile.mkstemp(prefix='.tmp-', suffix=ext, dir=folder)
    os.close(fd)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; outputs are shared data (labels on a cluster),
        # so give them the mode a plain open() would: 0666 minus the umask.
        os.chmod(tmp_path, 0o666 & ~_current_umask())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_path)
        raise


def stem_of(path: str) -> str:
    """File name without folder and extension: the per-image key of every stage."""
    return osp.splitext(osp.basename(path))[0]


def plain_file_name(name: str) -> Optional[str]:
    """Why ``name`` (read from a user's file) is not a plain file name, or None.

    Output paths are built as ``<out_dir>/<name>``: a name that is absolute, holds
    a folder separator or is ``.``/``..`` would put the file elsewhere.
    """
    if not name or not name.strip():
        return 'it is empty'
    if '\x00' in name:
        return 'it holds a NUL byte'
    if osp.isabs(name) or name.startswith(('/', '\\')) or \
            (len(name) > 1 and name[1] == ':'):
        return 'it is an absolute path'
    if '/' in name or '\\' in name:
        return 'it holds a folder separator'
    if name in ('.', '..'):
        return 'it names a folder'
    return None


#: Endings a name listed in a split or tags file may carry: only these are stripped
#: (``000024.v2`` and ``2021.05.000003`` are names, not a name and a suffix).
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def listed_image_name(text: str) -> str:
    """The image name a line of a split or tags file gives, or raise.

    A listed name is the text itself (inner spaces and dots included) without a
    trailing image suffix of :data:`IMAGE_SUFFIXES`; ``000024.v2`` stays
    ``000024.v2``. Output files are named after it, so it must be a plain file
    name (:func:`plain_file_name`).

    Raises:
        ValueError: the reason, without the file (the caller names it).
    """
    name = text.strip()
    root, ext = osp.splitext(name)
    if ext.lower() in IMAGE_SUFFIXES and root:
        name = root
    problem = plain_file_name(name)
    if problem is not None:
        raise ValueError(f'{text.strip()!r} is not an image name: {problem} (list '
                         'names such as 2007_000032 or 2007_000032.jpg, never paths)')
    return name


def read_user_text(path: str) -> str:
    """A text file a user wrote (split file, tags, class list), as one string.

    UTF-8 with or without a byte-order mark (Excel's "CSV UTF-8" writes one: it
    must not become part of the first name). Universal newlines, so CRLF files
    read as LF ones.

    Raises:
        FileNotFoundError / ValueError: naming ``path``.
    """
    if osp.isdir(path):
        raise ValueError(f'{path}: is a folder, not a text file')
    try:
        with open(path, encoding='utf-8-sig') as handle:
            return handle.read()
    except UnicodeDecodeError as err:
        raise ValueError(f'{path}: not UTF-8 text ({err}); save it as UTF-8') \
            from err


def image_size(path: str) -> tuple:
    """``(H, W)`` of an image as every loader of mars_mm and mmseg sees it.

    mmcv decodes images in colour with their EXIF orientation applied (a photo
    taken upright by a phone is stored sideways with an orientation tag), so a
    label or mask of that image has the rotated size. Only the header is read.

    Raises:
        FileNotFoundError / ValueError: naming ``path`` when it is missing or not
        a readable image.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'image not found: {path}')
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f'{path}: cannot read image ({err})') from err
    if orientation in (5, 6, 7, 8):  # a quarter turn (with or without a mirror)
        width, height = height, width
    return height, width


#: The EXIF tag holding an image's orientation.
_EXIF_ORIENTATION = 0x0112
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def label_size(path: str) -> tuple:
    """``(H, W)`` of a label map (mask, pseudo label) as it is decoded.

    Label maps are decoded unchanged (no EXIF rotation: mmseg's
    ``LoadAnnotations``, :func:`load_label_png`), so this is the stored size; for a
    PNG it is read from the 24-byte header (a fifth of the time ``PIL`` takes).

    Raises:
        FileNotFoundError / ValueError: naming ``path``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'label file not found: {path}')
    with open(path, 'rb') as handle:
        head = handle.read(24)
    if head[:8] == _PNG_SIGNATURE and head[12:16] == b'IHDR':
        width, height = int.from_bytes(head[16:20], 'big'), \
            int.from_bytes(head[20:24], 'big')
        return height, width
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f'{path}: cannot read label map ({err})') from err


def check_output_dir(path: str) -> None:
    """Raise naming ``path`` when it exists and is not a folder (an output folder
    given as an existing file: ``os.makedirs`` only says "File exists")."""
    if osp.exists(path) and not osp.isdir(path):
        raise ValueError(f'{path}: the output folder is a file; give a folder (it is '
                         'created if missing)')


def make_output_dir(path: str) -> str:
    """Create the output folder ``path`` (and its parents); see
    :func:`check_output_dir`."""
    check_output_dir(path)
    os.makedirs(path, exist_ok=True)
    return path


def is_temporary(filename: str) -> bool:
    """Whether ``filename`` is a leftover of :func:`atomic_write`."""
    return osp.basename(filename).startswith('.tmp-')


@functools.lru_cache(maxsize=1)
def _flat_palette() -> tuple:
    return tuple(voc_palette().flatten().tolist())


def save_label_png(path: str, label: np.ndarray, palette: bool = True,
                   compress_level: int = 1) -> None:
    """Write a ``(H, W)`` label map of values 0..255 as a (palette) PNG, atomically.

    zlib level 1 is the default: label maps are long runs, so higher levels make
    files barely smaller but cost about 3x the time (measured on COCO-size masks:
    a third of the COCO converter's per-image time at PIL's default level).
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f'{path}: a label map must be 2-D, got shape {label.shape}')
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError(f'{path}: label values must lie in 0..255, got '
                         f'{label.min()}..{label.max()}')
    image = Image.fromarray(label.astype(np.uint8), mode='P' if palette else 'L')
    if palette:
        image.putpalette(_flat_palette())
    with atomic_write(path) as tmp:
        image.save(tmp, format='PNG', compress_level=compress_level)


def load_label_png(path: str) -> np.ndarray:
    """Read a label PNG (palette or grey) as ``(H, W)`` uint8 class indices.

    Raises:
        FileNotFoundError: naming ``path`` when it does not exist.
        ValueError: naming ``path`` when it is not a readable single-channel PNG.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'label file not found: {path}')
    try:
        with Image.open(path) as image:
            if image.mode not in ('P', 'L', 'I', 'I;16'):
                raise ValueError(f'{path}: expected a palette or grey label PNG, '
                                 f'got mode {image.mode!r}')
            array = np.array(image)
    except (OSError, SyntaxError) as err:
        raise ValueError(f'{path}: cannot read label PNG ({err})') from err
    if array.max(initial=0) > 255:
        raise ValueError(f'{path}: label values above 255')
    return array.astype(np.uint8)


def save_array(path: str, array: np.ndarray, **extra: np.ndarray) -> None:
    """Atomically save ``.npy`` (one array) or compressed ``.npz`` (with extras)."""
    if path.endswith('.npz'):
        with atomic_write(path) as tmp:
            np.savez_compressed(tmp, data=array, **extra)
    else:
        if extra:
            raise ValueError(f'{path}: extra arrays need a .npz file')
        with atomic_write(path) as tmp:
            np.save(tmp, array)


def save_with(path: str, writer: Callable[[str], None]) -> None:
    """Atomically create ``path`` with ``writer(tmp_path)`` (any format)."""
    with atomic_write(path) as tmp:
        writer(tmp)


def save_text(path: str, text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``: split files, JSON, CSV."""
    with atomic_write(path) as tmp:
        with open(tmp, 'w', encoding='utf-8', newline='') as handle:
            handle.write(text)


def read_rgb(path: str) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB image, decoded as ``LoadImageFromFile`` decodes it.

    mmcv's default (OpenCV) backend is used so that the CRF of every stage sees the
    pixels the networks were fed.

    Raises:
        FileNotFoundError: naming ``path`` when it does not exist.
        ValueError: naming ``path`` when it cannot be decoded.
    """
    import mmcv
    if not path or not osp.isfile(path):
        raise FileNotFoundError(f'image not found: {path}')
    image = mmcv.imread(path, channel_order='rgb')
    if image is None:
        raise ValueError(f'{path}: cannot decode image')
    return image
