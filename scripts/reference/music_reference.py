#!/usr/bin/env python3
"""Reference values for timbre's music DSP, from librosa, pyloudnorm, mir_eval and ffmpeg.

    "$(scripts/reference/music-venv.sh)" scripts/reference/music_reference.py [--songs DIR]

Writes crates/timbre-engines/src/music/testdata/reference.json, which the unit tests in
crates/timbre-engines/src/music/reference_tests.rs read. The signals are described by formula
(sums of sine parts, optionally decaying), so the Rust tests synthesise the very same float32
samples instead of reading audio fixtures:

    x[c][n] += amp · sin(2π·freq·(n − n0)/rate) · exp(−(n − n0)/(decay·rate))   for n0 ≤ n < n1

with n0 = floor(start·rate), n1 = floor(end·rate), computed in float64 and stored as float32.

- loudness: pyloudnorm `Meter(rate).integrated_loudness` (BS.1770-4, K-weighting and gating);
  ffmpeg's `ebur128` filter is recorded beside it for comparison (it resamples to 192 kHz for
  true peak only; its integrated value should agree within a few hundredths of a LU).
- onset: `librosa.onset.onset_strength(y, sr=22050, n_fft=1024, hop_length=221, n_mels=64)`.
- mfcc: `librosa.feature.mfcc(y, sr=22050, n_mfcc=13, n_fft=4096, hop_length=2048, n_mels=40)`.
- beat_f: `mir_eval.beat.f_measure` after `mir_eval.beat.trim_beats` on both lists (what
  `mir_eval.beat.evaluate` does: 5 s trim, 70 ms window) on fixed lists.

With `--songs DIR` (the short test songs, `scripts/testdata/music short`) it also writes
crates/timbre-engines/tests/data/music_librosa.json: librosa's `beat_track` (after
`librosa.load(sr=22050)`) scored with mir_eval on each song, the baseline the accuracy test must
beat.
"""
from __future__ import annotations

import json
import math
import subprocess
import tempfile
import wave
from pathlib import Path

import librosa
import mir_eval
import numpy as np
import pyloudnorm

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "crates/timbre-engines/src/music/testdata/reference.json"


def synth(sig: dict) -> np.ndarray:
    rate, ch = sig["rate"], sig["channels"]
    n = int(sig["seconds"] * rate)
    x = np.zeros((ch, n), dtype=np.float64)
    for p in sig["parts"]:
        n0, n1 = int(math.floor(p["start"] * rate)), min(n, int(math.floor(p["end"] * rate)))
        k = np.arange(n1 - n0, dtype=np.float64)
        v = p["amp"] * np.sin(2 * np.pi * p["freq"] * k / rate)
        if p.get("decay"):
            v *= np.exp(-k / (p["decay"] * rate))
        for c in ([p["channel"]] if "channel" in p else range(ch)):
            x[c, n0:n1] += v
    return x.astype(np.float32)


def ffmpeg_lufs(x: np.ndarray, rate: int) -> float | None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.wav"
        pcm = np.clip(np.round(x.T * 32767), -32768, 32767).astype("<i2")
        with wave.open(str(path), "wb") as w:
            w.setnchannels(x.shape[0])
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm.tobytes())
        r = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-i", str(path), "-af", "ebur128", "-f", "null", "-"],
                           capture_output=True, text=True)
        for line in reversed(r.stderr.splitlines()):
            line = line.strip()
            if line.startswith("I:") and "LUFS" in line:
                return float(line.split()[1])
    return None


LOUDNESS = [
    dict(name="sine-1k-stereo-48k", rate=48000, channels=2, seconds=3.0,
         parts=[dict(freq=1000.0, amp=0.1, start=0.0, end=3.0)]),
    dict(name="bass-and-treble-mono-44k", rate=44100, channels=1, seconds=5.0,
         parts=[dict(freq=60.0, amp=0.4, start=0.0, end=5.0), dict(freq=3000.0, amp=0.05, start=1.0, end=4.0)]),
    dict(name="loud-then-quiet-22k", rate=22050, channels=1, seconds=6.0,
         parts=[dict(freq=440.0, amp=0.5, start=0.0, end=2.0), dict(freq=440.0, amp=0.02, start=3.0, end=6.0)]),
    dict(name="left-only-stereo-44k", rate=44100, channels=2, seconds=2.0,
         parts=[dict(freq=250.0, amp=0.3, start=0.0, end=2.0, channel=0)]),
]

BURSTS = dict(name="bursts-22k", rate=22050, channels=1, seconds=4.0, parts=[
    dict(freq=f, amp=a, start=s, end=s + 0.4, decay=0.08)
    for f, a, s in [(220.0, 0.6, 0.5), (1760.0, 0.3, 1.0), (110.0, 0.8, 1.75), (660.0, 0.4, 2.5), (3520.0, 0.2, 3.0)]
])


def beat_cases() -> list[dict]:
    ref = [round(0.5 * i, 4) for i in range(40)]
    jitter = [round(t + 0.05 * math.sin(3 * i), 4) for i, t in enumerate(ref)]
    missing = [t for i, t in enumerate(ref) if i % 5 != 0]
    extra = sorted(ref + [round(t + 0.25, 4) for t in ref[::3]])
    double = sorted(ref + [round(t + 0.25, 4) for t in ref])
    late = [round(t + 0.069, 4) for t in ref]
    tempo_change = [round(0.6 * i, 4) for i in range(20)] + [round(11.4 + 0.45 * i, 4) for i in range(1, 20)]
    cases = dict(jitter=(ref, jitter), missing=(ref, missing), extra=(ref, extra), double=(ref, double),
                 late=(ref, late), tempo_change=(tempo_change, [t + 0.03 for t in tempo_change[::2]]))
    return [dict(name=k, reference=r, estimated=e, f=mir_f(r, e)) for k, (r, e) in cases.items()]


def mir_f(reference, estimated) -> float:
    """F-measure as `mir_eval.beat.evaluate` computes it: both lists trimmed at 5 s first."""
    trim = mir_eval.beat.trim_beats
    return float(mir_eval.beat.f_measure(trim(np.asarray(reference, dtype=float)),
                                         trim(np.asarray(estimated, dtype=float))))


def librosa_songs(songs: Path) -> None:
    index = json.loads((songs / "index.json").read_text())
    rows = []
    for sid in index["songs"]:
        truth = json.loads((songs / f"{sid}.json").read_text())
        y, sr = librosa.load(str(songs / f"{sid}.wav"), sr=22050)
        tempo, beats = librosa.beat.beat_track(y=y, sr=sr, units="time")
        f = mir_f(truth["beats"], beats)
        rows.append(dict(id=sid, f=round(f, 4), bpm=round(float(np.atleast_1d(tempo)[0]), 2)))
        print(f"librosa {sid}: F {f:.3f}, {rows[-1]['bpm']} BPM")
    path = ROOT / "crates/timbre-engines/tests/data/music_librosa.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    mean_f = round(sum(r["f"] for r in rows) / len(rows), 4)
    path.write_text(json.dumps(dict(librosa=librosa.__version__, mean_f=mean_f, songs=rows), indent=1) + "\n")
    print(f"librosa mean F {mean_f}: wrote {path}")


def main() -> None:
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--songs", type=Path, help="also score librosa on the short test songs in DIR")
    a = ap.parse_args()
    if a.songs:
        librosa_songs(a.songs)
    out = dict(loudness=[], onset={}, mfcc={}, beat_f=beat_cases())
    for sig in LOUDNESS:
        x = synth(sig)
        meter = pyloudnorm.Meter(sig["rate"])
        lufs = float(meter.integrated_loudness(x.T.astype(np.float64)))
        out["loudness"].append(dict(signal=sig, pyloudnorm=lufs, ffmpeg=ffmpeg_lufs(x, sig["rate"])))
    y = synth(BURSTS)[0]
    onset = librosa.onset.onset_strength(y=y, sr=22050, n_fft=1024, hop_length=221, n_mels=64)
    out["onset"] = dict(signal=BURSTS, lag_frames=2, librosa=[round(float(v), 5) for v in onset])
    mfcc = librosa.feature.mfcc(y=y, sr=22050, n_mfcc=13, n_fft=4096, hop_length=2048, n_mels=40)
    out["mfcc"] = dict(signal=BURSTS, frames=mfcc.shape[1],
                       librosa=[[round(float(v), 4) for v in mfcc[:, t]] for t in range(mfcc.shape[1])])
    out["versions"] = dict(librosa=librosa.__version__, mir_eval=mir_eval.__version__,
                           pyloudnorm=getattr(pyloudnorm, "__version__", "0.1.1"), numpy=np.__version__)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=None, separators=(",", ":")) + "\n")
    for l in out["loudness"]:
        print(f"{l['signal']['name']}: pyloudnorm {l['pyloudnorm']:.3f} LUFS, ffmpeg {l['ffmpeg']}")
    for b in out["beat_f"]:
        print(f"beat f {b['name']}: {b['f']:.4f}")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
