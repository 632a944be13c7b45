"""Validate `dcf-teach tune` where ground truth exists (issue #17): tune each dataset's shipped model on its validation
images, then run every grid setting on held-out test images and compare the choice's ground-truth flip rate with the
grid's best. Writes OUT (JSON) after each dataset; a rerun reuses the cached evaluations.

    python tools/validate_tuner.py media/tune/validation.json kikibouba,accretion --n-val 60 --n-test 100"""
import argparse, json, logging, shutil, tempfile, time
from pathlib import Path
import torch
from dcf_teach.core import setup_logging
from dcf_teach.engine.models import ASSETS_MODELS, load_components
from dcf_teach.evaluation.tune import tune, write_tuned, ground_truth_check

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('out', type=Path); p.add_argument('datasets')
    p.add_argument('--n-val', type=int, default=60); p.add_argument('--n-test', type=int, default=100)
    a = p.parse_args()
    setup_logging(logging.INFO); torch.set_num_threads(1)
    res = json.loads(a.out.read_text()) if a.out.is_file() else {}
    for name in a.datasets.split(','):
        t0 = time.perf_counter()
        r = tune(name, name, n=a.n_val, progress=False)
        with tempfile.TemporaryDirectory() as tmp:   # the choice must round-trip through a model folder
            copy = shutil.copytree(ASSETS_MODELS/name, Path(tmp)/name)
            write_tuned(copy, r)
            assert load_components(copy).edit_defaults['omega'] == r.settings['omega']
        logging.info('\n' + r.table())
        gt = ground_truth_check(r, name, name, n=a.n_test)
        res[name] = dict(tune=r.as_dict(), ground_truth=gt, tune_wall_seconds=r.info['wall_seconds'],
                         gt_wall_seconds=gt['wall_seconds'], total_wall_seconds=round(time.perf_counter() - t0, 1),
                         torch_threads=torch.get_num_threads())
        tmp = a.out.with_suffix('.tmp'); tmp.write_text(json.dumps(res, indent=1, ensure_ascii=False)); tmp.replace(a.out)
        logging.info(f"{name}: chosen GT flips {gt['chosen_gt_flip_rate']:.2f}, grid best {gt['best_gt_flip_rate']:.2f}, gap {gt['gap']:.2f}")

if __name__ == '__main__': main()
