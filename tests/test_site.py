"""`dcf-teach site`: the offline preview in headless Chromium, atomic rebuilds, bad input, and the Quarto path
(driven by a stand-in `quarto`, since Quarto can't be installed here)."""
import contextlib, functools, http.server, json, os, shutil, subprocess, sys, threading
from pathlib import Path

import pytest
import yaml

import dcf_teach.study.site as S
from dcf_teach.testing import example_deck
from dcf_teach.core import UserError

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path('/usr/bin/chromium')
CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                  '--disable-sync', '--no-first-run', '--disable-quic']
# GIFs each example deck shows: one markdown image per flip, one HTML <img>, one embedded GIF output
N_GIFS = {'kikibouba': 2 + 2, 'fashion-mnist': 3 + 2}


@pytest.fixture
def decks(tmp_path):
    d = tmp_path / 'decks'
    example_deck(d, 'kikibouba', thumbnail=True)
    example_deck(d, 'fashion-mnist', ('tshirt', 'shirt'), n_flips=3,
                   metrics={'dataset': 'fashion-mnist', 'gt_flip_rate': 0.5, 'seconds': 185})
    return d


class _Handler(http.server.SimpleHTTPRequestHandler):
    "Static files; remembers (path, status) of every request and stays quiet."
    def log_message(self, *a): pass
    def send_response(self, code, message=None):
        self.server.hits.append((self.path, code))
        super().send_response(code, message)


@contextlib.contextmanager
def serve(root):
    "Serve `root` on 127.0.0.1 at a free port in a thread; yields (base URL, list of (path, status))."
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Handler, directory=str(root)))
    httpd.hits = []
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try: yield f'http://127.0.0.1:{httpd.server_address[1]}', httpd.hits
    finally:
        httpd.shutdown(); httpd.server_close(); t.join(5)


def _browse_playwright(base, names, shots, profile):
    "Check the site with Playwright driving Debian's Chromium; returns the URLs the browser requested."
    from playwright.sync_api import sync_playwright, Error
    with sync_playwright() as p:
        try:
            ctx = p.chromium.launch_persistent_context(str(profile), executable_path=str(CHROMIUM), headless=True,
                                                       args=CHROMIUM_FLAGS, viewport={'width': 1280, 'height': 900})
        except Error as e:
            raise _NoPlaywright(str(e)) from e
        requested = []
        ctx.on('request', lambda r: requested.append(r.url))
        page = ctx.new_page()
        page.goto(f'{base}/index.html', wait_until='load')
        hrefs = page.eval_on_selector_all('a[href]', 'els => els.map(e => e.getAttribute("href"))')
        for n in names: assert f'{n}/index.html' in hrefs, (n, hrefs)
        thumbs = page.eval_on_selector_all('.deck .thumb img', 'els => els.map(e => [e.getAttribute("src"), e.complete, e.naturalWidth])')
        assert len(thumbs) == len(names) and all(ok and w > 0 for _, ok, w in thumbs), thumbs
        assert 'ground-truth flip rate' in page.inner_text('#deck-fashion-mnist .metrics').lower()
        assert '3 min 05 s' in page.inner_text('#deck-fashion-mnist .metrics')
        page.screenshot(path=str(shots / 'index.png'), full_page=True)
        for n in names:
            page.click(f'#deck-{n} h2 a')
            page.wait_for_load_state('load')
            assert page.url == f'{base}/{n}/index.html'
            imgs = page.eval_on_selector_all('img', 'els => els.map(e => [e.getAttribute("src"), e.complete, e.naturalWidth])')
            gifs = [i for i in imgs if i[0].endswith('.gif') or i[0].startswith('data:image/gif')]
            assert len(gifs) == N_GIFS[n] and all(ok and w > 0 for _, ok, w in gifs), (n, imgs)
            page.screenshot(path=str(shots / f'{n}.png'), full_page=True)
            page.click('nav.dcf-nav a')                  # back to the index
            page.wait_for_load_state('load')
            assert page.url == f'{base}/index.html'
        ctx.close()
    return requested


class _NoPlaywright(Exception): pass


def _browse_cli(base, names, shots, profile, hits):
    "Fallback without Playwright: Chromium's --dump-dom and --screenshot; the server log shows what loaded."
    def chromium(*args):
        r = subprocess.run([str(CHROMIUM), '--headless', *CHROMIUM_FLAGS, f'--user-data-dir={profile}',
                            '--window-size=1280,900', '--virtual-time-budget=3000', *args],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout
    dom = chromium('--dump-dom', f'{base}/index.html')
    for n in names: assert f'href="{n}/index.html"' in dom, n
    chromium(f'--screenshot={shots / "index.png"}', f'{base}/index.html')
    for n in names:
        chromium('--dump-dom', f'{base}/{n}/index.html')
        chromium(f'--screenshot={shots / (n + ".png")}', f'{base}/{n}/index.html')
        for i in range(N_GIFS[n] - 2):
            assert (f'/{n}/media/flip_{i}.gif', 200) in hits, (n, i)
    return []


@pytest.mark.browser
def test_preview_in_headless_chromium(decks, tmp_path, cli):
    if not CHROMIUM.exists(): pytest.skip('needs Debian chromium at /usr/bin/chromium (`make setup` installs it)')
    out = tmp_path / 'site'
    r = cli('site', '--decks', decks, '--out', out, '--no-quarto')
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f"site: {out / 'index.html'}"
    for page in out.rglob('*.html'):                 # nothing is loaded from the network
        text = page.read_text()
        assert S.remote_refs(text) == [] and 'http://' not in text and 'https://' not in text, page
    shots = tmp_path / 'screenshots'; shots.mkdir()
    names = sorted(N_GIFS)
    with serve(out) as (base, hits):
        try: requested = _browse_playwright(base, names, shots, tmp_path / 'profile')
        except (ImportError, _NoPlaywright) as e:
            print(f"Playwright can't drive {CHROMIUM} ({e}); using --dump-dom/--screenshot")
            requested = _browse_cli(base, names, shots, tmp_path / 'profile-cli', hits)
        assert not [h for h in hits if h[1] >= 400], hits  # every file the pages asked for was there
    assert [u for u in requested if not u.startswith((base, 'data:'))] == []
    for s in ['index.png', *(f'{n}.png' for n in names)]:
        assert (shots / s).stat().st_size > 10_000, s
    print(f"screenshots: {shots}")


def test_bad_input_is_one_line(decks, tmp_path, cli):
    r = cli('site', '--decks', tmp_path / 'nope', '--out', tmp_path / 'site')
    assert r.returncode == 2 and r.stderr.strip() == f"Error: decks folder '{tmp_path / 'nope'}' does not exist (build decks with `dcf-teach deck`)"
    (tmp_path / 'empty').mkdir()
    r = cli('site', '--decks', tmp_path / 'empty', '--out', tmp_path / 'site')
    assert r.returncode == 2 and r.stderr.strip().startswith('Error: no decks in') and 'Traceback' not in r.stderr
    mine = tmp_path / 'mine'; mine.mkdir(); (mine / 'notes.txt').write_text('keep me')
    r = cli('site', '--decks', decks, '--out', mine, '--no-quarto')
    assert r.returncode == 2 and 'refusing to replace' in r.stderr and (mine / 'notes.txt').read_text() == 'keep me'


def test_half_built_deck_is_skipped_with_a_warning(decks, tmp_path, cli):
    (decks / 'fashion-mnist' / 'metrics.json').unlink()
    (decks / 'broken').mkdir(); (decks / 'broken' / 'deck.ipynb').write_text('{not json')
    (decks / 'broken' / 'metrics.json').write_text('{}')
    out = tmp_path / 'site'
    r = cli('site', '--decks', decks, '--out', out, '--no-quarto')
    assert r.returncode == 0, r.stderr
    assert "skipping deck" in r.stderr and "no metrics.json" in r.stderr and "unreadable deck.ipynb" in r.stderr
    assert 'Traceback' not in r.stderr
    index = (out / 'index.html').read_text()
    assert 'kikibouba/index.html' in index and 'fashion-mnist' not in index and 'broken' not in index


def test_rebuild_replaces_the_site_atomically(decks, tmp_path, monkeypatch):
    out = tmp_path / 'site'
    S.build_site(decks, out, use_quarto=False)
    (out / 'stale.html').write_text('old')
    S.build_site(decks, out, use_quarto=False)
    assert not (out / 'stale.html').exists() and (out / S.MARKER).exists()
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob('*') if p.is_file()}

    def boom(*a, **k): raise UserError('disk full')
    monkeypatch.setattr(S, 'index_page', boom)       # fail after the deck pages are written
    with pytest.raises(UserError, match='disk full'): S.build_site(decks, out, use_quarto=False)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob('*') if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.')] == []   # no temporary folders left
    assert (decks / 'listing.yml').is_file()          # the index data `quarto preview` reads


FAKE_QUARTO = '''#!{python}
"Stand-in for `quarto render PROJECT ...`: records what it was given and writes a tiny _site."
import json, pathlib, sys
args = sys.argv[1:]
if {fail}: sys.exit("ERROR: boom")
proj = pathlib.Path(args[1])
files = sorted(p.relative_to(proj).as_posix() for p in proj.rglob('*') if p.is_file())
nb = json.loads((proj / 'decks/kikibouba/deck.ipynb').read_text())
html = [''.join(o['data'].get('text/html', '')) for c in nb['cells'] for o in c.get('outputs', []) if 'data' in o]
out = proj / args[args.index('--output-dir') + 1]
(out / 'decks').mkdir(parents=True)
(out / 'index.html').write_text('<html>rendered by quarto</html>')
(out / 'log.json').write_text(json.dumps(dict(args=args, files=files, html=html)))
'''


def _fake_quarto(bin_dir, fail=False):
    bin_dir.mkdir(exist_ok=True)
    q = bin_dir / 'quarto'
    q.write_text(FAKE_QUARTO.format(python=sys.executable, fail=fail))
    q.chmod(0o755)
    return {'PATH': f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_quarto_renders_a_staged_copy_of_the_project(decks, tmp_path, cli):
    out = tmp_path / 'site'
    r = cli('site', '--decks', decks, '--out', out, env=_fake_quarto(tmp_path / 'bin'))   # auto: quarto is on PATH
    assert r.returncode == 0, r.stderr
    assert (out / 'index.html').read_text() == '<html>rendered by quarto</html>' and (out / S.MARKER).exists()
    log = json.loads((out / 'log.json').read_text())
    assert log['args'][0] == 'render' and log['args'][2:] == ['--no-execute', '--output-dir', '_site']
    for f in ['_quarto.yml', 'index.qmd', 'decks/listing.yml', 'decks/kikibouba/deck.ipynb',
              'decks/kikibouba/media/flip_0.gif', 'decks/kikibouba/thumbnail.png', 'decks/fashion-mnist/metrics.json']:
        assert f in log['files'], f
    assert any(h.startswith('<img src="data:image/gif;base64,') for h in log['html'])   # GIF outputs Quarto can show
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.')] == []          # staging removed

    r = cli('site', '--decks', decks, '--out', out, '--quarto', env=_fake_quarto(tmp_path / 'bin2', fail=True))
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == 'Error: quarto render failed (exit 1): ERROR: boom'
    assert (out / 'index.html').read_text() == '<html>rendered by quarto</html>'          # old site kept
    if shutil.which('quarto') is None:
        r = cli('site', '--decks', decks, '--out', out, '--quarto')
        assert r.returncode == 2 and 'quarto is not on PATH' in r.stderr


def test_quarto_project_matches_the_listing(decks):
    "_quarto.yml and index.qmd can't be rendered here; keep them consistent with what `build_site` writes."
    cfg = yaml.safe_load((ROOT / '_quarto.yml').read_text())
    assert cfg['project']['type'] == 'website' and 'decks/*/deck.ipynb' in cfg['project']['render']
    assert cfg['execute']['enabled'] is False and 'nbs' not in str(cfg['project']['render'])
    assert S.find_project(ROOT) == ROOT
    front = yaml.safe_load((ROOT / 'index.qmd').read_text().split('---')[1])
    listing = front['listing']
    assert listing['contents'] == 'decks/listing.yml'
    item_keys = set().union(*map(set, S.listing_items(S.find_decks(decks))))
    assert set(listing['fields']) <= item_keys, set(listing['fields']) - item_keys
    assert set(listing['field-display-names']) == {k for k, _, _ in S.HEADLINE}
