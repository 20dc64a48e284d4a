"""Pure algorithms on numpy/torch arrays: no registry, no runner."""
