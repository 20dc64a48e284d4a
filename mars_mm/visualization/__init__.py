"""Registration imports only."""
