"""mars_mm's registries: mmseg's own, re-exported.

All mars_mm modules register into mmseg's registries (scope ``mmseg``), so configs
that inherit mmseg's bases (``default_scope='mmseg'``) find them by plain type name.
This file is the one place to change if mars_mm ever needs its own scope.
"""
from mmseg.registry import (
                            DATA_SAMPLERS,
                            DATASETS,
                            EVALUATOR,
                            HOOKS,
                            LOOPS,
                            METRICS,
                            MODEL_WRAPPERS,
                            MODELS,
                            OPTIM_WRAPPERS,
                            OPTIMIZERS,
                            PARAM_SCHEDULERS,
                            RUNNERS,
                            TASK_UTILS,
                            TRANSFORMS,
                            VISBACKENDS,
                            VISUALIZERS,
)

__all__ = [
    'DATA_SAMPLERS', 'DATASETS', 'EVALUATOR', 'HOOKS', 'LOOPS', 'METRICS',
    'MODEL_WRAPPERS', 'MODELS', 'OPTIM_WRAPPERS', 'OPTIMIZERS', 'PARAM_SCHEDULERS',
    'RUNNERS', 'TASK_UTILS', 'TRANSFORMS', 'VISBACKENDS', 'VISUALIZERS'
]
