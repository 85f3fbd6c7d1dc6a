#!/usr/bin/env bash
# scripts/reference/stt_fixtures.sh — regenerate tests/fixtures/whisper/reference.json.
#
# Builds the speech test set (scripts/testdata/speech), makes the speech venv (faster-whisper),
# then runs scripts/reference/stt_fixtures.py. Needs models/whisper-tiny.en (scripts/fetch-models).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
"$root/scripts/testdata/speech"
py="$("$root/scripts/testdata/stt-venv.sh")"
exec "$py" "$here/stt_fixtures.py"
