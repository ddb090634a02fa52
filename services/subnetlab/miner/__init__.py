"""The miner: a signed OpenAI-compatible endpoint in front of a backend (vLLM, OpenAI, sim)."""
