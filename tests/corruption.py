"""Corrupted weight files and cache entries: each case writes a good file, damages it, and checks that dcf_teach
notices. Used by tests/test_caches.py and tests/test_weights_integrity.py, and by the reliability figures
(`check_all(tmp)` returns how many cases were tried and how many were detected).

A weight-file case is detected when loading raises a one-line `UserError` that names the damaged file.
A cache case is detected when rereading logs exactly one warning naming the damaged file, gives a result equal to
the undamaged one, and leaves a valid entry behind (the cache healed)."""
from __future__ import annotations
import contextlib, logging, os, shutil
from pathlib import Path
from types import SimpleNamespace

import torch

# ------------------------------------------------------------------ damage

def flip_middle(f: Path, n: int = 2) -> None:
    "Flip `n` bytes in the middle of a file."
    b = bytearray(f.read_bytes()); m = len(b) // 2
    for i in range(n): b[m + i] ^= 0xFF
    f.write_bytes(bytes(b))

def flip_data(f: Path, n: int = 2) -> None:
    "Flip `n` bytes in the middle of a safetensors file's tensor data region (the header stays valid)."
    b = bytearray(f.read_bytes()); start = 8 + int.from_bytes(b[:8], 'little')
    m = start + (len(b) - start) // 2
    for i in range(n): b[m + i] ^= 0xFF
    f.write_bytes(bytes(b))

def garble_header(f: Path) -> None:
    "Change one character of a safetensors file's JSON header (metadata or offsets)."
    b = bytearray(f.read_bytes()); n = int.from_bytes(b[:8], 'little')
    i = 8 + n // 2
    b[i] = ord('0') if b[i] != ord('0') else ord('1')
    f.write_bytes(bytes(b))

def truncate(f: Path) -> None:
    "Cut a file to half its length."
    f.write_bytes(f.read_bytes()[:f.stat().st_size // 2])

DAMAGE = {'flip': flip_data, 'truncate': truncate, 'header': garble_header}

# ------------------------------------------------------------------ logging

class _Catch(logging.Handler):
    def __init__(self): super().__init__(logging.WARNING); self.msgs = []
    def emit(self, r): self.msgs.append(r.getMessage())

@contextlib.contextmanager
def warnings_caught():
    "Collect the warnings of the `dcf_teach` loggers."
    log, h = logging.getLogger('dcf_teach'), _Catch()
    old = log.level; log.addHandler(h); log.setLevel(min(old or logging.WARNING, logging.WARNING))
    try: yield h.msgs
    finally: log.removeHandler(h); log.setLevel(old)

@contextlib.contextmanager
def env(**kw):
    old = {k: os.environ.get(k) for k in kw}
    os.environ.update({k: str(v) for k, v in kw.items()})
    try: yield
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v

def _named_once(msgs, f: Path) -> bool:
    return sum(str(f) in m for m in msgs) == 1

# ------------------------------------------------------------------ weight files

def _refused(load, f: Path) -> bool:
    from dcf_teach.core import UserError
    try: load()
    except UserError as e:
        msg = str(e)
        return str(f) in msg and '\n' not in msg
    return False

def model_case(tmp: Path, part: str = 'unet/diffusion_pytorch_model.safetensors', damage=flip_middle) -> bool:
    "A copy of the shipped kikibouba model with a damaged weight file is refused, naming the file."
    from dcf_teach.engine.models import ASSETS_MODELS, load_components
    d = Path(tmp)/'kikibouba'; shutil.copytree(ASSETS_MODELS/'kikibouba', d)
    damage(d/part)
    return _refused(lambda: load_components(d), d/part)

def oracle_case(tmp: Path, member: str = 'resnet18.safetensors', damage=flip_middle) -> bool:
    "A copy of the shipped bouba-kiki oracle with a damaged member is refused, naming the file."
    from dcf_teach.judge.oracle import _shipped_root, load_oracle
    d = Path(tmp)/'bouba-kiki'; shutil.copytree(_shipped_root()/'bouba-kiki', d)
    damage(d/member)
    return _refused(lambda: load_oracle(d), d/member)

def make_adapter(folder: Path):
    "A small LoRA adapter folder on the dummy pixel components (and the components it belongs to)."
    from dcf_teach.engine.adapters import add_lora, base_fingerprint, save_adapter
    from dcf_teach.engine.models import dummy_components
    c = dummy_components(latent=False)
    pm = add_lora(c)
    with torch.no_grad():
        for n, p in c.unet.named_parameters():
            if 'lora_B' in n: p.normal_(0, 0.1, generator=torch.Generator().manual_seed(0))
    save_adapter(pm, folder, base_fingerprint(c), {'step': 0})
    return folder

def adapter_case(tmp: Path, damage=flip_middle) -> bool:
    "An adapter folder with damaged weights is refused, naming the file."
    from dcf_teach.engine.adapters import load_adapter
    from dcf_teach.engine.models import dummy_components
    d = make_adapter(Path(tmp)/'adapter'); f = d/'adapter_model.safetensors'
    damage(f)
    return _refused(lambda: load_adapter(dummy_components(latent=False), d), f)

# ------------------------------------------------------------------ cache entries

def _images(n=6, seed=0):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))

def embedding_case(tmp: Path, how: str, c=None) -> bool:
    "A damaged embedding-cache shard: one warning, the same embeddings, a valid shard again."
    from dcf_teach.core import read_tensors
    from dcf_teach.engine.embeddings import EmbeddingCache, embed_images
    from dcf_teach.engine.models import dummy_components
    c = c or dummy_components(latent=False); xs = _images()
    ref, _ = embed_images(c, xs, progress=False)
    d = Path(tmp)/f'emb-{how}'
    embed_images(c, xs, cache=d, progress=False)
    f, = (d/'embeddings').rglob('*.safetensors')
    DAMAGE[how](f)
    with warnings_caught() as msgs:
        got, _ = embed_images(c, xs, cache=d, progress=False)
    return (_named_once(msgs, f) and torch.equal(got, ref) and read_tensors(f) is not None
            and len(EmbeddingCache(d, c.encoder_id)) == len(xs))

RECORD_DAMAGE = ('flip', 'truncate', 'header', 'json_half', 'json_orphan', 'json_edit')

def record_case(tmp: Path, how: str) -> bool:
    "A damaged record-cache entry (image or JSON), read through `deck.cached`: one warning, recomputed, healed."
    from dcf_teach.study.deck import cached
    from dcf_teach.evaluation.cache import RecordCache, record_key
    calls = []
    def compute():
        calls.append(1)
        return {'p': 0.75, 'tried': [[40, 0.5]], 'id': 'img-1'}, torch.linspace(0, 1, 3 * 8 * 8).reshape(3, 8, 8)
    setup = SimpleNamespace(cache=Path(tmp)/f'rec-{how}')
    result = SimpleNamespace(model_id='m', bank_id='b', oracle_id='o')
    ref = cached(setup, result, 'corruption-test', compute, n=1)
    js, st = RecordCache(setup.cache)._paths(record_key(kind='corruption-test', model='m', bank='b', oracle='o', n=1))
    if how in DAMAGE: DAMAGE[how](st); named = st
    elif how == 'json_half': truncate(js); named = js
    elif how == 'json_orphan': st.unlink(); named = js
    elif how == 'json_edit': js.write_text(js.read_text().replace('0.75', '0.25')); named = js
    else: raise ValueError(how)
    with warnings_caught() as msgs:
        got = cached(setup, result, 'corruption-test', compute, n=1)
    again = RecordCache(setup.cache).get(js.stem)
    return (_named_once(msgs, named) and len(calls) == 2 and got[0] == ref[0] and torch.equal(got[1], ref[1])
            and again is not None and torch.equal(again[1], ref[1]))

BANK_DAMAGE = ('flip', 'truncate', 'header', 'json_half', 'json_orphan')

def bank_case(tmp: Path, how: str, c=None, data=None) -> bool:
    "A damaged cached direction bank: one warning, the same bank rebuilt, a valid bank again."
    from dcf_teach.engine.bank import load_bank
    from dcf_teach.evaluation.evaluate import dataset_bank
    from dcf_teach.data.registry import resolve_dataset
    from dcf_teach.engine.models import dummy_components
    c = c or dummy_components(latent=False)
    data = data or resolve_dataset('kikibouba', cache=Path(tmp)/'data', n_per_class=8)
    cache = Path(tmp)/f'bank-{how}'
    ref = dataset_bank(c, data, cache=cache)
    st, = (cache/'banks').glob('*.safetensors'); js = st.with_suffix('.json')
    if how in DAMAGE: DAMAGE[how](st); named = st
    elif how == 'json_half': truncate(js); named = st
    elif how == 'json_orphan': st.unlink(); named = st
    else: raise ValueError(how)
    with warnings_caught() as msgs:
        got = dataset_bank(c, data, cache=cache)
    healed = load_bank(st, strict=True)
    return _named_once(msgs, named) and torch.equal(got.means, ref.means) and torch.equal(healed.means, ref.means)

def lpips_case(tmp: Path, how: str) -> bool:
    "A copy of the shipped LPIPS weights, damaged, is refused, naming the file."
    from dcf_teach.judge.lpips import LPIPS_WEIGHTS, load_lpips_weights
    f = Path(tmp)/f'lpips-{how}'/LPIPS_WEIGHTS.name; f.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(LPIPS_WEIGHTS, f)
    DAMAGE[how](f)
    return _refused(lambda: load_lpips_weights(f), f)

# ------------------------------------------------------------------ all of them

def cases(tmp: Path):
    "(name, thunk) for every corruption case; each thunk returns True when the damage was detected."
    from dcf_teach.data.registry import resolve_dataset
    from dcf_teach.engine.models import dummy_components
    tmp = Path(tmp)
    sub = lambda name: (tmp/name).mkdir(parents=True, exist_ok=True) or tmp/name
    c = dummy_components(latent=False)
    lazy = {}
    def data():
        if 'd' not in lazy: lazy['d'] = resolve_dataset('kikibouba', cache=tmp/'data', n_per_class=8)
        return lazy['d']
    out = [('weights: model unet, 2 bytes flipped mid-file', lambda: model_case(sub('w-model-unet'))),
           ('weights: model unet, truncated', lambda: model_case(sub('w-model-trunc'), damage=truncate)),
           ('weights: model image encoder, 2 bytes flipped', lambda: model_case(sub('w-model-enc'), 'image_encoder/model.safetensors')),
           ('weights: oracle member, 2 bytes flipped', lambda: oracle_case(sub('w-oracle'))),
           ('weights: oracle member, truncated', lambda: oracle_case(sub('w-oracle-trunc'), 'mobilenet_v2.safetensors', truncate)),
           ('weights: LoRA adapter, 2 bytes flipped', lambda: adapter_case(sub('w-adapter'))),
           ('weights: LoRA adapter, truncated', lambda: adapter_case(sub('w-adapter-trunc'), truncate))]
    out += [(f'weights: LPIPS (shipped), {h}', lambda h=h: lpips_case(sub('w-lpips'), h)) for h in DAMAGE]
    out += [(f'cache: embeddings, {h}', lambda h=h: embedding_case(sub('c-emb'), h, c)) for h in DAMAGE]
    out += [(f'cache: records/images, {h}', lambda h=h: record_case(sub('c-rec'), h)) for h in RECORD_DAMAGE]
    out += [(f'cache: direction bank, {h}', lambda h=h: bank_case(sub('c-bank'), h, c, data())) for h in BANK_DAMAGE]
    return out

def check_all(tmp: str | Path) -> dict:
    "Run every corruption case in `tmp`: {'tried': n, 'detected': k, 'cases': {name: detected}}."
    res = {}
    for name, run in cases(tmp):
        try: res[name] = bool(run())
        except Exception as e: res[name] = False; logging.getLogger(__name__).warning(f"{name}: {type(e).__name__}: {e}")
    return dict(tried=len(res), detected=sum(res.values()), cases=res)

if __name__ == '__main__':
    import json, sys, tempfile
    with tempfile.TemporaryDirectory() as t: print(json.dumps(check_all(t), indent=2))
