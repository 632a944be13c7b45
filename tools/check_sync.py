"""CI check: notebooks are clean, the library matches the notebooks, README.md matches nbs/index.ipynb, and the deck
template shipped in the package (dcf_teach/assets/deck/make_deck.ipynb) equals its source nbs/make_deck.ipynb.

Runs nbdev-clean and nbdev-export, copies the cleaned template over the shipped copy, and fails (listing the files)
if any of them changed anything; rerun it (or `make deck-template`) and commit what it wrote."""
import hashlib, shutil, subprocess, sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
bin_dir = Path(sys.executable).parent
TEMPLATE_SRC, TEMPLATE_SHIPPED = root/'nbs'/'make_deck.ipynb', root/'dcf_teach'/'assets'/'deck'/'make_deck.ipynb'

def snapshot():
    # _modidx.py is nbdev's doc-link index, derived from whatever notebooks exist; it is not part of the check
    files = sorted(list((root/'nbs').glob('*.ipynb')) + [p for p in (root/'dcf_teach').rglob('*.py') if p.name != '_modidx.py'])
    return {f.relative_to(root): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}

def run(cmd):
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if r.returncode: sys.exit(f"{' '.join(map(str, cmd))} failed:\n{r.stdout}{r.stderr}")

before = snapshot()
run([bin_dir/'nbdev-clean'])
cleaned = snapshot()
run([bin_dir/'nbdev-export'])
exported = snapshot()
bad_nbs = [str(k) for k in cleaned if before.get(k) != cleaned[k] and k.suffix == '.ipynb']
bad_lib = [str(k) for k in set(exported) | set(cleaned) if cleaned.get(k) != exported.get(k)]
problems = []
if not TEMPLATE_SHIPPED.is_file() or TEMPLATE_SHIPPED.read_bytes() != TEMPLATE_SRC.read_bytes():
    TEMPLATE_SHIPPED.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TEMPLATE_SRC, TEMPLATE_SHIPPED)
    problems.append(f"the shipped deck template {TEMPLATE_SHIPPED.relative_to(root)} differed from its source "
                    f"{TEMPLATE_SRC.relative_to(root)} (now copied, review and commit)")
if bad_nbs: problems.append(f"notebooks were not clean (now cleaned, review and commit): {', '.join(bad_nbs)}")
if bad_lib: problems.append(f"library was out of sync with nbs/ (now exported, review and commit): {', '.join(bad_lib)}")
r = subprocess.run([sys.executable, root/'tools'/'make_readme.py', '--check'], cwd=root, capture_output=True, text=True)
if r.returncode: problems.append(r.stderr.strip() or r.stdout.strip())
if problems: sys.exit("check_sync: " + "\n".join(problems))
print(f"check_sync: {len(cleaned)} files clean and in sync; README.md current; shipped deck template = nbs/make_deck.ipynb")
