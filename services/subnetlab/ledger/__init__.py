"""The chain-ledger service: signed extrinsics in, blocks out, persisted to Redis."""
