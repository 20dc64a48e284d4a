# MARS Stage 4 at toy scale: the baseline's network and schedule, trained on the
# debiased labels (254 = removed) with EMA-teacher complementing + weighted CE.
# Row (c) of the toy Table-6 ablation (configs/mars/README.md).
_base_ = ['./deeplabv3plus_r18-d8_1xb8-500it_planted-128x128.py']
model = dict(
    type='MARSEncoderDecoder',
    biased_pixels='complement',
    weight_by_confidence=True,
    teacher_crf=None,  # dict() turns on CRF refinement of the teacher (slow on CPU)
    # the spec's sum(W * CE) / #non-ignored pixels: W is the per-pixel weight
    decode_head=dict(loss_decode=dict(avg_non_ignore=True)),
    auxiliary_head=dict(loss_decode=dict(avg_non_ignore=True)))
# The EMA teacher: built, updated after each optimizer step and kept in
# checkpoint['mars_teacher'] by the hook (the checkpoint's state_dict is the student).
# The paper's decay 0.999 gives the teacher a ~1000-iteration horizon on a
# ~40k-iteration schedule; on 500 iterations it would stay at its random init,
# so the horizon is scaled down to ~50 iterations (decay 0.98).
custom_hooks = [dict(type='EMATeacherHook', momentum=0.02), *_base_.custom_hooks]
train_dataloader = dict(  # Stage 3 output
    dataset=dict(pseudo_label_dir='work_dirs/mars/debias_planted_bias/labels'))
