# Runtime shared by every mars_mm config: mmseg's runtime plus mars_mm's modules.
_base_ = ['mmseg::_base_/default_runtime.py']

# Importing mars_mm applies its compatibility fixes and registers its modules into
# mmseg's registries, so plain type names such as 'MARSEncoderDecoder' resolve.
custom_imports = dict(imports=['mars_mm'], allow_failed_imports=False)
default_scope = 'mmseg'
# A NaN or infinite loss stops training with an error naming the iteration, and no
# checkpoint with non-finite weights is written (docs/en/reliability.md). A config
# setting its own custom_hooks keeps it: custom_hooks = [..., *_base_.custom_hooks]
custom_hooks = [dict(type='FiniteLossHook')]
