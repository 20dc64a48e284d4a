# MARS Stage 3 on the planted-bias dataset (tools/dataset_converters/planted_bias.py).
# An offline-job config (no `model`):
#   python tools/mars/debias.py configs/mars/debias_planted.py \
#       --cfg-options debias.pseudo_label_dir=... debias.embedding_dir=...
_base_ = ['../_base_/datasets/planted_bias.py', '../_base_/debias/mars.py']

work_dir = 'work_dirs/mars/debias_planted_bias'
debias = dict(
    pseudo_label_dir='work_dirs/pseudo_labels/planted_bias',
    embedding_dir='work_dirs/embeddings/planted_bias',
    # [decision] weak (CPU-trained) embeddings need dataset mean-centring
    centring='dataset')
