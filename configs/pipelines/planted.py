# The whole MARS chain on a generated planted-bias dataset, CPU recipes of every
# stage at their configs' full sizes (400 train / 100 val images of the preset,
# 30 CAM epochs, 500 segmentation iterations):
#   python tools/mars/run_pipeline.py configs/pipelines/planted.py
#   python tools/mars/run_pipeline.py configs/pipelines/planted.py \
#       --cfg-options dataset.generate.preset=textures --work-dir work_dirs/textures
# Stage 1: plain 7-layer CNN CAMs (4 scales + flip), pseudo labels (1 - max CAM)^2 +
# dense CRF; Stage 2: the training-free colour/texture embedding; Stage 3:
# configs/mars/debias_planted.py, plus the same debiasing on an oracle embedding;
# Stage 4: half-width DeepLabV3+ R-18 on the baseline and on the debiased labels
# (same loss normalisation). tools/analysis/planted_sweep.py runs it (through the
# oracle) on every preset of the family.
work_dir = 'work_dirs/pipelines/planted'
seed = 0
dataset = dict(
    config='configs/_base_/datasets/planted_bias.py',
    data_root=None,  # generated into <work_dir>/dataset
    generate=dict(preset='default'),
    num_classes='auto',  # the models' class counts follow the preset
    biased_classes='auto')  # meta.json's bias pairs
cam_train = dict(config='configs/cam/cam_plain7-d8_1xb16-30e_planted-128x128.py')
cams = dict(scales=[1.0, 0.5, 1.5, 2.0], flip=True)
pseudo_labels = dict(bg_power=2.0, crf=True, workers=2)
embeddings = dict(config='configs/uss/colourtexture-d8_planted.py')
debias = dict(config='configs/mars/debias_planted.py', report=True)
# an ideal embedding, same debias config, centring='none' (planted datasets only)
oracle = dict(enabled='auto', context_weight=0.5)
seg_baseline = dict(
    config='configs/mars/deeplabv3plus_r18-d8_1xb8-500it_planted-128x128.py')
seg_mars = dict(
    config='configs/mars/mars-deeplabv3plus_r18-d8_1xb8-500it_planted-128x128.py')
test = dict(modes=['ss', 'ms_flip', 'ms_flip_crf'])
