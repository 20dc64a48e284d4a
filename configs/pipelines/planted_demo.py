# `make demo`: the planted pipeline (planted.py) cut to fit 10 minutes on 2 CPU
# cores, sizes chosen so that the table still shows what MARS does
# (README.md, "Demo"):
#   python tools/mars/run_pipeline.py configs/pipelines/planted_demo.py
_base_ = ['./planted.py']
work_dir = 'work_dirs/demo'
dataset = dict(generate=dict(preset='default', num_train=200, num_val=60))
cam_train = dict(schedule=dict(max_epochs=30))
seg_baseline = dict(schedule=dict(max_iters=300))
seg_mars = dict(schedule=dict(max_iters=300))
