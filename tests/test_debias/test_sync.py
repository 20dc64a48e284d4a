"""Ranks without a process group synchronise on files."""
import os
import time

import pytest

from mars_mm.debias.sync import sync_after, wait_for_files


def test_wait_for_files(tmp_path):
    path = tmp_path / 'done'
    path.write_text('')
    wait_for_files([str(path)])
    sync_after([str(path)])  # no process group: waits for the files only
    with pytest.raises(TimeoutError, match='missing'):
        wait_for_files([str(tmp_path / 'missing')], timeout=0.05, poll=0.01)
    old = time.time() - 100
    os.utime(path, (old, old))
    with pytest.raises(TimeoutError, match='done'):  # a previous run's file
        wait_for_files([str(path)], newer_than=old + 50, timeout=0.05, poll=0.01)
