"""The whole MARS pipeline from one config: ``tools/mars/run_pipeline.py``.

* :mod:`.config`: reading and checking a pipeline config (``configs/pipelines/``);
* :mod:`.context`: paths, the dataset, each stage config as its tool reads it, and
  the command line of each tool under the chosen launcher;
* :mod:`.stages`, :mod:`.seg_stages`: one definition per stage (inputs, outputs,
  settings, commands, completeness);
* :mod:`.stamps`: what settings a stage's outputs were made with;
* :mod:`.runner`: skip / resume / rerun, launching, dry run, progress;
* :mod:`.results`, :mod:`.table`: evaluation of every stage's outputs and the
  results table (``results.md`` + ``results.json``).
"""
from .config import STAGES, TEST_MODES, PipelineConfigError, load_pipeline_config
from .runner import StageFailed, run_pipeline

__all__ = ['STAGES', 'TEST_MODES', 'PipelineConfigError', 'StageFailed',
           'load_pipeline_config', 'run_pipeline']
