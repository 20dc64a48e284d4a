"""Converters of public datasets to the layouts the WSSS datasets read."""
