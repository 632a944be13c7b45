"""SIGKILL at seeded moments, then a rerun: outputs identical to an uninterrupted run, no half-written file under a
final name, training resumed from its checkpoint; two deck builds sharing one cache. The full figures (10+ kill
moments for each of five commands) come from `tools/reliability.py`; here one moment per command keeps CI short."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tools'))
from reliability import broken_files, compare_outputs, concurrent_decks, kill_trials  # noqa: E402

pytestmark = pytest.mark.faults


def test_broken_files_and_compare_see_damage(tmp_path):
    "The checks themselves: a cut JSON and a cut PNG are found; temporary names are not final names."
    import numpy as np
    from PIL import Image
    a, b = tmp_path / 'a', tmp_path / 'b'
    for d in (a, b):
        d.mkdir(); (d / 'm.json').write_text('{"x": 1, "seconds": 3.0}')
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(d / 'i.png')
    (b / 'm.json').write_text('{"x": 1, "seconds": 9.5}')            # a timing field may differ
    assert broken_files(a) == [] and compare_outputs(a, b, ['*']) == []
    (b / 'i.png').write_bytes((a / 'i.png').read_bytes()[:20])
    (b / 'm.json').write_text('{"x": 2')
    (b / '.m.json.abc.tmp.json').write_text('{"x"')                  # a temporary file: not a final name
    assert sorted(s.split(':')[0] for s in broken_files(b)) == ['i.png', 'm.json']
    assert len(compare_outputs(a, b, ['*'])) == 2


@pytest.mark.parametrize('command', ['deck', 'train-decoder'])
def test_kill_and_rerun_gives_identical_outputs(command, tmp_path):
    f = kill_trials([command], 1, seed=7, work=tmp_path, log=print)[command]
    assert 'error' not in f, f
    assert f['failed_reruns'] == 0 and f['half_written_files'] == 0, f['problems']
    assert f['identical'] == 1, f['problems']
    assert f['resumed'] >= f['checkpoint_at_kill']   # a rerun that found a checkpoint resumed from it, and said so


def test_two_deck_builds_share_one_cache(tmp_path):
    r = concurrent_decks(tmp_path, print)
    assert r['exit_codes'] == [0, 0] and r['identical'], r['problems']
