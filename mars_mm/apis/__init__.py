"""Stage entry points called by the tools (no registration)."""
