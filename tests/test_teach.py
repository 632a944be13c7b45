"""`dcf-teach teach` end to end on a tiny procedural dataset with a tiny budget: killed after the model stage, the
rerun continues without redoing it and writes every artefact; a third run redoes nothing; a deleted bank and site are
rebuilt and nothing else is."""
import json, os, signal, subprocess, time
from pathlib import Path

import pytest

from conftest import DCF

ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '2', 'OMP_WAIT_POLICY': 'PASSIVE'}
TINY = ['--budget', '0.2', '--encoder-steps', '4', '--oracle-minutes', '0.2', '--n-bench', '6', '--tune-images', '2', '--device', 'cpu',
        '-p', 'n_steps', '5', '-p', 'curve_images', '2', '-p', 'n_interp', '1', '-p', 'n_quiz', '4']


def _teach(data, out, timeout=900):
    r = subprocess.run([DCF, 'teach', str(data), '--out', str(out), *TINY], capture_output=True, text=True, timeout=timeout, env=ENV)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr[-4000:]}"
    return json.loads((out / 'teach.json').read_text()), r


def _status(t): return {s['stage']: s['status'] for s in t['stages']}


def _kill_after(args, stage_file: Path, timeout=600):
    "Start `dcf-teach ARGS`; SIGKILL its process group as soon as `stage_file` says the stage is done."
    p = subprocess.Popen([DCF, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, start_new_session=True)
    t0 = time.monotonic()
    try:
        while True:
            assert p.poll() is None, f"the run ended (exit {p.returncode}) before {stage_file.name} said done"
            assert time.monotonic() - t0 < timeout, f"{stage_file} not done after {timeout} s"
            try:
                if json.loads(stage_file.read_text()).get('status') == 'done': break
            except (OSError, ValueError): pass
            time.sleep(0.05)
        os.killpg(p.pid, signal.SIGKILL)
    finally:
        if p.poll() is None: os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    assert p.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_teach_end_to_end_resumes_and_skips(tmp_path):
    from dcf_teach.data.kikibouba import make_kikibouba
    data, out = make_kikibouba(tmp_path / 'data', n_per_class=60, size=32, seed=7, progress=False), tmp_path / 'taught'
    # 1. killed right after the model stage (in the oracle stage)
    _kill_after(['teach', data, '--out', out, *TINY], out / 'stages' / 'model.json')
    assert json.loads((out / 'stages' / 'oracle.json').read_text())['status'] == 'running'
    # 2. the rerun continues: the model is not trained again, every later stage runs
    t, r = _teach(data, out)
    assert _status(t) == {'data': 'skipped', 'model': 'skipped', 'oracle': 'done', 'bank': 'done', 'tune': 'done',
                          'bench': 'done', 'deck': 'done', 'site': 'done', 'explore': 'done'}, r.stderr[-3000:]
    assert 'model: up to date, skipped' in r.stderr and 'oracle: running (continuing an interrupted run)' in r.stderr
    for f in ('data_check.txt', 'model/dcf_teach.json', 'model/unet', 'oracle/oracle.json', 'bank.safetensors', 'bank.json',
              'bench.json', 'bench_grid.png', 'deck/deck.ipynb', 'deck/metrics.json', 'deck/quiz/index.html',
              'site/index.html', 'explore.ipynb'):
        assert (out / f).exists(), f
    # a flip GIF for every counterfactual the deck shows (flips to the target); a tiny model may show none
    assert len(list((out / 'deck' / 'media').glob('flip_*.gif'))) == json.loads((out / 'deck' / 'metrics.json').read_text())['n_shown']
    # the artefacts are the individual commands' own: they load with the library's loaders
    from dcf_teach.engine.models import load_components
    from dcf_teach.judge.oracle import load_oracle
    from dcf_teach.engine.bank import load_bank
    from dcf_teach.study.site import find_decks
    c, o, b = load_components(out / 'model'), load_oracle(out / 'oracle'), load_bank(out / 'bank')
    assert b.classes == o.classes == ['bouba', 'kiki'] and c.resolution == 32 and find_decks(out / 'deck')[0].metrics['n_images'] == 6
    assert json.loads((out / 'model' / 'dcf_teach.json').read_text()).get('edit_defaults'), 'the tune stage wrote no edit_defaults'
    bench = json.loads((out / 'bench.json').read_text())
    assert t['figures']['success_ratio'] == bench['success_ratio'] and 'control_success_ratio' in bench and 'gt_flip_rate' in bench
    assert 'bench: success' in r.stdout and 'bouba→kiki: 3 images' in r.stdout and 'site: ' in r.stdout
    # 3. nothing changed: nothing is redone
    t3, r3 = _teach(data, out)
    assert set(_status(t3).values()) == {'skipped'}, _status(t3)
    assert [s['seconds'] for s in t3['stages']] == [0.0] * 9 and len(t3['runs']) == 3
    # 4. a deleted bank and site are rebuilt; the bank's content is the same, so nothing that reads it runs again
    for f in ('bank.safetensors', 'bank.json'): (out / f).unlink()
    import shutil; shutil.rmtree(out / 'site')
    t4, _ = _teach(data, out)
    assert [s for s, v in _status(t4).items() if v == 'done'] == ['bank', 'site'], _status(t4)
    # the explore notebook's one call opens the explorer on the folder
    from dcf_teach.teach import explore
    ex = explore(out, sync=True)
    assert ex.error is None and ex.oracle is not None and len(ex.dataset) == 12
