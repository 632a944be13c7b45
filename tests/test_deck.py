"""Study decks end to end: the papermill template, `dcf-teach deck`, resuming an interrupted build, determinism,
and the deck-folder contract the site reads. Runs on the dummy model and a tiny random oracle (seconds per deck)."""
import hashlib, json, os, subprocess, sys
from pathlib import Path

import pytest

from dcf_teach.study import deck
from dcf_teach import testing
from dcf_teach.study import runner
from dcf_teach.core import UserError
from dcf_teach.study.site import find_decks

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / 'nbs' / 'make_deck.ipynb'
CONTRACT = ('dataset', 'classes', 'success_ratio', 'target_ratio', 'lpips', 'n_images', 'n_flipped', 'counts', 'seconds',
            'gt_flip_rate')


@pytest.fixture(scope='module')
def assets(tmp_path_factory):
    "A dummy model folder and a tiny random oracle (bouba, kiki)."
    return testing.dummy_deck_assets(tmp_path_factory.mktemp('assets'))


def tiny(assets, cache, **kw):
    "Template parameters of a tiny kiki/bouba deck on the dummy assets."
    m, o = assets
    return dict(dataset='kikibouba', model=str(m), oracle=str(o), n_images=4, n_study=2, n_examples=2, n_steps=6,
                t_skip_fractions='0.9,0.5,0.0', curve_images=2, n_interp=1, n_per_class=30, batch_size=2,
                cache_dir=str(cache)) | kw


def media_hashes(d: Path) -> dict:
    "sha256 of every media file and the thumbnail of a deck folder."
    files = sorted((d / 'media').iterdir()) + [d / 'thumbnail.png']
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


def metrics(d: Path) -> dict:
    return json.loads((d / 'metrics.json').read_text())


@pytest.fixture(scope='module')
def clean(assets, tmp_path_factory):
    "One uninterrupted build through `dcf-teach deck` (the installed console script)."
    from conftest import run_cli
    tmp = tmp_path_factory.mktemp('clean')
    args = ['deck', '--dataset', 'kikibouba', '--out', tmp / 'decks' / 'kikibouba', '--no-log-output']
    for k, v in tiny(assets, tmp / 'cache').items():
        if k != 'dataset': args += ['-p', k, v]
    r = run_cli(*args, env={'OMP_WAIT_POLICY': 'PASSIVE'})
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'deck:' in r.stdout and 'deck.ipynb' in r.stdout
    return tmp / 'decks' / 'kikibouba'


def test_deck_folder_contract(clean):
    "The folder has what the site reads, and the executed notebook reads as the deck."
    for f in ('deck.ipynb', 'metrics.json', 'thumbnail.png', 'media/study.mp4', 'media/examples.png',
              'media/success_vs_closeness.png', 'media/direction_vs_n.png'):
        assert (clean / f).is_file(), f
    m = metrics(clean)
    for k in CONTRACT: assert k in m, k
    assert m['dataset'] == 'kikibouba' and m['classes'] == ['bouba', 'kiki'] and m['n_images'] == 4
    assert sum(c['n'] for c in m['counts'].values()) == 4 and 0 <= m['success_ratio'] <= 1
    assert set(m['timing']) >= {'setup', 'search', 'video', 'images_searched'} and m['seconds'] > 0
    shown = m['n_shown']
    assert len(list((clean / 'media').glob('flip_*.gif'))) == shown == len(list((clean / 'media').glob('overlay_*.png')))
    [d] = find_decks(clean.parent)
    assert d.name == 'kikibouba' and d.title == 'kikibouba: bouba or kiki?' and d.thumbnail == 'thumbnail.png'
    nb = json.loads((clean / 'deck.ipynb').read_text())
    assert nb['cells'][0]['cell_type'] == 'raw' and 'title: "kikibouba: bouba or kiki?"' in ''.join(nb['cells'][0]['source'])
    outs = [o for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', [])]
    assert not any('image/gif' in o.get('data', {}) for o in outs)          # Quarto cannot show image/gif outputs
    html = ''.join(''.join(o['data'].get('text/html', '')) for o in outs if 'data' in o)
    assert 'src="media/examples.png"' in html and 'src="media/study.mp4"' in html
    for f in (clean / 'media').glob('flip_*.gif'): assert f'src="media/{f.name}"' in html
    text = ''.join(''.join(o['data'].get('text/markdown', '')) for o in outs if 'data' in o)
    assert '# bouba or kiki?' in text and '### bouba → kiki' in text and '### kiki → bouba' in text
    assert text.index('### bouba → kiki') < text.index('### kiki → bouba')
    assert not (clean / '.deck.partial.ipynb').exists()


def test_interrupt_and_resume(assets, clean, tmp_path):
    "A build stopped after 2 images resumes from the cache: same metrics.json (timings aside), same media bytes."
    out = tmp_path / 'decks' / 'kikibouba'
    with pytest.raises(UserError, match='stopped after 2 of 4'):
        runner.run_deck(out, tiny(assets, tmp_path / 'cache', stop_after=2), TEMPLATE, progress=False)
    assert not (out / 'metrics.json').exists() and not (out / 'deck.ipynb').exists()   # the site skips it
    assert (out / '.deck.partial.ipynb').exists()
    nb = runner.run_deck(out, tiny(assets, tmp_path / 'cache'), TEMPLATE, progress=False)
    m = metrics(out)
    assert nb == out / 'deck.ipynb' and m['timing']['images_from_cache'] == 2 and m['timing']['images_searched'] == 2
    assert deck.without_timing(m) == deck.without_timing(metrics(clean))
    assert media_hashes(out) == media_hashes(clean)


def test_papermill_cli_same_seed(assets, clean, tmp_path):
    "The documented `papermill nbs/make_deck.ipynb OUT/deck.ipynb -p ...` with the same seed gives the same deck."
    out = tmp_path / 'decks' / 'kikibouba'
    out.mkdir(parents=True)
    args = [str(Path(sys.executable).parent / 'papermill'), str(TEMPLATE), str(out / 'deck.ipynb'), '--no-progress-bar',
            '-p', 'out_dir', str(out)]
    for k, v in tiny(assets, tmp_path / 'cache', seed=0).items(): args += ['-p', k, str(v)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600,
                       env={**os.environ, 'OMP_WAIT_POLICY': 'PASSIVE', 'HF_HUB_OFFLINE': '1'})
    assert r.returncode == 0, r.stderr[-3000:]
    assert deck.without_timing(metrics(out)) == deck.without_timing(metrics(clean))
    assert media_hashes(out) == media_hashes(clean)
    assert find_decks(out.parent)[0].name == 'kikibouba'


def test_rebuild_prunes_stale_media(assets, clean, tmp_path):
    "Rebuilding a deck with fewer flips removes the media files the earlier build left (from the cache: fast)."
    import shutil
    out = tmp_path / 'kikibouba'
    shutil.copytree(clean, out)
    (out / 'media' / 'flip_bouba_to_kiki_09.gif').write_bytes(b'stale')
    runner.run_deck(out, tiny(assets, clean.parent.parent / 'cache', curve_images=0, n_interp=0), TEMPLATE, progress=False)
    names = {p.name for p in (out / 'media').iterdir()}
    assert 'flip_bouba_to_kiki_09.gif' not in names and 'success_vs_closeness.png' not in names
    assert not any(n.startswith('interpolation_') for n in names) and 'study.mp4' in names


def test_cli_errors(cli, tmp_path):
    "Bad input gives one-line errors, not tracebacks."
    r = cli('deck', '--dataset', 'kikibouba', '--out', tmp_path / 'x', '-p', 'n_imagez', '3')
    assert r.returncode == 2 and "unknown deck parameter 'n_imagez'" in r.stderr and 'Traceback' not in r.stderr
    r = cli('deck', '--dataset', 'kikibouba', '--out', tmp_path / 'x', '-p', 'n_images', 'many')
    assert r.returncode == 2 and 'expected int' in r.stderr
    r = cli('deck')
    assert r.returncode == 2 and 'give --dataset' in r.stderr
    r = cli('deck', '--list-params')
    assert r.returncode == 0 and 'stop_after (int, default 0)' in r.stdout


def test_deck_with_another_method_and_a_comparison(tmp_path):
    "A deck made by the SDEdit baseline, with DIFFusion and the prototype baseline compared on the same images."
    import json
    from pathlib import Path
    from dcf_teach import testing
    from dcf_teach.study import runner
    m, o = testing.dummy_deck_assets(tmp_path / 'assets')
    out = tmp_path / 'decks' / 'kikibouba'
    runner.run_deck(out, dict(dataset='kikibouba', model=str(m), oracle=str(o), n_images=4, n_study=2, n_examples=2, n_steps=6,
                              t_skip_fractions='0.9,0.5,0.0', curve_images=0, n_interp=0, n_per_class=30, batch_size=2,
                              cache_dir=str(tmp_path / 'cache'), n_quiz=0, method='sdedit', compare_methods='diffusion,prototype'),
                    Path(__file__).resolve().parents[1] / 'nbs' / 'make_deck.ipynb', progress=False)
    nb = (out / 'deck.ipynb').read_text()
    assert 'the SDEdit baseline' in nb and 'Other methods on the same images' in nb
    assert '| sdedit |' in nb and '| diffusion |' in nb and '| prototype |' in nb
    assert (out / 'media' / 'comparison.png').is_file() and (out / 'media' / 'comparison_curves.png').is_file()
    m = json.loads((out / 'metrics.json').read_text())
    assert m['method'] == 'sdedit' and m['config']['t_skip_fractions'] == [0.9, 0.5, 0.0] and 'comparison' in m['timing']
