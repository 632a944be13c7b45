"""Bad command-line input for every `dcf-teach` command and option, and a runner that checks it has no side effects.

Each case is `(id, argv, name)`: `argv` is run as `dcf-teach *argv` in a fresh working folder holding the fixtures
of `make_fixtures`, with HOME, XDG_CACHE_HOME and DCF_TEACH_CACHE pointing into the same temporary tree. A clean
rejection exits with status 2, prints exactly one line starting `Error:` that contains `name` (the option or the
file), prints no traceback and leaves no new file or folder anywhere in the tree.

    from bad_input_cases import CASES, run_case
    r = run_case(CASES[0], tmp)        # dict(ok, exit, error_line, traceback, new_files, ...)

`summarize(results)` gives the figures: bad inputs tried, clean errors, tracebacks, files left behind.
"""
from __future__ import annotations
import os, shutil, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ['CASES', 'make_fixtures', 'run_case', 'run_cases', 'summarize']

DCF = str(Path(sys.executable).parent / 'dcf-teach')

# ---------------------------------------------------------------------------------------------------- fixtures
def _png(path: Path, colour=(200, 30, 30), size=8):
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new('RGB', (size, size), colour).save(path)

def make_fixtures(work: Path) -> Path:
    "Write the files the cases refer to into `work` (the working folder of a case)."
    work = Path(work); work.mkdir(parents=True, exist_ok=True)
    (work / 'empty').mkdir()                                      # an empty folder
    (work / 'notes.txt').write_text('not an image, not a folder\n')  # a file where a folder is expected
    (work / 'junk.png').write_bytes(b'this is not a PNG\n')       # a file with an image name that is not one
    _png(work / 'img.png', size=16)                               # one valid image
    for k in range(6):                                            # a valid two-class ImageFolder
        _png(work / 'ds' / 'a' / f'a{k}.png', (200, 30 + 20 * k, 30))
        _png(work / 'ds' / 'b' / f'b{k}.png', (30, 30 + 20 * k, 200))
    _png(work / 'one' / 'a' / 'a0.png')                           # one class only
    _png(work / 'flat' / 'x.png')                                 # images without class folders
    (work / 'emptycls' / 'a').mkdir(parents=True); (work / 'emptycls' / 'b').mkdir()  # class folders, no images
    (work / 'bad.csv').write_text('path,label\nnope.png,a\n')    # a manifest with one class
    (work / 'badimg.csv').write_text('path,label,split\n' + ''.join(  # two classes with held-out images, and one non-image
        f'ds/{c}/{c}{k}.png,{c},{"test" if k == 5 else "train"}\n' for c in 'ab' for k in range(6)) + 'junk.png,a,train\n')
    os.symlink(work / 'does-not-exist', work / 'broken')          # a dangling symlink
    # a direction bank over classes a,b (no model needed to read it)
    import torch
    from dcf_teach.engine.bank import build_bank, save_bank
    save_bank(build_bank(torch.randn(4, 8), [0, 0, 1, 1], ['a', 'b'], 'test-encoder'), work / 'bank')
    # a deck folder the site builder accepts
    d = work / 'decks' / 'x'; d.mkdir(parents=True)
    (d / 'deck.ipynb').write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    (d / 'metrics.json').write_text('{"dataset": "x", "classes": ["a", "b"]}')
    # the exported results of two quiz participants
    from dcf_teach.study.quiz import Trial, write_trials
    for who, group in (('u0', 'unpaired'), ('o0', 'ours')):
        write_trials([Trial(who, group, f'q{k}.png', 'ab'[k % 2], 'ab'[k % 2], True, 900.0, 1000.0 * (k + 1), k, '1', 'deck1', 'flip')
                      for k in range(4)], work / 'quiz' / f'{who}.csv')
    return work

# ---------------------------------------------------------------------------------------------------- the table
def _num(prefix, opt, bad_values, name=None):
    "Cases that give `opt` each of `bad_values` after the valid arguments `prefix`."
    words = [w for w in prefix[:2] if not w.startswith('-') and '.' not in w and w != 'ds']
    return [(f"{'-'.join(words)}{opt}={v or 'empty'}", [*prefix, opt, v], name or opt) for v in bad_values]

def _edit_cases(prefix):
    "One bad value for each `EditSettings` option of a search command (`cli.base.edit_options`)."
    bad = {'--omega': 'x', '--n-steps': '0', '--guidance-scale': 'x', '--inversion': 'bogus', '--inversion-guidance-scale': 'x',
           '--t-skip-fractions': 'abc', '--min-confidence': '0.4', '--seed': 'x'}
    return [c for opt, v in bad.items() for c in _num(prefix, opt, [v])]

def _has_cuda() -> bool:
    import torch
    return torch.cuda.is_available()

def _cases() -> list[tuple[str, list[str], str]]:
    C = []
    add = lambda id, argv, name: C.append((id, list(argv), name))
    # top level
    add('top-unknown-command', ['frobnicate'], 'frobnicate')
    add('top-unknown-option', ['--frobnicate'], '--frobnicate')
    add('top-verbose-value', ['-q', '--verbose=x', 'doctor'], '--verbose')
    # data kikibouba / accretion
    for g in ('kikibouba', 'accretion'):   # the same options: accretion gets the short list
        p = ['data', g, '--out', 'newdata']
        add(f'data-{g}-no-out', ['data', g], '--out')
        add(f'data-{g}-out-file', ['data', g, '--out', 'notes.txt'], 'notes.txt')
        add(f'data-{g}-out-under-file', ['data', g, '--out', 'notes.txt/sub'], 'notes.txt')
        add(f'data-{g}-out-not-empty', ['data', g, '--out', 'ds'], 'ds')
        C += _num(p, '--n-per-class', ['0', '-3', 'x', '1.5'] if g == 'kikibouba' else ['0'])
        C += _num(p, '--size', ['7', '5000', 'big'] if g == 'kikibouba' else ['7'])
        C += _num(p, '--seed', ['x'])
        if g == 'kikibouba': add(f'data-{g}-extra-arg', [*p, 'extra'], 'extra')
    # data fashion-mnist
    p = ['data', 'fashion-mnist', '--classes', 'tshirt,shirt', '--out', 'newdata']
    add('data-fmnist-no-classes', ['data', 'fashion-mnist', '--out', 'newdata'], '--classes')
    add('data-fmnist-no-out', ['data', 'fashion-mnist', '--classes', 'tshirt,shirt'], '--out')
    add('data-fmnist-unknown-class', ['data', 'fashion-mnist', '--classes', 'tshirt,frock', '--out', 'newdata'], 'frock')
    add('data-fmnist-one-class', ['data', 'fashion-mnist', '--classes', 'tshirt', '--out', 'newdata'], '--classes')
    add('data-fmnist-same-class', ['data', 'fashion-mnist', '--classes', 'tshirt,tshirt', '--out', 'newdata'], '--classes')
    add('data-fmnist-empty-classes', ['data', 'fashion-mnist', '--classes', '', '--out', 'newdata'], '--classes')
    add('data-fmnist-out-file', ['data', 'fashion-mnist', '--classes', 'tshirt,shirt', '--out', 'notes.txt'], 'notes.txt')
    add('data-fmnist-out-not-empty', ['data', 'fashion-mnist', '--classes', 'tshirt,shirt', '--out', 'ds'], 'ds')
    C += _num(p, '--n-per-class', ['1', 'x'])
    C += _num(p, '--size', ['4', 'x'])
    add('data-fmnist-source-missing', [*p, '--source', 'nowhere'], 'nowhere')
    add('data-fmnist-source-file', [*p, '--source', 'notes.txt'], 'notes.txt')
    add('data-fmnist-source-empty', [*p, '--source', 'empty'], 'empty')
    # data check
    add('data-check-no-arg', ['data', 'check'], 'SOURCE')
    add('data-check-missing', ['data', 'check', 'nowhere'], 'nowhere')
    add('data-check-empty', ['data', 'check', 'empty'], 'empty')
    add('data-check-text-file', ['data', 'check', 'notes.txt'], 'notes.txt')
    add('data-check-flat', ['data', 'check', 'flat'], 'flat')
    add('data-check-one-class', ['data', 'check', 'one'], 'one')
    add('data-check-empty-classes', ['data', 'check', 'emptycls'], 'emptycls')
    add('data-check-broken-link', ['data', 'check', 'broken'], 'broken')
    add('data-check-bad-csv', ['data', 'check', 'bad.csv'], 'bad.csv')
    add('data-check-missing-csv', ['data', 'check', 'nope.csv'], 'nope.csv')
    # bank
    p = ['bank', 'ds', '--out', 'banks/b']
    add('bank-no-arg', ['bank', '--out', 'banks/b'], 'DATA_DIR')
    add('bank-no-out', ['bank', 'ds'], '--out')
    add('bank-missing', ['bank', 'nowhere', '--out', 'banks/b'], 'nowhere')
    add('bank-file', ['bank', 'notes.txt', '--out', 'banks/b'], 'notes.txt')
    add('bank-empty', ['bank', 'empty', '--out', 'banks/b'], 'empty')
    add('bank-one-class', ['bank', 'one', '--out', 'banks/b'], 'one')
    add('bank-flat', ['bank', 'flat', '--out', 'banks/b'], 'flat')
    add('bank-broken-link', ['bank', 'broken', '--out', 'banks/b'], 'broken')
    add('bank-out-under-file', ['bank', 'ds', '--out', 'notes.txt/b'], 'notes.txt')
    add('bank-out-folder', ['bank', 'ds', '--out', 'empty'], 'empty')
    C += _num(p, '--split', ['bogus'])
    add('bank-classes-one', [*p, '--classes', 'a'], '--classes')
    add('bank-classes-unknown', [*p, '--classes', 'a,zzz'], 'zzz')
    C += _num(p, '--batch-size', ['0', 'x'])
    add('bank-model-missing', [*p, '--model', 'nowhere/model'], 'nowhere/model')
    add('bank-model-file', [*p, '--model', 'notes.txt'], 'notes.txt')
    add('bank-model-empty-folder', [*p, '--model', 'empty'], 'empty')
    add('bank-device-bogus', [*p, '--device', 'bogus'], '--device')
    add('bank-cache-file', [*p, '--cache', 'notes.txt'], 'notes.txt')
    add('bank-plot-folder', [*p, '--plot', 'empty'], 'empty')
    add('bank-plot-under-file', [*p, '--plot', 'notes.txt/p.png'], 'notes.txt')
    # edit
    p = ['edit', 'img.png', '--bank', 'bank', '--target', 'b', '--out', 'out']
    add('edit-no-image', ['edit', '--bank', 'bank', '--target', 'b', '--out', 'out'], 'IMAGE')
    add('edit-no-bank', ['edit', 'img.png', '--target', 'b', '--out', 'out'], '--bank')
    add('edit-no-target', ['edit', 'img.png', '--bank', 'bank', '--out', 'out'], '--target')
    add('edit-no-out', ['edit', 'img.png', '--bank', 'bank', '--target', 'b'], '--out')
    add('edit-region-box-bad', [*p, '--region', '0.5,0.5,0.2,0.9'], '--region')
    add('edit-region-mask-missing', [*p, '--region', 'nomask.png'], 'nomask.png')
    add('edit-region-mask-text', [*p, '--region', 'notes.txt'], 'notes.txt')
    add('edit-image-missing', ['edit', 'nope.png', *p[2:]], 'nope.png')
    add('edit-image-folder', ['edit', 'empty', *p[2:]], 'empty')
    add('edit-image-text', ['edit', 'notes.txt', *p[2:]], 'notes.txt')
    add('edit-image-junk', ['edit', 'junk.png', *p[2:]], 'junk.png')
    add('edit-image-broken-link', ['edit', 'broken', *p[2:]], 'broken')
    add('edit-bank-missing', ['edit', 'img.png', '--bank', 'nobank', '--target', 'b', '--out', 'out'], 'nobank')
    add('edit-bank-text', ['edit', 'img.png', '--bank', 'notes.txt', '--target', 'b', '--out', 'out'], 'notes.txt')
    add('edit-bank-folder', ['edit', 'img.png', '--bank', 'empty', '--target', 'b', '--out', 'out'], 'empty')
    add('edit-target-unknown', ['edit', 'img.png', '--bank', 'bank', '--target', 'zzz', '--out', 'out'], 'zzz')
    add('edit-source-unknown', [*p, '--source-class', 'zzz'], 'zzz')
    add('edit-source-is-target', [*p, '--source-class', 'b'], '--source-class')
    C += _num(p, '--t-skip', ['x', '-0.5', '200'])
    C += _num(p, '--n-steps', ['0', '1001'])
    C += _num(p, '--omega', ['x', 'nan'])
    C += _num(p, '--guidance-scale', ['x', 'inf'])
    C += _num(p, '--inversion', ['bogus'])
    C += _num(p, '--inversion-guidance-scale', ['x'])
    C += _num(p, '--seed', ['x'])
    add('edit-device-bogus', [*p, '--device', 'bogus'], '--device')
    add('edit-adapter-missing', [*p, '--adapter', 'noadapter'], 'noadapter')
    add('edit-adapter-file', [*p, '--adapter', 'notes.txt'], 'notes.txt')
    add('edit-adapter-empty', [*p, '--adapter', 'empty'], 'empty')
    add('edit-model-missing', [*p, '--model', 'nowhere/model'], 'nowhere/model')
    add('edit-model-empty-folder', [*p, '--model', 'empty'], 'empty')
    add('edit-out-file', ['edit', 'img.png', '--bank', 'bank', '--target', 'b', '--out', 'notes.txt'], 'notes.txt')
    add('edit-out-under-file', ['edit', 'img.png', '--bank', 'bank', '--target', 'b', '--out', 'notes.txt/o'], 'notes.txt')
    # doctor
    add('doctor-seed', ['doctor', '--seed', 'x'], '--seed')
    add('doctor-unknown-option', ['doctor', '--frobnicate'], '--frobnicate')
    add('doctor-extra-arg', ['doctor', 'extra'], 'extra')
    # train
    add('train-unknown', ['train', 'frobnicate'], 'frobnicate')
    # train decoder
    p = ['train', 'decoder', '--data', 'ds', '--out', 'models/m']
    add('train-decoder-no-data', ['train', 'decoder', '--out', 'models/m'], '--data')
    add('train-decoder-no-out', ['train', 'decoder', '--data', 'ds'], '--out')
    add('train-decoder-data-missing', ['train', 'decoder', '--data', 'nowhere', '--out', 'models/m'], 'nowhere')
    add('train-decoder-data-file', ['train', 'decoder', '--data', 'notes.txt', '--out', 'models/m'], 'notes.txt')
    add('train-decoder-data-empty', ['train', 'decoder', '--data', 'empty', '--out', 'models/m'], 'empty')
    add('train-decoder-data-one-class', ['train', 'decoder', '--data', 'one', '--out', 'models/m'], 'one')
    add('train-decoder-data-empty-classes', ['train', 'decoder', '--data', 'emptycls', '--out', 'models/m'], 'emptycls')
    add('train-decoder-data-bad-csv', ['train', 'decoder', '--data', 'bad.csv', '--out', 'models/m'], 'bad.csv')
    add('train-decoder-out-file', ['train', 'decoder', '--data', 'ds', '--out', 'notes.txt'], 'notes.txt')
    add('train-decoder-out-under-file', ['train', 'decoder', '--data', 'ds', '--out', 'notes.txt/m'], 'notes.txt')
    add('train-decoder-out-not-empty', ['train', 'decoder', '--data', 'ds', '--out', 'one'], 'one')
    C += _num(p, '--minutes', ['0', 'x'])
    C += _num(p, '--steps', ['0'])
    C += _num(p, '--encoder-minutes', ['0'])
    C += _num(p, '--encoder-steps', ['0'])
    C += _num(p, '--resolution', ['48'])
    C += _num(p, '--augment', ['bogus'])
    C += _num(p, '--batch-size', ['0'])
    C += _num(p, '--threads', ['0'])
    C += _num(p, '--seed', ['x'])
    C += _num(p, '--checkpoint-minutes', ['0'])
    add('train-decoder-classes-one', [*p, '--classes', 'a'], '--classes')
    add('train-decoder-classes-unknown', [*p, '--classes', 'a,zzz'], 'zzz')
    add('train-decoder-device-tpu', [*p, '--device', 'tpu'], '--device')
    if not _has_cuda(): add('train-decoder-device-cuda', [*p, '--device', 'cuda'], '--device')   # a device this machine lacks
    # train oracle
    p = ['train', 'oracle', '--data', 'ds', '--classes', 'a,b', '--out', 'oracles/o']
    add('train-oracle-no-data', ['train', 'oracle', '--classes', 'a,b', '--out', 'oracles/o'], '--data')
    add('train-oracle-no-classes', ['train', 'oracle', '--data', 'ds', '--out', 'oracles/o'], '--classes')
    add('train-oracle-no-out', ['train', 'oracle', '--data', 'ds', '--classes', 'a,b'], '--out')
    add('train-oracle-data-missing', ['train', 'oracle', '--data', 'nowhere', '--classes', 'a,b', '--out', 'oracles/o'], 'nowhere')
    add('train-oracle-data-file', ['train', 'oracle', '--data', 'notes.txt', '--classes', 'a,b', '--out', 'oracles/o'], 'notes.txt')
    add('train-oracle-data-empty', ['train', 'oracle', '--data', 'empty', '--classes', 'a,b', '--out', 'oracles/o'], 'empty')
    add('train-oracle-classes-one', ['train', 'oracle', '--data', 'ds', '--classes', 'a', '--out', 'oracles/o'], '--classes')
    add('train-oracle-classes-three', ['train', 'oracle', '--data', 'ds', '--classes', 'a,b,c', '--out', 'oracles/o'], '--classes')
    add('train-oracle-classes-unknown', ['train', 'oracle', '--data', 'ds', '--classes', 'a,zzz', '--out', 'oracles/o'], 'zzz')
    add('train-oracle-out-file', ['train', 'oracle', '--data', 'ds', '--classes', 'a,b', '--out', 'notes.txt'], 'notes.txt')
    add('train-oracle-out-not-empty', ['train', 'oracle', '--data', 'ds', '--classes', 'a,b', '--out', 'one'], 'one')
    C += _num(p, '--epochs', ['0'])
    C += _num(p, '--minutes', ['0'])
    C += _num(p, '--adversarial', ['-1', 'x'])
    add('train-oracle-init-missing', [*p, '--init', 'nooracle'], '--init')
    C += _num(p, '--resolution', ['4'])
    C += _num(p, '--members', ['bogus', ','])
    C += _num(p, '--patience', ['0'])
    C += _num(p, '--batch-size', ['1'])
    C += _num(p, '--lr', ['0'])
    C += _num(p, '--texture', ['1.5'])
    C += _num(p, '--width', ['0'])
    C += _num(p, '--max-train', ['1'])
    C += _num(p, '--seed', ['x'])
    C += _num(p, '--threads', ['0'])
    add('train-oracle-device-bogus', [*p, '--device', 'bogus'], '--device')
    add('train-oracle-device-tpu', [*p, '--device', 'tpu'], '--device')
    if not _has_cuda(): add('train-oracle-device-cuda', [*p, '--device', 'cuda'], '--device')
    # train lora
    p = ['train', 'lora', '--data', 'ds', '--out', 'adapters/a']
    add('train-lora-no-data', ['train', 'lora', '--out', 'adapters/a'], '--data')
    add('train-lora-no-out', ['train', 'lora', '--data', 'ds'], '--out')
    add('train-lora-data-missing', ['train', 'lora', '--data', 'nowhere', '--out', 'adapters/a'], 'nowhere')
    add('train-lora-data-file', ['train', 'lora', '--data', 'notes.txt', '--out', 'adapters/a'], 'notes.txt')
    add('train-lora-data-empty', ['train', 'lora', '--data', 'empty', '--out', 'adapters/a'], 'empty')
    add('train-lora-data-one-class', ['train', 'lora', '--data', 'one', '--out', 'adapters/a'], 'one')
    add('train-lora-out-file', ['train', 'lora', '--data', 'ds', '--out', 'notes.txt'], 'notes.txt')
    add('train-lora-out-not-empty', ['train', 'lora', '--data', 'ds', '--out', 'one'], 'one')
    add('train-lora-model-missing', [*p, '--model', 'nowhere/model'], 'nowhere/model')
    add('train-lora-model-empty-folder', [*p, '--model', 'empty'], 'empty')
    add('train-lora-oracle-missing', [*p, '--oracle', 'nooracle'], 'nooracle')
    add('train-lora-classes-unknown', [*p, '--classes', 'a,zzz'], 'zzz')
    C += _num(p, '--steps', ['0'])
    C += _num(p, '--minutes', ['0'])
    C += _num(p, '--lr', ['0'])
    C += _num(p, '--rank', ['0'])
    C += _num(p, '--alpha', ['0'])
    C += _num(p, '--batch-size', ['0'])
    C += _num(p, '--p-uncond', ['1.5'])
    C += _num(p, '--val-n', ['-1'])
    C += _num(p, '--val-every', ['0'])
    C += _num(p, '--val-steps', ['1'])
    C += _num(p, '--max-train', ['1'])
    C += _num(p, '--threads', ['0'])
    C += _num(p, '--seed', ['x'])
    C += _num(p, '--checkpoint-steps', ['0'])
    add('train-lora-device-bogus', [*p, '--device', 'bogus'], '--device')
    # bench
    p = ['bench', '--dataset', 'kikibouba']
    add('bench-no-dataset', ['bench'], '--dataset')
    add('bench-dataset-missing', ['bench', '--dataset', 'nowhere'], 'nowhere')
    add('bench-dataset-file', ['bench', '--dataset', 'notes.txt'], 'notes.txt')
    add('bench-dataset-empty', ['bench', '--dataset', 'empty'], 'empty')
    add('bench-dataset-one-class', ['bench', '--dataset', 'one'], 'one')
    add('bench-dataset-too-few', ['bench', '--dataset', 'ds', '--n', '100'], '--n')
    add('bench-classes-wrong', [*p, '--classes', 'a,b'], '--classes')
    add('bench-classes-fmnist-unknown', ['bench', '--dataset', 'fashion-mnist', '--classes', 'tshirt,frock'], 'frock')
    C += _num(p, '--n', ['1', 'x'])
    add('bench-model-missing', [*p, '--model', 'nowhere/model'], 'nowhere/model')
    add('bench-model-empty-folder', [*p, '--model', 'empty'], 'empty')
    add('bench-oracle-missing', [*p, '--oracle', 'nooracle'], 'nooracle')
    add('bench-oracle-file', [*p, '--oracle', 'notes.txt'], 'notes.txt')
    add('bench-adapter-missing', [*p, '--adapter', 'noadapter'], 'noadapter')
    C += _num(p, '--omega', ['x'])
    C += _num(p, '--n-steps', ['0'])
    C += _num(p, '--guidance-scale', ['x'])
    C += _num(p, '--inversion', ['bogus'])
    C += _num(p, '--inversion-guidance-scale', ['x'])
    C += _num(p, '--search', ['bogus'])
    C += _num(p, '--method', ['gan'])
    C += _num(p, '--first-rung', ['-1', 'x'])
    add('bench-first-rung-linear', [*p, '--first-rung', '8'], '--search fast')
    add('bench-first-rung-few', [*p, '--search', 'fast', '--first-rung', '2'], '--first-rung')
    C += _num(p, '--t-skip-fractions', ['abc', '0.5,0.9'])
    C += _num(p, '--min-confidence', ['0.4', '1'])
    C += _num(p, '--batch-size', ['0'])
    C += _num(p, '--seed', ['x'])
    C += _num(p, '--speed-check', ['-1'])
    C += _num(p, '--abort', ['-1', 'x'])
    add('bench-abort-one', [*p, '--abort', '1'], '--abort')
    add('bench-abort-guided', [*p, '--abort', '4', '--method', 'dvce'], '--abort')
    add('bench-device-bogus', [*p, '--device', 'bogus'], '--device')
    add('bench-cache-file', [*p, '--cache', 'notes.txt'], 'notes.txt')
    add('bench-out-not-json', [*p, '--out', 'report.txt'], '--out')
    add('bench-out-folder', [*p, '--out', 'empty'], 'empty')
    add('bench-out-under-file', [*p, '--out', 'notes.txt/r.json'], 'notes.txt')
    add('bench-grid-not-png', [*p, '--grid', 'grid.jpg'], '--grid')
    add('bench-grid-under-file', [*p, '--grid', 'notes.txt/g.png'], 'notes.txt')
    add('bench-records-folder', [*p, '--records', 'empty'], 'empty')
    add('bench-records-under-file', [*p, '--records', 'notes.txt/r.jsonl'], 'notes.txt')
    # compare
    p = ['compare', '--dataset', 'kikibouba', '--out', 'cmp']
    add('compare-no-dataset', ['compare', '--out', 'cmp'], '--dataset')
    add('compare-no-out', ['compare', '--dataset', 'kikibouba'], '--out')
    add('compare-dataset-missing', ['compare', '--dataset', 'nowhere', '--out', 'cmp'], 'nowhere')
    add('compare-dataset-too-few', ['compare', '--dataset', 'ds', '--n', '100', '--out', 'cmp'], '--n')
    add('compare-methods-unknown', [*p, '--methods', 'diffusion,gan'], '--methods')
    add('compare-methods-empty', [*p, '--methods', ','], '--methods')
    add('compare-classes-wrong', [*p, '--classes', 'a,b'], '--classes')
    C += _num(p, '--n', ['1', 'x'])
    add('compare-model-missing', [*p, '--model', 'nowhere/model'], 'nowhere/model')
    add('compare-oracle-missing', [*p, '--oracle', 'nooracle'], 'nooracle')
    add('compare-guide-missing', [*p, '--guide', 'noguide'], '--guide')
    add('compare-robust-guide-file', [*p, '--robust-guide', 'notes.txt'], '--robust-guide')
    C += _edit_cases(p)
    C += _num(p, '--batch-size', ['0'])
    add('compare-device-bogus', [*p, '--device', 'bogus'], '--device')
    add('compare-cache-file', [*p, '--cache', 'notes.txt'], 'notes.txt')
    add('compare-out-under-file', ['compare', '--dataset', 'kikibouba', '--out', 'notes.txt/c'], 'notes.txt')
    # generate
    p = ['generate', '--data', 'kikibouba', '--out', 'gen']
    add('generate-no-data', ['generate', '--out', 'gen'], '--data')
    add('generate-no-out', ['generate', '--data', 'kikibouba'], '--out')
    add('generate-data-missing', ['generate', '--data', 'nowhere', '--out', 'gen'], 'nowhere')
    add('generate-data-one-class', ['generate', '--data', 'one', '--out', 'gen'], 'one')
    add('generate-classes-wrong', [*p, '--classes', 'a,b'], '--classes')
    add('generate-model-missing', [*p, '--model', 'nowhere/model'], 'nowhere/model')
    add('generate-oracle-missing', [*p, '--oracle', 'nooracle'], 'nooracle')
    C += _num(p, '--split', ['bogus'])
    C += _num(p, '--method', ['gan'])
    C += _edit_cases(p)
    C += _num(p, '--batch-size', ['0'])
    C += _num(p, '--limit', ['0'])
    C += _num(p, '--processes', ['0'])
    C += _num(p, '--abort', ['-1', 'x'])
    add('generate-abort-one', [*p, '--abort', '1'], '--abort')
    C += _num(p, '--search', ['bogus'])
    add('generate-first-rung-linear', [*p, '--first-rung', '8'], '--search fast')
    add('generate-abort-guided', [*p, '--abort', '4', '--method', 'rcsb'], '--abort')
    add('generate-device-bogus', [*p, '--device', 'bogus'], '--device')
    add('generate-cache-file', [*p, '--cache', 'notes.txt'], 'notes.txt')
    add('generate-out-under-file', ['generate', '--data', 'kikibouba', '--out', 'notes.txt/g'], 'notes.txt')
    # tune (--dry-run: a shipped model is allowed, nothing is written into it)
    p = ['tune', '--model', 'kikibouba', '--data', 'kikibouba', '--dry-run']
    add('tune-no-model', ['tune', '--data', 'kikibouba'], '--model')
    add('tune-no-data', ['tune', '--model', 'kikibouba', '--dry-run'], '--data')
    add('tune-model-shipped', ['tune', '--model', 'kikibouba', '--data', 'kikibouba'], '--model')
    add('tune-model-missing', ['tune', '--model', 'nowhere/model', '--data', 'kikibouba'], 'nowhere/model')
    add('tune-model-empty-folder', ['tune', '--model', 'empty', '--data', 'kikibouba'], 'empty')
    add('tune-data-missing', ['tune', '--model', 'kikibouba', '--data', 'nowhere', '--dry-run'], 'nowhere')
    add('tune-data-too-few', ['tune', '--model', 'kikibouba', '--data', 'ds', '--dry-run', '--n', '100'], '--n')
    add('tune-classes-wrong', [*p, '--classes', 'a,b'], '--classes')
    add('tune-oracle-missing', [*p, '--oracle', 'nooracle'], 'nooracle')
    add('tune-check-gt-no-ground-truth', ['tune', '--model', 'kikibouba', '--data', 'ds', '--dry-run', '--n', '2', '--check-ground-truth', '4'], 'no ground truth')
    add('tune-check-gt-one', [*p, '--check-ground-truth', '1'], '--check-ground-truth')
    C += _num(p, '--n', ['1'])
    C += _num(p, '--omegas', ['0', 'x'])
    C += _num(p, '--inversions', ['bogus'])
    C += _num(p, '--starts', ['1.5'])
    C += _num(p, '--min-confidences', ['0.4'])
    C += _num(p, '--max-control', ['2'])
    C += _num(p, '--tolerance', ['-1'])
    C += _num(p, '--n-steps', ['0'])
    C += _num(p, '--seed', ['x'])
    C += _num(p, '--batch-size', ['0'])
    add('tune-device-bogus', [*p, '--device', 'bogus'], '--device')
    add('tune-cache-file', [*p, '--cache', 'notes.txt'], 'notes.txt')
    add('tune-out-not-json', [*p, '--out', 'tune.txt'], '--out')
    add('tune-out-under-file', [*p, '--out', 'notes.txt/t.json'], 'notes.txt')
    # bench scale
    p = ['bench', 'scale']
    add('bench-scale-dataset-missing', [*p, '--dataset', 'nowhere'], 'nowhere')
    C += _num(p, '--ns', ['0', 'a,b', ','])
    add('bench-scale-model-missing', [*p, '--model', 'nowhere/model'], 'nowhere/model')
    C += _num(p, '--method', ['gan'])
    C += _num(p, '--batch-size', ['0'])
    add('bench-scale-out-not-json', [*p, '--out', 'rows.txt'], '--out')
    add('bench-scale-out-under-file', [*p, '--out', 'notes.txt/r.json'], 'notes.txt')
    # bench explorer
    p = ['bench', 'explorer']
    add('bench-explorer-model-missing', [*p, '--model', 'nowhere/model'], 'nowhere/model')
    add('bench-explorer-model-file', [*p, '--model', 'notes.txt'], 'notes.txt')
    add('bench-explorer-adapter-missing', [*p, '--adapter', 'noadapter'], 'noadapter')
    C += _num(p, '--updates', ['0'])
    C += _num(p, '--t-skip', ['2'])
    C += _num(p, '--n-steps', ['0'])
    C += _num(p, '--view', ['bogus'])
    C += _num(p, '--threads', ['-1'])
    # deck
    add('deck-no-dataset', ['deck'], '--dataset')
    add('deck-dataset-missing', ['deck', '--dataset', '/nonexistent'], '/nonexistent')
    add('deck-dataset-file', ['deck', '--dataset', 'notes.txt'], 'notes.txt')
    add('deck-dataset-empty', ['deck', '--dataset', 'empty'], 'empty')
    add('deck-dataset-one-class', ['deck', '--dataset', 'one'], 'one')
    add('deck-classes-one', ['deck', '--dataset', 'kikibouba', '--classes', 'kiki'], 'classes')
    add('deck-classes-same', ['deck', '--dataset', 'kikibouba', '--classes', 'kiki,kiki'], 'classes')
    add('deck-classes-wrong', ['deck', '--dataset', 'kikibouba', '--classes', 'a,b'], '--classes')
    add('deck-classes-fmnist-unknown', ['deck', '--dataset', 'fashion-mnist', '--classes', 'tshirt,frock'], 'frock')
    add('deck-out-file', ['deck', '--dataset', 'kikibouba', '--out', 'notes.txt'], 'notes.txt')
    add('deck-out-under-file', ['deck', '--dataset', 'kikibouba', '--out', 'notes.txt/d'], 'notes.txt')
    p = ['deck', '--dataset', 'kikibouba']
    add('deck-param-unknown', [*p, '-p', 'bogus', '1'], 'bogus')
    add('deck-dataset-too-few', ['deck', '--dataset', 'ds', '-p', 'n_images', '100'], 'n_images')
    for k, v in (('n_images', 'x'), ('n_images', '1'), ('n_steps', '0'), ('n_study', '-1'), ('seed', '1.5'),
                 ('omega', 'x'), ('inversion', 'bogus'), ('t_skip_fractions', 'abc'), ('curve_fractions', '2'),
                 ('min_confidence', '2'), ('model', 'nowhere/model'), ('oracle', 'nooracle'),
                 ('adapter', 'noadapter'), ('device', 'bogus'), ('cache_dir', 'notes.txt')):
        add(f'deck-param-{k}={v}', [*p, '-p', k, v], k)
    add('deck-param-one-value', [*p, '-p', 'n_images'], '-p')
    add('deck-template-missing', [*p, '--template', 'nope.ipynb'], 'nope.ipynb')
    add('deck-template-text', [*p, '--template', 'notes.txt'], 'notes.txt')
    add('deck-template-folder', [*p, '--template', 'empty'], 'empty')
    add('deck-kernel-bogus', [*p, '--kernel', 'bogus-kernel'], 'bogus-kernel')
    add('deck-list-params-template-missing', ['deck', '--list-params', '--template', 'nope.ipynb'], 'nope.ipynb')
    add('deck-demo-with-dataset', ['deck', '--demo', '--dataset', 'kikibouba'], '--demo')
    add('deck-demo-decks-file', ['deck', '--demo', '--decks', 'notes.txt'], 'notes.txt')
    add('deck-demo-decks-under-file', ['deck', '--demo', '--decks', 'notes.txt/d'], 'notes.txt')
    add('deck-demo-site-file', ['deck', '--demo', '--site', 'notes.txt'], 'notes.txt')
    add('deck-demo-site-not-site', ['deck', '--demo', '--site', 'ds'], 'ds')
    add('deck-demo-site-is-decks', ['deck', '--demo', '--decks', 'decks', '--site', 'decks'], 'decks')
    add('deck-demo-param-unknown', ['deck', '--demo', '-p', 'bogus', '1'], 'bogus')
    add('deck-demo-param-bad', ['deck', '--demo', '-p', 'n_images', 'x'], 'n_images')
    add('deck-demo-template-missing', ['deck', '--demo', '--template', 'nope.ipynb'], 'nope.ipynb')
    add('deck-demo-kernel-bogus', ['deck', '--demo', '--kernel', 'bogus-kernel'], 'bogus-kernel')
    # site
    add('site-decks-missing', ['site', '--decks', 'nowhere'], 'nowhere')
    add('site-decks-file', ['site', '--decks', 'notes.txt'], 'notes.txt')
    add('site-decks-empty', ['site', '--decks', 'empty'], 'empty')
    add('site-decks-no-decks', ['site', '--decks', 'ds'], 'ds')
    add('site-out-file', ['site', '--decks', 'decks', '--out', 'notes.txt'], 'notes.txt')
    add('site-out-is-decks', ['site', '--decks', 'decks', '--out', 'decks'], '--out')
    add('site-out-inside-decks', ['site', '--decks', 'decks', '--out', 'decks/site'], '--out')
    add('site-out-not-site', ['site', '--decks', 'decks', '--out', 'ds'], 'ds')
    add('site-out-under-file', ['site', '--decks', 'decks', '--out', 'notes.txt/s'], 'notes.txt')
    add('site-extra-arg', ['site', 'extra'], 'extra')
    # quiz analyse
    p = ['quiz', 'analyse']
    add('quiz-analyse-no-files', [*p, '--out', 'qout'], 'FILES')
    add('quiz-analyse-missing', [*p, 'nowhere.csv', '--out', 'qout'], 'nowhere.csv')
    add('quiz-analyse-not-quiz', [*p, 'notes.txt', '--out', 'qout'], 'notes.txt')
    add('quiz-analyse-empty-folder', [*p, 'empty', '--out', 'qout'], 'empty')
    add('quiz-analyse-bad-csv', [*p, 'bad.csv', '--out', 'qout'], 'bad.csv')
    add('quiz-analyse-no-out', [*p, 'quiz'], '--out')
    add('quiz-analyse-out-file', [*p, 'quiz', '--out', 'notes.txt'], 'notes.txt')
    add('quiz-analyse-control-unknown', [*p, 'quiz', '--control', 'nogroup', '--out', 'qout'], 'nogroup')
    # quiz page: options are checked before the deck, the deck before anything is written
    p = ['quiz', 'page', 'empty', '--out', 'qp']
    add('quiz-page-deck-missing', ['quiz', 'page', 'nowhere', '--out', 'qp', '--send-to', 'me@example.org'], 'nowhere')
    add('quiz-page-deck-not-deck', p, 'empty')
    add('quiz-page-out-file', ['quiz', 'page', 'empty', '--out', 'notes.txt'], 'notes.txt')
    add('quiz-page--segment-s=0', [*p, '--segment-s', '0'], '--segment-s')
    add('quiz-page--n-quiz=1', [*p, '--n-quiz', '1'], '--n-quiz')
    add('quiz-page--budget=money', [*p, '--budget', 'money'], '--budget')
    add('quiz-page--groups=x', [*p, '--groups', 'ours,x'], '--groups')
    add('quiz-page-baseline-deck-missing', [*p, '--baseline-deck', 'nowhere'], 'nowhere')
    # quiz simulate
    p = ['quiz', 'simulate', 'empty', '--out', 'sim.json']
    add('quiz-simulate-deck-missing', ['quiz', 'simulate', 'nowhere', '--out', 'sim.json', '--seed', '3'], 'nowhere')
    add('quiz-simulate-out-not-json', ['quiz', 'simulate', 'empty', '--out', 'sim.txt'], '--out')
    add('quiz-simulate--seeds=1', [*p, '--seeds', '1'], '--seeds')
    add('quiz-simulate--noise=-1', [*p, '--noise', '-1'], '--noise')
    add('quiz-simulate--learners=x', [*p, '--learners', 'x'], '--learners')
    add('quiz-simulate--features=clip', [*p, '--features', 'clip'], '--features')
    # teach: every option is checked, and DATA's images decoded, before the folder is created ('ds' has no test image)
    p = ['teach', 'badimg.csv', '--out', 'taught']
    add('teach-no-data', ['teach', '--out', 'taught'], 'DATA')
    add('teach-no-out', ['teach', 'badimg.csv'], '--out')
    add('teach-data-missing', ['teach', 'nowhere', '--out', 'taught'], 'nowhere')
    add('teach-data-one-class', ['teach', 'one', '--out', 'taught'], 'one')
    add('teach-data-no-test-images', ['teach', 'ds', '--out', 'taught'], 'ds')
    add('teach-data-unreadable-image', p, 'junk.png')
    add('teach-out-file', ['teach', 'badimg.csv', '--out', 'notes.txt'], 'notes.txt')
    add('teach-out-not-teach-folder', ['teach', 'badimg.csv', '--out', 'decks'], '--out')
    add('teach-classes-one', [*p, '--classes', 'a'], '--classes')
    add('teach-classes-unknown', [*p, '--classes', 'a,zz'], 'zz')
    add('teach-model-missing', [*p, '--model', 'nowhere'], '--model')
    add('teach-oracle-missing', [*p, '--oracle', 'nowhere'], '--oracle')
    add('teach-param-unknown', [*p, '-p', 'bogus', '1'], 'bogus')
    add('teach-param-set-by-teach', [*p, '-p', 'model', 'x'], '-p model')
    add('teach-kernel-bogus', [*p, '--kernel', 'bogus-kernel'], 'bogus-kernel')
    for opt, v in (('--budget', '0'), ('--encoder-steps', '0'), ('--resolution', '48'), ('--oracle-minutes', '-1'), ('--n-bench', '1'), ('--tune-images', '1'), ('--until', 'lunch'),
                   ('--device', 'bogus'), ('--seed', 'x')):
        C.extend(_num(p, opt, [v]))
    ids = [c[0] for c in C]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    assert not TRIMMED - set(ids), TRIMMED - set(ids)
    return [c for c in C if c[0] not in TRIMMED]


# Variants left out so that the whole table runs in well under 4 minutes on 2 cores (each case starts a Python
# that imports torch): each is a second bad value of an option, or a second way to give a command a bad path,
# that other cases cover.
TRIMMED = {
    'data-fmnist-empty-classes', 'bank-flat', 'bank-broken-link', 'bank--batch-size=x',
    'data-kikibouba--n-per-class=-3', 'data-kikibouba--size=5000', 'edit-image-broken-link', 'edit-bank-folder',
    'edit--t-skip=x', 'edit--omega=x', 'edit--guidance-scale=x', 'edit-model-empty-folder', 'train-decoder--minutes=x',
    'bench--n=x', 'bench-oracle-file', 'bench-grid-under-file', 'bench-records-under-file',
    'deck-dataset-one-class', 'deck-classes-same', 'deck-out-under-file', 'deck-param-n_images=1',
    'deck-param-n_study=-1', 'deck-param-seed=1.5', 'deck-param-omega=x', 'deck-template-text',
    'deck-demo-decks-under-file', 'deck-demo-param-bad', 'data-kikibouba--n-per-class=x',
    'data-kikibouba--n-per-class=1.5', 'data-kikibouba--size=big', 'data-accretion-out-under-file',
    'data-accretion-out-not-empty', 'data-fmnist-no-out', 'data-fmnist-same-class',
    'data-fashion-mnist--n-per-class=x', 'data-fashion-mnist--size=x', 'data-check-missing-csv',
    'data-check-empty-classes', 'data-check-flat', 'bank-model-file', 'bank-plot-under-file', 'bank-no-out',
    'bank-one-class', 'edit-image-text', 'edit-bank-text', 'edit--t-skip=200', 'edit--n-steps=1001',
    'edit-adapter-file', 'edit-out-under-file', 'edit-no-target', 'edit-source-unknown',
    'train-decoder-data-empty-classes', 'train-decoder-data-bad-csv', 'train-decoder-out-under-file',
    'train-decoder-classes-one', 'train-decoder-data-one-class', 'train-oracle-no-classes', 'train-oracle-no-out',
    'train-oracle-data-file', 'train-oracle-classes-three', 'train-oracle--members=,', 'train-oracle-classes-one',
    'train-oracle-data-empty', 'train-lora-no-out', 'train-lora-data-file', 'train-lora-data-one-class',
    'train-lora-model-empty-folder', 'train-lora-data-empty', 'bench-dataset-file', 'bench-dataset-one-class',
    'bench--min-confidence=1', 'bench--t-skip-fractions=0.5,0.9', 'bench-out-under-file', 'bench-model-empty-folder',
    'bench-classes-fmnist-unknown', 'bench-dataset-empty', 'bench-explorer-model-file', 'deck-dataset-file',
    'deck-param-n_steps=0', 'deck-param-t_skip_fractions=abc', 'deck-template-folder', 'deck-demo-param-unknown',
    'deck-classes-one', 'site-out-inside-decks', 'site-decks-empty', 'top-verbose-value',
    'teach-classes-unknown', 'teach-out-file',
    'tune--omegas=x', 'tune-model-missing',
}

CASES = _cases()

# ---------------------------------------------------------------------------------------------------- the runner
def _tree(root: Path) -> set[str]:
    "Every path (files, folders, links) under `root`, relative."
    out = set()
    for d, dirs, files in os.walk(root):
        for n in dirs + files: out.add(os.path.relpath(os.path.join(d, n), root))
    return out

def _default_runner(argv, cwd, env, timeout):
    return subprocess.run([DCF, *argv], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)

_FIXTURES: dict[str, Path] = {}

def _fixtures() -> Path:
    "The fixture folder, made once per process and copied into every case."
    if 'root' not in _FIXTURES:
        import atexit
        d = Path(tempfile.mkdtemp(prefix='dcf-bad-input-fixtures-'))
        atexit.register(shutil.rmtree, d, True)
        _FIXTURES['root'] = make_fixtures(d / 'work')
    return _FIXTURES['root']

def run_case(case, # (id, argv, name) from `CASES`
             tmp: str | Path, # an empty temporary folder for this case
             runner=None, # callable(argv, cwd=..., env=..., timeout=...) -> CompletedProcess (default: subprocess)
             timeout: float = 120,
            ) -> dict:
    "Run one case in a fresh working folder under `tmp`; what a clean rejection needs, measured."
    cid, argv, name = case
    tmp = Path(tmp)
    shutil.copytree(_fixtures(), tmp / 'work', symlinks=True)
    for d in ('home', 'xdg-cache', 'dcf-cache'): (tmp / d).mkdir()
    env = {**os.environ, 'HOME': str(tmp / 'home'), 'XDG_CACHE_HOME': str(tmp / 'xdg-cache'),
           'DCF_TEACH_CACHE': str(tmp / 'dcf-cache'), 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1',
           'OMP_WAIT_POLICY': 'PASSIVE', 'COLUMNS': '200', 'PYTHONWARNINGS': 'ignore'}
    env.pop('DCF_DECK_TEMPLATE', None)
    before = _tree(tmp)
    t0 = time.perf_counter()
    try:
        r = (runner or _default_runner)(argv, cwd=str(tmp / 'work'), env=env, timeout=timeout)
        code, out, err = r.returncode, r.stdout or '', r.stderr or ''
    except subprocess.TimeoutExpired as e:
        code, out, err = None, str(e.stdout or ''), str(e.stderr or '') + f'\n(timed out after {timeout} s)'
    secs = time.perf_counter() - t0
    new = sorted(_tree(tmp) - before)
    text = out + '\n' + err
    errs = [l for l in text.splitlines() if l.startswith('Error:')]
    tb = 'Traceback (most recent call last)' in text
    named = len(errs) == 1 and name in errs[0]
    ok = code == 2 and len(errs) == 1 and named and not tb and not new
    return dict(id=cid, argv=argv, name=name, ok=ok, exit=code, error_line=errs[0] if len(errs) == 1 else errs,
                named=named, traceback=tb, new_files=new, seconds=round(secs, 2),
                output=text if not ok else '')

def run_cases(cases=None, # default: all of `CASES`
              workers: int = 2, # cases run at once
              runner=None, timeout: float = 120,
             ) -> list[dict]:
    "Run `cases` (each in its own temporary folder, removed afterwards); results in the order of `cases`."
    cases = CASES if cases is None else cases
    _fixtures()
    def one(case):
        with tempfile.TemporaryDirectory(prefix='dcf-bad-input-') as t: return run_case(case, t, runner, timeout)
    with ThreadPoolExecutor(max(1, workers)) as ex: return list(ex.map(one, cases))

def summarize(results: list[dict]) -> dict:
    "The reliability figures of a run of `run_cases`."
    return dict(bad_inputs_tried=len(results), clean_errors=sum(r['ok'] for r in results),
                exit_status_not_2=sum(r['exit'] != 2 for r in results),
                error_line_missing_or_unnamed=sum(not r['named'] for r in results),
                tracebacks=sum(r['traceback'] for r in results),
                files_left_behind=sum(len(r['new_files']) for r in results),
                cases_leaving_files=sum(bool(r['new_files']) for r in results))

if __name__ == '__main__':
    import json
    sel = [c for c in CASES if not sys.argv[1:] or any(a in c[0] for a in sys.argv[1:])]
    res = run_cases(sel)
    for r in res:
        if not r['ok']: print(json.dumps({k: r[k] for k in ('id', 'exit', 'error_line', 'traceback', 'new_files', 'seconds')}))
    print(json.dumps(summarize(res)))
