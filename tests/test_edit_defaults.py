"""Per-model recommended edit settings (`edit_defaults` in a model folder's dcf_teach.json): `dcf-teach edit`,
`run_bench` / `dcf-teach bench`, the deck parameters and the explorer use them unless a value is given.
Dummy components, tiny kiki/bouba data and a tiny random oracle: seconds per test."""
import dataclasses, json, shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from dcf_teach.engine.bank import save_bank
from dcf_teach.evaluation.evaluate import dataset_bank, held_out_images
from dcf_teach.data.registry import resolve_dataset
from dcf_teach.engine.models import load_components
from dcf_teach.engine.settings import LIBRARY_EDIT_DEFAULTS, EditSettings

RECOMMENDS = {'omega': 0.5, 'inversion': 'source'}
FAST = EditSettings(n_steps=6, t_skip_fractions=(0.9, 0.5))


class ScriptedOracle:
    "p = 0.2 / 0.8 by class on (near-)originals; the other answer once an image moved more than 1e-3."
    classes = ['bouba', 'kiki']
    fingerprint = 'scripted-edit-defaults-v1'

    def __init__(self, originals, labels):
        self.x, self.p0 = originals, torch.tensor([.2, .8])[torch.as_tensor(labels)]

    def __call__(self, x):
        dist, j = (x[:, None] - self.x[None]).abs().mean((2, 3, 4)).min(1)
        return torch.where(dist <= 1e-3, self.p0[j], 1 - self.p0[j])


def with_edit_defaults(src: Path, dst: Path, edit_defaults) -> Path:
    "A copy of model folder `src` whose dcf_teach.json recommends `edit_defaults`."
    shutil.copytree(src, dst)
    meta = json.loads((dst / 'dcf_teach.json').read_text())
    (dst / 'dcf_teach.json').write_text(json.dumps({**meta, 'edit_defaults': edit_defaults}))
    return dst


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    "Tiny kiki/bouba data, a dummy model folder without and one with edit_defaults, a tiny oracle, a bank file."
    from dcf_teach.testing import dummy_deck_assets
    tmp = tmp_path_factory.mktemp('edit-defaults')
    data = resolve_dataset('kikibouba', cache=tmp, n_per_class=40)
    plain, oracle = dummy_deck_assets(tmp / 'assets')
    rec = with_edit_defaults(plain, tmp / 'recommends', RECOMMENDS)
    c = load_components(plain)
    bank = dataset_bank(c, data, cache=tmp)
    save_bank(bank, tmp / 'bank')
    held = held_out_images(data.split('test', resolution=32), 2)
    return dict(tmp=tmp, data=data, plain=plain, rec=rec, oracle=oracle, bank=tmp / 'bank',
                image=data.split('test').items[0].path, scripted=lambda: ScriptedOracle(held.images, held.sources))


def test_load_components_reads_edit_defaults(world, tmp_path):
    assert load_components(world['rec']).edit_defaults == RECOMMENDS
    assert load_components(world['plain']).edit_defaults == {}
    assert LIBRARY_EDIT_DEFAULTS == dict(omega=2.0, inversion='zero', guidance_scale=4.0, inversion_guidance_scale=4.0,
                                         t_skip_fractions=(0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0), min_confidence=0.5)
    from dcf_teach.core import UserError
    bad = with_edit_defaults(world['plain'], tmp_path / 'bad', {'omega': 'strong'})
    with pytest.raises(UserError, match=f"model folder {bad}: dcf_teach.json: edit_defaults omega 'strong'"):
        load_components(bad)


def edit(world, out, *extra, model='rec'):
    "Run `dcf-teach edit` in-process on the world's first test image; returns the JSON record."
    from dcf_teach.cli.engine import edit_cli
    args = [str(world['image']), '--model', str(world[model]), '--bank', str(world['bank']), '--target', 'kiki',
            '--t-skip', '0.5', '--n-steps', '6', '--device', 'cpu', '--out', str(out), *extra]
    r = CliRunner().invoke(edit_cli, args)
    assert r.exit_code == 0, r.output
    return json.loads(next(Path(out).glob('*.json')).read_text()), r.output


def test_edit_uses_the_models_recommendation(world, tmp_path):
    rec, out = edit(world, tmp_path / 'rec')
    assert (rec['omega'], rec['inversion'], rec['guidance_scale'], rec['inversion_guidance_scale']) == \
           (0.5, 'source', 4.0, 4.0)
    assert rec['edit_defaults_from'] == dict(omega='model', inversion='model', guidance_scale='library',
                                             inversion_guidance_scale='library')
    assert "ω=0.5, 'source' inversion" in out
    assert rec['nfe'] == 2 * 3 + 2 * 3          # 'source' inversion with CFG: 2 NFE per step


def test_edit_explicit_values_win(world, tmp_path):
    rec, _ = edit(world, tmp_path / 'given', '--omega', '2', '--inversion', 'zero', '--guidance-scale', '3')
    assert (rec['omega'], rec['inversion'], rec['guidance_scale']) == (2.0, 'zero', 3.0)
    assert rec['edit_defaults_from'] == dict(omega='given', inversion='given', guidance_scale='given',
                                             inversion_guidance_scale='library')


def test_edit_without_recommendation_uses_library_defaults(world, tmp_path):
    rec, _ = edit(world, tmp_path / 'plain', model='plain')
    assert (rec['omega'], rec['inversion'], rec['guidance_scale']) == (2.0, 'zero', 4.0)
    assert set(rec['edit_defaults_from'].values()) == {'library'}
    assert rec['nfe'] == 3 + 2 * 3


def test_edit_bad_edit_defaults_is_one_line_error(world, tmp_path):
    from dcf_teach.cli.engine import edit_cli
    bad = with_edit_defaults(world['plain'], tmp_path / 'bad', {'inversion': 'prior', 'omega': 1})
    r = CliRunner().invoke(edit_cli, [str(world['image']), '--model', str(bad), '--bank', str(world['bank']),
                                      '--target', 'kiki', '--out', str(tmp_path / 'o')])
    assert r.exit_code == 2 and f"model folder {bad}: dcf_teach.json: edit_defaults inversion 'prior'" in r.output
    assert 'Traceback' not in r.output


def test_run_bench_records_resolved_settings(world):
    from dcf_teach.evaluation.bench import run_bench
    w, cache = world, world['tmp'] / 'bench-cache'
    kw = dict(n=2, oracle=w['scripted'](), batch_size=2, cache=cache, reconstruction=False)
    r = run_bench(w['data'].root, model=w['rec'], edit=FAST, **kw)
    cf = r.figures['config']
    assert (cf['omega'], cf['inversion'], cf['guidance_scale'], cf['inversion_guidance_scale']) == (0.5, 'source', 4.0, 4.0)
    assert cf['edit_defaults_from'] == dict(omega='model', guidance_scale='library', inversion='model',
                                            inversion_guidance_scale='library', t_skip_fractions='given', min_confidence='library')
    assert all(x.omega == 0.5 for x in r.result.records)
    assert (r.control.edit.omega, r.control.edit.inversion) == (0.0, 'source')   # the control stays at ω = 0
    assert all(x.omega == 0.0 for x in r.control.records)
    # the plain model (same weights, so the same model fingerprint) at the library defaults: nothing reused
    p = run_bench(w['data'].root, model=w['plain'], edit=FAST, **kw)
    assert (p.figures['config']['omega'], p.figures['config']['inversion']) == (2.0, 'zero')
    assert set(p.figures['config']['edit_defaults_from'].values()) == {'library', 'given'}   # FAST gives the fractions
    assert p.figures['run']['computed'] == 2 + 2              # its ω = 2 search and its 'zero' control are new
    # the same resolved values given explicitly on the recommending model: the cache entries of the plain run
    g = run_bench(w['data'].root, model=w['rec'], edit=dataclasses.replace(FAST, omega=2, inversion='zero'), **kw)
    assert g.figures['config']['edit_defaults_from'] == dict(omega='given', guidance_scale='library', inversion='given',
                                                             inversion_guidance_scale='library', t_skip_fractions='given',
                                                             min_confidence='library')
    assert g.figures['run']['computed'] == 0 and g.figures['success_ratio'] == p.figures['success_ratio']


def test_bench_cli_explicit_omega_wins(cli, world, tmp_path):
    w = world
    r = cli('bench', '--dataset', w['data'].root, '--n', 2, '--model', w['rec'], '--oracle', w['oracle'], '--n-steps', 6,
            '--batch-size', 2, '--cache', tmp_path / 'cache', '--no-reconstruction', '--omega', 2, '--json')
    assert r.returncode == 0, r.stderr
    cf = json.loads(r.stdout)['config']
    assert (cf['omega'], cf['inversion']) == (2.0, 'source')
    assert (cf['edit_defaults_from']['omega'], cf['edit_defaults_from']['inversion']) == ('given', 'model')


def test_deck_parameters_default_to_the_model(world):
    from dcf_teach.study import deck, runner
    ps = runner.deck_parameters(Path(__file__).resolve().parents[1] / 'nbs' / 'make_deck.ipynb')
    assert {k: ps[k]['default'] for k in ('omega', 'guidance_scale', 'inversion', 'inversion_guidance_scale')} == dict.fromkeys(
        ('omega', 'guidance_scale', 'inversion', 'inversion_guidance_scale'), 'None')
    cfg = deck.resolve_deck_params(dict(dataset='kikibouba', n_images=4, n_study=2, n_examples=2, n_steps=6, curve_images=0,
                                        n_interp=0, seed=0, n_per_class=30, batch_size=2, stop_after=0), tiny=False)
    assert (cfg.edit.omega, cfg.edit.inversion) == (None, None)
    r = deck.resolve_deck_edit(cfg, load_components(world['rec']))
    assert (r.edit.omega, r.edit.inversion, r.edit.guidance_scale, r.edit_defaults_from['omega']) == (0.5, 'source', 4.0, 'model')
    r = deck.resolve_deck_edit(cfg, load_components(world['plain']))
    assert (r.edit.omega, r.edit.inversion, r.edit.guidance_scale) == (2.0, 'zero', 4.0)


def test_explorer_starts_at_the_models_recommendation(world):
    from dcf_teach.engine.bank import load_bank
    from dcf_teach.study.explorer import Explorer
    held = world['data'].split('test', resolution=32)
    c, bank = load_components(world['rec']), load_bank(world['bank'])
    ex = Explorer(c, bank, held, edit=EditSettings(n_steps=6), t_skip=0.5, sync=True)
    assert (ex.omega, ex.edit.inversion, ex.result.params.omega) == (0.5, 'source', 0.5)
    ex = Explorer(c, bank, held, edit=EditSettings(omega=2.0, inversion='zero', n_steps=6), t_skip=0.5, sync=True)
    assert (ex.omega, ex.edit.inversion, ex.edit_defaults_from['omega']) == (2.0, 'zero', 'given')


def test_search_settings_come_from_the_model(world, tmp_path, cli):
    "A model may recommend the minimal-edit search's T_skip fractions and oracle confidence; bench, deck, explorer use them."
    from dcf_teach.study import deck
    from dcf_teach.engine.bank import load_bank
    from dcf_teach.evaluation.bench import run_bench
    from dcf_teach.study.explorer import Explorer
    w = world
    m = with_edit_defaults(w['plain'], tmp_path / 'searches', {'t_skip_fractions': [0.8, 0.5], 'min_confidence': 0.9})
    r = run_bench(w['data'].root, model=m, edit=EditSettings(n_steps=6), n=2, oracle=w['scripted'](), batch_size=2,
                  cache=tmp_path / 'cache', reconstruction=False, control=False)
    cf = r.figures['config']
    assert (cf['t_skip_fractions'], cf['min_confidence']) == ([0.8, 0.5], 0.9)
    assert (cf['edit_defaults_from']['t_skip_fractions'], cf['edit_defaults_from']['min_confidence']) == ('model', 'model')
    # the scripted oracle answers 0.8 for the other class at once: confident enough for 0.5, not for 0.9, so the
    # search tries both fractions (T_skip 6·0.8 → 5, then 3) and keeps its first flip
    assert all(x.flipped and [k for k, _ in x.tried] == [5, 3] and x.t_skip == 5 for x in r.result.records)
    assert r.figures['confident_ratio'] == 0 and not any(x.confident for x in r.result.records)
    cfg = deck.resolve_deck_params(dict(dataset='kikibouba', n_images=4, n_study=2, n_examples=2, n_steps=6, curve_images=0,
                                        n_interp=0, seed=0, n_per_class=30, batch_size=2, stop_after=0), tiny=False)
    d = deck.resolve_deck_edit(cfg, load_components(m))
    assert (d.edit.t_skip_fractions, d.edit.min_confidence, d.edit_defaults_from['t_skip_fractions']) == ((0.8, 0.5), 0.9, 'model')
    ex = Explorer(load_components(m), load_bank(w['bank']), w['data'].split('test', resolution=32), edit=EditSettings(n_steps=6), t_skip=0.5, sync=True)
    assert (ex.edit.t_skip_fractions, ex.edit.min_confidence) == ((0.8, 0.5), 0.9)
    bad = cli('bench', '--dataset', w['data'].root, '--n', 2, '--model', m, '--t-skip-fractions', '0.5,0.9')
    assert bad.returncode == 2 and "--t-skip-fractions '0.5,0.9': need decreasing fractions" in bad.stderr and 'Traceback' not in bad.stderr
