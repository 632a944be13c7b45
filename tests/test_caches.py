"Caches that heal: a truncated or corrupted cache entry is detected, named in one warning, recomputed, never used."
import pytest

import corruption as K
from dcf_teach.engine.models import dummy_components


@pytest.fixture(scope='module')
def comps():
    return dummy_components(latent=False)

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    from dcf_teach.data.registry import resolve_dataset
    return resolve_dataset('kikibouba', cache=tmp_path_factory.mktemp('data'), n_per_class=8)


@pytest.mark.parametrize('how', list(K.DAMAGE))
def test_embedding_cache_heals(tmp_path, comps, how):
    assert K.embedding_case(tmp_path, how, comps)

@pytest.mark.parametrize('how', K.RECORD_DAMAGE)
def test_record_cache_heals(tmp_path, how):
    assert K.record_case(tmp_path, how)

@pytest.mark.parametrize('how', K.BANK_DAMAGE)
def test_bank_cache_heals(tmp_path, comps, data, how):
    assert K.bank_case(tmp_path, how, comps, data)

def test_entries_without_a_hash_are_not_used(tmp_path):
    "Entries written before content hashes existed are dropped once (with a warning), never trusted."
    import json, torch
    from safetensors.torch import save_file
    from dcf_teach.core import read_json_verified, read_tensors
    save_file({'t': torch.ones(2)}, str(tmp_path/'old.safetensors'))
    (tmp_path/'old.json').write_text(json.dumps({'x': 1}))
    with K.warnings_caught() as msgs:
        assert read_tensors(tmp_path/'old.safetensors') is None and read_json_verified(tmp_path/'old.json') is None
    assert len(msgs) == 2 and all('older dcf_teach' in m for m in msgs)
    assert not (tmp_path/'old.safetensors').exists() and not (tmp_path/'old.json').exists()
