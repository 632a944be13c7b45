"Weights that cannot be silently corrupted: model, oracle and adapter folders record the SHA-256 of each weight file."
import json, shutil

import pytest

import corruption as K
from dcf_teach.core import UserError, weight_hashes
from dcf_teach.engine.models import ASSETS_MODELS, META_FILE, load_components, shipped_models
from dcf_teach.judge.oracle import _shipped_root, load_oracle, shipped_oracles


@pytest.mark.parametrize('name', shipped_models())
def test_shipped_models_record_their_weights(name):
    meta = json.loads((ASSETS_MODELS/name/META_FILE).read_text())
    assert meta['weights'] == weight_hashes(ASSETS_MODELS/name)
    assert set(meta['weights']) >= {'unet/diffusion_pytorch_model.safetensors', 'image_encoder/model.safetensors'}

@pytest.mark.parametrize('name', shipped_oracles())
def test_shipped_oracles_record_their_weights(name):
    d = _shipped_root()/name
    meta = json.loads((d/'oracle.json').read_text())
    assert {m['file']: m['sha256'] for m in meta['members']} == weight_hashes(d)

def test_flipped_bytes_in_the_shipped_model_are_refused(tmp_path):
    d = tmp_path/'kikibouba'; shutil.copytree(ASSETS_MODELS/'kikibouba', d)
    f = d/'unet'/'diffusion_pytorch_model.safetensors'
    K.flip_middle(f)
    with pytest.raises(UserError) as e: load_components(d)
    msg = str(e.value)
    assert str(f) in msg and 'is corrupted' in msg and 're-run' in msg and '\n' not in msg

def test_corrupted_oracle_and_adapter_are_refused(tmp_path):
    assert K.oracle_case(tmp_path/'o')
    assert K.oracle_case(tmp_path/'o2', 'mobilenet_v2.safetensors', K.truncate)
    assert K.adapter_case(tmp_path/'a')

@pytest.mark.parametrize('how', list(K.DAMAGE))
def test_damaged_lpips_weights_are_refused(tmp_path, how):
    assert K.lpips_case(tmp_path, how)

def test_model_without_recorded_hashes_loads_with_one_warning(tmp_path):
    d = tmp_path/'old'; shutil.copytree(ASSETS_MODELS/'kikibouba', d)
    meta = json.loads((d/META_FILE).read_text()); del meta['weights']; (d/META_FILE).write_text(json.dumps(meta))
    with K.warnings_caught() as msgs:
        load_components(d); load_components(d)
    assert len([m for m in msgs if 'records no weight hashes' in m]) == 1

def test_unrecorded_weight_file_is_refused(tmp_path):
    d = tmp_path/'m'; shutil.copytree(ASSETS_MODELS/'kikibouba', d)
    shutil.copy(d/'unet'/'diffusion_pytorch_model.safetensors', d/'unet'/'diffusion_pytorch_model.fp16.safetensors')
    with pytest.raises(UserError, match='not recorded in dcf_teach.json'): load_components(d)
