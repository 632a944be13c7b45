"""The data commands end to end: `dcf-teach data check` on every kind of bad input, generator determinism,
split stability, the Fashion-MNIST export, and the measurement figures of the procedural datasets."""
import csv, gzip, io, json, shutil, struct, zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcf_teach.data.folder import check_dataset, load_dataset, SPLITS
from dcf_teach.data.fashion_mnist import FASHION_MNIST_DIR, _idx_bytes


def _folder(root: Path, n=6, classes=('cats', 'dogs')) -> Path:
    for k, c in enumerate(classes):
        (root/c).mkdir(parents=True, exist_ok=True)
        for i in range(n): Image.new('RGB', (24, 20), (30 * k + 5 * i, 90, 200 - 9 * i)).save(root/c/f'{c}{i:03d}.png')
    return root


def _one_line_error(r, *needles):
    "The command failed with exit 2 and one line on stderr containing every needle, without a traceback."
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    for n in needles: assert n in lines[0], (n, lines[0])
    return lines[0]


def _bomb_png(path: Path, w=100_000, h=100_000):
    "A tiny PNG whose header claims w×h pixels (nothing is allocated unless a reader decodes it)."
    def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    ihdr = struct.pack('>IIBBBBB', w, h, 1, 0, 0, 0, 0)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'\x00' * 64)) + chunk(b'IEND', b''))


# ---------------------------------------------------------------------------------------------------- check: bad input

def test_check_good_folder_prints_summary(cli, tmp_path):
    root = _folder(tmp_path/'ds', n=10)
    r = cli("data", "check", root)
    assert r.returncode == 0, r.stderr
    assert "2 classes, 20 images" in r.stdout and "cats" in r.stdout and "dogs" in r.stdout


def test_check_missing_folder(cli, tmp_path):
    _one_line_error(cli("data", "check", tmp_path/'nope'), "does not exist", "nope")


def test_check_fewer_than_two_classes(cli, tmp_path):
    root = _folder(tmp_path/'ds', classes=('cats',))
    _one_line_error(cli("data", "check", root), "1 class folder", "need at least two")
    empty = tmp_path/'none'; empty.mkdir()
    _one_line_error(cli("data", "check", empty), "0 class folders")


def test_check_empty_class(cli, tmp_path):
    root = _folder(tmp_path/'ds')
    (root/'birds').mkdir(); (root/'birds'/'notes.txt').write_text('no images here')
    _one_line_error(cli("data", "check", root), "birds", "has no images")


def test_check_unreadable_image_is_named(cli, tmp_path):
    root = _folder(tmp_path/'ds')
    (root/'dogs'/'broken.png').write_bytes(b'this is not a png')
    _one_line_error(cli("data", "check", root), "broken.png", "not a readable image")


def test_check_truncated_image_is_named(cli, tmp_path):
    root = _folder(tmp_path/'ds')
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root/'cats'/'big.png')
    b = (root/'cats'/'big.png').read_bytes(); (root/'cats'/'big.png').write_bytes(b[:len(b) // 2])
    _one_line_error(cli("data", "check", root), "big.png", "truncated")


def test_check_truncated_jpeg_is_named(cli, tmp_path):
    root = _folder(tmp_path/'ds')
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root/'cats'/'photo.jpg', quality=90)
    b = (root/'cats'/'photo.jpg').read_bytes(); (root/'cats'/'photo.jpg').write_bytes(b[:len(b) // 3])
    _one_line_error(cli("data", "check", root), "photo.jpg")


def test_check_decompression_bomb(cli, tmp_path):
    root = _folder(tmp_path/'ds')
    _bomb_png(root/'cats'/'bomb.png')
    assert (root/'cats'/'bomb.png').stat().st_size < 200
    _one_line_error(cli("data", "check", root), "bomb.png", "decompression bomb")


def test_check_duplicates_across_classes_are_named(cli, tmp_path):
    root = _folder(tmp_path/'ds')
    shutil.copy(root/'cats'/'cats002.png', root/'dogs'/'dup.png')
    line = _one_line_error(cli("data", "check", root), "cats002.png", "dup.png", "two classes")
    assert "(cats)" in line and "(dogs)" in line


def test_check_counts_further_problems(cli, tmp_path):
    root = _folder(tmp_path/'ds')
    (root/'dogs'/'a.png').write_bytes(b'x'); (root/'dogs'/'b.png').write_bytes(b'y')
    _one_line_error(cli("data", "check", root), "and 1 more problem", "--skip-bad")


def test_check_skip_bad_reports_skips(cli, tmp_path):
    root = _folder(tmp_path/'ds')
    (root/'dogs'/'broken.png').write_bytes(b'nope')
    _bomb_png(root/'cats'/'bomb.png')
    shutil.copy(root/'cats'/'cats002.png', root/'dogs'/'dup.png')
    r = cli("data", "check", root, "--skip-bad")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    skipped = [l for l in r.stdout.splitlines() if l.startswith('skipped')]
    assert len(skipped) == 3, r.stdout
    assert "11 images" in r.stdout  # 13 readable minus both copies of the duplicate
    assert len(load_dataset(root, skip_duplicates=True)) == 11
    assert len(load_dataset(root)) == 13  # by default only the unreadable files are left out


def test_check_all_bad_class_is_empty_after_skipping(cli, tmp_path):
    root = _folder(tmp_path/'ds')
    (root/'birds').mkdir(); (root/'birds'/'x.png').write_bytes(b'nope')
    _one_line_error(cli("data", "check", root, "--skip-bad"), "birds", "no usable images")


def test_check_csv_manifest(cli, tmp_path):
    root = _folder(tmp_path/'ds')
    rows = [('path', 'label', 'split')] + [(f'ds/{c}/{c}{i:03d}.png', c, 'train' if i < 4 else 'test') for c in ('cats', 'dogs') for i in range(6)]
    f = tmp_path/'m.csv'
    with f.open('w', newline='') as fh: csv.writer(fh).writerows(rows)
    r = cli("data", "check", f)
    assert r.returncode == 0, r.stderr
    assert "12 images" in r.stdout
    ds = load_dataset(f)
    assert [sum(it.split == s for it in ds.items) for s in SPLITS] == [8, 0, 4]
    # bad manifests
    _one_line_error(cli("data", "check", tmp_path/'missing.csv'), "missing.csv", "does not exist")
    (tmp_path/'bad.csv').write_text('path,label,split\nds/cats/cats000.png,cats,training\nds/dogs/dogs000.png,dogs,\n')
    _one_line_error(cli("data", "check", tmp_path/'bad.csv'), "bad.csv:2", "training")
    (tmp_path/'gone.csv').write_text('ds/cats/cats000.png,cats\nds/dogs/nothere.png,dogs\n')
    _one_line_error(cli("data", "check", tmp_path/'gone.csv'), "nothere.png", "not found")
    (tmp_path/'one.csv').write_text('ds/cats/cats000.png,cats\n')
    _one_line_error(cli("data", "check", tmp_path/'one.csv'), "need at least two")


def test_check_rejects_a_plain_file(cli, tmp_path):
    (tmp_path/'x.txt').write_text('hello')
    _one_line_error(cli("data", "check", tmp_path/'x.txt'), "x.txt")


# ---------------------------------------------------------------------------------------------------- loader

def test_every_common_mode_is_converted_to_rgb(cli, tmp_path):
    root = _folder(tmp_path/'ds', n=2)
    a = np.linspace(0, 255, 24 * 20).reshape(20, 24).astype(np.uint8)
    d = root/'cats'
    Image.fromarray(a).save(d/'grey.png')                                      # L
    Image.fromarray(a).convert('LA').save(d/'greyalpha.png')                   # LA
    Image.fromarray(a).convert('P').save(d/'palette.png')                      # P
    Image.fromarray(a).convert('P').save(d/'palette.gif')                      # P (gif)
    rgba = Image.new('RGBA', (24, 20), (255, 0, 0, 128)); rgba.save(d/'rgba.png')  # RGBA
    Image.fromarray((a.astype(np.uint16) * 257)).save(d/'deep16.png')          # 16-bit grey
    Image.fromarray(a).convert('RGB').convert('CMYK').save(d/'cmyk.jpg')       # CMYK JPEG
    Image.fromarray(a).convert('1').save(d/'bilevel.png')                     # 1-bit
    Image.fromarray(a).convert('RGB').save(d/'photo.tiff')
    modes = {p.name: Image.open(p).mode for p in d.iterdir()}
    assert {'L', 'LA', 'P', 'RGBA', 'CMYK', '1'} <= set(modes.values()) and modes['deep16.png'].startswith('I'), modes
    r = cli("data", "check", root)
    assert r.returncode == 0, r.stderr
    ds = load_dataset(root, resolution=16)
    for i in range(len(ds)):
        x, y = ds[i]
        assert tuple(x.shape) == (3, 16, 16) and 0 <= float(x.min()) and float(x.max()) <= 1
        assert ds.load_pil(i).mode == 'RGB'
    k = [it.path.name for it in ds.items].index('deep16.png')
    assert np.allclose(np.asarray(ds.load_pil(k, raw=True))[..., 0], a, atol=1)  # 16-bit scaled, not clipped
    k = [it.path.name for it in ds.items].index('rgba.png')
    assert np.asarray(ds.load_pil(k, raw=True))[0, 0].tolist() == [255, 127, 127]  # half-transparent red over white


def test_resize_and_center_crop(tmp_path):
    root = _folder(tmp_path/'ds', n=2)
    im = Image.new('RGB', (90, 30), (0, 0, 0)); im.paste((255, 255, 255), (30, 0, 60, 30)); im.save(root/'cats'/'wide.png')
    ds = load_dataset(root, resolution=12)
    k = [it.path.name for it in ds.items].index('wide.png')
    x, _ = ds[k]
    assert tuple(x.shape) == (3, 12, 12) and float(x.min()) > 0.9  # only the white centre square is kept


def test_split_stable_when_files_are_added(tmp_path):
    root = _folder(tmp_path/'ds', n=30)
    before = {it.id: it.split for it in load_dataset(root).items}
    _folder(root, n=300)
    (root/'newclass').mkdir(); Image.new('RGB', (4, 4)).save(root/'newclass'/'x.png')
    after = {it.id: it.split for it in load_dataset(root).items}
    assert all(after[k] == v for k, v in before.items())
    n = len(after); frac = {s: sum(v == s for v in after.values()) / n for s in SPLITS}
    assert abs(frac['train'] - 0.8) < 0.05 and abs(frac['val'] - 0.1) < 0.04 and abs(frac['test'] - 0.1) < 0.04, frac
    # content of the other files does not matter either: rewriting one file leaves every split as it was
    Image.new('RGB', (8, 8), (1, 2, 3)).save(root/'cats'/'cats000.png')
    assert {it.id: it.split for it in load_dataset(root).items} == after


def test_dataset_json_split_is_honoured(tmp_path):
    root = _folder(tmp_path/'ds', n=20)
    ids = [it.id for it in load_dataset(root).items]
    (root/'dataset.json').write_text(json.dumps({'images': [{'path': f'{i}.png', 'split': 'test'} for i in ids]}))
    assert len(load_dataset(root, split='test')) == 40


def test_dataloader_batches(tmp_path):
    import torch
    ds = load_dataset(_folder(tmp_path/'ds', n=5), resolution=8)
    xb, yb = next(iter(torch.utils.data.DataLoader(ds, batch_size=10)))
    assert tuple(xb.shape) == (10, 3, 8, 8) and yb.tolist() == [0] * 5 + [1] * 5


# ---------------------------------------------------------------------------------------------------- generators

def _tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


@pytest.mark.parametrize('gen,classes', [('kikibouba', ['bouba', 'kiki']), ('accretion', ['mad', 'sane'])])
def test_generator_is_deterministic_and_atomic(cli, tmp_path, gen, classes):
    a, b, c = tmp_path/'a', tmp_path/'b', tmp_path/'c'
    for out, seed in ((a, 7), (b, 7), (c, 8)):
        r = cli("data", gen, "--out", out, "--n-per-class", 12, "--size", 32, "--seed", seed)
        assert r.returncode == 0, r.stderr
        assert "wrote 24 images" in r.stdout
    ta, tb, tc = _tree(a), _tree(b), _tree(c)
    assert ta == tb                                        # same seed ⇒ byte-identical files
    assert ta.keys() == tc.keys() and ta != tc             # another seed ⇒ other images
    assert len(ta) == 25 and 'dataset.json' in ta
    meta = json.loads(ta['dataset.json'])
    assert meta['classes'] == classes and len(meta['images']) == 24
    e = meta['images'][0]
    assert {'path', 'class', 'split', 'params'} <= set(e) and e['params']['class'] == e['class']
    ds = load_dataset(a)
    assert ds.classes == classes and [sum(it.split == s for it in ds.items) for s in SPLITS] == [20, 2, 2]
    # a larger dataset keeps the images it already had
    r = cli("data", gen, "--out", tmp_path/'big', "--n-per-class", 20, "--seed", 7)
    big = _tree(tmp_path/'big')
    assert all(big[k] == v for k, v in ta.items() if k.endswith('.png'))
    # an existing non-empty folder is refused, --force replaces it, and no temporary folder is left
    _one_line_error(cli("data", gen, "--out", a, "--n-per-class", 3), "not empty", "--force")
    r = cli("data", gen, "--out", a, "--n-per-class", 3, "--force")
    assert r.returncode == 0 and len(load_dataset(a)) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a', 'b', 'big', 'c']


def test_generator_bad_options(cli, tmp_path):
    r = cli("data", "kikibouba", "--out", tmp_path/'x', "--n-per-class", 0)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--n-per-class" in r.stderr
    r = cli("data", "accretion", "--out", tmp_path/'x', "--size", 4)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--size" in r.stderr
    (tmp_path/'file').write_text('x')
    _one_line_error(cli("data", "kikibouba", "--out", tmp_path/'file'), "not a folder")


# ---------------------------------------------------------------------------------------------------- measurements

def test_kikibouba_measurements_recover_the_truth():
    from dcf_teach.data.kikibouba import kikibouba_measurement_report
    rep = kikibouba_measurement_report(n_per_class=300, seed=2024)
    print("kikibouba measurement report:", rep)
    assert rep['rule_accuracy'] >= 0.99, rep
    assert rep['solidity_kiki_max'] < rep['solidity_bouba_min'], rep
    assert rep['bg_max_err'] <= 0.5 and rep['fill_max_err'] <= 2, rep
    assert rep['centroid_err_px_max'] < 0.25 and rep['area_rel_err_max'] < 0.05, rep
    assert rep['rotation_err_deg_median'] < 5 and rep['rotation_err_deg_p95'] < 15, rep


def test_kikibouba_measurement_on_written_files(tmp_path):
    from dcf_teach.data.kikibouba import make_kikibouba, measure_kikibouba, classify_kikibouba
    ds = load_dataset(make_kikibouba(tmp_path/'kb', n_per_class=20, seed=99, progress=False))
    for i in range(len(ds)):
        m, p = measure_kikibouba(np.asarray(ds.load_pil(i))), ds.info(i)['params']
        assert classify_kikibouba(m) == p['class']
        assert np.allclose(m['bg_rgb'], p['bg_rgb'], atol=0.5) and abs(m['cx'] - 32 * p['cx']) < 0.25


def test_accretion_measurements_recover_the_truth():
    from dcf_teach.data.accretion import accretion_measurement_report
    rep = accretion_measurement_report(n_per_class=250, seed=2024)
    print("accretion measurement report:", rep)
    assert 0.85 <= rep['rule_accuracy'] <= 0.95, rep           # subtle on purpose
    assert 0.85 <= rep['true_feature_accuracy'] <= 0.97, rep   # the overlap, not the measurement, limits it
    assert rep['prominence_vs_ring_fraction_r'] > 0.7 and rep['clumpiness_vs_true_r'] > 0.6, rep
    assert rep['ring_radius_err_px_median'] < 0.3 and rep['ring_radius_err_px_p95'] < 1.0, rep
    assert rep['orientation_err_deg_median'] < 15, rep
    assert rep['brightness_rel_err_max'] < 0.03, rep


# ---------------------------------------------------------------------------------------------------- Fashion-MNIST

def _fake_fmnist(d: Path, n_train=60, n_test=20) -> Path:
    rng = np.random.default_rng(0)
    d.mkdir(parents=True, exist_ok=True)
    for pre, n in (('train', n_train), ('t10k', n_test)):
        (d/f'{pre}-images-idx3-ubyte.gz').write_bytes(gzip.compress(_idx_bytes(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))))
        (d/f'{pre}-labels-idx1-ubyte.gz').write_bytes(gzip.compress(_idx_bytes(np.arange(n, dtype=np.uint8) % 10)))
    return d


def test_fashion_mnist_from_source_folder(cli, tmp_path):
    src = _fake_fmnist(tmp_path/'src')
    r = cli("data", "fashion-mnist", "--classes", "T-shirt,ankle-boot", "--out", tmp_path/'fm', "--source", src)
    assert r.returncode == 0, r.stderr
    ds = load_dataset(tmp_path/'fm')
    assert ds.classes == ['boot', 'tshirt'] and len(ds) == 16
    assert sum(it.split == 'test' for it in ds.items) == 4     # the official test images stay test
    assert all((it.split == 'test') == ('_test' in it.id) for it in ds.items)
    im = ds.load_pil(0, raw=True)
    assert im.size == (28, 28) and Image.open(ds.items[0].path).mode == 'RGB'
    r = cli("data", "fashion-mnist", "--classes", "shirt,sneaker", "--out", tmp_path/'fm2', "--source", src, "--size", 32)
    assert r.returncode == 0 and load_dataset(tmp_path/'fm2').load_pil(0).size == (32, 32)


def test_fashion_mnist_bad_input(cli, tmp_path):
    empty = tmp_path/'empty'; empty.mkdir()
    _one_line_error(cli("data", "fashion-mnist", "--classes", "shirt,tshirt", "--out", tmp_path/'o', "--source", empty),
                    "not found", "apt-get install dataset-fashion-mnist")
    _one_line_error(cli("data", "fashion-mnist", "--classes", "shirt,tshirt", "--out", tmp_path/'o', "--source", tmp_path/'nope'),
                    "is not a folder")
    _one_line_error(cli("data", "fashion-mnist", "--classes", "shirt,hat", "--out", tmp_path/'o'), "'hat'", "tshirt")
    _one_line_error(cli("data", "fashion-mnist", "--classes", "shirt", "--out", tmp_path/'o'), "at least two")
    src = _fake_fmnist(tmp_path/'src')
    b = (src/'t10k-labels-idx1-ubyte.gz').read_bytes(); (src/'t10k-labels-idx1-ubyte.gz').write_bytes(b[:10])
    _one_line_error(cli("data", "fashion-mnist", "--classes", "shirt,tshirt", "--out", tmp_path/'o', "--source", src),
                    "t10k-labels-idx1-ubyte.gz")
    assert not (tmp_path/'o').exists()


@pytest.mark.skipif(not (FASHION_MNIST_DIR/'train-images-idx3-ubyte.gz').exists(),
                    reason="Debian package dataset-fashion-mnist not installed (apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_debian_files(cli, tmp_path):
    r = cli("data", "fashion-mnist", "--classes", "tshirt,shirt", "--out", tmp_path/'fm', "--n-per-class", 70)
    assert r.returncode == 0, r.stderr
    ds = load_dataset(tmp_path/'fm')
    assert ds.classes == ['shirt', 'tshirt'] and len(ds) == 140
    counts = {s: sum(it.split == s for it in ds.items) for s in SPLITS}
    assert counts['test'] == 20 and counts['val'] > 0 and counts['train'] > 90, counts
    meta = json.loads((tmp_path/'fm'/'dataset.json').read_text())
    assert {e['params']['label'] for e in meta['images']} == {0, 6}  # T-shirt/top and Shirt
    assert cli("data", "check", tmp_path/'fm').returncode == 0
