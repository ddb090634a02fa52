"""Keys and addresses: sr25519 keypairs (BIP-39 mnemonics) and SS58 addresses.

Everything that changes chain state, and every validator-to-miner request, is signed with
one of these keys; addresses are how accounts (coldkeys and hotkeys) are named everywhere.
"""

from subnetlab.keys.keypair import SIGNATURE_LENGTH, Keypair, verify
from subnetlab.keys.ss58 import (
    DEFAULT_SS58_FORMAT,
    PUBLIC_KEY_LENGTH,
    InvalidAddress,
    is_valid_ss58,
    ss58_decode,
    ss58_encode,
)

__all__ = [
    "DEFAULT_SS58_FORMAT",
    "PUBLIC_KEY_LENGTH",
    "SIGNATURE_LENGTH",
    "InvalidAddress",
    "Keypair",
    "is_valid_ss58",
    "ss58_decode",
    "ss58_encode",
    "verify",
]
