# Sourced by the launch scripts: picks the Python interpreter.
# $PYTHON wins; otherwise the repository's .venv (made by `make install`) if it
# exists; otherwise `python` on PATH (an activated environment).
MARS_MM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$MARS_MM_ROOT/.venv/bin/python" ]; then
    PYTHON="$MARS_MM_ROOT/.venv/bin/python"
  else
    PYTHON=python
  fi
fi
