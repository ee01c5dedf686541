"""The RL token contract as pure functions (no I/O): the prefix splice, contiguity, training
checks, the max_tokens clamp, and reading the token bundle out of an engine's answer.

The engine-facing half (rendering through the engine, sending token ids) is in
backends/token_in.py; docs/rl.md describes the contract.
"""

from .answer import MissingTokens, attach_bundle, extract_bundle, ids_as_token_strings
from .eos import PROBE_TEXTS, eos_from_renders, probe_conversation
from .request import (
    BUNDLE,
    MESSAGE_TOKEN_FIELDS,
    PREFIX_FIELD,
    TokenRequest,
    capture_requested,
    read_token_request,
    wants_token_ids,
)
from .sampling import SamplingPin, apply_training, check_capture, clamp_max_tokens
from .splice import SpliceError, count_eos, eos_set, first_mismatch, splice_at_turn, splice_prefix

__all__ = [
    "BUNDLE",
    "MESSAGE_TOKEN_FIELDS",
    "PREFIX_FIELD",
    "PROBE_TEXTS",
    "MissingTokens",
    "SamplingPin",
    "SpliceError",
    "TokenRequest",
    "apply_training",
    "attach_bundle",
    "capture_requested",
    "check_capture",
    "clamp_max_tokens",
    "count_eos",
    "eos_from_renders",
    "eos_set",
    "extract_bundle",
    "first_mismatch",
    "ids_as_token_strings",
    "probe_conversation",
    "read_token_request",
    "splice_at_turn",
    "splice_prefix",
    "wants_token_ids",
]
