"LoRA domain tuning (dcf_teach.train.lora) on the tiny dummy components: training, saving, loading, merging, errors."
import json, shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dcf_teach.core import UserError
from dcf_teach.engine.embeddings import clip_embed
from dcf_teach.engine.adapters import ADAPTER_META, _base_state, base_fingerprint, load_adapter
from dcf_teach.train.lora import LoraTrainConfig, draw_noise, train_lora, ValSet
from dcf_teach.engine.models import dummy_components, encode_images, load_components, save_components, unet_eps
from dcf_teach.core import test_close_f32


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "A base model folder, a 3-step adapter trained on it, and the trained in-memory components."
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp('lora')
    save_components(dummy_components(0, latent=True), d/'m0')
    save_components(dummy_components(1, latent=True), d/'m1')
    c = load_components(d/'m0')
    before = {k: v.clone() for k, v in c.unet.state_dict().items()}
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    z, e = encode_images(c, x), clip_embed(c, x)
    val = ValSet(z[:4], e[:4], *draw_noise(z[:4], torch.Generator().manual_seed(1)))
    r = train_lora(c, z, e, d/'ad', LoraTrainConfig(steps=3, batch_size=4, lr=1e-2, warmup_steps=1, val_every=10),
                   val, progress=False)
    return d, c, before, r


def _probe(c):
    g = torch.Generator().manual_seed(5)
    return torch.randn(2, c.in_channels, c.latent_size, c.latent_size, generator=g), torch.randn(2, c.embed_dim, generator=g)


def test_steps_change_only_adapter_weights(run):
    d, c, before, r = run
    assert r['step'] == 3
    after = _base_state(c.unet)
    assert set(after) == set(before)
    assert all(torch.equal(before[k], after[k]) for k in before), "a base weight moved"
    lora = {k: v for k, v in c.unet.state_dict().items() if 'lora_' in k}
    assert len(lora) == 2 * 6 * 4
    assert any(v.abs().sum() > 0 for k, v in lora.items() if 'lora_B' in k), "LoRA B never left zero"
    assert {n for n, p in c.unet.named_parameters() if p.requires_grad} <= set(lora)


def test_save_load_identical_and_merge(run):
    d, c, _, r = run
    files = sorted(p.name for p in (d/'ad').iterdir())
    assert files == ['adapter_config.json', 'adapter_model.safetensors', ADAPTER_META, 'last']
    meta = json.loads((d/'ad'/ADAPTER_META).read_text())
    assert meta['base']['unet'] == base_fingerprint(load_components(d/'m0'))['unet']
    assert meta['run']['best_step'] == r['best_step'] in (0, 3)
    x, e = _probe(c)
    # the last checkpoint is the in-memory adapter after 3 steps: equal after save → load (other modules: F32_TOL)
    cl = load_components(d/'m0', adapter=d/'ad'/'last')
    assert cl.adapter == str(d/'ad'/'last')
    ref = unet_eps(c, x, 400, e)
    test_close_f32(unet_eps(cl, x, 400, e), ref)
    assert (ref - unet_eps(load_components(d/'m0'), x, 400, e)).abs().max() > 1e-5   # it is not the base model
    cm = load_components(d/'m0', adapter=d/'ad'/'last', merge_adapter=True)
    assert not any('lora_' in n for n, _ in cm.unet.named_parameters())
    test_close_f32(unet_eps(cm, x, 400, e), ref)   # merged vs unmerged
    test_close_f32(unet_eps(cm, x, 900, e), unet_eps(cl, x, 900, e))


def _bank(d):
    from dcf_teach.engine.bank import build_bank, save_bank
    save_bank(build_bank(torch.randn(4, 32), [0, 0, 1, 1], ['a', 'b'], 'x'), d/'bank')
    from dcf_teach.data.folder import save_png
    save_png(np.full((32, 32, 3), 128, np.uint8), d/'img.png')
    return d/'bank'


def _edit(d, adapter, model='m0'):
    from dcf_teach.cli.main import cli
    return CliRunner().invoke(cli, ['edit', str(d/'img.png'), '--model', str(d/model), '--bank', str(d/'bank'),
                                    '--target', 'b', '--device', 'cpu', '--adapter', str(adapter), '--out', str(d/'o')])


def _one_line_error(res, *words):
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = [l for l in res.output.splitlines() if l.strip()]
    err = [l for l in lines if l.startswith('Error:')]
    assert len(err) == 1 and 'Traceback' not in res.output, res.output
    for w in words: assert w in err[0], err[0]
    return err[0]


def test_bad_adapter_folders_give_one_line_errors(run):
    d = run[0]
    _bank(d)
    bad = d/'bad'
    shutil.copytree(d/'ad'/'last', bad/'missing')
    (bad/'missing'/'adapter_model.safetensors').unlink()
    _one_line_error(_edit(d, bad/'missing'), 'no LoRA adapter in it')
    shutil.copytree(d/'ad'/'last', bad/'pickle')
    from safetensors.torch import load_file
    torch.save(load_file(str(bad/'pickle'/'adapter_model.safetensors')), bad/'pickle'/'adapter_model.bin')
    (bad/'pickle'/'adapter_model.safetensors').unlink()
    _one_line_error(_edit(d, bad/'pickle'), 'pickle')
    shutil.copytree(d/'ad'/'last', bad/'noconfig')
    (bad/'noconfig'/'adapter_config.json').unlink()
    _one_line_error(_edit(d, bad/'noconfig'), 'adapter_config.json')
    (bad/'empty').mkdir()
    _one_line_error(_edit(d, bad/'empty'), 'no LoRA adapter in it')
    _one_line_error(_edit(d, bad/'nope'), 'no such folder')


def test_adapter_for_another_base(run):
    d = run[0]
    _bank(d)
    line = _one_line_error(_edit(d, d/'ad', model='m1'), 'trained for the model', 'unet-')
    assert str(d/'m1') in line
    # same check in the library (without the dcf_teach json: shapes still have to fit)
    with pytest.raises(UserError, match='trained for the model'): load_adapter(load_components(d/'m1'), d/'ad')
    shutil.copytree(d/'ad'/'last', d/'other-arch')
    with pytest.raises(UserError, match='trained for the model'):
        load_adapter(dummy_components(0, latent=False), d/'other-arch')
    (d/'other-arch'/ADAPTER_META).unlink()
    with pytest.raises(UserError, match='does not fit'): _load_other_arch(d/'other-arch')


def _load_other_arch(folder):
    "Load onto a UNet whose added-KV projections are wider (cross_attention_dim 48, not 32)."
    from diffusers import UNet2DConditionModel
    import dataclasses
    c = dummy_components(0, latent=True)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=8, addition_embed_type="image",
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn", block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8,
        encoder_hid_dim=32, encoder_hid_dim_type="image_proj", cross_attention_dim=48, attention_head_dim=4,
        resnet_time_scale_shift="scale_shift", class_embed_type=None).eval().requires_grad_(False)
    return load_adapter(dataclasses.replace(c, unet=unet), folder)


def test_train_lora_cli(tmp_path):
    "`dcf-teach train lora` end to end (2 steps), then the adapter loads through `load_components`."
    from dcf_teach.cli.main import cli
    from dcf_teach.data.folder import save_png
    torch.set_num_threads(1)
    save_components(dummy_components(0, latent=False), tmp_path/'m')
    for k, cls in enumerate(['a', 'b']):
        for i in range(5):
            a = np.full((32, 32, 3), 60 + 120 * k, np.uint8); a[4 + 2 * i:20, 8:24] = 200
            (tmp_path/'data'/cls).mkdir(parents=True, exist_ok=True); save_png(a, tmp_path/'data'/cls/f'{i}.png')
    res = CliRunner().invoke(cli, ['train', 'lora', '--model', str(tmp_path/'m'), '--data', str(tmp_path/'data'),
                                   '--out', str(tmp_path/'ad'), '--steps', '2', '--batch-size', '4', '--val-n', '0'])
    assert res.exit_code == 0, (res.output, res.exception)
    assert 'best step' in res.output
    c = load_components(tmp_path/'m', adapter=tmp_path/'ad')
    assert c.adapter == str(tmp_path/'ad') and any('lora_' in n for n, _ in c.unet.named_parameters())
    res = CliRunner().invoke(cli, ['train', 'lora', '--model', str(tmp_path/'m'), '--data', str(tmp_path/'nodata'),
                                   '--out', str(tmp_path/'ad2'), '--steps', '2'])
    _one_line_error(res, 'no such folder')


def test_explorer_takes_the_adapter(run):
    "`dcf-teach bench explorer --adapter`: the explorer runs the adapted UNet; a bad adapter is one line."
    import dcf_teach.study.explorer as E
    from dcf_teach.cli.study import bench_explorer_cmd
    d, c, _, _ = run
    base = E.demo_setup(str(d/'m0'), n_per_class=10, n_steps=10, oracle=None, use_lpips=False)
    tuned = E.demo_setup(str(d/'m0'), n_per_class=10, n_steps=10, oracle=None, use_lpips=False, adapter=str(d/'ad'/'last'))
    assert tuned.components.adapter == str(d/'ad'/'last') and base.components.adapter is None
    from dcf_teach.engine.settings import EditSettings
    kw = dict(t_skip=0.5, edit=EditSettings(omega=2.0), sync=True)
    rb, rt = base.explorer(**kw).result, tuned.explorer(**kw).result
    assert (rb.counterfactual - rt.counterfactual).abs().max() > 1e-4   # the adapter changes the regeneration
    res = CliRunner().invoke(bench_explorer_cmd, ['--model', str(d/'m0'), '--adapter', str(d/'nope'), '--n-steps', '4',
                                                    '--updates', '1', '--threads', '0', '--json'])
    _one_line_error(res, 'no such folder')
