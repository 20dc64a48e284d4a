# MARS Stage 3 on PASCAL VOC 2012 train_aug (10,582 images): debias the baseline
# pseudo labels with the USS embeddings. An offline-job config (no `model`):
#   python tools/mars/debias.py configs/mars/debias_voc12aug.py \
#       --cfg-options debias.pseudo_label_dir=... debias.embedding_dir=...
_base_ = ['../_base_/datasets/voc12aug_wsss.py', '../_base_/debias/mars.py']

work_dir = 'work_dirs/mars/debias_voc'
debias = dict(
    pseudo_label_dir='work_dirs/pseudo_labels/voc12aug',
    embedding_dir='work_dirs/embeddings/voc12aug')
