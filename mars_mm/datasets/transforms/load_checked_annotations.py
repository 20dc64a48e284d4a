"""LoadCheckedAnnotations: mmseg's mask loader with validation."""
import mmcv
import numpy as np
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations

from mars_mm.registry import TRANSFORMS

from .load_pseudo_label import check_label


@TRANSFORMS.register_module()
class LoadCheckedAnnotations(LoadAnnotations):
    """Load the ground-truth mask like ``LoadAnnotations``, then validate it.

    A missing, truncated or corrupt mask, a mask with more than one channel (an
    RGB colour mask), a 16-bit mask holding values above 255 (mmseg casts them to
    uint8, so 257 would silently become 1), a mask whose size differs from the
    image, or one holding a value outside ``0..num_classes-1`` other than 254/255,
    raises an error naming the mask file instead of training or scoring on
    garbage.

    Without a ``seg_map_path`` (a test split without masks, or mmseg's
    ``inference_model``/``MMSegInferencer``, which feed bare images through the
    config's ``test_pipeline`` and strip only mmseg's own ``LoadAnnotations``) the
    transform passes the results through unchanged.

    Required Keys:

    - seg_map_path (optional: without it nothing is loaded)
    - img_shape (optional, checked against the mask)
    - num_classes (optional; set by the WSSS datasets)

    Modified Keys:

    - seg_fields

    Added Keys:

    - gt_seg_map

    Args:
        **kwargs: ``mmseg.datasets.transforms.LoadAnnotations`` arguments.
    """

    def transform(self, results: dict) -> dict:
        """Load and check the mask."""
        if not results.get('seg_map_path'):
            return results
        try:
            results = super().transform(results)
        except FileNotFoundError as err:
            raise FileNotFoundError(f'mask not found: {results["seg_map_path"]}'
                                    ) from err
        except (OSError, SyntaxError, ValueError) as err:
            if results['seg_map_path'] in str(err):
                raise  # our own checks name the file already
            # PIL's messages ("image file is truncated") do not name the file
            raise ValueError(f'{results["seg_map_path"]}: cannot read the mask '
                             f'({err})') from err
        check_label(results['gt_seg_map'], results['seg_map_path'],
                    results.get('num_classes'),
                    results.get('ori_shape', results.get('img_shape')))
        return results

    def _load_seg_map(self, results: dict) -> None:
        """mmseg 1.2.2's ``LoadAnnotations._load_seg_map``, checking the decoded
        array before its cast to uint8."""
        path = results['seg_map_path']
        img_bytes = fileio.get(path, backend_args=self.backend_args)
        decoded = mmcv.imfrombytes(img_bytes, flag='unchanged',
                                   backend=self.imdecode_backend)
        if decoded is None:
            raise ValueError(f'{path}: cannot decode the mask')
        decoded = decoded.squeeze()
        if decoded.ndim != 2:
            raise ValueError(
                f'{path}: a label map must have a single channel (palette or grey '
                f'PNG), this one has shape {decoded.shape} ({decoded.shape[-1]} '
                'channels: a colour mask saved as RGB?)')
        if decoded.dtype != np.uint8 and decoded.size and (
                decoded.max() > 255 or decoded.min() < 0):
            raise ValueError(
                f'{path}: {decoded.dtype} label map holding values '
                f'{int(decoded.min())}..{int(decoded.max())} (e.g. '
                f'{int(decoded.max())}); label values must lie in 0..255 '
                '(a 16-bit PNG would be cast to uint8 and wrap around)')
        gt_semantic_seg = decoded.astype(np.uint8)
        if self.reduce_zero_label is None:
            self.reduce_zero_label = results['reduce_zero_label']
        assert self.reduce_zero_label == results['reduce_zero_label'], \
            'Initialize dataset with `reduce_zero_label` as ' \
            f'{results["reduce_zero_label"]} but when load annotation ' \
            f'the `reduce_zero_label` is {self.reduce_zero_label}'
        if self.reduce_zero_label:
            gt_semantic_seg[gt_semantic_seg == 0] = 255
            gt_semantic_seg = gt_semantic_seg - 1
            gt_semantic_seg[gt_semantic_seg == 254] = 255
        if results.get('label_map', None) is not None:
            copy = gt_semantic_seg.copy()
            for old_id, new_id in results['label_map'].items():
                gt_semantic_seg[copy == old_id] = new_id
        results['gt_seg_map'] = gt_semantic_seg
        results['seg_fields'].append('gt_seg_map')

