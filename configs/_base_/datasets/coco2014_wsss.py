# COCO 2014 for weak supervision (81 classes): train2014 (tags from the converter's
# tag file), val2014 (40,504 images). Prepare with tools/dataset_converters/coco_wsss.py
# (docs/en/datasets.md). Pipelines and loader settings: wsss_pipelines.py.
_base_ = ['./wsss_pipelines.py']
dataset_type = 'WSSSCOCODataset'
data_root = 'data/coco2014'
pseudo_label_dir = 'work_dirs/pseudo_labels/coco2014'

train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='train2014',
                         seg_map_path='SegmentationClass/train2014'),
        ann_file='ImageSets/train2014.txt',
        tag_file='tags/train2014.json',
        pseudo_label_dir=pseudo_label_dir))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='val2014', seg_map_path='SegmentationClass/val2014'),
        ann_file='ImageSets/val2014.txt',
        tag_file='tags/val2014.json'))
test_dataloader = val_dataloader
train_infer_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='train2014',
                         seg_map_path='SegmentationClass/train2014'),
        ann_file='ImageSets/train2014.txt',
        tag_file='tags/train2014.json'))
