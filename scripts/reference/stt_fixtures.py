"""faster-whisper reference transcripts for timbre's Whisper fidelity tests.

Usage: scripts/reference/stt_fixtures.sh  (builds the test set and the venv, then runs this)

Runs PyPI faster-whisper on the clips of target/testdata/speech with the same CTranslate2
directory timbre loads (models/whisper-tiny.en), compute_type float32, greedy decoding
(beam_size 1, temperature 0 only), without VAD; once plain and once with word timestamps; the
quick clips with faster-whisper's default beam search (beam 5, temperature fallback); and the
long clip with vad_filter=True. Also records tokenizer ids for a few strings (Hugging Face
`tokenizers`) and faster-whisper's suppressed-token list. Writes
tests/fixtures/whisper/reference.json (rounded, small).
"""

import json
import platform
import sys
from pathlib import Path

import faster_whisper
import tokenizers
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_suppressed_tokens

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models/whisper-tiny.en"
DATA = ROOT / "target/testdata/speech"
OUT = ROOT / "tests/fixtures/whisper/reference.json"

TOKENIZER_STRINGS = [
    " Hello world",
    "I'll pay $30.50, ok?",
    " Dr. Alvarez met Hana in Lisbon.",
    "  two  spaces\nand a newline ",
    " naïve café – “quotes” ♪",
]


def r(x: float, n: int = 4) -> float:
    return round(float(x), n)


def segments_json(segments, words: bool) -> list:
    out = []
    for s in segments:
        item = {
            "start": r(s.start, 3),
            "end": r(s.end, 3),
            "text": s.text,
            "tokens": list(s.tokens),
            "avg_logprob": r(s.avg_logprob),
            "no_speech_prob": r(s.no_speech_prob),
            "compression_ratio": r(s.compression_ratio),
        }
        if words:
            item["words"] = [
                {"word": w.word, "start": r(w.start, 3), "end": r(w.end, 3), "probability": r(w.probability)}
                for w in s.words or []
            ]
        out.append(item)
    return out


def main() -> None:
    index = json.loads((DATA / "index.json").read_text())["clips"]
    model = WhisperModel(str(MODEL), device="cpu", compute_type="float32", cpu_threads=2)
    greedy = dict(beam_size=1, best_of=1, temperature=0.0, language="en")
    clips = []
    for clip in index:
        path = str(DATA / clip["file"])
        entry = {"id": clip["id"], "reference": clip["text"], "quick": clip["quick"], "long": clip["long"]}
        segs, _ = model.transcribe(path, vad_filter=False, **greedy)
        entry["greedy"] = segments_json(list(segs), words=False)
        segs, _ = model.transcribe(path, vad_filter=False, word_timestamps=True, **greedy)
        entry["words"] = segments_json(list(segs), words=True)
        if clip["quick"]:
            # faster-whisper's defaults (beam 5, temperature fallback) without VAD.
            segs, _ = model.transcribe(path, vad_filter=False, language="en", beam_size=5)
            entry["beam5"] = segments_json(list(segs), words=False)
        if clip["long"]:
            segs, _ = model.transcribe(path, vad_filter=True, **greedy)
            entry["vad"] = segments_json(list(segs), words=False)
        clips.append(entry)
        print(f"[stt-fixtures] {clip['id']}: {''.join(s['text'] for s in entry['greedy'])}", file=sys.stderr)

    hf = tokenizers.Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    tok = Tokenizer(hf, multilingual=False, task="transcribe", language="en")
    out = {
        "generator": "scripts/reference/stt_fixtures.py",
        "versions": {
            "faster_whisper": faster_whisper.__version__,
            "tokenizers": tokenizers.__version__,
            "python": platform.python_version(),
        },
        "options": "compute_type=float32, beam_size=1, temperature=0.0, language=en, vad_filter=False",
        "tokenizer": [{"text": t, "ids": tok.encode(t)} for t in TOKENIZER_STRINGS],
        "suppress_tokens": list(get_suppressed_tokens(tok, [-1])),
        "clips": clips,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, ensure_ascii=False, indent=None, separators=(",", ":")) + "\n")
    print(f"[stt-fixtures] wrote {OUT} ({OUT.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
