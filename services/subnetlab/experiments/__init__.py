"""Experiments: the essay's claims measured as sweeps of self-contained, seeded runs.

Pure parts (the grid, the scripted neurons, the metrics, the verdicts) are separate from
the I/O (the process pool, files, plots, the CLI in `subnetlab.cli.experiment_cmds`), so
the numbers can be tested without either.
"""
