import os
import os.path as osp
from functools import partial

import numpy as np
import pytest

from mars_mm.utils.io import save_array
from mars_mm.utils.offline import get_dist_info, run_offline_job, shard


def _square(out_dir, item):
    save_array(osp.join(out_dir, f'{item}.npy'), np.full(3, item * item))
    return item


def _square_until(out_dir, stop_at, item):
    if item == stop_at:
        raise KeyboardInterrupt('job killed')
    return _square(out_dir, item)


def test_shards_partition_the_items():
    items = list(range(11))
    parts = [shard(items, rank, 3) for rank in range(3)]
    assert sorted(sum(parts, [])) == items
    assert all(abs(len(a) - len(b)) <= 1 for a in parts for b in parts)
    with pytest.raises(ValueError):
        shard(items, 3, 3)


def test_dist_info_from_environment(monkeypatch):
    monkeypatch.setenv('RANK', '1')
    monkeypatch.setenv('WORLD_SIZE', '4')
    assert get_dist_info() == (1, 4)
    monkeypatch.delenv('RANK')
    monkeypatch.delenv('WORLD_SIZE')
    monkeypatch.setenv('SLURM_PROCID', '2')
    monkeypatch.setenv('SLURM_NTASKS', '3')
    assert get_dist_info() == (2, 3)


@pytest.mark.parametrize('num_workers', [0, 2])
def test_killed_job_resumes_to_identical_outputs(tmp_path, num_workers, monkeypatch):
    for key in ('RANK', 'WORLD_SIZE', 'SLURM_PROCID', 'SLURM_NTASKS'):
        monkeypatch.delenv(key, raising=False)
    items = list(range(8))
    reference, resumed = str(tmp_path / 'ref'), str(tmp_path / 'resumed')
    os.makedirs(resumed)
    run_offline_job(items, partial(_square, reference),
                    lambda i: osp.join(reference, f'{i}.npy'), num_workers=num_workers)
    # A leftover temporary file of an earlier crash must be cleaned up.
    open(osp.join(resumed, '.tmp-crash.npy'), 'wb').close()
    output = partial(lambda d, i: osp.join(d, f'{i}.npy'), resumed)
    with pytest.raises(KeyboardInterrupt):
        run_offline_job(items, partial(_square_until, resumed, 5), output)
    done_before = sorted(os.listdir(resumed))
    assert done_before == [f'{i}.npy' for i in range(5)]
    processed = run_offline_job(items, partial(_square, resumed), output,
                                num_workers=num_workers)
    assert processed == [5, 6, 7]  # finished items are skipped
    assert sorted(os.listdir(resumed)) == sorted(os.listdir(reference))
    for name in os.listdir(reference):
        np.testing.assert_array_equal(np.load(osp.join(reference, name)),
                                      np.load(osp.join(resumed, name)))


def test_ranks_write_disjoint_outputs(tmp_path, monkeypatch):
    items = list(range(7))
    seen = []
    for rank in range(2):
        monkeypatch.setenv('RANK', str(rank))
        monkeypatch.setenv('WORLD_SIZE', '2')
        seen += run_offline_job(items, partial(_square, str(tmp_path)),
                                lambda i: str(tmp_path / f'{i}.npy'))
    assert sorted(seen) == items


@pytest.mark.parametrize('num_workers', [0, 2])
def test_reduce_receives_every_result_in_order_and_nothing_is_kept(num_workers):
    seen = []
    kept = run_offline_job(list(range(7)), _times_itself, num_workers=num_workers,
                           resume=False, shard_over_ranks=False, reduce=seen.append,
                           show_progress=False)
    assert kept == [] and seen == [i * i for i in range(7)]


def _times_itself(value):
    return value * value


def test_claim_folder_refuses_what_the_job_did_not_make(tmp_path):
    import json

    from mars_mm.utils.offline import claim_folder
    settings = dict(settings=dict(seed=0, size=[8, 8]))
    claim_folder(str(tmp_path / 'new'), settings, ('meta.json',), 'a dataset')
    (tmp_path / 'empty').mkdir()
    claim_folder(str(tmp_path / 'empty'), settings, ('meta.json',), 'a dataset')
    theirs = tmp_path / 'theirs'
    theirs.mkdir()
    (theirs / 'train.txt').write_text('a\n')
    with pytest.raises(ValueError, match=r'theirs: the folder is not empty '
                       r'\(train\.txt\) and holds no meta\.json.*would be replaced'):
        claim_folder(str(theirs), settings, ('meta.json',), 'a dataset')
    (theirs / 'meta.json').write_text(json.dumps(dict(settings, extra=1)))
    claim_folder(str(theirs), settings, ('meta.json',), 'a dataset')  # the same
    with pytest.raises(ValueError, match=r'meta\.json: .* made with other settings '
                       r'\(settings\.seed: 0 -> 1\); it is not overwritten'):
        claim_folder(str(theirs), dict(settings=dict(seed=1, size=(8, 8))),
                     ('meta.json',), 'a dataset')
    with pytest.raises(ValueError, match='the output folder is a file'):
        claim_folder(str(theirs / 'train.txt'), settings, ('meta.json',), 'x')


def test_claim_folder_ignores_hidden_files(tmp_path):
    """A pipeline driver marks its stage folder (.stage.running.json) first."""
    from mars_mm.utils.offline import claim_folder
    (tmp_path / '.stage.running.json').write_text('{}')
    claim_folder(str(tmp_path), dict(seed=0), ('meta.json',), 'a dataset')
