"""Running a whole testnet on one machine: bootstrap the chain, start neuron processes."""
