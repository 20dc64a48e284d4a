# Runtime shared by every mars_mm config: mmseg's runtime plus mars_mm's modules.
_base_ = ['mmseg::_base_/default_runtime.py']

# Importing mars_mm applies its compatibility fixes and registers its modules into
# mmseg's registries, so plain type names such as 'MARSEncoderDecoder' resolve.
custom_imports = dict(imports=['mars_mm'], allow_failed_imports=False)
default_scope = 'mmseg'
