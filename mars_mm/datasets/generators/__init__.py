"""Generators of synthetic datasets (no registration)."""
