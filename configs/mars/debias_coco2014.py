# MARS Stage 3 on COCO 2014 train (~80k images with a tag). An offline-job config
# (no `model`):
#   python tools/mars/debias.py configs/mars/debias_coco2014.py \
#       --cfg-options debias.pseudo_label_dir=... debias.embedding_dir=...
# Pass 1 keeps only O(N) scalars in memory (centroids stream to disk), so 80k
# images fit easily; shard with torchrun ... --launcher pytorch.
_base_ = ['../_base_/datasets/coco2014_wsss.py', '../_base_/debias/mars.py']

work_dir = 'work_dirs/mars/debias_coco'
debias = dict(
    pseudo_label_dir='work_dirs/pseudo_labels/coco2014',
    embedding_dir='work_dirs/embeddings/coco2014',
    num_workers=8,
    report=dict(gallery=12))
