#!/usr/bin/env bash
# Decode benchmark: 10 minutes of 44.1 kHz mono 128 kbps MP3 decoded by timbre-audio (release)
# and, in the same run, by the ffmpeg CLI (the decoder behind PyAV/faster-whisper and librosa's
# audioread fallback) to f32 PCM. Median of 5 each; prints a markdown row and the ratio.
#
#   scripts/bench/decode.sh
#
# Needs ffmpeg (Debian package). The MP3 is made by timbre's own encoder on first run and
# cached in the system temp dir.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
command -v ffmpeg >/dev/null || { echo "decode.sh: ffmpeg is required (apt-get install ffmpeg)" >&2; exit 1; }

out=$(cargo bench -q -p timbre-audio --bench decode 2>/dev/null)
echo "$out" >&2
timbre_median=$(sed -n 's/.*median \([0-9.]*\) s.*/\1/p' <<<"$out")
mp3=$(sed -n 's/^input: \(.*\) (.*/\1/p' <<<"$out")
[ -n "$timbre_median" ] && [ -f "$mp3" ] || { echo "decode.sh: could not parse the bench output" >&2; exit 1; }

times=()
for _ in 1 2 3 4 5; do
  start=$(date +%s.%N)
  ffmpeg -v error -nostdin -threads 1 -i "$mp3" -f f32le -acodec pcm_f32le - >/dev/null
  end=$(date +%s.%N)
  times+=("$(echo "$end - $start" | bc -l)")
done
ffmpeg_median=$(printf '%s\n' "${times[@]}" | sort -g | sed -n 3p)
ratio=$(echo "$timbre_median / $ffmpeg_median" | bc -l)
printf '| %s | %s | 10 min MP3 → f32 | %.3f s | %.3f s | %.2f |\n' \
  "$(date -u +%Y-%m-%d)" "$(nproc) cores" "$timbre_median" "$ffmpeg_median" "$ratio"
