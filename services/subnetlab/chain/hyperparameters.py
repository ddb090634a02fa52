"""Per-subnet hyperparameters, with subtensor's defaults.

Every value here is real-valued (proportions in [0, 1] where subtensor stores a u16 or a
u64 scaled by 1e6), so that APIs, specs and the case simulator speak one unit. Where
subtensor's runtime default would make a small local subnet unusable we say so in the
field's description and in docs/consensus.md.

One model serves the chain's state machine, the ledger API, the case simulator and (later)
the CRD schemas: change a bound here and every entry point validates the same way.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

U16_MAX = 65535


class Hyperparameters(BaseModel):
    """The knobs of one subnet: consensus, bonds, weights policy and registration."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    # --- epoch cadence -------------------------------------------------------------------
    tempo: int = Field(
        360, ge=1, le=U16_MAX, description="Blocks between two epochs of this subnet."
    )
    activity_cutoff: int = Field(
        5000,
        ge=1,
        le=U16_MAX,
        description="A uid whose last weight update is older than this many blocks is "
        "inactive: its stake does not count towards consensus.",
    )

    # --- consensus -----------------------------------------------------------------------
    kappa: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Majority ratio: consensus is the weight that at least kappa of the "
        "active validator stake supports (stake-weighted median). Held as a u16 step "
        "like every proportion the chain stores: 0.5 acts as 32767/65535, subtensor's "
        "default.",
    )
    max_allowed_validators: int = Field(
        128, ge=1, le=U16_MAX, description="Validator permits go to the top-k uids by stake."
    )
    stake_threshold: float = Field(
        0.0,
        ge=0.0,
        description="Stake below this (in tokens) counts as zero in the epoch "
        "(subtensor's StakeThreshold).",
    )

    # --- bonds ---------------------------------------------------------------------------
    bonds_moving_avg: float = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="EMA memory of bonds: each epoch keeps this share of the old bonds "
        "(subtensor stores 900_000 / 1e6).",
    )
    bonds_penalty: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="0: bonds follow the validator's own weights; 1: bonds follow weights "
        "clipped at consensus (out-of-consensus weight earns no bonds).",
    )
    yuma3: bool = Field(
        False,
        description="Yuma3: bonds are per-validator proportions of a miner (relative "
        "bonds), not column-normalised, and reset when the miner re-registers.",
    )
    liquid_alpha: bool = Field(
        False,
        description="Per-entry bond EMA rate from a sigmoid between alpha_low and "
        "alpha_high (only with yuma3, as on the chain).",
    )
    alpha_low: float = Field(0.7, ge=0.0, le=1.0, description="Lower bound of liquid alpha.")
    alpha_high: float = Field(0.9, ge=0.0, le=1.0, description="Upper bound of liquid alpha.")
    alpha_sigmoid_steepness: float = Field(
        10.0,
        ge=0.0,
        le=327.67,
        description="Slope of the liquid-alpha sigmoid, in hundredths as the chain holds "
        "it (subtensor stores the i16 1000 and divides by 100; at most 32767/100).",
    )

    # --- weights policy ------------------------------------------------------------------
    weights_rate_limit: int = Field(
        100, ge=0, description="Minimum blocks between two set_weights of one hotkey."
    )
    min_allowed_weights: int = Field(
        1,
        ge=0,
        le=U16_MAX,
        description="Minimum number of uids in a weight vector (clamped to the subnet "
        "size). Subtensor's runtime starts subnets at 1024, i.e. every uid; 1 is the "
        "localnet value and the sane default for small subnets.",
    )
    max_weight_limit: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Largest share one uid may take of a normalised weight vector. "
        "Subtensor's runtime starts at 1000/65535 (1.5%), which no subnet under 66 "
        "miners can satisfy; 1.0 (u16::MAX, no limit) is the localnet value.",
    )
    commit_reveal_weights_enabled: bool = Field(
        False, description="Weights must be committed as a hash and revealed later."
    )
    commit_reveal_period: int = Field(
        1,
        ge=1,
        le=100,
        description="Epochs between a commit and the epoch in which it must be revealed.",
    )

    # --- registration --------------------------------------------------------------------
    max_allowed_uids: int = Field(
        256, ge=1, le=U16_MAX, description="Subnet capacity; when full, registration prunes."
    )
    immunity_period: int = Field(
        4096,
        ge=0,
        le=U16_MAX,
        description="Blocks after registration during which a uid cannot be pruned.",
    )
    burn: int = Field(
        1_000_000_000,
        ge=0,
        description="Current registration burn in rao (1 token = 1e9 rao); adjusts "
        "towards target_registrations_per_interval.",
    )
    min_burn: int = Field(500_000, ge=0, description="Lower bound of the burn, in rao.")
    max_burn: int = Field(100_000_000_000, ge=0, description="Upper bound of the burn, in rao.")
    target_registrations_per_interval: int = Field(
        2, ge=1, le=U16_MAX, description="Registrations per adjustment interval aimed at."
    )
    adjustment_interval: int = Field(
        100, ge=1, le=U16_MAX, description="Blocks between two burn adjustments."
    )
    max_registrations_per_block: int = Field(
        1, ge=1, le=U16_MAX, description="Registrations accepted in one block per subnet."
    )

    @model_validator(mode="after")
    def _check_ranges(self) -> Hyperparameters:
        if self.alpha_low > self.alpha_high:
            raise ValueError(
                f"alpha_low ({self.alpha_low}) must not exceed alpha_high ({self.alpha_high})"
            )
        if self.min_burn > self.max_burn:
            raise ValueError(
                f"min_burn ({self.min_burn}) must not exceed max_burn ({self.max_burn})"
            )
        if not self.min_burn <= self.burn <= self.max_burn:
            raise ValueError(
                f"burn ({self.burn}) must lie within [min_burn, max_burn] "
                f"= [{self.min_burn}, {self.max_burn}]"
            )
        return self

    def with_changes(self, **changes: object) -> Hyperparameters:
        """A validated copy with some fields changed (the model is frozen)."""
        return Hyperparameters.model_validate({**self.model_dump(), **changes})
