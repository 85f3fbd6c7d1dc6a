#!/usr/bin/env python3
"""Build the sound-tagging clip set described by scripts/testdata/sounds.toml.

Run through scripts/testdata/sounds (it installs the Debian packages and the pinned numpy venv):

    scripts/testdata/sounds            # build into target/testdata/sounds/ (skips when current)
    scripts/testdata/sounds --force    # rebuild
    scripts/testdata/sounds --measure  # print each event sound's natural length, build nothing

Every clip is 16 kHz mono 16-bit WAV. Sources are rendered or decoded to 16 kHz mono float
(`ffmpeg` resamples), trimmed to where they are audible (10 ms RMS frames within 40 dB of the
loudest), levelled, and placed. For event clips the manifest states the true start and end of
each sound; the build checks the placed sound's audible extent against them (±30 ms) and fails
when they disagree, so the manifest stays the truth. Output: `<id>.wav` per clip and
`index.json` (clips, expected labels, events, and the package, version and license of every
source file used). Only numpy and the standard library.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import tomllib
import wave
import zipfile
from pathlib import Path

import numpy as np

SR = 16000
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FRAME = SR // 100  # 10 ms
TRIM_DB = -40.0  # a frame is audible when its RMS is within 40 dB of the loudest frame
TOLERANCE = 0.03  # seconds: placed sound vs manifest start/end
FADE = int(0.01 * SR)


def die(msg: str) -> None:
    print(f"sounds.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, **kw)
    if r.returncode != 0:
        die(f"{' '.join(cmd[:4])}… failed ({r.returncode}): {r.stderr.decode(errors='replace')[-800:]}")
    return r


# ---------------------------------------------------------------------------------------------
# Decoding and levels
# ---------------------------------------------------------------------------------------------
def decode(path: Path) -> np.ndarray:
    """Any file ffmpeg reads → 16 kHz mono float32 (ffmpeg's default resampler, deterministic)."""
    r = run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-ac", "1", "-ar", str(SR),
             "-f", "f32le", "-"])
    return np.frombuffer(r.stdout, dtype="<f4").astype(np.float32)


def frame_rms(x: np.ndarray) -> np.ndarray:
    n = len(x) // FRAME
    if n == 0:
        return np.array([float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))]) if len(x) else np.zeros(0)
    f = x[: n * FRAME].astype(np.float64).reshape(n, FRAME)
    return np.sqrt((f ** 2).mean(axis=1))


def audible_span(x: np.ndarray) -> tuple[int, int] | None:
    """First and one-past-last sample of the audible part (10 ms frame resolution)."""
    rms = frame_rms(x)
    if len(rms) == 0 or rms.max() <= 0:
        return None
    on = np.nonzero(rms >= rms.max() * 10 ** (TRIM_DB / 20))[0]
    return int(on[0] * FRAME), int(min(len(x), (on[-1] + 1) * FRAME))


def trim(x: np.ndarray) -> np.ndarray:
    span = audible_span(x)
    if span is None:
        die("a source is silent")
    return x[span[0]: span[1]].copy()


def db(x: float) -> float:
    return 10 ** (x / 20)


def level(x: np.ndarray, rms_dbfs: float, peak_dbfs: float = -1.0) -> np.ndarray:
    """Scale so the RMS of the audible frames is `rms_dbfs`, but the peak stays under `peak_dbfs`."""
    rms = frame_rms(x)
    active = rms[rms >= rms.max() * db(TRIM_DB)] if len(rms) else rms
    cur = math.sqrt(float(np.mean(active ** 2))) if len(active) else 0.0
    if cur <= 0:
        return x
    g = db(rms_dbfs) / cur
    peak = float(np.max(np.abs(x))) * g
    if peak > db(peak_dbfs):
        g *= db(peak_dbfs) / peak
    return (x * g).astype(np.float32)


def fade(x: np.ndarray, n_in: int = FADE, n_out: int = FADE) -> np.ndarray:
    x = x.copy()
    n_in, n_out = min(n_in, len(x) // 2), min(n_out, len(x) // 2)
    if n_in:
        x[:n_in] *= np.linspace(0, 1, n_in, endpoint=False, dtype=np.float32)
    if n_out:
        x[-n_out:] *= np.linspace(1, 0, n_out, dtype=np.float32)
    return x


def write_wav(path: Path, x: np.ndarray) -> None:
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())


# ---------------------------------------------------------------------------------------------
# Generators: each returns 16 kHz mono float32 and the provenance of what it used
# ---------------------------------------------------------------------------------------------
class Builder:
    def __init__(self, manifest: dict, work: Path, versions: dict[str, str]):
        self.m = manifest
        self.work = work
        self.versions = versions
        self.cache: dict[str, np.ndarray] = {}

    def provenance(self, package: str, **extra) -> dict:
        return {"package": package, "version": self.versions.get(package, "?"), **extra}

    # -- Debian package files ------------------------------------------------------------------
    def source_file(self, name: str) -> tuple[np.ndarray, dict]:
        src = self.m["sources"].get(name) or die(f"unknown source `{name}`")
        if name not in self.cache:
            path = Path(src["file"])
            if not path.is_file():
                die(f"{path} missing: is Debian package {src['package']} installed?")
            member = src.get("member")
            if member is None:
                x = decode(path)
            else:
                raw = self.work / f"src-{name}{Path(str(member)).suffix or '.wav'}"
                if isinstance(member, int):  # OpenTTD .cat: entry `member`
                    raw.write_bytes(cat_entry(path, member))
                else:  # a zip (.pk3) member
                    with zipfile.ZipFile(path) as z:
                        raw.write_bytes(z.read(member))
                x = decode(raw)
            self.cache[name] = x
        prov = self.provenance(src["package"], file=src["file"], license=src["license"])
        if "member" in src:
            prov["member"] = src["member"]
        if "credit" in src:
            prov["credit"] = src["credit"]
        return self.cache[name], prov

    # -- espeak-ng -------------------------------------------------------------------------------
    def espeak(self, s: dict) -> tuple[np.ndarray, dict]:
        out = self.work / f"espeak-{hashlib.sha1(json.dumps(s, sort_keys=True).encode()).hexdigest()[:12]}.wav"
        cmd = ["espeak-ng", "-v", s["voice"], "-s", str(s.get("speed", 160)), "-w", str(out), s["text"]]
        run(cmd)
        return decode(out), self.provenance("espeak-ng", license="GPL-3+", voice=s["voice"], text=s["text"])

    # -- mma → MIDI → fluidsynth -----------------------------------------------------------------
    def music(self, s: dict) -> tuple[np.ndarray, dict]:
        key = hashlib.sha1(s["chart"].encode()).hexdigest()[:12]
        mma, mid, wav = (self.work / f"music-{key}{ext}" for ext in (".mma", ".mid", ".wav"))
        # Grooves vary timing and volume at random: a fixed seed makes the MIDI reproducible.
        mma.write_text("RndSeed 1\n" + s["chart"])
        run(["mma", "-f", str(mid), str(mma)], env={**os.environ, "PYTHONHASHSEED": "0"})
        sf2 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
        run(["fluidsynth", "-ni", "-q", "-F", str(wav), "-r", str(SR), "-g", "0.5", sf2, str(mid)])
        x = decode(wav)
        return x, {"package": "mma + fluidsynth + fluid-soundfont-gm",
                   "version": f"mma {self.versions.get('mma')}, fluidsynth {self.versions.get('fluidsynth')}, "
                              f"fluid-soundfont-gm {self.versions.get('fluid-soundfont-gm')}",
                   "license": "chart: this manifest; FluidR3_GM.sf2: MIT", "chart": s["chart"]}

    # -- synthetic -------------------------------------------------------------------------------
    def synth(self, s: dict, seconds: float) -> tuple[np.ndarray, dict]:
        n = int(round(seconds * SR))
        t = np.arange(n, dtype=np.float64) / SR
        kind = s["kind"]
        if kind == "sine":
            x = np.sin(2 * math.pi * s["freq"] * t)
        elif kind == "tones":  # several sines at once (e.g. a dial tone)
            x = sum(np.sin(2 * math.pi * f * t) for f in s["freqs"]) / len(s["freqs"])
        elif kind == "sweep":  # repeated sweeps from f0 to f1, `period` seconds each
            period = s.get("period", seconds)
            tt = np.mod(t, period)
            f0, f1 = s["f0"], s["f1"]
            if s.get("curve", "linear") == "log":
                k = math.log(f1 / f0) / period
                phase = 2 * math.pi * f0 * (np.exp(k * tt) - 1) / k
            else:
                phase = 2 * math.pi * (f0 * tt + (f1 - f0) * tt ** 2 / (2 * period))
            x = np.sin(phase)
        elif kind == "dtmf":  # digits, `on` s tone / `off` s gap, repeated to fill
            table = {"1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "4": (770, 1209),
                     "5": (770, 1336), "6": (770, 1477), "7": (852, 1209), "8": (852, 1336),
                     "9": (852, 1477), "0": (941, 1336), "*": (941, 1209), "#": (941, 1477)}
            on, off = int(s.get("on", 0.12) * SR), int(s.get("off", 0.08) * SR)
            parts = []
            for d in s["digits"]:
                tt = np.arange(on) / SR
                lo, hi = table[d]
                parts += [fade(((np.sin(2 * math.pi * lo * tt) + np.sin(2 * math.pi * hi * tt)) / 2)
                               .astype(np.float32), 40, 40), np.zeros(off, np.float32)]
            one = np.concatenate(parts)
            x = np.tile(one, n // len(one) + 1)[:n]
        elif kind == "hum":  # mains hum: a fundamental and decaying harmonics
            x = sum(np.sin(2 * math.pi * s["freq"] * h * t) / h for h in range(1, 8))
        elif kind == "noise":
            x = noise(s["color"], n, s.get("seed", 1))
        else:
            die(f"unknown sound kind `{kind}`")
        return np.asarray(x, dtype=np.float32), {"package": "numpy (this script)", "version": np.__version__,
                                                 "license": "generated", "spec": s}

    def render(self, s: dict, seconds: float) -> tuple[np.ndarray, dict]:
        kind = s["kind"]
        if kind == "file":
            return self.source_file(s["source"])
        if kind == "espeak":
            return self.espeak(s)
        if kind == "music":
            return self.music(s)
        return self.synth(s, seconds)

    def sound(self, s: dict, seconds: float, *, trimmed: bool) -> tuple[np.ndarray, dict]:
        """A sound as placed: rendered, offset, trimmed to its audible part, repeated, levelled."""
        x, prov = self.render(s, seconds)
        off = int(round(s.get("offset", 0.0) * SR))
        x = x[off:]
        if "take" in s:
            x = x[: int(round(s["take"] * SR))]
        if trimmed:
            x = trim(x)
        reps = int(s.get("repeat", 1))
        if reps > 1:
            gap = np.zeros(int(round(s.get("gap", 0.25) * SR)), np.float32)
            x = np.concatenate([p for i in range(reps) for p in ((gap, x) if i else (x,))])
        x = level(x, s.get("level", -20.0), s.get("peak", -1.0))
        return x, prov


def cat_entry(path: Path, index: int) -> bytes:
    """One WAV out of an OpenTTD sound set (.cat): a table of (offset, size) u32 pairs, then at
    each offset a length-prefixed name followed by the RIFF data."""
    d = path.read_bytes()
    off, size = struct.unpack_from("<II", d, index * 8)
    off &= 0x7FFFFFFF
    name_len = d[off]
    body = d[off + 1 + name_len: off + size]
    if body[:4] != b"RIFF":
        die(f"{path} entry {index} is not a WAV")
    return body


def noise(color: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n)
    if color == "white":
        return w
    spec = np.fft.rfft(w)
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    if color == "pink":
        spec /= np.sqrt(f)
    elif color == "brown":
        spec /= f
    else:
        die(f"unknown noise colour `{color}`")
    x = np.fft.irfft(spec, n)
    return x / np.std(x)


def background(spec: str | None, n: int, seed: int) -> np.ndarray:
    """`silence`, or `<white|pink|brown>:<RMS dBFS>` (e.g. `pink:-50`)."""
    if not spec or spec == "silence":
        return np.zeros(n, np.float32)
    color, lvl = spec.split(":")
    return (noise(color, n, seed) * db(float(lvl))).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Clips
# ---------------------------------------------------------------------------------------------
def build_clip(b: Builder, clip: dict, index: int) -> tuple[np.ndarray, dict]:
    dur = float(clip.get("duration", 10.0))
    n = int(round(dur * SR))
    out = background(clip.get("background"), n, seed=1000 + index)
    entry = {k: clip[k] for k in ("id", "category", "expect", "description") if k in clip}
    entry.update(duration=dur, background=clip.get("background", "silence"), sources=[])
    if "fill" in clip:  # the sound fills the whole clip: clip-level tags only
        s = clip["fill"]
        x, prov = b.sound(s, dur, trimmed=s["kind"] in ("file", "espeak"))
        if len(x) < n:  # loop short sources (a crackling fire, crickets) to the clip length
            x = np.tile(x, n // len(x) + 1)
        out += fade(x[:n])
        entry["sources"].append(prov)
        entry["events"] = []
    else:
        entry["events"] = []
        for ev in clip["events"]:
            start, end = float(ev["start"]), float(ev["end"])
            x, prov = b.sound(ev["sound"], end - start, trimmed=True)
            want = int(round((end - start) * SR))
            if len(x) < want - TOLERANCE * SR:
                die(f"{clip['id']}: the sound lasts {len(x) / SR:.3f} s but the manifest says "
                    f"{start}–{end} ({end - start:.3f} s); natural end would be {start + len(x) / SR:.2f}")
            x = fade(x[:want], FADE // 2, FADE)
            a = int(round(start * SR))
            if a + len(x) > n:
                die(f"{clip['id']}: event {start}–{end} runs past the clip ({dur} s)")
            alone = np.zeros(n, np.float32)
            alone[a: a + len(x)] = x
            span = audible_span(alone)
            got = (span[0] / SR, span[1] / SR)
            if abs(got[0] - start) > TOLERANCE or abs(got[1] - end) > TOLERANCE:
                die(f"{clip['id']}: placed sound is audible {got[0]:.3f}–{got[1]:.3f} s, manifest says "
                    f"{start}–{end}")
            out += alone
            entry["events"].append({"start": start, "end": end, "expect": ev.get("expect", clip["expect"])})
            entry["sources"].append(prov)
    peak = float(np.max(np.abs(out)))
    if peak > 1.0:
        die(f"{clip['id']} clips (peak {peak:.2f})")
    return out, entry


def measure(b: Builder) -> None:
    """Natural (trimmed, repeated) length of every event sound, to write `end` in the manifest."""
    for clip in b.m["clips"]:
        for ev in clip.get("events", []):
            x, _ = b.sound(ev["sound"], 10.0, trimmed=True)
            start = float(ev["start"])
            print(f"{clip['id']:28s} start {start:6.2f}  natural length {len(x) / SR:6.3f}  "
                  f"natural end {start + len(x) / SR:6.3f}  manifest end {ev.get('end')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, default=HERE / "sounds.toml")
    ap.add_argument("--out", type=Path, default=ROOT / "target/testdata/sounds")
    ap.add_argument("--versions", type=Path, required=True, help="JSON {package: version} of the tools used")
    ap.add_argument("--stamp", default="", help="build stamp; the build is skipped when index.json has it")
    ap.add_argument("--measure", action="store_true")
    args = ap.parse_args()

    manifest = tomllib.loads(args.manifest.read_text())
    versions = json.loads(args.versions.read_text())
    index_path = args.out / "index.json"
    if not args.measure and args.stamp and index_path.is_file():
        old = json.loads(index_path.read_text())
        if old.get("stamp") == args.stamp and all((args.out / c["file"]).is_file() for c in old["clips"]):
            print(f"sounds.py: {len(old['clips'])} clips in {args.out} are current", file=sys.stderr)
            return
    ids = [c["id"] for c in manifest["clips"]]
    if len(set(ids)) != len(ids):
        die("clip ids are not unique")

    with tempfile.TemporaryDirectory(prefix="timbre-sounds-") as tmp:
        b = Builder(manifest, Path(tmp), versions)
        if args.measure:
            measure(b)
            return
        if args.out.exists():
            shutil.rmtree(args.out)
        args.out.mkdir(parents=True)
        clips = []
        for i, clip in enumerate(manifest["clips"]):
            x, entry = build_clip(b, clip, i)
            entry["file"] = f"{clip['id']}.wav"
            write_wav(args.out / entry["file"], x)
            entry["sha256"] = hashlib.sha256((args.out / entry["file"]).read_bytes()).hexdigest()
            clips.append(entry)
    index = {"stamp": args.stamp, "sample_rate": SR, "manifest": str(args.manifest.relative_to(ROOT)),
             "tools": versions, "clips": clips}
    index_path.write_text(json.dumps(index, indent=1) + "\n")
    n_events = sum(len(c["events"]) for c in clips)
    print(f"sounds.py: wrote {len(clips)} clips ({n_events} events) to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
