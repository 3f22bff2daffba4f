"""Parameter checks shared by core, the blocks and the command line.

Every function returns the value in its canonical Python type, or raises
ValueError whose message starts with the parameter's name and quotes the bad
value, so an error always says which parameter to fix (DESIGN.md, errors).
"""
import dataclasses
import math
import numbers
import os


def integer(name, value, low=None, high=None):
    """value as int; it must be an integer (not a bool) in [low, high]."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok and ((low is not None and value < low) or (high is not None and value > high)):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be an integer{_bounds(low, high)}, got {value!r}")
    return int(value)


def real(name, value, low=None, high=None, low_open=False, high_open=False):
    """value as a finite float in [low, high]; low_open / high_open exclude the bound."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return float(value)


def optional_real(name, value, **bounds):
    """None, or real(name, value, **bounds)."""
    return None if value is None else real(name, value, **bounds)


def choice(name, value, options):
    """value, which must be one of options."""
    if value not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}")
    return value


def boolean(name, value):
    """value as bool; only True, False (and NumPy bools) are accepted."""
    if value is True or value is False or type(value).__name__ == "bool_":
        return bool(value)
    raise ValueError(f"{name} must be True or False, got {value!r}")


def db(name, value):
    """A level in dB: any finite real number (not a bool, not a string)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number (dB), got {value!r}")
    return float(value)


def db_or_range(name, value):
    """A level in dB, or a (lo, hi) pair with lo <= hi (a range drawn per example)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be a number or a (lo, hi) pair in dB, got {value!r}")
        lo, hi = (db(name, v) for v in value)
        if lo > hi:
            raise ValueError(f"{name} range must have lo <= hi, got {value!r}")
        return (lo, hi)
    return db(name, value)


def widths(name, value):
    """A tuple of positive layer widths from any iterable of integers."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a list of positive integers, got {value!r}")
    value = tuple(value)
    if not value or any(isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1 for w in value):
        raise ValueError(f"{name} must be a list of positive integers, got {list(value)!r}")
    return tuple(int(w) for w in value)


def path(name, value, allow_empty=True):
    """A file path as str ('' allowed when allow_empty: 'none')."""
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name} must be a path (str), got {value!r}")
    value = os.fspath(value)
    if not value and not allow_empty:
        raise ValueError(f"{name} must name a file, got an empty path")
    return value


def _bounds(low, high):
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    return ""


MODES = ("complex", "real")


def mode(value):
    """'complex' (n complex channel uses) or 'real' (n real uses, imaginary parts zero)."""
    return choice("mode", value, MODES)


def sizes(M, n):
    """(M, n) as ints: M >= 2 messages, n >= 1 channel uses per message."""
    return integer("M", M, 2), integer("n", n, 1)


def config_dict(config_class, d, required):
    """d, checked to build the dataclass config_class from (a checkpoint's stored config).

    ValueError 'config has unknown keys [...]' or 'config lacks [...]' (the
    names of the `required` fields missing from d); the class's own
    validation then checks the values.
    """
    fields = {f.name for f in dataclasses.fields(config_class)}
    unknown = set(d) - fields
    if unknown:
        raise ValueError(f"config has unknown keys {sorted(unknown)}")
    missing = set(required) - set(d)
    if missing:
        raise ValueError(f"config lacks {sorted(missing)}")
    return d

