"""The bad-input catalogue: every tool given broken input, message and exit checked.

Each module holds one tool's cases (``CASES``); ``capture.py`` runs the whole
catalogue against any checkout and renders the before/after table of
``docs/en/reliability.md``.
"""
