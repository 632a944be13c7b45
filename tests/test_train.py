"`dcf-teach train decoder` end to end on a tiny generated dataset: a few smoke steps only."
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SMOKE = ["--encoder-steps", "2", "--resolution", "16", "--threads", "1"]


def make_shapes(root: Path, n: int = 10, size: int = 16) -> Path:
    "Two classes (discs, squares) of random colours; every 5th image val, every 5th+1 test."
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for cls in ("disc", "square"):
        (root/cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            cx, cy, r = rng.uniform(5, 11, 2).tolist() + [rng.uniform(2.5, 4)]
            m = ((xx - cx)**2 + (yy - cy)**2 < r * r) if cls == "disc" else ((abs(xx - cx) < r) & (abs(yy - cy) < r))
            a = np.where(m[..., None], rng.integers(128, 255, 3), rng.integers(0, 100, 3)).astype(np.uint8)
            Image.fromarray(a).save(root/cls/f"{cls}_{i}.png")
    imgs = [{"path": f"{c}/{c}_{i}.png", "class": c, "split": {0: "val", 1: "test"}.get(i % 5, "train")}
            for c in ("disc", "square") for i in range(n)]
    (root/"dataset.json").write_text(json.dumps({"images": imgs}))
    return root


@pytest.fixture
def shapes(tmp_path):
    return make_shapes(tmp_path/"data")


def test_train_decoder_writes_loadable_folder_and_resumes(cli, shapes, tmp_path):
    out = tmp_path/"model"
    r = cli("train", "decoder", "--data", shapes, "--out", out, "--steps", "2", *SMOKE, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "separation" in r.stdout and "disc/square" in r.stdout  # the embedding check is printed
    meta = json.loads((out/"dcf_teach.json").read_text())
    assert meta["decoder"]["steps"] == 2 and meta["resolution"] == 16
    assert meta["classes"] == ["disc", "square"]

    from dcf_teach.engine.models import load_components
    c = load_components(out)
    assert (c.resolution, c.latent_channels, c.embed_dim) == (16, 3, 64)
    assert c.scheduler.config.steps_offset == 1 and c.scheduler.config.set_alpha_to_one is False
    assert "disc/square" in (out/"README.md").read_text()

    # weights and training state: safetensors + JSON only, never pickles
    files = [p for p in out.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt")]
    assert {p.name for p in (out/".train").iterdir()} == {
        "encoder_state.safetensors", "encoder_state.json", "decoder_state.safetensors", "decoder_state.json",
        "decoder_encoder.json"}

    # without --resume an existing run is refused; with it the decoder continues from step 2
    r = cli("train", "decoder", "--data", shapes, "--out", out, "--steps", "2", *SMOKE, timeout=300)
    assert r.returncode == 2 and "--resume" in r.stderr and "Traceback" not in r.stderr
    aug = meta["encoder"]["config"]["augment"]
    # a resumed run keeps its own recipe: another --augment preset or --batch-size is logged and ignored
    r = cli("train", "decoder", "--data", shapes, "--out", out, "--steps", "4", "--resume", "--augment", "shapes",
            "--batch-size", "8", *SMOKE, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resuming with the run's own augment" in r.stderr and "resuming with the run's own batch_size" in r.stderr
    st = json.loads((out/".train"/"decoder_state.json").read_text())
    assert [h["step"] for h in st["history"]] == [1, 2, 3, 4]
    meta = json.loads((out/"dcf_teach.json").read_text())
    assert meta["decoder"]["steps"] == 4 and meta["decoder"]["config"]["batch_size"] == 32
    assert meta["encoder"]["config"]["augment"] == aug and aug["rotate"] != 180


def test_train_decoder_bad_data_is_one_line_error(cli, tmp_path):
    r = cli("train", "decoder", "--data", tmp_path/"nope", "--out", tmp_path/"m", "--steps", "1")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "nope" in r.stderr
    (tmp_path/"one"/"a").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path/"one"/"a"/"x.png")
    r = cli("train", "decoder", "--data", tmp_path/"one", "--out", tmp_path/"m", "--steps", "1")
    assert r.returncode == 2 and "Traceback" not in r.stderr
