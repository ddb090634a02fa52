"""The names of the calls the chain accepts.

Only names: the genesis checks its fee table against them (`model.Genesis`), while the
call table that maps each name to its code (`state.CALLS`) imports the state model. Keeping
the names here lets the model validate without importing the code that imports it; a
unit test holds the two lists equal.
"""

from __future__ import annotations

CALL_NAMES: frozenset[str] = frozenset({
    "transfer", "faucet", "sudo_set_faucet",
    "create_subnet", "set_hyperparameters", "sudo_set_hyperparameters",
    "register", "deregister", "serve_axon",
    "add_stake", "remove_stake", "set_delegate_take",
    "set_weights", "commit_weights", "reveal_weights", "commit_evidence",
})
"""Every call the chain accepts, by name (the keys of `state.CALLS`)."""
