"The shipped models and oracles: what `make deck` and the bench rely on, and the size budget."
import json
from pathlib import Path

import pytest
import torch

from dcf_teach.study.runner import DEMO_DECKS, demo_available
from dcf_teach.data.registry import NAMED_DATASETS
from dcf_teach.engine.models import ASSETS_MODELS, load_components, shipped_models
from dcf_teach.engine.settings import LIBRARY_EDIT_DEFAULTS, check_edit_defaults
from dcf_teach.judge.oracle import shipped_oracles

SHIPPED = sorted(spec['model'] for spec in NAMED_DATASETS.values())


def test_every_named_dataset_has_its_model_and_oracle():
    assert SHIPPED == ['accretion', 'fashion-mnist', 'kikibouba']
    assert set(SHIPPED) <= set(shipped_models())
    assert {'bouba-kiki', 'mad-sane', 'shirt-tshirt'} <= set(shipped_oracles())
    assert all(demo_available(s) for s in DEMO_DECKS), "make deck would skip a demo deck"


def test_assets_fit_the_size_budget():
    root = ASSETS_MODELS.parent
    mb = sum(f.stat().st_size for f in root.rglob('*') if f.is_file()) / 1e6
    # models 15 MB, oracles 15 MB, DVCE/RCSB guides 17 MB (six ResNet-18 at 2.8 MB), LPIPS AlexNet 9.9 MB (float32; the
    # only way a pip-installed package gets them offline, see nbs/20_judge.lpips.ipynb), quiz page, deck template and
    # fonts 1 MB; PyPI's default file limit is 100 MB. Guides stored in float16 would halve their share.
    assert mb <= 60, f"dcf_teach/assets is {mb:.1f} MB (budget 60 MB)"
    assert not list(root.rglob('*.bin')) and not list(root.rglob('*.pt')) and not list(root.rglob('*.pkl'))


@pytest.mark.parametrize('name', SHIPPED)
def test_shipped_model_loads_with_its_card_and_settings(name):
    meta = json.loads((ASSETS_MODELS/name/'dcf_teach.json').read_text())
    settings = check_edit_defaults(meta['edit_defaults'], name)
    assert set(settings) <= set(LIBRARY_EDIT_DEFAULTS) and settings['inversion'] in ('zero', 'source')
    card = (ASSETS_MODELS/name/'README.md').read_text()
    for section in ('## Recipe', '## Embedding check', '## Bench', 'success ratio'):
        assert section in card, f"{name} model card lacks {section!r}"
    c = load_components(name)
    assert c.model_id == name and c.resolution == 32 and c.edit_defaults == settings
    with torch.no_grad():    # the UNet runs on its own embedding space
        x = torch.zeros(1, c.latent_channels, 32, 32)
        e = torch.zeros(1, c.embed_dim)
        from dcf_teach.engine.models import unet_eps
        assert torch.isfinite(unet_eps(c, x, 500, e)).all()
