"""subnetlab: a Bittensor-style incentive network you can stand up, measure and attack."""

__version__ = "0.1.0"
