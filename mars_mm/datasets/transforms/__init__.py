"""Registration imports only."""
from .debias_pseudo_label import DebiasPseudoLabel  # noqa: F401
from .load_checked_annotations import LoadCheckedAnnotations  # noqa: F401
from .load_image_tags import LoadImageTags  # noqa: F401
from .load_pseudo_label import LoadPseudoLabel  # noqa: F401
from .pack_wsss_inputs import PackWSSSInputs  # noqa: F401
from .random_rescale import RandomRescale  # noqa: F401
