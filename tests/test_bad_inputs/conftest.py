import os.path as osp

import pytest

from tests.test_bad_inputs.world import Sandbox, build_world

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='package')
def world(tmp_path_factory):
    """The 24-image planted world of :mod:`tests.test_bad_inputs.world` (read-only)."""
    return build_world(str(tmp_path_factory.mktemp('world')), REPO)


@pytest.fixture
def sandbox(world, tmp_path):
    return Sandbox(world, str(tmp_path / 'case'))
