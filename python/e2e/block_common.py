"""What the neural blocks share: parameter checks and the `weights` message port."""
import numbers

import pmt

WEIGHTS_PORT = "weights"

# Input items are uint8, so no block can tell more than 256 messages apart.
MAX_M = 256


def validate_block_params(M, n):
    """(M, n) as ints; ValueError naming the parameter and value otherwise.

    M: integer in [2, 256] (messages travel as uint8). n: integer >= 1.
    """
    if isinstance(M, bool) or not isinstance(M, numbers.Integral) or not 2 <= M <= MAX_M:
        raise ValueError(f"M must be an integer in [2, {MAX_M}] (messages are uint8), got {M!r}")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    return int(M), int(n)


_PMT_KINDS = ("null", "symbol", "dict", "pair", "u8vector", "s8vector", "u16vector", "s16vector",
              "u32vector", "s32vector", "u64vector", "s64vector", "f32vector", "f64vector",
              "c32vector", "c64vector", "vector", "bool", "integer", "real", "complex")


def _pmt_kind(msg):
    for name in _PMT_KINDS:
        if getattr(pmt, "is_" + name)(msg):
            return name
    return "PMT of unknown kind"


def weights_payload(msg):
    """Safetensors bytes carried by a `weights` message.

    msg: PMT u8vector, or a PDU, i.e. a pair (metadata . u8vector).
    Returns bytes; raises ValueError saying what the message was instead.
    """
    data, what = msg, "a "
    if pmt.is_pair(msg) and not pmt.is_dict(msg):  # a PDU: (metadata . data)
        data, what = pmt.cdr(msg), "a pair whose cdr is a "
    if not pmt.is_u8vector(data):
        raise ValueError(f"weights message must be a u8vector of safetensors bytes (or a PDU "
                         f"carrying one), got {what}{_pmt_kind(data)}")
    return bytes(pmt.u8vector_elements(data))
