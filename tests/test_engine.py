"""The DIFFusion engine end to end on tiny components: doctor thresholds, reconstruction, edit formula,
search bookkeeping, banks, offline hub errors, and the `bank` / `edit` command lines."""
import dataclasses, json, os, time
from pathlib import Path

import numpy as np
import pytest
import torch

from dcf_teach.core import UserError
from dcf_teach.core import test_close_f32
from dcf_teach.engine.settings import EditSettings

N = 10  # inference steps for the in-process tests (the doctor uses N = 100)


@pytest.fixture(scope="module")
def cp():
    from dcf_teach.engine.models import dummy_components
    return dummy_components(latent=False)


@pytest.fixture(scope="module")
def cl():
    from dcf_teach.engine.models import dummy_components
    return dummy_components(latent=True)


def images(n, seed=0):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


# --- doctor ------------------------------------------------------------------------------------------------

def test_doctor_json_thresholds(cli):
    r = cli("doctor", "--json", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    j = json.loads(r.stdout)
    assert j["reconstruction_max_abs_error"] < 1e-4
    assert j["scheduler_step_max_abs_diff"] < 1e-5
    assert j["pipeline_max_abs_diff"] < 1e-4
    assert j["batch_order_max_abs_diff"] < 1e-5
    assert j["reconstruction_zeroed_last_error"] > 1e-3  # zeroing the last map is visible, as documented
    assert j["passed"] is True and j["failed"] == []
    for k in ("torch", "diffusers", "transformers", "torch_threads", "device", "dcf_teach"):
        assert k in j["environment"]


def test_doctor_text_and_failure_exit(monkeypatch):
    """Human-readable output, and exit status 1 when a check fails (checks faked: the JSON test runs the real ones)."""
    from click.testing import CliRunner
    import dcf_teach.evaluation.doctor as doc
    import dcf_teach.cli.evaluation as ev
    vals = dict(reconstruction_max_abs_error=2e-5, reconstruction_zeroed_last_error=0.17, scheduler_step_max_abs_diff=2e-7,
                pipeline_max_abs_diff=0.0, batch_order_max_abs_diff=0.0)
    fake = lambda failed: lambda seed=0: dict(vals, thresholds=doc.THRESHOLDS, failed=failed, passed=not failed, seconds=1.0)
    monkeypatch.setattr(ev, "run_checks", fake([]))
    r = CliRunner().invoke(ev.doctor_cli, [])
    assert r.exit_code == 0 and "reconstruction_max_abs_error: 2.00e-05 ok" in r.stdout and "passed" in r.stdout
    assert "torch" in r.stdout and "diffusers" in r.stdout
    monkeypatch.setattr(ev, "run_checks", fake(["pipeline_max_abs_diff"]))
    r = CliRunner().invoke(ev.doctor_cli, ["--json"])
    assert r.exit_code == 1 and json.loads(r.stdout)["failed"] == ["pipeline_max_abs_diff"]


# --- reconstruction ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("latent", [False, True])
def test_t_skip_n_returns_input(cp, cl, latent):
    from dcf_teach.engine.models import decode_latents, encode_images
    from dcf_teach.engine.inversion import invert, regenerate
    c = cl if latent else cp
    x = images(2)
    inv = invert(c, x, N, min_t_skip=N)
    assert inv.nfe == 0
    x0, nfe = regenerate(c, inv, inv.embeds, N)
    assert nfe == 0 and torch.equal(x0, encode_images(c, x))
    if not latent:
        assert (decode_latents(c, x0) - x).abs().max() < 1e-6


@pytest.mark.parametrize("condition,g_inv", [("source", 4.0), ("zero", None)])
def test_omega_zero_matched_conditioning_reconstructs(cp, condition, g_inv):
    from dcf_teach.engine.counterfactual import sweep
    from dcf_teach.engine.inversion import invert
    x = images(3, 1)
    inv = invert(cp, x, N, condition=condition, guidance_scale=g_inv or 4.0, zero_last_noise=False)
    d = torch.randn(cp.embed_dim, generator=torch.Generator().manual_seed(0)) * 0.3
    if condition == "source":   # regenerate with c (ω = 0) at the same CFG
        sw = sweep(cp, inv, d, omegas=[0.0], t_skips=[0, 4, 0.8], guidance_scale=4.0)
        test_close_f32(sw.images, x[[p.image for p in sw.params]])
    else:                       # 'zero' inversion is matched by the zero embedding without CFG
        from dcf_teach.engine.inversion import regenerate
        from dcf_teach.engine.models import encode_images
        for k in (0, 4, 8):
            rec, _ = regenerate(cp, inv, inv.cond, k, guidance_scale=1.0)
            test_close_f32(rec, encode_images(cp, x))


def test_pixel_unet_with_out_equal_in_channels(cp):
    """Shipped models may output only ε (out_channels = in_channels = 3)."""
    from diffusers import UNet2DConditionModel
    from dcf_teach.engine.inversion import invert, regenerate
    from dcf_teach.engine.models import encode_images
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config({**cp.unet.config, "out_channels": 3}).eval()
    c = dataclasses.replace(cp, unet=unet)
    x = images(2, 3)
    inv = invert(c, x, N, condition="source", zero_last_noise=False)
    rec, _ = regenerate(c, inv, inv.embeds, 0)
    test_close_f32(rec, encode_images(c, x))


def test_lazy_inversion_counts_and_extends(cp):
    from dcf_teach.engine.inversion import extend_inversion, invert
    x = images(2, 4)
    lazy = invert(cp, x, N, condition="source", min_t_skip=0.8)
    assert (lazy.min_t_skip, lazy.nfe) == (8, 2 * 2 * 2)
    full = extend_inversion(cp, lazy, 0.5)
    assert (full.min_t_skip, full.nfe) == (5, 2 * 2 * 5)
    assert torch.equal(full.zs[:, :2], lazy.zs[:, :2])  # maps already used are kept


# --- the edit formula --------------------------------------------------------------------------------------

def test_edit_formula():
    from dcf_teach.engine.bank import build_bank
    from dcf_teach.engine.counterfactual import edit_embedding
    g = torch.Generator().manual_seed(0)
    e = torch.cat([torch.randn(20, 8, generator=g) + 2, torch.randn(20, 8, generator=g) - 2])
    bank = build_bank(e, [0] * 20 + [1] * 20, ["a", "b"], "enc")
    d_ab, d_ba = bank.direction("a", "b"), bank.direction("b", "a")
    en = torch.nn.functional.normalize(e, dim=1)
    test_close_f32(d_ab, en[20:].mean(0) - en[:20].mean(0))
    assert torch.equal(d_ba, -d_ab)
    c = e[:5] * 1.7
    test_close_f32(edit_embedding(c, d_ab, 0.0), c)
    for w in (0.5, 2.0, -0.5):
        ce = edit_embedding(c, d_ab, w)
        chat = c / c.norm(dim=1, keepdim=True)
        test_close_f32(ce.norm(dim=1) / c.norm(dim=1), (chat + w * d_ab).norm(dim=1))
        test_close_f32(ce, c.norm(dim=1, keepdim=True) * (chat + w * d_ab))
    # pushing a's images towards b raises their cosine with b's mean; the reverse order lowers it
    mb = bank.means[1]
    cos = lambda v: torch.nn.functional.cosine_similarity(v, mb[None], dim=1)
    assert (cos(edit_embedding(c, d_ab, 1.0)) > cos(c)).all()
    assert (cos(edit_embedding(c, d_ba, 1.0)) < cos(c)).all()


# --- search ------------------------------------------------------------------------------------------------

def scripted(*ps):
    it = iter(ps)
    calls = []
    def oracle(x):
        calls.append(len(x))
        return np.full(len(x), next(it))
    oracle.calls = calls
    return oracle


@pytest.mark.parametrize("condition,mult", [("zero", 1), ("source", 2)])
def test_search_stops_at_first_flip_and_counts_nfe(cp, condition, mult):
    from dcf_teach.engine.search import minimal_edit_search
    d = torch.randn(cp.embed_dim, generator=torch.Generator().manual_seed(1)) * 0.1
    o = scripted(0.7, 0.6, 0.55, 0.51, 0.3, 0.1, 0.1)   # original 0.7; flips at the 4th try (f = 0.6)
    r, = minimal_edit_search(cp, images(1, 5), d, o, EditSettings(n_steps=N, inversion=condition))
    assert o.calls == [1, 1, 1, 1, 1]                    # the original + 4 tries, nothing after the flip
    assert (r.flipped, r.t_skip, r.fraction) == (True, 6, 0.6)
    assert [k for k, _ in r.tried] == [9, 8, 7, 6]
    regen = 2 * (1 + 2 + 3 + 4)
    assert r.nfe == mult * 4 + regen                     # lazy inversion: only steps 6..9
    assert r.nfe_reference_protocol == mult * N + regen  # released: full inversion + every try


def test_search_batched_drops_flipped_images(cp):
    from dcf_teach.engine.search import minimal_edit_search
    d = torch.randn(cp.embed_dim, generator=torch.Generator().manual_seed(1)) * 0.1
    seq = iter([np.array([0.2, 0.8]), np.array([0.3, 0.1]), np.array([0.9])])   # image 1 flips at 0.9, image 0 at 0.8
    calls = []
    def oracle(x):
        calls.append(len(x)); return next(seq)
    r0, r1 = minimal_edit_search(cp, images(2, 6), d, oracle, EditSettings(n_steps=N))
    assert calls == [2, 2, 1]
    assert (r0.t_skip, r1.t_skip) == (8, 9)
    assert (r0.nfe, r1.nfe) == (2 + 2 * (1 + 2), 1 + 2 * 1)


# --- banks and models on disk ------------------------------------------------------------------------------

def test_bank_round_trip(tmp_path):
    from dcf_teach.engine.bank import build_bank, load_bank, save_bank
    from safetensors.torch import load_file
    e = torch.randn(12, 16, generator=torch.Generator().manual_seed(0))
    b = build_bank(e, [0, 1, 2] * 4, ["x", "y", "z"], "clip-abc", hashes=[f"h{i}" for i in range(12)], split="train")
    st = save_bank(b, tmp_path / "bank")
    assert st.name == "bank.safetensors" and (tmp_path / "bank.json").is_file()
    t = load_file(st)
    assert t["directions"].shape == (3, 3, 16) and torch.equal(t["directions"][0, 2], b.direction("x", "z"))
    b2 = load_bank(tmp_path / "bank.safetensors")
    assert torch.equal(b2.means, b.means)
    assert (b2.classes, b2.counts, b2.encoder_id, b2.image_hashes, b2.split) == (b.classes, b.counts, b.encoder_id, b.image_hashes, "train")
    meta = json.loads((tmp_path / "bank.json").read_text())
    for k in ("encoder_id", "counts", "image_hashes", "library_version", "created", "embed_dim"):
        assert k in meta


def test_bank_model_mismatch_is_clear(cp):
    from dcf_teach.engine.bank import build_bank, check_bank
    b = build_bank(torch.randn(4, 32), [0, 0, 1, 1], ["a", "b"], "clip-other")
    with pytest.raises(UserError, match="rebuild it"):
        check_bank(b, cp)


def test_hub_id_offline_is_fast_and_clear(monkeypatch):
    from dcf_teach.engine.models import load_components
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for mid in ("kandinsky-2-2", "kandinsky-community/kandinsky-2-2-decoder"):
        t0 = time.time()
        with pytest.raises(UserError, match="offline") as e:
            load_components(mid)
        assert time.time() - t0 < 5
        assert "\n" not in str(e.value) and "--model" in str(e.value)


def test_hub_id_offline_cli(cli, tmp_path):
    t0 = time.time()
    r = cli("edit", tmp_path / "x.png", "--model", "kandinsky-community/kandinsky-2-2-decoder", "--bank", tmp_path / "b",
            "--target", "a", "--out", tmp_path / "o")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert time.time() - t0 < 15   # (process start-up included)
    r = cli("bank", tmp_path, "--model", "kandinsky-2-2", "--out", tmp_path / "b")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_missing_and_broken_model_folders(tmp_path, cp):
    from dcf_teach.engine.models import load_components, save_components
    with pytest.raises(UserError, match="no such folder"):
        load_components(tmp_path / "nope")
    f = save_components(cp, tmp_path / "m")
    (f / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(UserError, match=r"unet/diffusion_pytorch_model.safetensors is corrupted"):
        load_components(f)      # the SHA-256 recorded in dcf_teach.json catches it first
    meta = json.loads((f / "dcf_teach.json").read_text()); del meta["weights"]
    (f / "dcf_teach.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match=r"cannot load unet/"):
        load_components(f)      # a folder without recorded hashes: the loader's own error


def test_shipped_model_names(tmp_path, monkeypatch, cp):
    import dcf_teach.engine.models as m
    monkeypatch.setattr(m, "ASSETS_MODELS", tmp_path)
    m.save_components(cp, tmp_path / "kikibouba")
    assert m.shipped_models() == ["kikibouba"]
    for name in ("kikibouba", "default"):
        c = m.load_components(name)
        assert c.model_id == "kikibouba" and c.resolution == 32 and c.encoder_id == cp.encoder_id


# --- command lines -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def toy(tmp_path_factory, cp):
    """A saved dummy model folder and a tiny ImageFolder (two classes, 6 train + 1 test image each)."""
    from dcf_teach.data.folder import write_imagefolder
    from dcf_teach.engine.models import save_components
    root = tmp_path_factory.mktemp("engine")
    model = save_components(cp, root / "model")
    rng = np.random.default_rng(0)
    recs = [(cls, f"{cls}{i}", "train" if i < 6 else "test",
             (rng.random((40, 40, 3)) * (90 if cls == "dark" else 255)).astype(np.uint8), {})
            for cls in ("dark", "light") for i in range(7)]
    data = write_imagefolder(root / "data", recs, {"name": "toy"}, progress=False)
    return root, model, data


def test_bank_and_edit_cli_end_to_end(cli, toy):
    root, model, data = toy
    env = {"DCF_TEACH_CACHE": str(root / "cache")}
    r = cli("bank", data, "--model", model, "--out", root / "bank", "--plot", root / "stab.png", env=env)
    assert r.returncode == 0, r.stderr
    assert (root / "bank.safetensors").is_file() and (root / "bank.json").is_file() and (root / "stab.png").is_file()
    meta = json.loads((root / "bank.json").read_text())
    assert meta["classes"] == ["dark", "light"] and meta["counts"] == [6, 6] and meta["split"] == "train"
    assert len(list((root / "cache").rglob("*.safetensors"))) == 1

    img = data / "dark" / "dark6.png"
    out = root / "out"
    r = cli("edit", img, "--model", model, "--bank", root / "bank", "--target", "light", "--omega", "1.5",
            "--t-skip", "0.6", "--n-steps", "10", "--out", out)
    assert r.returncode == 0, r.stderr
    rec = json.loads((out / "dark6_to_light.json").read_text())
    assert (rec["source_class"], rec["target_class"], rec["omega"], rec["t_skip"], rec["n_steps"]) == ("dark", "light", 1.5, 6, 10)
    assert rec["inversion"] == "zero" and rec["zero_last_noise"] is True
    assert rec["nfe"] == 4 + 2 * 4
    from PIL import Image
    assert Image.open(out / rec["output"]).size == (32, 32)

    # integer --t-skip means steps; a 'source' inversion costs 2 per step
    r = cli("edit", img, "--model", model, "--bank", root / "bank", "--target", "light", "--t-skip", "7",
            "--n-steps", "10", "--inversion", "source", "--keep-last-noise", "--out", out)
    rec = json.loads((out / "dark6_to_light.json").read_text())
    assert r.returncode == 0 and rec["t_skip"] == 7 and rec["nfe"] == 2 * 3 + 2 * 3 and rec["zero_last_noise"] is False

    # errors are one line, no traceback
    for args, msg in [(("--target", "purple"), "not in the bank"), (("--target", "light", "--t-skip", "2.5"), "--t-skip")]:
        r = cli("edit", img, "--model", model, "--bank", root / "bank", *args, "--out", out)
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = cli("edit", root / "missing.png", "--model", model, "--bank", root / "bank", "--target", "light", "--out", out)
    assert r.returncode == 2 and "missing.png" in r.stderr


def test_zero_image_mode_is_read_from_the_folder(tmp_path, cp):
    import dataclasses
    from dcf_teach.engine.embeddings import clip_embed, zero_embedding
    from dcf_teach.engine.models import load_components, save_components
    c = load_components(save_components(dataclasses.replace(cp, zero_image="black"), tmp_path / "m"))
    assert c.zero_image == "black"
    assert torch.equal(zero_embedding(c), clip_embed(c, torch.zeros(1, 3, 32, 32)))
    assert load_components(save_components(cp, tmp_path / "k")).zero_image == "pixel_values"
