"""Progress bars for long loops: shown on a terminal, silent in logs and CI."""


class _Silent:
    def update(self, n=1):
        pass

    def set_postfix(self, **kwargs):
        pass

    def close(self):
        pass


def bar(total, desc, enabled=True, unit="it"):
    """A tqdm bar when enabled and tqdm is installed (disable=None: only on a terminal), else a no-op."""
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:  # progress bars are a convenience, never a requirement
            return _Silent()
        return tqdm(total=total, desc=desc, unit=unit, leave=False, disable=None)
    return _Silent()
