"File-level checks of `dcf_teach.render`: GIF/MP4 read back, atomic writes, determinism across processes, input errors."
import hashlib, os, subprocess, sys, textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

import dcf_teach.render as R
from dcf_teach.core import UserError


def shape(spikes=0., size=32, fg=(235, 140, 50), bg=(30, 60, 110)):
    "A disc (spikes=0) or a star, float HxWx3 in [0,1]."
    S = size * 4; c = S / 2; r = S * 0.3
    th = np.linspace(0, 2 * np.pi, 240, endpoint=False)
    rad = r * (1 + spikes * np.cos(6 * th))
    im = Image.new('RGB', (S, S), bg)
    ImageDraw.Draw(im).polygon(list(zip(c + rad * np.cos(th), c + rad * np.sin(th))), fill=fg)
    return np.asarray(im.resize((size, size), Image.Resampling.BOX), dtype=np.float32) / 255


DISC, STAR = shape(0.), shape(0.45)
OMEGAS = [-0.5, 0., 0.5, 1., 1.5]
SWEEP = [shape(max(0., 0.3 * w)) for w in OMEGAS]
sha = lambda p: hashlib.sha256(Path(p).read_bytes()).hexdigest()
leftovers = lambda d: sorted(p.name for p in Path(d).iterdir() if '.tmp' in p.name)


def test_flip_gif_timing_and_frames(tmp_path):
    p = R.flip_gif(DISC, STAR, tmp_path / 'f.gif', labels=('bouba', 'kiki'), probs=(0.97, 0.91), overlay=True,
                   hold=0.7, overlay_hold=1.5)
    with Image.open(p) as im:
        assert im.format == 'GIF' and im.n_frames == 3 and im.info['loop'] == 0
        assert im.size == (256, 309)            # 32 px x 8 (nearest) + caption band
        durations = []
        for i in range(im.n_frames): im.seek(i); durations.append(im.info['duration'])
    assert durations == [700, 700, 1500]
    assert R.gif_info(p) == (3, [0.7, 0.7, 1.5])


def test_inputs_in_any_layout_give_the_same_gif(tmp_path):
    torch = pytest.importorskip('torch')
    a = R.flip_gif(DISC, STAR, tmp_path / 'a.gif', labels=('bouba', 'kiki'))
    b = R.flip_gif(torch.tensor(DISC).permute(2, 0, 1), Image.fromarray(R.to_uint8(STAR)), tmp_path / 'b.gif',
                   labels=('bouba', 'kiki'))
    assert sha(a) == sha(b)


def test_mp4_read_back_with_imageio_and_moviepy(tmp_path):
    from moviepy import VideoFileClip
    p = R.interpolation_mp4(SWEEP, OMEGAS, tmp_path / 'i.mp4', probs=[.03, .05, .38, .86, .97], class_name='kiki',
                            seconds=0.5, hold_ends=1.0, fps=10)
    info = R.video_info(p)
    assert info['n_frames'] == 2 * 10 + 6 * 5 and info['fps'] == 10 and info['size'] == (256, 328)
    with VideoFileClip(str(p)) as clip:
        assert clip.fps == 10 and abs(clip.duration - 5.0) < 0.06 and tuple(clip.size) == (256, 328)
        first, last_fwd = clip.get_frame(0.05).astype(int), clip.get_frame(2.55).astype(int)
    # the first frame shows the disc (ω = -0.5), the middle of the sweep the star (ω = 1.5): centre row differs
    assert np.abs(first - last_fwd)[53:].mean() > 5


def test_study_video_durations(tmp_path):
    segs = [R.TitleCard('bouba → kiki', 'round becomes spiky', seconds=1.5),
            R.Flip(DISC, STAR, ('bouba', 'kiki'), (0.97, 0.91), repeats=3, hold=0.7),
            R.Flip(STAR, DISC, ('kiki', 'bouba'), (0.95, 0.92), overlay=True, repeats=1, hold=0.5)]
    info = R.video_info(R.study_video(segs, tmp_path / 's.mp4', fps=10))
    assert info['n_frames'] == 15 + 6 * 7 + 3 * 5
    assert abs(info['duration'] - 7.2) < 0.06


def test_atomic_gif_leaves_no_temp_and_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / 'f.gif'
    target.write_bytes(b'old')
    def broken_save(self, fp, *a, **k):
        Path(fp).write_bytes(b'GIF89a partial')
        raise OSError('disk full')
    monkeypatch.setattr(Image.Image, 'save', broken_save)
    with pytest.raises(OSError, match='disk full'): R.flip_gif(DISC, STAR, target)
    assert target.read_bytes() == b'old' and leftovers(tmp_path) == []


def test_atomic_mp4_and_png_leave_no_temp(tmp_path, monkeypatch):
    import moviepy
    def broken_write(self, filename, *a, **k):
        Path(filename).write_bytes(b'partial')
        raise OSError('ffmpeg died')
    monkeypatch.setattr(moviepy.VideoClip, 'write_videofile', broken_write)
    with pytest.raises(OSError, match='ffmpeg died'): R.interpolation_mp4(SWEEP, OMEGAS, tmp_path / 'i.mp4')
    assert not (tmp_path / 'i.mp4').exists() and leftovers(tmp_path) == []
    from matplotlib.figure import Figure
    def broken_savefig(self, fname, *a, **k):
        Path(fname).write_bytes(b'partial')
        raise RuntimeError('renderer failed')
    monkeypatch.setattr(Figure, 'savefig', broken_savefig)
    with pytest.raises(RuntimeError): R.pair_grid([DISC], [STAR], path=tmp_path / 'g.png')
    assert not (tmp_path / 'g.png').exists() and leftovers(tmp_path) == []


def test_bytes_are_identical_across_processes(tmp_path):
    "Same input, same bytes, in fresh interpreters with different hash seeds."
    script = textwrap.dedent(f"""
        import sys, numpy as np
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_render import DISC, STAR, SWEEP, OMEGAS
        import dcf_teach.render as R
        out = sys.argv[1]
        R.flip_gif(DISC, STAR, out + '/f.gif', labels=('bouba', 'kiki'), probs=(0.97, 0.91), overlay=True)
        R.interpolation_gif(SWEEP, OMEGAS, out + '/i.gif', probs=[.03, .05, .38, .86, .97], class_name='kiki')
        R.interpolation_strip(SWEEP, OMEGAS, out + '/s.png')
        R.omega_grid([DISC], [SWEEP], OMEGAS, probs=[[.03, .05, .38, .86, .97]], path=out + '/og.png')
        R.pair_grid([DISC, STAR], [STAR, DISC], overlay=True, row_labels=['a', 'b'], path=out + '/pg.png')
        R.plot_success_vs_closeness([90, 80, 70], [.1, .5, .9], [.05, .1, .2], path=out + '/sr.png')
    """)
    hashes = []
    for seed in ('1', '2'):
        d = tmp_path / seed; d.mkdir()
        subprocess.run([sys.executable, '-c', script, str(d)], check=True, env={**os.environ, 'PYTHONHASHSEED': seed, 'MPLBACKEND': 'Agg'})
        hashes.append({p.name: sha(p) for p in sorted(d.iterdir())})
    assert len(hashes[0]) == 6 and hashes[0] == hashes[1]


@pytest.mark.parametrize('call, param', [
    (lambda d: R.flip_gif(DISC, STAR[:16], d / 'x.gif'), 'counterfactual'),
    (lambda d: R.flip_gif(DISC * 2 - 1, STAR, d / 'x.gif'), 'original'),
    (lambda d: R.flip_gif(DISC, STAR, d / 'x.gif', probs=(0.5,)), 'probs'),
    (lambda d: R.flip_gif(DISC, STAR, d / 'x.gif', hold=0), 'hold'),
    (lambda d: R.save_gif([], 0.5, d / 'x.gif'), 'frames'),
    (lambda d: R.interpolation_gif([], [], d / 'x.gif'), 'frames'),
    (lambda d: R.interpolation_mp4(SWEEP, OMEGAS[:2], d / 'x.mp4'), 'omegas'),
    (lambda d: R.interpolation_strip([DISC, np.zeros((3, 5, 5))], [0, 1]), 'frames[1]'),
    (lambda d: R.difference_overlay(DISC, STAR, strength=0), 'strength'),
    (lambda d: R.omega_grid([DISC], [SWEEP], OMEGAS, probs=[[0.1, 0.2]]), 'probs[0]'),
    (lambda d: R.pair_grid([DISC], [STAR], row_labels=['a', 'b']), 'row_labels'),
    (lambda d: R.plot_closeness_vs_n([], []), 'ns'),
    (lambda d: R.study_video([R.Flip(DISC, STAR, repeats=0)], d / 'x.mp4'), 'repeats'),
    (lambda d: R.upscale(DISC, resample='cubic'), 'resample'),
])
def test_bad_inputs_are_one_line_user_errors(tmp_path, call, param):
    with pytest.raises(UserError) as e: call(tmp_path)
    msg = str(e.value)
    assert param in msg and '\n' not in msg
    assert list(tmp_path.iterdir()) == []


def test_font_is_bundled_with_its_licence():
    fonts = Path(R.__file__).parent / 'assets' / 'fonts'
    assert (fonts / 'DejaVuSans-Bold.ttf').is_file() and 'Bitstream' in (fonts / 'LICENSE-DejaVu.txt').read_text()
    assert Path(R.font(20).path).resolve() == (fonts / 'DejaVuSans-Bold.ttf').resolve()
    src = Path(R.__file__).read_text()
    assert 'get_data_path' not in src and '/usr/share/fonts' not in src
