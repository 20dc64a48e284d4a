import pytest

from tests.debias_fixtures import make_scene


@pytest.fixture(scope='package')
def scene(tmp_path_factory):
    """The planted-context scene of :mod:`tests.debias_fixtures` (read-only)."""
    return make_scene(str(tmp_path_factory.mktemp('scene')))
