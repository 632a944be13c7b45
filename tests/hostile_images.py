"""Hostile image files and the five commands that read images (issue #12, item 7).

`make_hostile_files(folder)` writes every hostile file into `folder`; `check_all(tmp)` builds one ImageFolder
(a few good kiki/bouba images per class plus all the hostile files in `kiki/`), runs `data check` (strict and
`--skip-bad`), `bank`, `deck` and `train decoder` on it once each and `edit` on every hostile file, and counts
the outcomes. Every run must end in a clean error (exit 2, one `Error:` line naming the file), a documented skip
(exit 0, the file named in a `skipped`/`skipping` line) or, for a readable but unusual file, its normal use —
never a traceback or a hang. Used by `tests/test_hostile_images.py` and by a reliability-figures script:

    from tests.hostile_images import check_all   # or: sys.path.insert(0, 'tests'); import hostile_images
    counts = check_all(Path(tempfile.mkdtemp()))
"""
from __future__ import annotations
import io, os, struct, subprocess, sys, time, zlib
from pathlib import Path

import numpy as np
from PIL import Image

DCF = str(Path(sys.executable).parent / "dcf-teach")
TIMEOUT = 180 # seconds per command; longer counts as a hang

# kind: 'bad' (unusable content: an error or a skip), 'odd' (named like an image but not a file: always
# skipped by scans, an error for `edit`), 'ok' (readable, unusual: must be used), 'inert' (not named like an
# image: ignored by scans, an error for `edit`; only there to show that nothing hangs)
KINDS: dict[str, str] = {}


def _png(arr: np.ndarray) -> bytes:
    b = io.BytesIO(); Image.fromarray(arr).save(b, format='PNG'); return b.getvalue()


def _jpeg(im: Image.Image, **kw) -> bytes:
    b = io.BytesIO(); im.save(b, format='JPEG', quality=90, **kw); return b.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)


def _bomb_png(w: int, h: int) -> bytes:
    "A valid PNG header claiming w×h RGB pixels, with a tiny IDAT (a few hundred bytes on disk)."
    ihdr = struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', ihdr) + _chunk(b'IDAT', zlib.compress(b'\0' * 1000)) + _chunk(b'IEND', b'')


def _noise(h=48, w=48, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def make_hostile_files(folder: str | Path) -> list[tuple[str, Path]]:
    "Write every hostile file into `folder`; [(name, path)] (the kind of each name is in `KINDS`)."
    d = Path(folder); d.mkdir(parents=True, exist_ok=True)
    out = []

    def put(name, kind, data: bytes | None = None):
        p = d / name
        if data is not None: p.write_bytes(data)
        KINDS[name] = kind; out.append((name, p))

    png, jpg = _png(_noise()), _jpeg(Image.fromarray(_noise(seed=1)))
    put('zero_bytes.png', 'bad', b'')
    for cut in (8, 33, len(png) // 2, len(png) - 64):           # signature only, after IHDR, mid-IDAT, near the end
        put(f'truncated_png_at_{cut}.png', 'bad', png[:cut])
    for cut in (2, 200, len(jpg) // 2, len(jpg) - 64):          # SOI only, in the headers, mid-scan, near the end
        put(f'truncated_jpg_at_{cut}.jpg', 'bad', jpg[:cut])
    put('png_named.jpg', 'ok', _png(_noise(seed=2)))            # wrong extension, readable content
    put('text_named.png', 'bad', b'this is not an image\n' * 10)
    put('bomb_100000x100000.png', 'bad', _bomb_png(100_000, 100_000))   # over PIL's own limit
    put('bomb_9000x9000.png', 'bad', _bomb_png(9000, 9000))             # over dcf_teach's MAX_PIXELS only
    a16 = (np.linspace(0, 65535, 40 * 40).reshape(40, 40)).astype(np.uint16)
    b = io.BytesIO(); Image.fromarray(a16).save(b, format='PNG'); put('gray16.png', 'ok', b.getvalue())
    p = Image.fromarray(_noise(seed=3)).convert('P', palette=Image.Palette.ADAPTIVE, colors=16)
    b = io.BytesIO(); p.save(b, format='PNG', transparency=0); put('palette_transparent.png', 'ok', b.getvalue())
    put('cmyk.jpg', 'ok', _jpeg(Image.fromarray(_noise(seed=4)).convert('CMYK')))
    a = np.zeros((30, 50, 3), np.uint8); a[:, :15] = 255
    ex = Image.Exif(); ex[0x0112] = 6
    put('exif_rotated.jpg', 'ok', _jpeg(Image.fromarray(a), exif=ex.tobytes()))
    frames = [Image.fromarray(_noise(seed=s)) for s in (5, 6, 7)]
    b = io.BytesIO(); frames[0].save(b, format='GIF', save_all=True, append_images=frames[1:], duration=80, loop=0)
    put('animated.gif', 'ok', b.getvalue())
    b = io.BytesIO(); frames[0].save(b, format='TIFF', save_all=True, append_images=frames[1:])
    put('multipage.tif', 'ok', b.getvalue())
    (d / 'folder.png').mkdir(exist_ok=True); put('folder.png', 'odd')
    if not (d / 'loop.png').is_symlink(): (d / 'loop.png').symlink_to('loop.png')
    put('loop.png', 'odd')
    if not (d / 'cycle').is_symlink(): (d / 'cycle').symlink_to('..')            # a folder link back up
    put('cycle', 'inert')
    return out


def run(*args, timeout=TIMEOUT) -> tuple[int | None, str, float]:
    "(exit status or None on timeout, stdout + stderr, seconds) of one `dcf-teach` call."
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'OMP_WAIT_POLICY': 'PASSIVE', 'OMP_NUM_THREADS': '1'}
    t0 = time.time()
    try: r = subprocess.run([DCF, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b'').decode(errors='replace') if isinstance(e.stdout, bytes) else (e.stdout or '')
        return None, out, time.time() - t0
    return r.returncode, r.stdout + r.stderr, time.time() - t0


def make_dataset(root: str | Path, n_per_class: int = 24) -> tuple[Path, list[tuple[str, Path]]]:
    "An ImageFolder bouba/kiki of good kiki/bouba images plus every hostile file in kiki/."
    import json
    from dcf_teach.data.kikibouba import make_kikibouba
    root = Path(root)
    make_kikibouba(root, n_per_class=n_per_class, size=32, seed=0, progress=False)
    meta = json.loads((root / 'dataset.json').read_text())   # keep its splits (test images in both classes), but as a
    meta.pop('generator', None)                               # user's folder: no generator, so no ground-truth measures
    (root / 'dataset.json').write_text(json.dumps(meta))
    return root, make_hostile_files(root / 'kiki')


def _outcome(kind: str, name: str, path: Path, rc, out: str, skip_words=('skipped', 'skipping')) -> str:
    "'traceback', 'hang', 'clean' (error naming the file / documented skip / normal use) or 'wrong: ...' for one file."
    if rc is None: return 'hang'
    if 'Traceback' in out: return 'traceback'
    lines = [l for l in out.splitlines() if name in l]
    named_skip = any(any(w in l.lower() for w in skip_words) for l in lines)
    if rc == 0:
        if kind in ('bad', 'odd'): return 'clean' if named_skip else f'wrong: exit 0 but {name} not named in a skip line'
        return f'wrong: {name} was skipped' if named_skip else 'clean'
    errs = [l for l in out.splitlines() if l.startswith('Error:')]
    if rc == 2 and len(errs) == 1: return 'clean'
    return f'wrong: exit {rc}, {len(errs)} Error: line(s)'


def check_all(tmp: str | Path, edit_steps: int = 4) -> dict:
    """Run the five commands over the hostile files in `tmp`; counts: tried, clean (clean errors, documented skips
    or normal use), tracebacks, hangs, wrong (anything else), and `details`: [(command, file, outcome, seconds)]."""
    tmp = Path(tmp); tmp.mkdir(parents=True, exist_ok=True)
    root, files = make_dataset(tmp / 'data')
    details, seconds = [], {}

    def folder_cmd(cmd, args, expect_rc=0):
        rc, out, s = run(*args); seconds[cmd] = round(s, 1)
        for name, p in files:
            kind = KINDS[name]
            if kind == 'inert': o = 'hang' if rc is None else 'traceback' if 'Traceback' in out else 'clean'
            else: o = _outcome(kind, name, p, rc, out)
            if o == 'clean' and rc != expect_rc: o = f'wrong: exit {rc} (expected {expect_rc}): ' + out.strip().splitlines()[-1][:200]
            details.append((cmd, name, o, s))
        return rc, out

    # strict check: one clean error naming the first bad file (a single trial)
    rc, out, s = run('data', 'check', root); seconds['data check'] = round(s, 1)
    errs = [l for l in out.splitlines() if l.startswith('Error:')]
    ok = rc == 2 and len(errs) == 1 and 'Traceback' not in out and any(n in errs[0] for n, _ in files)
    details.append(('data check', '(all)', 'clean' if ok else 'hang' if rc is None else 'traceback' if 'Traceback' in out
                    else f'wrong: exit {rc}: {out[-300:]}', s))
    rc, out = folder_cmd('data check --skip-bad', ['data', 'check', root, '--skip-bad'])
    n_skip = sum(KINDS[n] in ('bad', 'odd') for n, _ in files)
    if rc == 0 and f'{n_skip} skipped' not in out:
        details.append(('data check --skip-bad', '(count)', f'wrong: "{n_skip} skipped" not in the report', 0))
    bank = tmp / 'bank'
    folder_cmd('bank', ['bank', root, '--model', 'kikibouba', '--out', bank, '--split', 'all', '--no-cache'])
    folder_cmd('deck', ['deck', '--dataset', root, '--classes', 'bouba,kiki', '--out', tmp / 'deck', '-p', 'model', 'kikibouba',
                        '-p', 'oracle', 'bouba-kiki', '-p', 'n_images', '2', '-p', 'n_study', '1', '-p', 'n_examples', '1',
                        '-p', 'n_steps', '4', '-p', 't_skip_fractions', '0.5,0.0', '-p', 'curve_images', '0',
                        '-p', 'n_interp', '1', '-p', 'batch_size', '2', '-p', 'cache_dir', tmp / 'cache'])
    folder_cmd('train decoder', ['train', 'decoder', '--data', root, '--out', tmp / 'model', '--steps', '2',
                                 '--encoder-steps', '2', '--resolution', '16', '--batch-size', '4', '--threads', '1'])
    t0 = time.time()
    have_bank = (tmp / 'bank.safetensors').exists()
    for name, p in files:
        if not have_bank:
            details.append(('edit', name, 'wrong: no bank to edit with', 0)); continue
        rc, out, s = run('edit', p, '--model', 'kikibouba', '--bank', bank, '--target', 'bouba', '--n-steps', edit_steps,
                         '--t-skip', '0.5', '--out', tmp / 'edits')
        kind = KINDS[name]
        o = _outcome('bad' if kind != 'ok' else 'ok', name, p, rc, out)
        if o == 'clean' and kind != 'ok' and rc != 2: o = f'wrong: exit {rc} for an unusable file'
        if o == 'clean' and kind == 'ok' and rc != 0: o = f'wrong: exit {rc}: ' + out.strip().splitlines()[-1][:200]
        details.append(('edit', name, o, s))
    seconds['edit (all files)'] = round(time.time() - t0, 1)
    tally = lambda f: sum(1 for d in details if f(d[2]))
    return dict(tried=len(details), clean=tally(lambda o: o == 'clean'), tracebacks=tally(lambda o: o == 'traceback'),
                hangs=tally(lambda o: o == 'hang'), wrong=tally(lambda o: o.startswith('wrong')), seconds=seconds,
                details=details)


if __name__ == '__main__':
    import json, tempfile
    r = check_all(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
    for d in r['details']: print(*d)
    print(json.dumps({k: v for k, v in r.items() if k != 'details'}, indent=1))
