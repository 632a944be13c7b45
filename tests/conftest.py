import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
DCF = str(Path(sys.executable).parent / "dcf-teach")

def run_cli(*args, check=False, timeout=600, env=None, cwd=None):
    "Run the installed `dcf-teach` console script (in `cwd` if given); returns the CompletedProcess."
    e = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    r = subprocess.run([DCF, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=e, cwd=cwd)
    if check and r.returncode: raise AssertionError(f"dcf-teach {' '.join(map(str, args))} failed:\n{r.stdout}\n{r.stderr}")
    return r

@pytest.fixture
def cli():
    return run_cli
