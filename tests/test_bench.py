"Evaluation loop and `dcf-teach bench` on dummy components, a scripted oracle and tiny data."
import dataclasses, json
from pathlib import Path

import numpy as np
import pytest
import torch

from dcf_teach.engine.settings import EditSettings
from dcf_teach.evaluation.evaluate import EvalResult, evaluate, held_out_images, dataset_bank
from dcf_teach.data.registry import IDENTITY_FACTORS, identity_change, measure_ground_truth, resolve_dataset
from dcf_teach.engine.models import dummy_components, save_components
from dcf_teach.core import test_close_f32

FAST = EditSettings(n_steps=10, t_skip_fractions=(0.9, 0.7, 0.5, 0.3))


class ScriptedOracle:
    "p = 0.2 / 0.8 by class on (near-)originals; the other answer once an image moved more than its threshold."
    classes = ['bouba', 'kiki']
    fingerprint = 'scripted-test-v1'

    def __init__(self, originals, labels, thresholds, fail_at=None):
        self.x, self.tau = originals, torch.as_tensor(thresholds, dtype=torch.float32)
        self.p0 = torch.tensor([.2, .8])[torch.as_tensor(labels)]
        self.calls, self.fail_at = 0, fail_at

    def __call__(self, x):
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at: raise KeyboardInterrupt('killed')
        d = (x[:, None] - self.x[None]).abs().mean((2, 3, 4))
        dist, j = d.min(1)
        return torch.where(dist <= self.tau[j], self.p0[j], 1 - self.p0[j])


class UNetCounter:
    "Count UNet rows (= NFE) through a forward hook."
    def __init__(self, unet): self.rows = 0; self.h = unet.register_forward_hook(self)
    def __call__(self, mod, args, out): self.rows += args[0].shape[0]
    def close(self): self.h.remove()


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    "Tiny kiki/bouba data (4 test images per class), dummy pixel components, the bank and 6 held-out images."
    tmp = tmp_path_factory.mktemp('bench')
    data = resolve_dataset('kikibouba', cache=tmp, n_per_class=40)
    c = dummy_components(latent=False)
    bank = dataset_bank(c, data, cache=tmp)
    held = held_out_images(data.split('test', resolution=32), 6)
    # bouba (first 3) never flip, kiki (last 3) flip at the first visible change
    orc = lambda **kw: ScriptedOracle(held.images, held.sources, [np.inf if s == 0 else 1e-3 for s in held.sources], **kw)
    return dict(tmp=tmp, data=data, c=c, bank=bank, held=held, oracle=orc)


def test_success_ratio_counts_all_images(world):
    w = world
    res = evaluate(w['c'], w['held'], w['bank'], w['oracle'](), FAST, ground_truth='kikibouba', batch_size=6)
    m = res.metrics()
    assert [r.flipped for r in res.records] == [False] * 3 + [True] * 3
    assert m['n_images'] == 6 and m['n_flipped'] == 3
    assert m['success_ratio'] == 0.5                       # the 3 non-flipped images stay in the denominator
    assert m['success_ratio_flipped_only'] == 1.0          # the released figure drops them
    assert m['success_ratio_flipped_only'] >= m['success_ratio']
    assert m['target_ratio'] == 0.5
    assert m['t_skip_histogram'] == {'0.9': 3, 'none': 3}
    # exact NFE: never flipped = lazy inversion to 3/10 + regenerations of 1, 3, 5, 7 steps at CFG
    assert [r.nfe for r in res.records] == [7 + 2 * 16] * 3 + [1 + 2] * 3
    assert m['nfe_per_cf'] == (3 * 39 + 3 * 3) / 6
    assert m['nfe_lower_bound_per_cf'] <= m['nfe_per_cf'] <= m['nfe_reference_protocol_per_cf']
    json.dumps(res.records_json(), allow_nan=False)


def test_batched_equals_per_image(world):
    w = world
    a = evaluate(w['c'], w['held'], w['bank'], w['oracle'](), FAST, ground_truth='kikibouba', batch_size=4)
    b = evaluate(w['c'], w['held'], w['bank'], w['oracle'](), FAST, ground_truth='kikibouba', batch_size=1)
    for x, y in zip(a.records, b.records):
        assert (x.flipped, x.t_skip, x.nfe, x.nfe_reference_protocol, x.nfe_lower_bound) == \
               (y.flipped, y.t_skip, y.nfe, y.nfe_reference_protocol, y.nfe_lower_bound)
        test_close_f32(x.p_counterfactual, y.p_counterfactual)
        assert x.lpips == pytest.approx(y.lpips, abs=1e-4)
    test_close_f32(a.counterfactuals, b.counterfactuals)


def test_cache_resume_after_interruption(world, tmp_path):
    w = world
    ref = evaluate(w['c'], w['held'], w['bank'], w['oracle'](), FAST, ground_truth='kikibouba', batch_size=2)
    # kill-like interruption: the oracle raises during the second batch (first batch: 1 call on the originals
    # + 4 tries for the two bouba images that never flip = 5 calls)
    with pytest.raises(KeyboardInterrupt):
        evaluate(w['c'], w['held'], w['bank'], w['oracle'](fail_at=7), FAST, ground_truth='kikibouba', batch_size=2,
                 cache=tmp_path)
    cnt = UNetCounter(w['c'].unet)
    try:
        resumed = evaluate(w['c'], w['held'], w['bank'], w['oracle'](), FAST, ground_truth='kikibouba', batch_size=2,
                           cache=tmp_path)
        assert resumed.computed == 4
        assert [r.cached for r in resumed.records] == [True, True] + [False] * 4
        assert cnt.rows == sum(r.nfe for r in resumed.records[2:])      # only the missing images ran
        strip = lambda r: {k: v for k, v in r.as_dict().items() if k != 'seconds'}
        assert [strip(r) for r in resumed.records] == [strip(r) for r in ref.records]
        assert torch.equal(resumed.counterfactuals, ref.counterfactuals)
        cnt.rows = 0
        again = evaluate(w['c'], w['held'], w['bank'], w['oracle'](), FAST, ground_truth='kikibouba', batch_size=3,
                         cache=tmp_path)
        assert cnt.rows == 0 and again.computed == 0                    # a rerun is free (any batch size)
        assert [r.as_dict() for r in again.records] == [r.as_dict() for r in resumed.records]
        # a different option is a different entry
        other = evaluate(w['c'], w['held'], w['bank'], w['oracle'](), dataclasses.replace(FAST, omega=1.0),
                         batch_size=6, cache=tmp_path)
        assert other.computed == 6 and cnt.rows > 0
    finally:
        cnt.close()


def test_control_omega_zero(world):
    w = world
    # ω = 0 with matched conditioning ('source' inversion + same CFG, last noise kept) gives back the images:
    # nothing can flip, not even an oracle that flips at the smallest change
    exact = EditSettings(omega=0.0, n_steps=10, t_skip_fractions=(0.9, 0.5), inversion='source', zero_last_noise=False)
    ctl = evaluate(w['c'], w['held'], w['bank'], w['oracle'](), exact)
    assert ctl.metrics()['success_ratio'] == 0.0
    assert max(r.l1 for r in ctl.records) < 1e-5
    assert all(r.omega == 0.0 for r in ctl.records)


def test_identity_metrics_known_edits(world):
    x = world['data'].split('test')[0][0]
    m0 = measure_ground_truth('kikibouba', x)
    assert identity_change('kikibouba', m0, measure_ground_truth('kikibouba', x)) == \
           dict.fromkeys(IDENTITY_FACTORS['kikibouba'], 0.0)
    d = identity_change('kikibouba', m0, measure_ground_truth('kikibouba', torch.roll(x, (1, 1), dims=(1, 2))))
    assert d['centroid_px'] == pytest.approx(2 ** 0.5, abs=1e-6)
    assert d['fill_color'] == d['background_color'] == 0 and d['area_rel'] == pytest.approx(0, abs=1e-9)
    recol = x.clone(); recol[0] = 1 - recol[0]                           # invert the red channel: colours change
    d = identity_change('kikibouba', m0, measure_ground_truth('kikibouba', recol))
    assert d['fill_color'] > 0.05 and d['background_color'] > 0.05


@pytest.fixture(scope='module')
def cli_world(world):
    "A saved dummy model and an untrained (but real-format) oracle for the command line."
    from dcf_teach.judge.oracle import MEMBERS, Oracle, build_member, save_oracle
    tmp = world['tmp']
    model = save_components(world['c'], tmp / 'model')
    members = {m: build_member(m, resolution=32, width=0.5, seed=i) for i, m in enumerate(MEMBERS)}
    oracle = save_oracle(Oracle(members, ['bouba', 'kiki'], 32), tmp / 'oracle')
    return dict(model=model, oracle=oracle, data=world['data'].root, cache=tmp / 'cli-cache')


def test_cli_json_report(cli, cli_world, tmp_path):
    w = cli_world
    out = tmp_path / 'bench' / 'kb.json'
    args = ['bench', '--dataset', w['data'], '--n', 2, '--model', w['model'], '--oracle', w['oracle'], '--n-steps', 10,
            '--batch-size', 2, '--cache', w['cache'], '--out', out, '--records', tmp_path / 'rec.jsonl', '--json']
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)                                          # ONE JSON object on stdout
    assert json.loads(out.read_text()) == rep
    assert (tmp_path / 'bench' / 'kb_grid.png').stat().st_size > 1000
    assert len((tmp_path / 'rec.jsonl').read_text().splitlines()) == 2
    types = {'dataset': str, 'classes': list, 'model': str, 'n_images': int, 'success_ratio': float,
             'target_ratio': float, 'reconstruction_max_abs_error': float, 't_skip_histogram': dict,
             'nfe_per_cf': float, 'nfe_lower_bound_per_cf': float, 'nfe_reference_protocol_per_cf': float,
             'seconds_per_cf': float, 'control_success_ratio': float, 'gt_flip_rate': float, 'identity': dict,
             'confident_ratio': float}
    for k, t in types.items():
        assert isinstance(rep[k], (int, float) if t is float else t), (k, rep[k])
    for k in ('success_ratio_flipped_only', 'lpips', 'l1', 'ssim'):          # None when nothing flipped
        assert k in rep and (rep[k] is None or isinstance(rep[k], float))
    assert rep['classes'] == ['bouba', 'kiki'] and rep['n_images'] == 2
    assert set(rep['identity']) == {'centroid_px', 'fill_color', 'background_color', 'area_rel'}
    assert rep['reconstruction_max_abs_error'] < 1e-4
    assert sum(rep['t_skip_histogram'].values()) == 2
    assert rep['nfe_lower_bound_per_cf'] <= rep['nfe_per_cf'] <= rep['nfe_reference_protocol_per_cf']
    assert 0 <= rep['success_ratio'] <= 1 and 0 <= rep['control_success_ratio'] <= 1
    # the rerun reads everything from the cache and reports the same figures
    r2 = cli(*args)
    rep2 = json.loads(r2.stdout)
    assert rep2['run']['computed'] == 0 and rep2['run']['cached'] == 4
    for k in ('success_ratio', 'control_success_ratio', 'nfe_per_cf', 'seconds_per_cf', 'lpips', 't_skip_histogram'):
        assert rep2[k] == rep[k]


def test_cli_errors(cli, cli_world):
    r = cli('bench')
    assert r.returncode == 2 and 'Error: --dataset is required' in r.stderr
    r = cli('bench', '--dataset', cli_world['data'], '--n', 50, '--model', cli_world['model'],
            '--oracle', cli_world['oracle'], '--no-control')
    assert r.returncode == 2 and 'held-out (test) images' in r.stderr and 'Traceback' not in r.stderr
    r = cli('bench', '--dataset', '/nonexistent/folder')
    assert r.returncode == 2 and 'not kikibouba, accretion, fashion-mnist' in r.stderr
    r = cli('bench', '--help')
    assert r.returncode == 0 and 'explorer' in r.stdout
