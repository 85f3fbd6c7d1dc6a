"""Builds the speech test set described in scripts/testdata/speech.toml.

Run through scripts/testdata/speech (it provides the venv with piper-tts). Writes one 16 kHz mono
16-bit WAV per clip and index.json (id, file, text, duration, kind, quick/long flags, sources).
"""

import json
import subprocess
import sys
import tempfile
import tomllib
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SR = 16_000


def ffmpeg_to_16k(src: Path, dst: Path, raw: bool = False) -> None:
    args = ["ffmpeg", "-v", "error", "-y"]
    if raw:
        args += ["-f", "s16le", "-ar", "16000", "-ac", "1"]
    args += ["-i", str(src), "-ac", "1", "-ar", str(SR), "-sample_fmt", "s16", str(dst)]
    subprocess.run(args, check=True)


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == SR and w.getnchannels() == 1 and w.getsampwidth() == 2, path
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(samples.astype("<i2").tobytes())


def espeak(clip: dict, dst: Path, tmp: Path) -> None:
    raw = tmp / f"{clip['id']}-espeak.wav"
    subprocess.run(
        ["espeak-ng", "-v", clip.get("voice", "en-us"), "-s", str(clip.get("speed", 160)), "-w", str(raw), clip["text"]],
        check=True,
    )
    ffmpeg_to_16k(raw, dst)


def piper(voice, clip: dict, dst: Path, tmp: Path) -> None:
    from piper import SynthesisConfig

    raw = tmp / f"{clip['id']}-piper.wav"
    with wave.open(str(raw), "wb") as w:
        voice.synthesize_wav(clip["text"], w, syn_config=SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0))
    ffmpeg_to_16k(raw, dst)


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    manifest = tomllib.loads((ROOT / "scripts/testdata/speech.toml").read_text())
    voice = None
    index = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for clip in manifest["clips"]:
            dst = out / f"{clip['id']}.wav"
            kind = clip["kind"]
            if kind == "file":
                ffmpeg_to_16k(Path(clip["path"]), dst, raw=clip["path"].endswith(".raw"))
            elif kind == "espeak":
                espeak(clip, dst, tmp)
            elif kind == "piper":
                if voice is None:
                    from piper import PiperVoice

                    voice = PiperVoice.load(ROOT / "models/piper-en_US-joe-medium/en_US-joe-medium.onnx")
                piper(voice, clip, dst, tmp)
            elif kind == "concat":
                gap = np.zeros(int(clip.get("gap", 1.0) * SR), dtype="<i2")
                parts = [np.zeros(int(clip.get("lead", 0.0) * SR), dtype="<i2")]
                at = len(parts[0])
                placed = []
                for i, part in enumerate(clip["parts"]):
                    if i:
                        parts.append(gap)
                        at += len(gap)
                    samples = read_wav(out / f"{part}.wav")
                    parts.append(samples)
                    placed.append({"id": part, "start": round(at / SR, 3), "end": round((at + len(samples)) / SR, 3)})
                    at += len(samples)
                parts.append(gap)
                write_wav(dst, np.concatenate(parts))
            else:
                raise SystemExit(f"{clip['id']}: unknown kind {kind}")
            n = len(read_wav(dst))
            index.append(
                {
                    "id": clip["id"],
                    "file": dst.name,
                    "kind": kind,
                    "text": clip["text"],
                    "duration": round(n / SR, 3),
                    "quick": bool(clip.get("quick", False)),
                    "long": bool(clip.get("long", False)),
                }
            )
            if kind == "concat":
                index[-1]["parts"] = placed
            print(f"[speech] {clip['id']}: {n / SR:.2f} s", file=sys.stderr)
    (out / "index.json").write_text(json.dumps({"clips": index}, indent=1) + "\n")


if __name__ == "__main__":
    main()
