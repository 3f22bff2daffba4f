"""What the neural blocks share: parameter checks and the `weights` message port."""
import numbers

import pmt

from .core import checkpoint as ckpt

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


class SwappableNetwork:
    """The `weights` message port and set_checkpoint() of a block holding one network.

    The block sets self.M, self.n and self._config, names its network in
    _NETWORK ('encoder' or 'decoder'), and defines _install(config, network),
    which must publish the new network by a single reference assignment so
    work() never sees half a swap. Errors are logged, never raised: a bad
    message or file must not stop a running flowgraph.
    """

    _NETWORK = None

    def _register_weights_port(self):
        self.message_port_register_in(pmt.intern(WEIGHTS_PORT))
        self.set_msg_handler(pmt.intern(WEIGHTS_PORT), self._on_weights)

    def _network_of(self, loaded):
        config, encoder, decoder = loaded
        return config, encoder if self._NETWORK == "encoder" else decoder

    def _on_weights(self, msg):
        try:
            self._install(*self._network_of(ckpt.from_bytes(
                weights_payload(msg), source="weights message", need=(self._NETWORK,),
                expect={"M": self.M, "n": self.n, "mode": self._config.mode})))
            self.logger.info(f"{self._NETWORK} weights replaced from a weights message")
        except Exception as e:  # a bad message must never stop the flowgraph
            self.logger.error(f"dropped weights message: {e}")

    def set_checkpoint(self, checkpoint):
        """Load new weights from a file (GRC callback).

        The file must match M and n. On any error the error is logged, the
        current weights stay, and False is returned (a GUI callback that
        raised could take the flowgraph down); True on success.
        """
        try:
            loaded = ckpt.load(checkpoint, need=(self._NETWORK,), expect={"M": self.M, "n": self.n})
        except Exception as e:
            self.logger.error(f"set_checkpoint refused, keeping the current weights: {e}")
            return False
        self._install(*self._network_of(loaded))
        return True
