#!/usr/bin/env bash
# Regenerates the seed inputs of the `decode` fuzz target (fuzz/seeds/decode): tiny valid
# files of every format the native decoders handle, plus truncated copies. Needs ffmpeg
# (Debian 12: apt-get install ffmpeg). Run from the repository root. Seeds stay under 4 KB.
set -euo pipefail
out=crates/timbre-audio/fuzz/seeds/decode
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for f in wav flac mp3 opus; do
  cargo run -q -p timbre-audio --example encode_tone -- "$f" 8000 0.08 "$tmp/timbre.$f"
done
cargo run -q -p timbre-audio --example encode_tone -- opus 48000 0.06 "$tmp/timbre48k.opus"

src=(-f lavfi -i "sine=frequency=440:sample_rate=8000:duration=0.1")
ff() { ffmpeg -v error -y "${src[@]}" "$@"; }
ff -c:a pcm_u8 "$tmp/u8.wav"
ff -c:a pcm_s24le "$tmp/s24.wav"
ff -c:a pcm_f32le "$tmp/f32.wav"
ff -c:a pcm_mulaw "$tmp/mulaw.wav"
ff -c:a pcm_alaw "$tmp/alaw.wav"
ff -c:a adpcm_ms "$tmp/adpcm_ms.wav"
ff -c:a adpcm_ima_wav "$tmp/adpcm_ima.wav"
ff -ac 2 -c:a pcm_s16le -t 0.05 "$tmp/stereo.wav"
ff -c:a pcm_s16be "$tmp/tone.aiff"
ff -c:a flac -compression_level 8 -t 0.03 "$tmp/ff.flac"
ff -c:a libmp3lame -b:a 8k -ar 8000 "$tmp/ff.mp3"
ff -c:a libmp3lame -b:a 32k -ar 16000 -id3v2_version 3 -metadata title=seed "$tmp/id3.mp3"
ff -c:a mp2 -ar 16000 -b:a 32k "$tmp/tone.mp2"
ff -c:a aac -b:a 16k "$tmp/tone.m4a"
ff -c:a aac -b:a 16k -f adts "$tmp/tone.aac"
ff -c:a alac "$tmp/alac.m4a"
ff -c:a libvorbis -q:a 0 "$tmp/tone.ogg"
ff -c:a libvorbis -q:a 0 -f matroska "$tmp/vorbis.mka"
ff -c:a flac -f ogg "$tmp/flac.oga"

for f in "$tmp"/*; do
  size=$(stat -c %s "$f")
  if [ "$size" -gt 4096 ]; then echo "skip $(basename "$f"): $size bytes"; continue; fi
  name=$(basename "$f")
  cp "$f" "$out/seed-$name"
  head -c $((size / 2)) "$f" > "$out/trunc-$name"
done
ls -la "$out"
