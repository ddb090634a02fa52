"""What miners and validators share: following the chain, their process plumbing."""
