"""The `subnetlab` command line."""
