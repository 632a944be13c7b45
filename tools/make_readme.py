"""Write README.md from nbs/index.ipynb without Quarto (nbdev-readme needs Quarto, which can't be installed here).

Markdown cells are copied; code cells are shown as ```python blocks (nbdev directives removed) with their text
outputs; cells marked `#| hide` are dropped. `--check` fails if README.md is not current."""
import json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
_directive = re.compile(r'^\s*#\|\s*(.*)$')

def cell_text(cell):
    src = cell['source'] if isinstance(cell['source'], str) else ''.join(cell['source'])
    return src

def render(nb):
    out = ["<!-- generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file -->", ""]
    for cell in nb['cells']:
        src = cell_text(cell)
        if cell['cell_type'] == 'markdown':
            out += [src.rstrip(), ""]
        elif cell['cell_type'] == 'code':
            lines = src.splitlines()
            directives = [m.group(1).strip() for l in lines if (m := _directive.match(l))]
            if any(d.startswith(('hide', 'export', 'exporti', 'exports')) for d in directives): continue
            code = "\n".join(l for l in lines if not _directive.match(l)).strip()
            if code and not any(d.startswith('hide_input') for d in directives): out += ["```python", code, "```", ""]
            for o in cell.get('outputs', []):
                text = o.get('text') or o.get('data', {}).get('text/plain')
                if text:
                    text = text if isinstance(text, str) else ''.join(text)
                    out += ["```", text.rstrip(), "```", ""]
    return "\n".join(out).rstrip() + "\n"

if __name__ == '__main__':
    text = render(json.loads((root/'nbs'/'index.ipynb').read_text()))
    readme = root/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text() != text:
            sys.exit("README.md is not current with nbs/index.ipynb: run `make readme` (python tools/make_readme.py) and commit")
    else:
        readme.write_text(text)
        print(f"wrote {readme}")
