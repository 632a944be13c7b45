"""Kill and resume: `train oracle` and `train lora` killed (SIGKILL) after a checkpoint continue from it with --resume and
write the same files as an uninterrupted run (JSON equal apart from timing fields)."""
import json, os, signal, subprocess, time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import DCF

ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1', 'OMP_WAIT_POLICY': 'PASSIVE'}
TIMING = {'seconds', 'date', 'minutes'}   # the only JSON keys allowed to differ between runs


def _run(*args, timeout=300):
    r = subprocess.run([DCF, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=ENV)
    assert r.returncode == 0, f"dcf-teach {' '.join(map(str, args))}:\n{r.stdout}\n{r.stderr[-3000:]}"
    return r


def _run_killed(args, marker: Path, timeout=300):
    "Start `dcf-teach ARGS`, SIGKILL it as soon as `marker` (a checkpoint file) exists; assert it was killed."
    p = subprocess.Popen([DCF, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    t0 = time.monotonic()
    try:
        while not marker.exists():
            assert p.poll() is None, f"the run ended (exit {p.returncode}) before {marker.name} appeared"
            assert time.monotonic() - t0 < timeout, f"no {marker} after {timeout} s"
            time.sleep(0.01)
        p.send_signal(signal.SIGKILL)
    finally:
        if p.poll() is None: p.kill()
        p.wait()
    assert p.returncode == -signal.SIGKILL, f"exit {p.returncode}: the run finished before the kill"


def _strip(o):
    "A JSON value without its timing fields."
    if isinstance(o, dict): return {k: _strip(v) for k, v in o.items() if k not in TIMING}
    if isinstance(o, list): return [_strip(v) for v in o]
    return o


def _same_outputs(a: Path, b: Path, ignore=('README.md',)):
    "Same file tree; weights byte-identical; JSON equal apart from timing fields."
    fa = sorted(str(p.relative_to(a)) for p in a.rglob('*') if p.is_file())
    fb = sorted(str(p.relative_to(b)) for p in b.rglob('*') if p.is_file())
    assert fa == fb
    for f in fa:
        if f in ignore: continue
        if f.endswith('.json'): assert _strip(json.loads((a/f).read_text())) == _strip(json.loads((b/f).read_text())), f
        else: assert (a/f).read_bytes() == (b/f).read_bytes(), f


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    "Two classes of 24 tiny 32 px images (squares vs discs)."
    from PIL import Image
    d = tmp_path_factory.mktemp('resume')/'toy'
    g = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    for lab, cls in enumerate(['square', 'disc']):
        for i in range(24):
            a = np.zeros((32, 32, 3), np.uint8); a[:] = g.integers(0, 100, 3)
            r = int(g.integers(5, 10)); cx, cy = g.integers(r, 32 - r, 2)
            a[((xx - cx)**2 + (yy - cy)**2 <= r*r) if lab else ((abs(xx - cx) <= r) & (abs(yy - cy) <= r))] = 200
            (d/cls).mkdir(parents=True, exist_ok=True); Image.fromarray(a).save(d/cls/f'{i:03d}.png')
    return d


def test_oracle_killed_and_resumed_is_identical(toy):
    base = ['train', 'oracle', '--data', toy, '--classes', 'square,disc', '--epochs', 4, '--patience', 4,
            '--members', 'resnet18,mobilenet_v2', '--threads', 1]
    ref, out = toy.parent/'oracle_ref', toy.parent/'oracle_cut'
    _run(*base, '--out', ref)
    # killed once resnet18 is done and mobilenet_v2 has one epoch: one finished and one half-trained member to resume
    _run_killed([*base, '--out', out], out/'.work'/'mobilenet_v2'/'e0001.json')
    assert not (out/'oracle.json').exists()
    r = subprocess.run([DCF, *map(str, base), '--out', out], capture_output=True, text=True, env=ENV)
    assert r.returncode == 2 and '--resume' in r.stderr and 'Traceback' not in r.stderr   # refused without --resume
    r = _run(*base, '--out', out, '--resume')
    assert 'resumed resnet18 at epoch' in r.stderr and 'resumed mobilenet_v2 at epoch' in r.stderr, r.stderr[-2000:]
    assert not (out/'.work').exists()
    _same_outputs(ref, out)
    r = _run(*base, '--out', out, '--resume')   # a finished oracle: nothing to do
    assert 'nothing to resume' in r.stdout


def test_lora_killed_and_resumed_is_identical(toy):
    from dcf_teach.engine.models import dummy_components, save_components
    save_components(dummy_components(0, latent=False), toy.parent/'m0')
    base = ['train', 'lora', '--model', toy.parent/'m0', '--data', toy, '--steps', 40, '--batch-size', 4, '--val-n', 0,
            '--val-every', 4, '--checkpoint-steps', 5, '--threads', 1]
    ref, out = toy.parent/'lora_ref', toy.parent/'lora_cut'
    _run(*base, '--out', ref)
    _run_killed([*base, '--out', out], out/'.work'/'s00000010.json')
    r = subprocess.run([DCF, *map(str, base), '--out', out], capture_output=True, text=True, env=ENV)
    assert r.returncode == 2 and '--resume' in r.stderr and 'Traceback' not in r.stderr   # refused without --resume
    r = _run(*base, '--out', out, '--resume')
    assert 'resumed at step' in r.stderr, r.stderr[-2000:]
    assert not (out/'.work').exists() and not list(out.parent.glob('.lora_cut*'))
    _same_outputs(ref, out)
    r = _run(*base, '--out', out, '--resume')   # a finished adapter: nothing to do
    assert 'nothing to resume' in r.stdout
