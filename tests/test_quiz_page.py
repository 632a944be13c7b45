"""The study-and-quiz page (dcf_teach.study.quiz_page) in headless Chromium from file://: a scripted participant per
group studies, answers every quiz image by clicking its class button, downloads the CSV and JSON, and
`dcf-teach quiz analyse` reads them back."""
import json, time
from pathlib import Path

import pytest
from click.testing import CliRunner

from dcf_teach.cli.quiz import quiz_cli
from dcf_teach.study.quiz import TRIAL_FIELDS, read_trials
from dcf_teach.study.quiz_page import GROUPS, example_study_material, read_study
from dcf_teach.testing import example_deck

CHROMIUM = Path('/usr/bin/chromium')
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run', '--disable-quic']
N_QUIZ = 10


@pytest.fixture(scope='module')
def page(tmp_path_factory):
    "A deck with synthetic study material and its quiz page, built with the command line."
    root = tmp_path_factory.mktemp('quiz')
    deck = example_deck(root / 'decks')
    example_study_material(deck, n_quiz=N_QUIZ)
    r = CliRunner().invoke(quiz_cli, ['page', str(deck), '--out', str(root / 'page'), '--send-to', 'teacher@example.org'])
    assert r.exit_code == 0, r.output
    return deck, root / 'page' / 'index.html'


def _participant(browser, url, out, right):
    "Study, answer the quiz (right answer when right(k)), download both files; returns (csv, json) paths."
    ctx = browser.new_context(accept_downloads=True)
    try:
        pg = ctx.new_page()
        errors = []
        pg.on('pageerror', lambda e: errors.append(str(e)))
        pg.on('request', lambda r: errors.append(f'network: {r.url}') if not r.url.startswith(('file:', 'blob:', 'data:')) else None)
        pg.goto(url)
        pg.click('button:text-is("Start")')
        pg.click('button:text-is("Start the quiz")', timeout=20_000)     # after the study segments
        cfg = pg.evaluate('window.DCF_QUIZ')
        truth = {q['file']: q['label'] for q in cfg['quiz']}
        for k in range(len(cfg['quiz'])):
            pg.wait_for_selector(f'.dcf-progress[data-k="{k}"]', timeout=20_000)
            src = pg.get_attribute('#jspsych-image-button-response-stimulus', 'src')
            t = truth[src]
            answer = t if right(k) else next(c for c in cfg['classes'] if c != t)
            pg.click(f'#jspsych-image-button-response-btngroup button:text-is("{answer}")')
        pg.wait_for_selector('#dcf-csv', timeout=20_000)
        files = []
        for sel in ('#dcf-csv', '#dcf-json'):
            with pg.expect_download() as d: pg.click(sel)
            files.append(out / d.value.suggested_filename); d.value.save_as(files[-1])
        assert not errors, errors
        return files, cfg
    finally: ctx.close()


@pytest.mark.browser
@pytest.mark.timeout(180)
def test_quiz_page_in_chromium(page, tmp_path):
    if not CHROMIUM.exists(): pytest.skip('needs Debian chromium at /usr/bin/chromium (`make setup` installs it)')
    sync_api = pytest.importorskip('playwright.sync_api', reason='Python playwright is not installed')
    deck, index = page
    study = read_study(deck)
    used = set(study['used']['ids']) | {r['id'] for r in study['examples'] + study['extra'] + study['flips']}
    labels = {q['id']: q['label'] for q in study['quiz']}
    results = tmp_path / 'results'; results.mkdir()
    t0 = time.perf_counter()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            for g in GROUPS:
                right = (lambda k: True) if g == 'ours' else (lambda k: k % 2 == 0)
                url = f'{index.as_uri()}?group={g}&segment_s=0.3&participant=p-{g}'
                if g == 'baseline': url += '&feedback=1&feedback_s=0.05'         # the optional feedback mode
                if g == 'unpaired': url += '&budget=count'                        # as many study images as the paired groups
                (csv_file, json_file), cfg = _participant(browser, url, results, right)
                assert csv_file.name == f'p-{g}_{g}.csv'
                lines = csv_file.read_text().splitlines()
                assert lines[0] == ','.join(TRIAL_FIELDS) and len(lines) == 1 + N_QUIZ
                trials = read_trials(csv_file)
                assert len(trials) == N_QUIZ and {t.group for t in trials} == {g}
                assert all(t.truth == labels[t.stimulus] for t in trials)                # the right truths
                assert not {t.stimulus for t in trials} & used                           # no image that built the deck
                assert sorted(t.trial_index for t in trials) == list(range(N_QUIZ))
                assert [t.correct for t in sorted(trials, key=lambda t: t.trial_index)] == [right(k) for k in range(N_QUIZ)]
                assert {t.deck_hash for t in trials} == {study['deck_hash']}
                assert trials[0].criterion == (cfg['baseline']['criterion'] if g == 'baseline' else study['criterion'])
                assert [t.stimulus for t in trials] != sorted(t.stimulus for t in trials) or N_QUIZ < 4   # shuffled
                j = json.loads(json_file.read_text())
                assert j['meta']['group_from'] == 'link' and j['meta']['seed'] == trials[0].seed
                assert len(j['meta']['study']) == (1 if g == 'unpaired' else 3) and j['meta']['feedback'] == (g == 'baseline')
                E, K = len(study['examples']), len(study['flips'])
                assert [s['n_images'] for s in j['meta']['study']] == ([E + 2 * K] if g == 'unpaired' else [E, K // 2, K // 2])
                assert read_trials(json_file) == trials                                  # CSV and JSON agree
            # no group in the link: drawn at random and recorded
            (f, _), _ = _participant(browser, f'{index.as_uri()}?segment_s=0.2&participant=anyone&seed=7', results, lambda k: True)
            j = json.loads(f.with_suffix('.json').read_text()) if f.with_suffix('.json').exists() else None
            trials = read_trials(f)
            assert trials[0].group in GROUPS and trials[0].seed == '7'
        finally: browser.close()
    seconds = time.perf_counter() - t0
    r = CliRunner().invoke(quiz_cli, ['analyse', str(results), '--out', str(tmp_path / 'report')])
    assert r.exit_code == 0, r.output
    assert 'ours: n = 1, 100.0 ± ' in r.output or 'ours: n = ' in r.output
    assert (tmp_path / 'report' / 'report.html').is_file()
    print(f'4 scripted participants in {seconds:.1f} s')


@pytest.fixture(scope='module')
def built_deck(tmp_path_factory):
    "A tiny kiki/bouba deck built by the template on the dummy model and oracle, with its quiz page."
    from dcf_teach import testing
    from dcf_teach.study import runner
    tmp = tmp_path_factory.mktemp('deck')
    m, o = testing.dummy_deck_assets(tmp / 'assets')
    out = tmp / 'decks' / 'kikibouba'
    runner.run_deck(out, dict(dataset='kikibouba', model=str(m), oracle=str(o), n_images=4, n_study=2, n_examples=2, n_steps=6,
                              t_skip_fractions='0.9,0.5,0.0', curve_images=0, n_interp=0, n_per_class=30, batch_size=2,
                              cache_dir=str(tmp / 'cache'), n_quiz=50),
                    Path(__file__).resolve().parents[1] / 'nbs' / 'make_deck.ipynb', progress=False)
    return out, tmp / 'cache'


def test_deck_quiz_is_held_out(built_deck):
    "The deck build's quiz: test-split images the search did not use; the examples are train images; the page is linked."
    from dcf_teach.data.registry import resolve_dataset
    out, cache = built_deck
    s = read_study(out)
    items = resolve_dataset('kikibouba', cache=cache, n_per_class=30).split(None).items
    split = {it.id: it.split for it in items}
    test = [[it.id for it in items if it.split == 'test' and it.label == k] for k in (0, 1)]
    searched = set(test[0][:2] + test[1][:2])                     # `held_out_images`: the first n/2 test images per class
    quiz = [q['id'] for q in s['quiz']]
    assert quiz and len(quiz) % 2 == 0 and {q['label'] for q in s['quiz']} == {'bouba', 'kiki'}
    assert all(split[q] == 'test' for q in quiz)                  # never train or val: bank, decoder, LoRA, oracle training
    assert not set(quiz) & searched and searched <= set(s['used']['ids'])
    assert all(split[e['id']] == 'train' for e in s['examples'] + s['extra']) and len(s['examples']) == 4
    assert all(f['id'] in searched for f in s['flips'])
    assert (out / 'quiz' / 'index.html').is_file() and 'group=unpaired' in (out / 'deck.ipynb').read_text()
    m = json.loads((out / 'metrics.json').read_text())
    assert 'quiz' in m['timing']
