"`dcf-teach generate` under `accelerate launch` with 2 CPU processes writes what one process writes, and resumes."
import json, shutil
from pathlib import Path
from conftest import run_cli

def _setup(tmp: Path):
    from dcf_teach.data.registry import resolve_dataset
    from dcf_teach.testing import dummy_deck_assets
    data = resolve_dataset('kikibouba', cache=tmp, n_per_class=20)
    mdir, odir = dummy_deck_assets(tmp)
    return ['--data', str(data.root), '--model', str(mdir), '--oracle', str(odir), '--split', 'all', '--limit', '7',
            '--batch-size', '2', '--n-steps', '6', '--t-skip-fractions', '0.8,0.5', '--device', 'cpu', '--cache', str(tmp)]

def _records(out: Path):
    return [{k: v for k, v in json.loads(l).items() if k != 'seconds'} for l in (out/'records.jsonl').read_text().splitlines()]

def test_generate_two_processes_equal_one(tmp_path):
    args = _setup(tmp_path)
    env = {'OMP_NUM_THREADS': '1'}
    run_cli('generate', *args, '--out', tmp_path/'one', check=True, env=env)
    r = run_cli('generate', *args, '--out', tmp_path/'two', '--processes', '2', check=True, env=env, timeout=900)
    assert 'process 0/2' in r.stdout and 'process 1/2' in r.stdout, r.stdout + r.stderr
    one, two = _records(tmp_path/'one'), _records(tmp_path/'two')
    assert len(one) == 7 and one == two
    pngs = sorted(p.relative_to(tmp_path/'one') for p in (tmp_path/'one'/'counterfactuals').rglob('*.png'))
    assert len(pngs) == 7 and all((tmp_path/'one'/p).read_bytes() == (tmp_path/'two'/p).read_bytes() for p in pngs)
    # a killed run resumes: drop one shard's records, rerun sharded, only those are computed
    gone = sorted((tmp_path/'two'/'records').glob('*.json'))[:3]
    for p in gone: p.unlink()
    r = run_cli('generate', *args, '--out', tmp_path/'two', '--processes', '2', check=True, env=env, timeout=900)
    assert _records(tmp_path/'two') == one
    done = sum(int(l.split(': ')[1].split(' computed')[0]) for l in r.stdout.splitlines() if l.startswith('process '))
    assert 3 <= done <= 4, r.stdout     # the batches that held the dropped records, no more
