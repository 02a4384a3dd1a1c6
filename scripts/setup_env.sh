#!/usr/bin/env bash
# Create (or update) the project's virtual environment: pinned requirements, detectron2 and the
# contextrast package (editable). Idempotent; `make env` calls it when requirements change.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -r requirements.txt
"$VENV/bin/python" scripts/install_detectron2.py
"$VENV/bin/python" -m pip install --quiet --no-deps -e projects/Contextrast
"$VENV/bin/python" -c "import contextrast, detectron2; print('environment ready:', detectron2.__file__)"
