"""Measurements shared by the services: concentration indices and metric helpers."""
