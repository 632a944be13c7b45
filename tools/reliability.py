#!/usr/bin/env python
"""The reliability figures of issue #12, measured: bad inputs, hostile image files, corrupted weights and caches,
and SIGKILL at seeded random moments during the five long-running commands.

    .venv/bin/python tools/reliability.py                 # everything (about 40 min on 2 cores)
    .venv/bin/python tools/reliability.py --kills 2 --only kills --commands deck,bench
    .venv/bin/python tools/reliability.py --only kills --commands make-deck --kills 3   # the whole demo build (~10 min a kill)
    make reliability RELIABILITY_ARGS="--kills 10"

Each kill trial starts the command in a fresh folder (its own cache), kills its whole process group with SIGKILL
after a delay drawn from a seeded generator (uniform over the uninterrupted run's wall time), checks that every
file under a final name is whole (JSON parses, images decode, safetensors load), reruns the command (training:
with --resume where the command needs it) and compares the outputs with an uninterrupted run: weights, images and
media byte-identical, JSON equal apart from timing fields. The figures go to stdout and, with --out, to a JSON file.
"""
from __future__ import annotations
import argparse, json, os, random, re, shutil, signal, subprocess, sys, tempfile, time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DCF = str(BIN / 'dcf-teach')

# JSON keys whose values are wall-clock measurements, dates or file locations: the only ones allowed to differ
TIMING_KEY = re.compile(r'(second|timing|from_cache|^cached$|^computed$|minutes|^s_per|_s$|time|date|elapsed|wall|duration|created|_at$|speed|per_s|'
                        r'throughput|papermill|^path$|_path$|^out$|^out_dir$|cache_dir|^start|^end$)', re.I)
TEMP_NAME = re.compile(r'^\..*\.tmp|\.tmp$|^\.[^/]*\.partial|^\.tmp')


def _env(work: Path, threads: int = 1) -> dict:
    return {**os.environ, 'HF_HUB_OFFLINE': '1', 'OMP_WAIT_POLICY': 'PASSIVE', 'OMP_NUM_THREADS': str(threads),
            'MKL_NUM_THREADS': str(threads), 'DCF_TEACH_CACHE': str(work / 'cache'), 'XDG_CACHE_HOME': str(work / 'xdg'),
            'PYTHONHASHSEED': '0', 'TQDM_DISABLE': '1'}


def _strip_timing(o):
    if isinstance(o, dict): return {k: _strip_timing(v) for k, v in o.items() if not TIMING_KEY.search(str(k))}
    if isinstance(o, list): return [_strip_timing(v) for v in o]
    return o


def file_is_whole(p: Path) -> str | None:
    "None if the file under its final name is whole, else why not."
    try:
        if p.stat().st_size == 0 and p.suffix not in ('.txt', '.md', '.csv', '.jsonl', '.log'): return 'empty'
        s = p.suffix.lower()
        if s in ('.json', '.ipynb'): json.loads(p.read_text())
        elif s == '.jsonl': [json.loads(l) for l in p.read_text().splitlines() if l.strip()]
        elif s in ('.png', '.gif', '.jpg', '.jpeg', '.webp'):
            from PIL import Image
            with Image.open(p) as im: im.load()
        elif s == '.safetensors':
            from safetensors import safe_open
            with safe_open(str(p), 'pt') as f:
                for k in f.keys(): f.get_tensor(k)
        elif s == '.mp4':
            b = p.read_bytes()
            if b'moov' not in b: return 'mp4 without its index (moov atom)'
    except Exception as e:
        return f'{type(e).__name__}: {str(e)[:120]}'
    return None


def broken_files(root: Path) -> list[str]:
    "Files under final names (not temporary) that are not whole."
    out = []
    for p in sorted(root.rglob('*')) if root.exists() else []:
        if p.is_file() and not any(TEMP_NAME.search(part) for part in p.relative_to(root).parts):
            why = file_is_whole(p)
            if why: out.append(f'{p.relative_to(root)}: {why}')
    return out


def compare_outputs(ref: Path, got: Path, globs: list[str], text_skip=()) -> list[str]:
    "Differences between two output folders over `globs`: byte equality, JSON equality apart from timing fields."
    diffs = []
    for g in globs:
        final = lambda root: sorted(r for r in (p.relative_to(root) for p in root.glob(g) if p.is_file())
                                    if not any(TEMP_NAME.search(part) for part in r.parts))
        a, b = final(ref), final(got)
        if a != b: diffs.append(f'{g}: files differ: only in reference {sorted(set(a) - set(b))[:3]}, only in rerun {sorted(set(b) - set(a))[:3]}')
        for r in sorted(set(a) & set(b)):
            x, y = ref / r, got / r
            if r.suffix in ('.json', '.jsonl', '.ipynb'):
                if r.suffix == '.ipynb': continue   # executed notebooks carry timings everywhere; checked whole, not equal
                tx = x.read_text().replace(str(ref.parent), '<trial>')   # paths inside the trial folder
                ty = y.read_text().replace(str(got.parent), '<trial>')
                lx, ly = (tx.splitlines(), ty.splitlines()) if r.suffix == '.jsonl' else ([tx], [ty])
                try: same = [_strip_timing(json.loads(v)) for v in lx] == [_strip_timing(json.loads(v)) for v in ly]
                except ValueError: same = False
                if not same: diffs.append(f'{r}: JSON differs beyond timing fields (or does not parse)')
            elif r.name in text_skip: continue
            elif x.read_bytes() != y.read_bytes(): diffs.append(f'{r}: bytes differ')
    return diffs


@dataclass
class Job:
    "One command under test: how to prepare its inputs, run it, rerun it, and which outputs must match."
    name: str
    argv: list[str]                       # run in the trial folder
    rerun: list[str]                      # the command after a kill
    outputs: str                          # the output folder (relative)
    compare: list[str]                    # globs under `outputs` that must match the reference
    prepare: list[list[str]] = field(default_factory=list)   # commands run once into the shared inputs folder
    resumed: str | None = None            # a log line the rerun prints when it resumed from a checkpoint
    checkpoint: str | None = None         # glob (under `outputs`) of the resumable state, if the command has one
    text_skip: tuple = ()                 # files compared for wholeness only (their text carries timings)


def jobs(kb: str) -> dict[str, Job]:
    "The five commands, each at a size that runs in about 20-60 s on 2 cores."
    deck = ['deck', '--dataset', 'kikibouba', '--out', 'deck', '--no-log-output', '-p', 'n_images', '8', '-p', 'n_study', '2',
            '-p', 'n_examples', '2', '-p', 'curve_images', '2', '-p', 'n_per_class', '200', '-p', 'n_steps', '20']
    bench = ['bench', '--dataset', 'kikibouba', '--n', '8', '--n-steps', '20', '--batch-size', '2', '--out', 'bench/report.json',
             '--records', 'bench/records.jsonl', '--no-control']
    dec = ['train', 'decoder', '--data', kb, '--out', 'model', '--steps', '40', '--encoder-steps', '30',
           '--checkpoint-minutes', '0.05', '--threads', '1']
    orc = ['train', 'oracle', '--data', kb, '--classes', 'bouba,kiki', '--out', 'oracle', '--epochs', '12', '--patience', '12',
           '--threads', '1']
    lora = ['train', 'lora', '--model', 'kikibouba', '--data', kb, '--out', 'adapter', '--steps', '120', '--batch-size', '4',
            '--val-n', '0', '--val-every', '5', '--checkpoint-steps', '2', '--threads', '1']
    demo = ['deck', '--demo', '--decks', 'decks', '--site', '_site', '--no-log-output']   # what `make deck` runs
    return {
        'make-deck': Job('make deck (three demo decks and the site)', demo, demo, 'decks',
                         ['*/media/**/*', '*/metrics.json', '*/thumbnail.png']),
        'deck': Job('make deck (kikibouba deck)', deck, deck, 'deck', ['media/**/*', 'metrics.json', 'thumbnail.png']),
        'bench': Job('dcf-teach bench', bench, bench, 'bench', ['*.json', '*.jsonl', '*.png']),
        'train-decoder': Job('dcf-teach train decoder', dec, dec + ['--resume'], 'model',
                             ['unet/*', 'image_encoder/*', 'image_processor/*', 'scheduler/*', 'dcf_teach.json'],
                             resumed='resumed at step', checkpoint='.train/*_state.safetensors'),
        'train-oracle': Job('dcf-teach train oracle', orc, orc + ['--resume'], 'oracle', ['*.safetensors', 'oracle.json'],
                            resumed='resumed', checkpoint='.work/**/*.safetensors'),
        'train-lora': Job('dcf-teach train lora', lora, lora + ['--resume'], 'adapter',
                          ['*.safetensors', '*.json', 'last/*.safetensors', 'last/*.json'], resumed='resumed at step',
                          checkpoint='.work/*.safetensors'),
    }


def kill_tree(p: subprocess.Popen) -> None:
    "SIGKILL the process, its group and every descendant (a deck's Jupyter kernel runs in a session of its own)."
    import psutil
    try: kids = psutil.Process(p.pid).children(recursive=True)
    except psutil.NoSuchProcess: kids = []
    for q in [p.pid, *(k.pid for k in kids)]:
        try: os.kill(q, signal.SIGKILL)
        except ProcessLookupError: pass
    try: os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError: pass
    p.wait()


def run(argv, cwd, env, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([DCF, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def kill_trials(names: list[str], n: int, seed: int, work: Path, log) -> dict:
    "Reference run, then `n` seeded SIGKILL moments per command; the figures per command."
    inputs = work / 'inputs'; inputs.mkdir(parents=True, exist_ok=True)
    if not (inputs / 'kb').is_dir():
        r = run(['data', 'kikibouba', '--out', 'kb', '--n-per-class', '30'], inputs, _env(inputs))
        assert r.returncode == 0, r.stderr
    kb = str(inputs / 'kb')
    rng, figures = random.Random(seed), {}
    for name in names:
        job = jobs(kb)[name]
        ref = work / name / 'reference'; shutil.rmtree(ref, ignore_errors=True); ref.mkdir(parents=True)
        t0 = time.time(); r = run(job.argv, ref, _env(ref))
        T = time.time() - t0
        if r.returncode:
            figures[name] = {'error': f'reference run failed: {r.stderr.strip().splitlines()[-1:]}'}; log(f'{name}: reference failed\n{r.stderr[-2000:]}'); continue
        log(f'{name}: uninterrupted run {T:.1f} s')
        f = {'command': job.name, 'reference_seconds': round(T, 1), 'tries': 0, 'kills': 0, 'identical': 0, 'checkpoint_at_kill': 0, 'resumed': 0,
             'half_written_files': 0, 'failed_reruns': 0, 'problems': []}
        tries = 0
        while f['kills'] < n and tries < 2 * n:   # n real kills: a draw after the run had finished does not count
            i, tries = tries, tries + 1
            trial = work / name / f'kill{i:02d}'; shutil.rmtree(trial, ignore_errors=True); trial.mkdir(parents=True)
            delay = rng.uniform(0.03, 0.97) * T
            p = subprocess.Popen([DCF, *job.argv], cwd=trial, env=_env(trial), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
            try: p.wait(timeout=delay); finished = True
            except subprocess.TimeoutExpired: finished = False
            if not finished: kill_tree(p)
            f['kills'] += 0 if finished else 1
            bad = broken_files(trial / job.outputs)
            had_ckpt = bool(job.checkpoint and not finished and list((trial / job.outputs).glob(job.checkpoint)))
            f['checkpoint_at_kill'] += had_ckpt
            f['half_written_files'] += len(bad)
            r2 = run(job.rerun, trial, _env(trial))
            if r2.returncode:
                f['failed_reruns'] += 1; f['problems'].append(f'kill at {delay:.1f} s: rerun failed: {(r2.stderr.strip().splitlines() or [""])[-1][:200]}')
                continue
            resumed = bool(job.resumed and job.resumed in (r2.stderr + r2.stdout))
            f['resumed'] += resumed
            if had_ckpt and not resumed: f['problems'].append(f'kill at {delay:.1f} s: a checkpoint was there but the rerun did not say it resumed')
            diffs = compare_outputs(ref / job.outputs, trial / job.outputs, job.compare, job.text_skip)
            f['identical'] += not diffs and not bad
            if bad or diffs: f['problems'].append(f'kill at {delay:.1f} s: ' + '; '.join((bad + diffs)[:4]))
            log(f'{name}: try {i + 1}, kill {f["kills"]}/{n} at {delay:5.1f} s{" (finished first)" if finished else ""}: '
                f'{"identical" if not diffs and not bad else "DIFFERENT"}{", resumed" if resumed else ""}')
            if not diffs and not bad: shutil.rmtree(trial, ignore_errors=True)   # kept for a look otherwise
        f['tries'] = tries
        figures[name] = f
    return figures


def concurrent_decks(work: Path, log) -> dict:
    "Two deck builds sharing one cache at the same time: both succeed with identical results."
    d = work / 'concurrent'; shutil.rmtree(d, ignore_errors=True); d.mkdir(parents=True)
    job = jobs('')['deck']
    env = _env(d)
    ps = []
    for k in ('a', 'b'):
        argv = list(job.argv); argv[argv.index('--out') + 1] = f'deck-{k}'
        ps.append(subprocess.Popen([DCF, *argv], cwd=d, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    errs = [p.communicate(timeout=1800)[1] for p in ps]
    rcs = [p.returncode for p in ps]
    diffs = compare_outputs(d / 'deck-a', d / 'deck-b', job.compare, job.text_skip) if not any(rcs) else \
        [f'build {k} failed: {(e.strip().splitlines() or [""])[-1][:200]}' for k, e, rc in zip('ab', errs, rcs) if rc]
    log(f'two deck builds on one cache: exit {rcs}, {"identical" if not diffs else diffs[:3]}')
    return {'exit_codes': rcs, 'identical': not diffs, 'problems': diffs[:5]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--kills', type=int, default=10, help='kill moments per command (default 10)')
    ap.add_argument('--seed', type=int, default=0, help='seed of the kill moments')
    ap.add_argument('--only', default='bad,hostile,corrupt,kills,concurrent', help='parts to run (comma-separated)')
    ap.add_argument('--commands', default='deck,bench,train-decoder,train-oracle,train-lora', help='commands to kill')
    ap.add_argument('--work', type=Path, default=None, help='work folder (default: a temporary one, removed)')
    ap.add_argument('--out', type=Path, default=None, help='also write the figures as JSON here')
    a = ap.parse_args(argv)
    parts = a.only.split(',')
    work = a.work or Path(tempfile.mkdtemp(prefix='dcf-reliability-'))
    log = lambda s: print(s, file=sys.stderr, flush=True)
    sys.path.insert(0, str(ROOT / 'tests'))
    fig = {}
    if 'bad' in parts:
        from bad_input_cases import CASES, run_case
        res = [run_case(c, work / 'bad' / str(i)) for i, c in enumerate(CASES)]
        fig['bad_input'] = {'tried': len(res), 'clean_errors': sum(r['ok'] for r in res),
                            'tracebacks': sum(bool(r['traceback']) for r in res),
                            'files_left_behind': sum(len(r['new_files']) for r in res),
                            'problems': [f"{c[0]}: {r}" for c, r in zip(CASES, res) if not r['ok']][:10]}
    if 'hostile' in parts:
        from hostile_images import check_all
        fig['hostile_images'] = check_all(work / 'hostile')
    if 'corrupt' in parts:
        from corruption import check_all as corrupt_all
        fig['corruption'] = corrupt_all(work / 'corrupt')
    if 'kills' in parts:
        fig['kills'] = kill_trials(a.commands.split(','), a.kills, a.seed, work / 'kills', log)
    if 'concurrent' in parts:
        fig['concurrent_decks'] = concurrent_decks(work / 'kills', log)
    k = fig.get('kills', {})
    if k:
        fig['kills_total'] = {'tries': sum(v.get('tries', 0) for v in k.values()),
                              'kills': sum(v.get('kills', 0) for v in k.values()),
                              'identical': sum(v.get('identical', 0) for v in k.values()),
                              'resumed_from_checkpoint': sum(v.get('resumed', 0) for v in k.values()),
                              'half_written_files': sum(v.get('half_written_files', 0) for v in k.values())}
    print(json.dumps(fig, indent=2))
    if a.out: a.out.parent.mkdir(parents=True, exist_ok=True); a.out.write_text(json.dumps(fig, indent=2) + '\n')
    if a.work is None: shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
