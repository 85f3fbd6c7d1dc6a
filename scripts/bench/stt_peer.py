"""faster-whisper side of scripts/bench/stt.sh.

python stt_peer.py <model dir> <compute_type> <threads> <runs> <beam> FILE.wav...

Same decoding as timbre's stt_bench (language en, temperature 0, no VAD), one JSON line per
file with each run's wall time (decoding included: the segment generator is consumed), then
the resident memory after loading and at the end.
"""

import json
import sys
import time

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import decode_audio


def rss_mb(field: str) -> float:
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    model_dir, compute_type, threads, runs, beam = sys.argv[1:6]
    started = time.perf_counter()
    model = WhisperModel(model_dir, device="cpu", compute_type=compute_type, cpu_threads=int(threads))
    # Same warm-up as timbre's loader: half a second of silence.
    list(model.transcribe(np.zeros(8000, dtype=np.float32), language="en", beam_size=1, temperature=0.0)[0])
    load = time.perf_counter() - started
    rss_loaded = rss_mb("VmRSS:")
    for path in sys.argv[6:]:
        audio = decode_audio(path)
        seconds, text = [], ""
        for _ in range(int(runs)):
            t = time.perf_counter()
            segments, _ = model.transcribe(
                audio, language="en", beam_size=int(beam), best_of=1, temperature=0.0, vad_filter=False
            )
            text = "".join(s.text for s in segments).strip()
            seconds.append(time.perf_counter() - t)
        print(json.dumps({"file": path, "duration": len(audio) / 16000, "seconds": seconds, "text": text}))
    print(json.dumps({"load_seconds": load, "rss_mb_loaded": rss_loaded, "rss_mb_end": rss_mb("VmRSS:"), "rss_mb_peak": rss_mb("VmHWM:")}))


if __name__ == "__main__":
    main()
