"Bad input has no side effects: every command and option of `dcf-teach`, given bad values, fails cleanly."
import os, sys
from pathlib import Path
import click
import pytest
from conftest import run_cli

sys.path.insert(0, str(Path(__file__).parent))
from bad_input_cases import CASES, run_cases, summarize

FREE_TEXT = {'as_json', 'name'}   # options that take any string (a model name for the card)

def _runner(argv, cwd, env, timeout):
    return run_cli(*argv, cwd=cwd, env=env, timeout=timeout)

def _commands():
    "(path, click command) of every leaf command of `dcf-teach`, lazy groups included."
    from dcf_teach.cli.main import cli
    out = []
    def walk(cmd, path):
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx): walk(cmd.get_command(ctx, name), [*path, name])
            if not getattr(cmd, 'invoke_without_command', False): return
        out.append((path, cmd))
    walk(cli, [])
    return out

def test_table_covers_every_command_and_option():
    assert len(CASES) >= 150
    missing = []
    for path, cmd in _commands():
        if not path: continue
        mine = [argv for _, argv, _ in CASES if argv[:len(path)] == path and
                not (len(argv) > len(path) and argv[len(path)] in ('explorer',) and path == ['bench'])]
        if not mine: missing.append(' '.join(path)); continue
        for p in cmd.params:
            if isinstance(p, click.Option) and (p.is_flag or p.name in ('help', 'version') or p.hidden): continue
            if isinstance(p, click.Option) and p.name in FREE_TEXT: continue
            names = p.opts if isinstance(p, click.Option) else []
            hit = any(o in argv for argv in mine for o in names) if names else any(len(a) > len(path) for a in mine)
            if not hit: missing.append(f"{' '.join(path)} {names[0] if names else p.name.upper()}")
    assert not missing, f"no bad-input case for: {', '.join(missing)}"

@pytest.mark.timeout(2400)   # 370+ cases, each a fresh `dcf-teach` process (2-3 s to import torch): ~10 min on 2 idle cores
def test_bad_input_fails_cleanly_without_side_effects():
    "Exit status 2, one `Error:` line naming the option or file, no traceback, no new file, for every case."
    res = run_cases(CASES, workers=max(2, min(4, os.cpu_count() or 2)), runner=_runner, timeout=120)
    s = summarize(res)
    bad = [r for r in res if not r['ok']]
    report = '\n'.join(f"{r['id']}: dcf-teach {' '.join(r['argv'])} -> exit {r['exit']}, error line {r['error_line']!r}, "
                       f"traceback {r['traceback']}, new files {r['new_files'][:5]}\n{r['output'][-800:]}" for r in bad)
    print(s)
    assert s['clean_errors'] == s['bad_inputs_tried'] == len(CASES), f"{s}\n{report}"
    assert s['tracebacks'] == 0 and s['files_left_behind'] == 0
