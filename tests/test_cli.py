from dcf_teach import __version__

def test_help_and_version(cli):
    r = cli("--help")
    assert r.returncode == 0 and "dcf_teach" in r.stdout
    r = cli("--version")
    assert r.returncode == 0 and __version__ in r.stdout

def test_unknown_command_is_one_line_error(cli):
    r = cli("no-such-command")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "No such command" in r.stderr
