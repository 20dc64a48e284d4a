"""Utilities shared by all stages (I/O, offline jobs, compatibility)."""
