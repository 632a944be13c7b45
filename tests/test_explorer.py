"""The JupyterLab explorer: widget logic driven without a browser (sliders → image and probabilities, inversion
cache, coalescing of requests, errors as messages, Save, Search, the benchmark command), and a smoke test in a real
JupyterLab with headless Chromium."""
import io, json, os, secrets, shutil, socket, subprocess, sys, threading, time, urllib.request
from pathlib import Path

import pytest
import torch
from PIL import Image

import dcf_teach.study.explorer as E
from dcf_teach.cli.study import bench_explorer_cmd
from dcf_teach.study.explorer import Explorer, Params, kikibouba_demo_data
from dcf_teach.engine.settings import EditSettings

ROOT = Path(__file__).resolve().parents[1]
N = 10   # inference steps: fast, and every T_skip fraction of the sliders is a whole step


@pytest.fixture(scope="module")
def setup():
    from dcf_teach.engine.bank import bank_from_dataset
    from dcf_teach.engine.models import dummy_components
    c = dummy_components(latent=True)
    train, held = kikibouba_demo_data(32, n_per_class=10)
    return c, bank_from_dataset(c, train, progress=False), held


def brightness(x): return x.mean((1, 2, 3))   # a toy oracle: P(kiki) = mean brightness


def make(setup, **kw):
    c, bank, held = setup
    kw = dict(oracle=brightness, edit=EditSettings(omega=2.0, n_steps=N), t_skip=0.7, sync=True) | kw
    return Explorer(c, bank, held, **kw)


# --- sliders → image and probabilities; the inversion cache -------------------------------------------------

def test_sliders_change_image_and_probabilities(setup):
    ex = make(setup)
    r0 = ex.result
    assert (r0.params, r0.cache, r0.format) == (Params(0, 'kiki', 2.0, 7, N, 'side by side'), 'miss', 'png')
    ex._w_omega.value = 4.0                       # what the browser does when the slider moves
    r1 = ex.result
    assert r1.params.omega == 4.0 and r1.data != r0.data and ex._w_image.value == r1.data
    assert r1.p_counterfactual != r0.p_counterfactual and r1.p_original == pytest.approx(r0.p_original)
    assert 'ω 4.00' in ex._w_info.value and f'{r1.p_counterfactual:.3f}' in ex._w_info.value
    ex._w_tskip.value = 0.3
    r2 = ex.result
    assert (r2.params.t_skip, r2.cache) == (3, 'extend') and not torch.equal(r2.counterfactual, r1.counterfactual)
    ex._w_index.value = 3                         # a kiki image: the target follows
    assert (ex.result.source, ex.result.target, ex.result.image_id, ex.result.cache) == ('kiki', 'bouba', 'kiki_00009', 'miss')
    ex._thumbs[1][1].click()                      # thumbnail button of image 1
    assert ex.index == 1 and ex.result.image_id == 'bouba_00009'
    assert ex._thumbs[1][0].layout.border.startswith('3px solid #')
    ex._w_view.value = 'flip'
    assert ex.result.format == 'gif' and ex._w_image.format == 'gif'
    assert Image.open(io.BytesIO(ex._w_image.value)).n_frames == 2
    assert ex.error is None


def test_omega_change_hits_the_cache_without_inverting(setup, monkeypatch):
    calls = []
    real = E.invert
    monkeypatch.setattr(E, 'invert', lambda *a, **k: calls.append(a[3:7]) or real(*a, **k))
    ex = make(setup)
    assert len(calls) == 1 and ex.cache.stats() == dict(hits=0, extends=0, misses=1, lookups=1, size=1)
    for w in (-1.0, 0.5, 3.0, 5.25):
        ex.omega = w
        assert ex.result.cache == 'hit' and ex.result.nfe == 2 * (N - 7)    # regeneration only: 3 steps with CFG
    assert len(calls) == 1 and ex.cache.hits == 4 and ex.cache.hit_rate == pytest.approx(0.8)
    ex.t_skip = 0.9; assert ex.result.cache == 'hit'
    ex.index = 1; ex.index = 0                    # another image, then back: the first inversion is still cached
    assert len(calls) == 2 and ex.result.cache == 'hit'


def test_cache_is_lru_over_images(setup):
    ex = make(setup, cache_size=2)
    ex.index = 1; ex.index = 2                    # images 0, 1, 2 → 0 is evicted
    assert len(ex.cache) == 2
    ex.index = 0
    assert ex.result.cache == 'miss' and ex.cache.misses == 4


# --- coalescing -------------------------------------------------------------------------------------------

def test_changes_during_a_slow_regeneration_are_coalesced(setup):
    ex = make(setup, sync=False)
    assert ex.wait(60) and ex.result is not None
    started, gate, real = threading.Event(), threading.Event(), ex._regenerate
    def slow(*a):
        started.set(); assert gate.wait(30)
        return real(*a)
    ex._regenerate = slow
    ex.omega = 1.0                                # starts the slow regeneration in the worker thread
    assert started.wait(30)
    t0 = time.perf_counter()
    for w in (1.25, 1.5, 1.75, 2.25, 2.5):        # five changes while it runs
        ex.omega = w
    assert time.perf_counter() - t0 < 1.0         # the UI thread never waits for the computation
    assert ex.scheduler.busy and ex.message.startswith('computing')
    gate.set()
    assert ex.wait(60)
    assert [p.omega for p in ex.computed] == [2.0, 1.0, 2.5]      # initial, the running one, the last of the five
    assert ex.result.params.omega == 2.5 and ex.scheduler.dropped == 4
    assert not ex.scheduler.busy and ex.error is None


# --- errors as messages -------------------------------------------------------------------------------------

def test_bank_of_another_encoder_is_a_message(setup):
    from dcf_teach.engine.models import dummy_components
    _, bank, held = setup
    ex = Explorer(dummy_components(seed=1, latent=True), bank, held, edit=EditSettings(n_steps=N), sync=True)
    assert ex.result is None and ex.error.startswith('the bank was built with encoder clip-')
    assert 'rebuild it with `dcf-teach bank DATA' in ex.error and 'Traceback' not in ex._w_status.value
    assert ex._w_status.value.count('Error: the bank was built') == 1 and ex._w_omega.disabled
    ex.omega = 3.0                                # controls do nothing, and nothing raises
    assert ex.result is None and ex.computed == []
    assert 'error: the bank was built' in repr(ex)


def test_errors_while_computing_are_messages(setup):
    c, bank, held = setup
    class Broken:
        classes = held.classes
        def __len__(self): return 2
        def __getitem__(self, i):
            if i == 1: raise OSError('disk on fire')
            return held[i]
    ex = Explorer(c, bank, Broken(), edit=EditSettings(n_steps=N), sync=True)
    assert ex.result is not None and ex.error is None
    ex.index = 1
    assert ex.error == 'OSError: disk on fire' and 'Error: OSError: disk on fire' in ex._w_status.value
    assert ex.result.params.index == 0            # the last good counterfactual stays on screen
    ex.index = 0
    assert ex.error is None
    ex.oracle = lambda x: torch.full((len(x),), 2.0)    # not a probability: render refuses it, the widget says so
    ex.view = 'flip'
    assert ex.error is not None and 'must be a probability' in ex.error
    bad = make(setup, sync=False)                 # the same in the background thread
    assert bad.wait(60)
    bad.oracle = lambda x: torch.zeros(1)
    bad.omega = 1.0; assert bad.wait(60)
    assert bad.error == 'the oracle returned 1 probabilities for 2 images'


# --- save and search ------------------------------------------------------------------------------------------

def test_save_writes_png_gif_json(setup, tmp_path):
    ex = make(setup, save_dir=tmp_path / 'out')
    ex.omega = -1.5
    ex._w_save.click()                            # the button
    names = sorted(p.name for p in (tmp_path / 'out').iterdir())
    stem = 'bouba_00008_to_kiki_w-1.50_t007'
    assert names == [f'{stem}.json', f'{stem}.png', f'{stem}_flip.gif'], names     # no temporary files left
    assert ex.message.startswith(f'saved {stem}.png, {stem}_flip.gif and {stem}.json')
    rec = json.loads((tmp_path / 'out' / f'{stem}.json').read_text())
    r = ex.result
    assert (rec['omega'], rec['t_skip'], rec['t_skip_fraction'], rec['n_steps']) == (-1.5, 7, 0.7, N)
    assert (rec['source_class'], rec['target_class'], rec['image_id']) == ('bouba', 'kiki', 'bouba_00008')
    assert rec['p_counterfactual'] == pytest.approx(r.p_counterfactual) and rec['lpips'] is None
    assert rec['image_hash'] == r.image_hash and rec['encoder_id'] == ex.c.encoder_id
    assert rec['files'] == dict(png=f'{stem}.png', gif=f'{stem}_flip.gif') and rec['inversion'] == 'zero'
    png = Image.open(tmp_path / 'out' / f'{stem}.png')
    assert png.size == (32, 32)
    assert torch.allclose(torch.tensor(list(png.convert('RGB').getdata())).float().T.reshape(3, 32, 32) / 255,
                          r.counterfactual, atol=1 / 255)
    assert Image.open(tmp_path / 'out' / f'{stem}_flip.gif').n_frames == 2
    paths = ex.save(tmp_path / 'again')           # the method returns the paths
    assert {k: p.name for k, p in paths.items()} == dict(png=f'{stem}.png', gif=f'{stem}_flip.gif', json=f'{stem}.json')


def test_save_before_any_result_is_a_message(setup, tmp_path):
    from dcf_teach.engine.models import dummy_components
    _, bank, held = setup
    ex = Explorer(dummy_components(seed=1, latent=True), bank, held, edit=EditSettings(n_steps=N), sync=True, save_dir=tmp_path)
    ex._on_save()
    assert ex.error == 'nothing to save yet: no counterfactual has been computed' and list(tmp_path.iterdir()) == []


def test_search_button_moves_t_skip_to_the_minimal_edit(setup):
    ex = make(setup, t_skip=0.9)
    x0 = ex._image(0)[0]
    # "kiki" once the mean absolute difference from image 0 exceeds 0.26: on these random components that happens
    # only when 8 of the 10 steps are regenerated (0.249 at T_skip 9 … 0.257 at 3, 0.272 at 2)
    ex.oracle = lambda x: (((x - x0).abs().mean((1, 2, 3)) - 0.26) * 10 + 0.5).clamp(0, 1)
    ex._w_search.click()
    r = ex.search_result
    assert r is not None and r.flipped and [k for k, _ in r.tried] == [9, 8, 7, 6, 5, 4, 3, 2] and r.t_skip == 2
    assert all(p <= 0.5 for _, p in r.tried[:-1])
    assert ex.t_skip_steps == r.t_skip and ex.result.params.t_skip == r.t_skip and ex.result.flipped
    assert ex.message.startswith('minimal edit of image 0 → kiki at ω = 2.00: T_skip')
    ex.oracle = lambda x: torch.zeros(len(x))     # nothing ever flips
    ex.search()
    assert not ex.search_result.flipped and 'no T_skip flipped the oracle' in ex.message


# --- display and the benchmark command ------------------------------------------------------------------------

def test_displays_as_its_widget(setup):
    ex = make(setup)
    b = ex._repr_mimebundle_()
    assert b['application/vnd.jupyter.widget-view+json']['model_id'] == ex.widget.model_id


def test_bench_explorer_cmd_json():
    from click.testing import CliRunner
    r = CliRunner().invoke(bench_explorer_cmd, ['--json', '--n-steps', '10', '--updates', '4', '--threads', '0'])
    assert r.exit_code == 0, r.output
    j = json.loads(r.stdout)
    assert j['cache_hit_rate'] == 1.0 and j['updates'] == 4 and len(j['update_seconds']) == 4
    assert j['t_skip_fraction'] == 0.5 and j['nfe_per_update'] == 2 * 5
    assert 0 < j['median_update_seconds'] < 30 and j['first_update_seconds'] > 0
    assert isinstance(j['embedded_default'], bool) and j['model_id']
    r = CliRunner().invoke(bench_explorer_cmd, ['--n-steps', '10', '--updates', '2', '--threads', '0'])
    assert r.exit_code == 0 and 'median update' in r.stdout and 'cache hit rate 1.00' in r.stdout


# --- a real JupyterLab in headless Chromium -----------------------------------------------------------------

CHROMIUM = '/usr/bin/chromium'
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run', '--disable-quic']
APP = "window.jupyterapp.shell.currentWidget"


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.mark.browser
@pytest.mark.timeout(240)
def test_explorer_in_jupyterlab(tmp_path):
    if not Path(CHROMIUM).exists(): pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium)")
    sync_api = pytest.importorskip('playwright.sync_api', reason='Python playwright is not installed')
    root = tmp_path / 'root'; root.mkdir()
    nb = json.loads((ROOT / 'nbs' / 'explore.ipynb').read_text())
    nb['metadata']['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3 (ipykernel)', 'language': 'python'}
    (root / 'explore.ipynb').write_text(json.dumps(nb))
    news = tmp_path / 'settings' / '@jupyterlab' / 'apputils-extension'; news.mkdir(parents=True)
    (news / 'notification.jupyterlab-settings').write_text('{"fetchNews": "false", "checkForUpdates": false}')
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, 'JUPYTER_CONFIG_DIR': str(tmp_path / 'config'), 'JUPYTER_RUNTIME_DIR': str(tmp_path / 'runtime'),
           'JUPYTERLAB_WORKSPACES_DIR': str(tmp_path / 'workspaces'), 'JUPYTERLAB_SETTINGS_DIR': str(tmp_path / 'settings'),
           'HF_HUB_OFFLINE': '1', 'OMP_WAIT_POLICY': 'PASSIVE', 'OMP_NUM_THREADS': '1',
           'PATH': f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [str(Path(sys.executable).parent / 'jupyter'), 'lab', '--no-browser', '--ip=127.0.0.1', f'--port={port}',
           '--ServerApp.port_retries=0', f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={root}',
           '--LabApp.expose_app_in_browser=True'] + (['--allow-root'] if os.geteuid() == 0 else [])
    log = open(tmp_path / 'lab.log', 'w')
    lab = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    shot = tmp_path / 'explorer.png'
    try:
        for _ in range(120):
            try: urllib.request.urlopen(f'http://127.0.0.1:{port}/api/status?token={token}', timeout=2); break
            except Exception:
                if lab.poll() is not None: pytest.fail(f"jupyter lab exited:\n{(tmp_path / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch_persistent_context(str(tmp_path / 'chromium-profile'), executable_path=CHROMIUM,
                                                           headless=True, args=FLAGS, viewport={'width': 1400, 'height': 1000})
            try:
                page = browser.pages[0] if browser.pages else browser.new_page()
                page.goto(f'http://127.0.0.1:{port}/lab/tree/explore.ipynb?token={token}')
                page.wait_for_function(f"window.jupyterapp && {APP} && {APP}.sessionContext && "
                                       f"{APP}.sessionContext.kernelDisplayStatus === 'idle'", timeout=60_000)
                page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
                page.wait_for_function("document.querySelector('img.dcf-view') && document.querySelector('img.dcf-view').src",
                                       timeout=60_000)
                page.wait_for_function(f"{APP}.sessionContext.kernelDisplayStatus === 'idle' && "
                                       "[...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]"
                                       ".every(e => /\\[\\d+\\]/.test(e.textContent))", timeout=60_000)
                assert 'Error' not in page.locator('.dcf-status').first.inner_text()
                readout = page.locator('.dcf-omega .widget-readout').first
                src0, w0 = page.eval_on_selector('img.dcf-view', 'e => e.src'), readout.inner_text()
                handle = page.locator('.dcf-omega .noUi-handle').first
                handle.scroll_into_view_if_needed(); handle.click()
                page.keyboard.press('ArrowRight'); page.keyboard.press('ArrowRight')
                page.wait_for_function("s => document.querySelector('img.dcf-view').src !== s", arg=src0, timeout=30_000)
                w1 = readout.inner_text()
                assert float(w1) == float(w0) + 2 * 0.25, (w0, w1)
                page.wait_for_function("w => document.querySelector('.dcf-info').innerText.includes('ω ' + w)", arg=w1,
                                       timeout=30_000)    # the kernel computed the counterfactual for the new ω
                page.locator('img.dcf-view').scroll_into_view_if_needed()
                page.screenshot(path=str(shot))
            finally: browser.close()
        shutil.copy(shot, '/tmp/explorer_screenshot.png')
        assert shot.stat().st_size > 10_000
    finally:
        lab.terminate()
        try: lab.wait(20)
        except subprocess.TimeoutExpired: lab.kill(); lab.wait(5)
        log.close()
