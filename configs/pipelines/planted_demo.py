# `make demo`: the planted pipeline (planted.py) cut to 5.5 minutes on 2 idle CPU
# cores (README.md, "The whole pipeline in one command": time, seeds, what it shows):
#   python tools/mars/run_pipeline.py configs/pipelines/planted_demo.py
# Half of planted.py's images, and the two trainings, the largest stages in the
# driver's CPU time per stage, cut most: the CAM classifier to 20 of 30 epochs (tag
# mAP 99.97 on val at 200 images) and each DeepLabV3+ to 200 of 500 iterations.
_base_ = ['./planted.py']
work_dir = 'work_dirs/demo'
dataset = dict(generate=dict(preset='default', num_train=200, num_val=60))
cam_train = dict(schedule=dict(max_epochs=20))
seg_baseline = dict(schedule=dict(max_iters=200))
seg_mars = dict(schedule=dict(max_iters=200))
