"""Shared pytest set-up: small thread pools (2-core CI) and the repo root path."""
import os
import os.path as osp

import pytest

# Tests run many small models; one intra-op thread each avoids oversubscription.
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('MKL_NUM_THREADS', '1')

import torch  # noqa: E402

torch.set_num_threads(1)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture
def repo_root() -> str:
    return REPO_ROOT
