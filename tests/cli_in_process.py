"""Run gr_e2e in the test's process, as the CLI tests of the newer commands do.

A user sees what cli.main prints; a Python traceback on stderr is a defect.
"""
from gnuradio.e2e import cli


def main(args, capsys):
    """(exit status, stdout, stderr) of `gr_e2e ARGS` run through cli.main."""
    try:
        rc = cli.main([str(a) for a in args])
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return rc, out.out, out.err


def error_line(err):
    """The last 'gr_e2e...: error: ...' line of stderr (fails the test when there is none)."""
    lines = [l for l in err.splitlines() if l.startswith("gr_e2e") and ": error: " in l]
    assert lines, err
    return lines[-1]
