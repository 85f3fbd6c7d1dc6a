#!/usr/bin/env python3
"""Reference for timbre-audio's Whisper log-mel spectrogram.

Re-implements `whisper.audio.log_mel_spectrogram` with numpy alone (float64), including the
librosa Slaney mel filterbank Whisper ships in `mel_filters.npz`, and writes a fixture that
`crates/timbre-audio/tests/mel_reference.rs` compares against (max abs diff <= 1e-4).

When librosa is importable, the numpy filterbank is checked against
`librosa.filters.mel(sr=16000, n_fft=400, n_mels=N)` first.

Usage (from the repository root):
    python3 -m venv ~/.cache/timbre/venv-audio
    ~/.cache/timbre/venv-audio/bin/pip install numpy librosa   # librosa optional
    ~/.cache/timbre/venv-audio/bin/python scripts/reference/mel_reference.py

Outputs (little-endian f32, no header):
    tests/fixtures/mel_input_16k.f32     16000 samples of deterministic test audio
    tests/fixtures/mel_expected_80.f32   [80, 100] log-mel, mel-major
    tests/fixtures/mel_expected_128.f32  [128, 100] log-mel, mel-major
"""

import os
import sys

import numpy as np

SR = 16000
N_FFT = 400
HOP = 160
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "timbre-audio", "tests", "fixtures")


def hz_to_mel(f):
    f = np.asanyarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-300) / min_log_hz) / logstep, mels)


def mel_to_hz(m):
    m = np.asanyarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), freqs)


def mel_filters(n_mels):
    """librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels), htk=False, norm='slaney'."""
    fftfreqs = np.linspace(0, SR / 2, 1 + N_FFT // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SR / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, 1 + N_FFT // 2))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, np.newaxis]
    return weights.astype(np.float32)  # librosa's default dtype, as in Whisper's npz


def log_mel_spectrogram(audio, n_mels):
    """whisper.audio.log_mel_spectrogram, with torch.stft(center=True, pad_mode='reflect')."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # torch.hann_window (periodic)
    padded = np.pad(audio.astype(np.float64), N_FFT // 2, mode="reflect")
    n_frames = 1 + (len(padded) - N_FFT) // HOP
    frames = np.stack([padded[t * HOP : t * HOP + N_FFT] * window for t in range(n_frames)], axis=1)
    stft = np.fft.rfft(frames, axis=0)  # [n_bins, n_frames]
    magnitudes = np.abs(stft[:, :-1]) ** 2
    mel_spec = mel_filters(n_mels).astype(np.float64) @ magnitudes
    log_spec = np.log10(np.maximum(mel_spec, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def test_signal():
    """1 s: a 440 Hz tone, a 100 Hz → 6 kHz chirp, LCG noise, and 0.1 s of digital silence
    (which exercises the max − 8 floor)."""
    t = np.arange(SR) / SR
    x = 0.3 * np.sin(2 * np.pi * 440 * t)
    x += 0.2 * np.sin(2 * np.pi * (100 * t + (6000 - 100) / 2 * t**2))
    state = 12345
    noise = np.empty(SR)
    for i in range(SR):
        state = (1103515245 * state + 12345) % 2**31
        noise[i] = state / 2**31 - 0.5
    x += 0.05 * noise
    x[7000:8600] = 0.0
    return x.astype(np.float32)


def main():
    try:
        import librosa

        for n in (80, 128):
            ref = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=n)
            diff = np.abs(ref - mel_filters(n)).max()
            print(f"filterbank n_mels={n}: max |numpy - librosa| = {diff:.3g}")
            assert diff < 1e-7, "numpy filterbank disagrees with librosa"
    except ImportError:
        print("librosa not installed: skipping the filterbank cross-check", file=sys.stderr)

    audio = test_signal()
    os.makedirs(OUT, exist_ok=True)
    audio.astype("<f4").tofile(os.path.join(OUT, "mel_input_16k.f32"))
    for n in (80, 128):
        mel = log_mel_spectrogram(audio, n)
        assert mel.shape == (n, 100), mel.shape
        mel.astype("<f4").tofile(os.path.join(OUT, f"mel_expected_{n}.f32"))
        print(f"n_mels={n}: shape {mel.shape}, range [{mel.min():.4f}, {mel.max():.4f}]")


if __name__ == "__main__":
    main()
