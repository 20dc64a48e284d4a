# Your own data (TaggedImageDataset): a folder of images, a tags file (CSV or JSON:
# image -> class names), classes.txt, optional masks/ for scoring, optional split
# files (README.md, "MARS on your own data"). The pipelines are the planted base's
# CPU-sized ones (each image at its own scale, 128-pixel crops): change crop_size
# and the pipelines for large photos, or start from voc12aug_wsss.py.
_base_ = ['./planted_bias.py']
dataset_type = 'TaggedImageDataset'
data_root = 'data/my_dataset'
pseudo_label_dir = 'work_dirs/pseudo_labels/my_dataset'
dataset_fields = dict(
    type=dataset_type,
    data_root=data_root,
    tag_file='tags.csv',
    classes_file='classes.txt',
    img_dir='images',
    mask_dir='masks')
train_dataloader = dict(
    dataset=dict(dataset_fields, ann_file='train.txt',
                 pseudo_label_dir=pseudo_label_dir))
val_dataloader = dict(dataset=dict(dataset_fields, ann_file='val.txt'))
test_dataloader = val_dataloader
train_infer_dataloader = dict(dataset=dict(dataset_fields, ann_file='train.txt'))
