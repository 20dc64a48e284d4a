# CPU-sized DeepLabV3+ on the planted-bias dataset: the BASELINE of the toy Table-6
# ablation (plain mmseg EncoderDecoder trained on Stage 1's baseline pseudo labels).
# Half-width ResNetV1c-18 (base_channels 32), random init, output stride 8, crop 128,
# batch 8, 500 iterations: about 4 minutes on one CPU core. The MARS variants
# (mars-*_planted-128x128.py) inherit this file and change only the segmentor.
_base_ = [
    'mmseg::_base_/models/deeplabv3plus_r50-d8.py',
    '../_base_/datasets/planted_bias.py',
    '../_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py',
]
crop_size = (128, 128)
num_classes = 7  # background + the generator's six classes (data_root/meta.json)
# Single-process CPU training: BN, not SyncBN.
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,  # random init: no ImageNet weights for a synthetic toy set
    backbone=dict(depth=18, stem_channels=32, base_channels=32, norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=256,
        c1_in_channels=32,
        channels=128,
        c1_channels=32,
        # mmseg's (1, 12, 24, 36) are for 64x64 features (crop 512 at stride 8);
        # a 128 crop gives 16x16 features, so the rates shrink by 4.
        dilations=(1, 3, 6, 9),
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        # the MARS configs' loss normalisation (sum / #labelled pixels), so that
        # baseline and MARS differ only in the labels and the complementing
        loss_decode=dict(avg_non_ignore=True)),
    auxiliary_head=dict(
        in_channels=128, channels=64, num_classes=num_classes, norm_cfg=norm_cfg,
        loss_decode=dict(avg_non_ignore=True)))

# Stage 1's pseudo labels: the dataset base's pseudo_label_dir (any stage's labels
# by train_dataloader.dataset.pseudo_label_dir)
train_dataloader = dict(batch_size=8, num_workers=1)
val_dataloader = dict(batch_size=1, num_workers=1)
test_dataloader = val_dataloader
val_evaluator = dict(type='SegFPFNMetric', _delete_=True)
test_evaluator = val_evaluator

# Test-time: scales (1.0, 0.5, 1.5, 2.0) + flip from the dataset base's
# tta_pipeline, softmax averaged, then dense CRF (tools/test.py --tta).
tta_model = dict(type='CRFSegTTAModel', crf=dict())

# mmseg's SGD + poly schedule, shortened to 500 iterations at lr 0.05
max_iters = 500
optimizer = dict(lr=0.05)
optim_wrapper = dict(optimizer=optimizer)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
# kill-safe checkpoints, and the random states a resumed run continues
# (docs/en/reliability.md, "Checkpoints and resuming")
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', interval=max_iters,
                    max_keep_ckpts=1),
    random_state=dict(type='RandomStateHook'))
randomness = dict(seed=0)
