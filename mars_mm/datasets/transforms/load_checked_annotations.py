"""LoadCheckedAnnotations: mmseg's mask loader with validation."""
from mmseg.datasets.transforms import LoadAnnotations

from mars_mm.registry import TRANSFORMS

from .load_pseudo_label import check_label


@TRANSFORMS.register_module()
class LoadCheckedAnnotations(LoadAnnotations):
    """Load the ground-truth mask like ``LoadAnnotations``, then validate it.

    A missing, truncated or corrupt mask, a mask whose size differs from the image,
    or one holding a value outside ``0..num_classes-1`` other than 254/255, raises an
    error naming the mask file instead of training on garbage.

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
            # PIL's messages ("image file is truncated") do not name the file
            raise ValueError(f'{results["seg_map_path"]}: cannot read the mask '
                             f'({err})') from err
        check_label(results['gt_seg_map'], results['seg_map_path'],
                    results.get('num_classes'),
                    results.get('ori_shape', results.get('img_shape')))
        return results
