"""tools/uss/extract_features.py: resume with other settings, scales."""
import os
import os.path as osp

import pytest

from tests.test_bad_inputs.harness import Case

TOOL = 'uss/extract_features.py'


def _export(sb, *extra, out=None):
    return sb.tool(TOOL, sb.world.config('uss'), '--out', out or sb.path('emb'),
                   '--device', 'cpu', *extra)


def other_scales(sb):
    return _export(sb, '--scales', '1.0', '0.5', out=sb.copy(sb.world.emb, 'emb'))


def other_config(sb):
    return _export(sb, '--cfg-options', 'model.backbone.backbone.bins=4',
                   out=sb.copy(sb.world.emb, 'emb'))


def same_settings(sb):
    emb = sb.copy(sb.world.emb, 'emb')
    os.remove(osp.join(emb, '000002.npy'))
    return _export(sb, out=emb)


def _rewrote_one(sb, result):
    assert 'wrote 1 embeddings' in result.stdout, result.stdout


def scales_zero(sb):
    return _export(sb, '--scales', '0')


CASES = [
    Case('resume-other-scales', TOOL, 'silent 7',
         'rerun into the same `--out` with other `--scales`', other_scales, 1,
         r"emb/job_settings\.json.*scales"),
    Case('resume-other-config', TOOL, 'silent 7',
         'rerun into the same `--out` with another model setting', other_config, 1,
         r"emb/job_settings\.json.*config"),
    Case('resume-same-settings', TOOL, 'handled',
         'rerun with the same settings after one file was lost', same_settings, 0,
         r"exit 0", _rewrote_one),
    Case('scales-zero', TOOL, 'new unclear', '`--scales 0`', scales_zero, 2,
         r"--scales.*positive"),
]


@pytest.mark.parametrize('case', CASES, ids=lambda case: case.name)
def test_bad_input(case, sandbox):
    case.verify(sandbox, case.run(sandbox))
