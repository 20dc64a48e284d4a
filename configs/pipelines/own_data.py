# MARS on your own data (README.md, "MARS on your own data"): a folder of images, a
# tags file (CSV or JSON: image -> class names), classes.txt, optional masks/ for
# scoring and optional train.txt / val.txt (TaggedImageDataset):
#   python tools/mars/run_pipeline.py configs/pipelines/own_data.py \
#       --data-root data/my_dataset
# The stages are the planted CPU recipes (planted.py) with the dataset swapped in
# every stage config (`dataset.overrides`) and the class counts read from
# classes.txt. Without masks the table shows what can be measured (the classifier's
# tag scores, the share of each class's pixels MARS removed) and Stage 4 trains
# without validation.
_base_ = ['./planted.py']
work_dir = 'work_dirs/pipelines/own_data'
dataset = dict(
    _delete_=True,
    config='configs/_base_/datasets/tagged_images.py',
    data_root='data/my_dataset',
    num_classes='auto',
    biased_classes=[],  # class names you suspect of bias: their IoU gets a column
    masks='auto',  # 'auto': scored when <data_root>/masks exists
    # every stage config's dataloaders read TaggedImageDataset instead
    overrides=dict(type='TaggedImageDataset', tag_file='tags.csv',
                   classes_file='classes.txt', img_dir='images', mask_dir='masks'),
    ann_files=dict(train='train.txt', val='val.txt'))
