"""mars_mm: MARS (ICCV 2023) biased-object removal for WSSS on MMSegmentation 1.x.

Importing the package applies the compatibility fixes (``mars_mm.utils.compat``) and
registers every mars_mm module into mmseg's registries.
"""
from .utils.compat import apply_all as _apply_compat_fixes
from .version import __version__

_apply_compat_fixes()

from . import datasets, engine, evaluation, models  # noqa: E402,F401  (registration)

__all__ = ['__version__']
