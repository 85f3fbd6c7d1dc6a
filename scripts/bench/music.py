#!/usr/bin/env python3
"""Driver of scripts/bench/music.sh (see there): runs timbre and librosa on the bench songs,
interleaved, and scores both with mir_eval against the chart truth."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import librosa
import mir_eval
import numpy as np


def f_measure(ref, est) -> float:
    trim = mir_eval.beat.trim_beats
    return float(mir_eval.beat.f_measure(trim(np.asarray(ref, float)), trim(np.asarray(est, float))))


def bpm_error(bpm: float, tempi: list[float]) -> float:
    """Relative error against the nearest of the song's chart tempi."""
    return min(abs(bpm / t - 1.0) for t in tempi)


def run_timbre(binary: str, models: str, song: Path) -> tuple[float, dict]:
    t0 = time.perf_counter()
    r = subprocess.run([binary, "analyze", str(song), "--json", "--models-dir", models], capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"timbre analyze {song} failed: {r.stderr}")
    return dt, json.loads(r.stdout)


def run_librosa(song: Path) -> tuple[float, float, float, np.ndarray]:
    t0 = time.perf_counter()
    y, sr = librosa.load(str(song), sr=22050)
    t1 = time.perf_counter()
    tempo, beats = librosa.beat.beat_track(y=y, sr=sr, units="time")
    t2 = time.perf_counter()
    return t2 - t0, t1 - t0, float(np.atleast_1d(tempo)[0]), beats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timbre", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--songs", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--command", default="scripts/bench/music.sh")
    a = ap.parse_args()
    index = json.loads((a.songs / "index.json").read_text())
    files = [(sid, a.songs / f"{sid}.wav", sid) for sid in index["songs"]]
    # The 3-minute song as MP3 too: decoding compressed input is part of the job.
    three = next((s for s in index["songs"] if "3min" in s), None)
    if three:
        mp3 = a.out / f"{three}.mp3"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(a.songs / f"{three}.wav"), "-b:a", "192k",
                        str(mp3)], check=True)
        files.append((f"{three} (mp3)", mp3, three))
    # Warm librosa (numba JIT, resampler) and the page cache before timing.
    run_librosa(files[0][1])
    run_timbre(a.timbre, a.models, files[0][1])
    rows = []
    for name, path, truth_id in files:
        truth = json.loads((a.songs / f"{truth_id}.json").read_text())
        t_times, l_times, l_loads = [], [], []
        out = lib = None
        for _ in range(a.runs):
            dt, out = run_timbre(a.timbre, a.models, path)
            t_times.append(dt)
            lt, load, ltempo, lbeats = run_librosa(path)
            l_times.append(lt)
            l_loads.append(load)
            lib = (ltempo, lbeats)
        row = dict(
            song=name, duration=truth["duration"], meter=truth["meter"], tempi=truth["tempi"],
            timbre_s=statistics.median(t_times), librosa_s=statistics.median(l_times),
            librosa_load_s=statistics.median(l_loads),
            timbre_beat_f=f_measure(truth["beats"], out["beats"]),
            librosa_beat_f=f_measure(truth["beats"], lib[1]),
            timbre_bpm=out["bpm"], librosa_bpm=lib[0],
            timbre_bpm_err=bpm_error(out["bpm"], truth["tempi"]), librosa_bpm_err=bpm_error(lib[0], truth["tempi"]),
            timbre_down_f=f_measure(truth["downbeats"], out["downbeats"]),
            timbre_meter=out["time_signature"], sections=[s["label"] for s in out["sections"]],
            true_sections=[s["label"] for s in truth["sections"]],
        )
        rows.append(row)
        print(f"{name}: timbre {row['timbre_s']:.2f} s F {row['timbre_beat_f']:.3f} down {row['timbre_down_f']:.3f} "
              f"{row['timbre_bpm']:.1f} BPM | librosa {row['librosa_s']:.2f} s F {row['librosa_beat_f']:.3f} "
              f"{row['librosa_bpm']:.1f} BPM", flush=True)
    (a.out / "rows.json").write_text(json.dumps(rows, indent=1))
    wav_rows = [r for r in rows if not r["song"].endswith("(mp3)")]
    mean = lambda k, rs=wav_rows: sum(r[k] for r in rs) / len(rs)  # noqa: E731
    cpu = os.cpu_count()
    lines = [
        f"Command: `{a.command}` (RUNS={a.runs}); {len(wav_rows)} songs + the 3-minute song as MP3; "
        f"{cpu} CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; librosa {librosa.__version__}, "
        f"mir_eval {mir_eval.__version__}.",
        "",
        "| song | length | meter | chart BPM | timbre beat F | librosa beat F | timbre BPM | librosa BPM | timbre downbeat F | timbre meter | timbre s | librosa s | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['song']} | {r['duration']:.0f} s | {r['meter']}/4 | {'→'.join(str(int(t)) for t in r['tempi'])} | "
            f"{r['timbre_beat_f']:.3f} | {r['librosa_beat_f']:.3f} | {r['timbre_bpm']:.1f} | {r['librosa_bpm']:.1f} | "
            f"{r['timbre_down_f']:.3f} | {r['timbre_meter']} | {r['timbre_s']:.2f} | {r['librosa_s']:.2f} | "
            f"{r['timbre_s'] / r['librosa_s']:.2f} |")
    ok_bpm = lambda k: sum(r[k] <= 0.02 for r in wav_rows)  # noqa: E731
    lines += [
        "",
        f"- mean beat F: timbre **{mean('timbre_beat_f'):.3f}**, librosa {mean('librosa_beat_f'):.3f}",
        f"- BPM within 2 %: timbre {ok_bpm('timbre_bpm_err')}/{len(wav_rows)}, librosa {ok_bpm('librosa_bpm_err')}/{len(wav_rows)}",
        f"- mean downbeat F (timbre): **{mean('timbre_down_f'):.3f}**; meter right: "
        f"{sum(r['timbre_meter'] == str(r['meter']) + '/4' for r in wav_rows)}/{len(wav_rows)}",
        f"- time, sum over the songs: timbre {sum(r['timbre_s'] for r in wav_rows):.2f} s (complete analysis, process "
        f"start included), librosa {sum(r['librosa_s'] for r in wav_rows):.2f} s (load + beat_track only): "
        f"ratio **{sum(r['timbre_s'] for r in wav_rows) / sum(r['librosa_s'] for r in wav_rows):.2f}**",
        "- sections (timbre vs chart): " + "; ".join(
            f"{r['song']}: {' '.join(r['sections'])} vs {' '.join(r['true_sections'])}" for r in wav_rows),
    ]
    text = "\n".join(lines) + "\n"
    Path(str(a.out) + ".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
