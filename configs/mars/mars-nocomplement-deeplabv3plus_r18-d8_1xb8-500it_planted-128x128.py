# Ablation row (b): debiased labels WITHOUT complementing: removed pixels (254)
# are ignored like 255; no teacher is built. Same network and schedule as the rest.
_base_ = ['./mars-deeplabv3plus_r18-d8_1xb8-500it_planted-128x128.py']
model = dict(biased_pixels='ignore')
custom_hooks = [hook for hook in _base_.custom_hooks
                if hook['type'] != 'EMATeacherHook']
