"""Progress of long loops: a tqdm bar on a terminal, one log line per stage otherwise.

bar(total, desc, enabled) returns an object with update(n), set_postfix(**values)
and close(). On a terminal (stderr is a TTY) it is a tqdm bar with rate and ETA;
in a log (CI, a pipe, a file) it prints one line when the stage ends, with its
count, time, rate and last values; enabled=False (--quiet) prints nothing.
Both write to stderr, so a command's results on stdout stay clean.
"""
import sys
import time


class _Silent:
    def update(self, n=1):
        pass

    def set_postfix(self, **values):
        pass

    def close(self):
        pass


class StageLine:
    """One line on `stream` when the stage closes: 'desc: 3000 it in 12.1 s (248 it/s), loss=0.01'."""

    def __init__(self, total, desc, unit="it", stream=None):
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.n, self.postfix, self._t0, self._closed = 0, {}, time.perf_counter(), False

    def update(self, n=1):
        self.n += n

    def set_postfix(self, **values):
        self.postfix = values

    def close(self):
        if self._closed:
            return
        self._closed = True
        seconds = time.perf_counter() - self._t0
        count = f"{self.n:g}" if self.total is None else f"{self.n:g}/{self.total:g}"
        rate = f" ({self.n / seconds:.3g} {self.unit}/s)" if seconds > 0 and self.n else ""
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        print(f"{self.desc}: {count} {self.unit} in {seconds:.1f} s{rate}{extra}", file=self.stream, flush=True)


def bar(total, desc, enabled=True, unit="it"):
    """A tqdm bar on a terminal, a StageLine in a log, nothing when not enabled."""
    if not enabled:
        return _Silent()
    if sys.stderr.isatty():
        try:
            from tqdm.auto import tqdm
        except ImportError:  # progress bars are a convenience, never a requirement
            return StageLine(total, desc, unit)
        return tqdm(total=total, desc=desc, unit=unit, leave=False)
    return StageLine(total, desc, unit)
