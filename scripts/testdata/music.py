#!/usr/bin/env python3
"""Render the music-analysis test songs: chord charts → MMA → MIDI → fluidsynth → WAV, with the
ground truth (beats, downbeats, meter, tempo, sections) taken from the chart.

Run through scripts/testdata/music (it installs the Debian packages and the venv):

    scripts/testdata/music [short|bench|all] [--force]

Output (default ${TIMBRE_CACHE:-~/.cache/timbre}/testdata/music/<set>/): `<id>.wav` (44.1 kHz
stereo, as fluidsynth renders it) and `<id>.json` (truth) per song, and `index.json`.

Truth: every bar of the chart has a meter (beats per bar) and a tempo, so beat k of bar b falls
at the sum of the preceding beat lengths. The script checks that truth three ways and fails when
any disagrees: (1) the MIDI file's own tempo map (set_tempo events, ticks per quarter) gives the
same beat times within 1 ms; (2) the notes MMA wrote start on the chart's beats (at least 90% of
beats have a note-on within 30 ms: MMA's grooves humanise timing a little); (3) the rendered
audio is not shifted against the MIDI: the lag that best aligns the audio's onset envelope with
the drum/bass note-ons (±50 ms searched, 1 ms steps) is within ±5 ms, and it is recorded as
`render_offset` and added to the truth.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import mido
import numpy as np

HERE = Path(__file__).resolve().parent
SF2 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
RATE = 44100

# Chord progressions per section label, one chord per bar (3/4 and 4/4 alike).
PROGRESSIONS = {
    "intro": ["C", "C", "F", "G"],
    "A": ["C", "Am", "F", "G", "C", "Am", "Dm", "G"],
    "B": ["F", "G", "Em", "Am", "F", "G", "C", "C"],
    "C": ["Dm", "Em", "F", "G"],
    "outro": ["F", "G", "C", "C"],
}


def song(id, groove, bpm, meter, form, *, tempo_changes=None, grooves=None, bars=None):
    """A song: `form` lists section labels; `bars` cuts each section to that many bars (short
    songs); `tempo_changes` maps a bar index (0-based) to a new tempo; `grooves` maps a section
    label to its groove (default `groove`)."""
    return dict(id=id, groove=groove, bpm=bpm, meter=meter, form=form, tempo_changes=tempo_changes or {},
                grooves=grooves or {}, bars=bars)


# Short songs for `make test`: one section each (~20 s), every case the issue names.
SHORT = [
    song("rock-120", "8Beat", 120, 4, ["A", "B"], bars=6),
    song("waltz-96", "Waltz", 96, 3, ["A", "B"], bars=6),
    song("ballad-70", "PopBallad", 70, 4, ["A"], bars=7),
    song("bluegrass-170", "BlueGrass", 170, 4, ["A", "B"], bars=8),
    song("softrock-tempo-100-132", "SoftRock", 100, 4, ["A", "B"], bars=6, tempo_changes={6: 132}),
    song("jazzwaltz-150", "JazzWaltz", 150, 3, ["A", "B"], bars=7),
]

# Bench songs: full forms with sections (intro, A/B repeats, outro), ~1–3 minutes.
FULL = ["intro", "A", "B", "A", "B", "outro"]
BENCH = [
    song("bench-rock-120", "8Beat", 120, 4, FULL, grooves={"B": "8BeatSus"}),
    song("bench-waltz-96", "Waltz", 96, 3, FULL, grooves={"B": "WaltzSus"}),
    song("bench-ballad-70", "PopBallad", 70, 4, ["intro", "A", "B", "outro"], grooves={"B": "PopBalladSus"}),
    song("bench-bluegrass-170", "BlueGrass", 170, 4, FULL + ["B"]),
    song("bench-softrock-tempo", "SoftRock", 100, 4, FULL, tempo_changes={20: 128}, grooves={"B": "SoftRockSus"}),
    song("bench-swing-132", "Swing", 132, 4, FULL),
    song("bench-countrywaltz-120", "CountryWaltz", 120, 3, FULL),
    song("bench-bossa-138", "BossaNova", 138, 4, FULL),
    song("bench-folkrock-3min", "FolkRock", 92, 4, ["intro", "A", "B", "A", "B", "C", "A", "B", "B", "outro"],
         grooves={"B": "FolkRockSus"}),
]


def die(msg: str) -> None:
    print(f"music.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, **kw)
    if r.returncode != 0:
        die(f"{' '.join(cmd[:4])}… failed ({r.returncode}): {r.stderr.decode(errors='replace')[-800:]}")
    return r


def layout(s: dict) -> list[dict]:
    """Bars in order: section label, chord, groove, tempo, beats per bar."""
    bars, tempo = [], s["bpm"]
    for label in s["form"]:
        chords = PROGRESSIONS[label][: s["bars"]] if s["bars"] else PROGRESSIONS[label]
        for chord in chords:
            tempo = s["tempo_changes"].get(len(bars), tempo)
            bars.append(dict(label=label, chord=chord, groove=s["grooves"].get(label, s["groove"]), tempo=tempo,
                             beats=s["meter"]))
    return bars


def chart(s: dict, bars: list[dict]) -> str:
    lines = ["RndSeed 1", f"Tempo {s['bpm']}"]
    groove, tempo = None, s["bpm"]
    for i, b in enumerate(bars):
        if b["groove"] != groove:
            lines.append(f"Groove {b['groove']}")
            groove = b["groove"]
        if b["tempo"] != tempo:
            lines.append(f"Tempo {b['tempo']}")
            tempo = b["tempo"]
        lines.append(f"{i + 1} {b['chord']}")
    return "\n".join(lines) + "\n"


def truth_from_chart(bars: list[dict]) -> tuple[list[float], list[float], list[dict]]:
    beats, downbeats, sections, t = [], [], [], 0.0
    for i, b in enumerate(bars):
        if not sections or sections[-1]["label"] != b["label"] or (i > 0 and bars[i - 1]["label"] != b["label"]):
            if sections:
                sections[-1]["end"] = t
            sections.append(dict(start=t, end=None, label=b["label"]))
        downbeats.append(t)
        for _ in range(b["beats"]):
            beats.append(t)
            t += 60.0 / b["tempo"]
    sections[-1]["end"] = t
    return beats, downbeats, sections


def midi_beats(mid: mido.MidiFile, n: int) -> list[float]:
    """The first `n` quarter-note times from the MIDI file's own tempo map."""
    tempos = []  # (tick, microseconds per quarter)
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                tempos.append((tick, msg.tempo))
    tempos.sort()
    if not tempos or tempos[0][0] != 0:
        tempos.insert(0, (0, 500000))
    tpq = mid.ticks_per_beat
    out, seg = [], 0
    t_at_seg = 0.0
    for k in range(n):
        tick = k * tpq
        while seg + 1 < len(tempos) and tempos[seg + 1][0] <= tick:
            t_at_seg += (tempos[seg + 1][0] - tempos[seg][0]) * tempos[seg][1] / 1e6 / tpq
            seg += 1
        out.append(t_at_seg + (tick - tempos[seg][0]) * tempos[seg][1] / 1e6 / tpq)
    return out


def note_onsets(mid: mido.MidiFile) -> list[float]:
    """Note-on times in seconds (mido applies the tempo map when iterating the file)."""
    t, out = 0.0, []
    for msg in mid:
        t += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            out.append(t)
    return out


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        if w.getsampwidth() != 2 or w.getframerate() != RATE:
            die(f"{path}: expected 16-bit {RATE} Hz")
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768.0
        return x.reshape(-1, w.getnchannels()).mean(axis=1)


def onset_lag(audio: np.ndarray, onsets: list[float]) -> float:
    """Seconds by which the audio's onsets follow the MIDI note-ons: the lag (±50 ms, 1 ms steps)
    that best aligns the note-ons with the rise of the 10 ms log-energy envelope. The envelope
    itself rises a few ms after a note starts, so this is a coarse check (±15 ms), not the offset."""
    hop, win = RATE // 1000, RATE // 100
    c = np.concatenate([[0.0], np.cumsum(audio ** 2)])
    ends = np.arange(win, len(audio), hop)
    env = np.log(np.sqrt((c[ends] - c[ends - win]) / win) + 1e-3)
    flux = np.concatenate([np.zeros(5), np.maximum(0.0, env[5:] - env[:-5])])
    n = len(flux)
    train = np.zeros(n)
    for t in onsets:
        i = int(round((t * RATE - win) / hop)) + 5
        if 0 <= i < n:
            train[i] = 1.0
    lags = range(-50, 51)
    score = [float(np.dot(train[max(0, -l): n - max(0, l)], flux[max(0, l): n - max(0, -l)])) for l in lags]
    return lags[int(np.argmax(score))] / 1000.0


def render_offset(work: Path) -> float:
    """fluidsynth's start offset: render one side-stick hit placed at exactly 1 s and find where
    the audio starts (first sample above -80 dBFS)."""
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    track.append(mido.Message("note_on", channel=9, note=37, velocity=120, time=960))  # 2 quarters at 120 BPM
    track.append(mido.Message("note_off", channel=9, note=37, velocity=0, time=480))
    mid.save(str(work / "click.mid"))
    run(["fluidsynth", "-ni", "-q", "-F", str(work / "click.wav"), "-r", str(RATE), "-g", "0.6", SF2,
         str(work / "click.mid")])
    x = read_wav(work / "click.wav")
    loud = np.flatnonzero(np.abs(x) > 1e-4)
    if len(loud) == 0:
        die("the calibration click rendered silent")
    return float(loud[0]) / RATE - 1.0


def trim(path: Path, seconds: float) -> None:
    """Cut the render's ring-out (fluidsynth plays every note to silence) one second after the last
    bar, with a 0.5 s fade, so tests decode no silence."""
    with wave.open(str(path)) as w:
        ch, n = w.getnchannels(), w.getnframes()
        x = np.frombuffer(w.readframes(n), dtype="<i2").reshape(-1, ch).astype(np.float64)
    keep = min(n, int(seconds * RATE))
    x = x[:keep]
    fade = min(keep, RATE // 2)
    x[keep - fade:] *= np.linspace(1.0, 0.0, fade)[:, None]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(ch)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.round(x).astype("<i2").tobytes())


def build_song(s: dict, out: Path, work: Path, offset: float) -> dict:
    bars = layout(s)
    mma, mid_path, wav = work / f"{s['id']}.mma", work / f"{s['id']}.mid", out / f"{s['id']}.wav"
    mma.write_text(chart(s, bars))
    run(["mma", "-f", str(mid_path), str(mma)], env={**os.environ, "PYTHONHASHSEED": "0"})
    run(["fluidsynth", "-ni", "-q", "-F", str(wav), "-r", str(RATE), "-g", "0.6", SF2, str(mid_path)])
    beats, downbeats, sections = truth_from_chart(bars)

    mid = mido.MidiFile(str(mid_path))
    from_midi = midi_beats(mid, len(beats))
    worst = max(abs(a - b) for a, b in zip(beats, from_midi))
    if worst > 0.001:
        die(f"{s['id']}: chart beats and the MIDI tempo map disagree by {worst * 1000:.1f} ms")
    onsets = np.array(note_onsets(mid))
    on_grid = np.mean([np.min(np.abs(onsets - b)) <= 0.03 for b in beats])
    if on_grid < 0.9:
        die(f"{s['id']}: only {on_grid:.0%} of the chart's beats have a note starting on them")
    coarse = onset_lag(read_wav(wav), list(onsets))
    if abs(coarse - offset) > 0.015:
        die(f"{s['id']}: the audio's onsets sit {coarse * 1000:.0f} ms from the MIDI notes")
    lag = offset
    trim(wav, sections[-1]["end"] + lag + 1.0)
    shift = lambda ts: [round(t + lag, 4) for t in ts]  # noqa: E731
    with wave.open(str(wav)) as w:
        duration = w.getnframes() / w.getframerate()
    tempi = sorted({b["tempo"] for b in bars})
    truth = dict(
        id=s["id"], groove=s["groove"], meter=s["meter"], bpm=s["bpm"], tempi=tempi,
        tempo_change=len(tempi) > 1, duration=round(duration, 4), render_offset=round(lag, 4),
        onset_lag=coarse,
        beats=shift(beats), downbeats=shift(downbeats),
        sections=[dict(start=round(x["start"] + lag, 4), end=round(x["end"] + lag, 4), label=x["label"])
                  for x in sections],
        notes_on_beats=round(float(on_grid), 3),
    )
    (out / f"{s['id']}.json").write_text(json.dumps(truth, indent=1) + "\n")
    return truth


def versions() -> str:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Version}\n", "mma", "fluidsynth", "fluid-soundfont-gm"],
                       capture_output=True, text=True)
    return r.stdout


def build_set(name: str, songs: list[dict], root: Path, force: bool) -> None:
    out = root / name
    stamp = hashlib.sha256((Path(__file__).read_text() + versions()).encode()).hexdigest()
    index = out / "index.json"
    if not force and index.exists() and json.loads(index.read_text()).get("stamp") == stamp:
        print(f"music.py: {out} is current", file=sys.stderr)
        return
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        offset = render_offset(Path(tmp))
        truths = [build_song(s, out, Path(tmp), offset) for s in songs]
    for t in truths:
        print(f"music.py: {name}/{t['id']}: {t['duration']:.1f} s, {len(t['beats'])} beats, meter {t['meter']}, "
              f"tempi {t['tempi']}, offset {t['render_offset'] * 1000:.0f} ms", file=sys.stderr)
    index.write_text(json.dumps(dict(stamp=stamp, songs=[t["id"] for t in truths]), indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("set", nargs="?", default="all", choices=["short", "bench", "all"])
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--out", type=Path,
                    default=Path(os.environ.get("TIMBRE_CACHE", Path.home() / ".cache/timbre")) / "testdata/music")
    a = ap.parse_args()
    if a.set in ("short", "all"):
        build_set("short", SHORT, a.out, a.force)
    if a.set in ("bench", "all"):
        build_set("bench", BENCH, a.out, a.force)
    print(a.out)


if __name__ == "__main__":
    main()
