#!/usr/bin/env bash
# scripts/openai-client/venv.sh — create or reuse a venv with the official OpenAI Python client.
#
# Usage: scripts/openai-client/venv.sh [--force]
#
# The venv lives at ${TIMBRE_CACHE:-$HOME/.cache/timbre}/venv-openai and holds
# scripts/openai-client/requirements.txt (pip resolves the client's dependencies). Idempotent:
# when the venv already matches requirements.txt it only prints. stdout gets one line, the
# venv's python, e.g.:
#   "$(scripts/openai-client/venv.sh)" -c 'import openai; print(openai.__version__)'
#
# Environment: TIMBRE_CACHE (cache root), PYTHON (base interpreter, default python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/venv.sh
source "$here/../lib/venv.sh"
ensure_venv openai "$here/requirements.txt" 'openai' "$@"
