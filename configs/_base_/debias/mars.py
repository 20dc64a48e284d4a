# MARS Stage 3 settings (docs/en/method.md, Stage 3). The values are the defaults of
# DebiasSettings (mars_mm/debias/settings.py), the one source of them, restated here
# so that configs and --cfg-options can name them; tests/test_debias/test_settings.py
# keeps the two equal. Inherited by configs/mars/debias_*.py, which add the dataset
# and the input folders.
debias = dict(
    # the split (and its img_tags) comes from train_infer_dataloader.dataset or
    # train_dataloader.dataset unless `dataset=dict(...)` is given here
    pseudo_label_dir=None,  # baseline pseudo-label PNGs (Stage 1, RS+EPM, ...)
    embedding_dir=None,  # Stage 2 embeddings: <stem>.npy, float16 (D, h, w)
    k_fg=2,  # k-means clusters per (image, foreground class)
    k_bg=2,  # clusters for the background of each image
    alpha=0.4,  # share of each class's centroids (farthest from bg) forming V_c
    centring='none',  # [decision] 'dataset': subtract the mean embedding first
    kmeans_iters=30,
    seed=0,
    # [decision] CRF on [(1 - M)^gamma, M]; or dict(type='threshold', threshold=0.5)
    refinement=dict(
        type='crf',
        gamma=1.0,
        threshold=0.5,
        # the CRF runs on the foreground's box + 32 px (None: the whole image, the
        # paper's): 2.4x less CPU, same decision on 99.98% of foreground pixels
        crop_margin=32,
        crf=dict(num_iters=10, gaussian_sxy=1.0, gaussian_compat=3.0,
                 bilateral_sxy=67.0, bilateral_srgb=3.0, bilateral_compat=4.0)),
    tag_source='img_tags',  # C_I: the dataset's img_tags ('gt' / 'pseudo_label' also)
    embedding_stride=8,
    num_workers=2,  # processes of the centroid and label passes
    report=dict(enabled=True, gallery=8, dpi=150))
