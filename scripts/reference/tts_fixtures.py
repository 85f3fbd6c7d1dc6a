"""Reference fixtures for timbre's TTS engines, from the peer packages themselves.

    "$(scripts/reference/tts_venv.sh)" scripts/reference/tts_fixtures.py

Writes tests/fixtures/tts/ (or $TTS_FIXTURES_OUT: `make testdata` writes target/testdata/tts, the
references of the machine that runs the tests):
  piper.json + piper-N.wav   piper-tts 1.8.0 (joe-medium): each sentence's phonemes and ids as
                             piper-tts makes them, and its raw model audio for those ids with
                             noise_scale = noise_w = 0 (deterministic), one with length_scale 1.5.
  hibari.json + hibari-N.wav hibari-tts 0.2.1: G2P phonemes for a set of tricky sentences, and
                             the audio for two phoneme strings with the noise branch zeroed
                             (the package draws it from numpy's RNG, which a port cannot replay).
WAVs are 16-bit, scaled to peak 1.0; the JSON records the scale ("peak") to undo it.
"""
import json
import os
import sys
import wave

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MODELS = os.environ.get("TIMBRE_MODELS_DIR", os.path.join(ROOT, "models"))
OUT = os.environ.get("TTS_FIXTURES_OUT", os.path.join(ROOT, "tests", "fixtures", "tts"))


def write_wav(path, audio, rate):
    peak = float(np.max(np.abs(audio))) or 1.0
    pcm = np.round(audio / peak * 32767.0).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return peak


def piper_fixtures():
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(os.path.join(MODELS, "piper-en_US-joe-medium", "en_US-joe-medium.onnx"))
    cases = [
        ("Hello there, my friend.", 1.0),
        ("Please call me at home tomorrow morning.", 1.0),
        ("Wow! That was amazing.", 1.0),
        ("It is a slow sentence.", 1.5),
    ]
    out = []
    for i, (text, length_scale) in enumerate(cases):
        sentences = voice.phonemize(text)
        first = sentences[0]
        ids = voice.phonemes_to_ids(first)
        cfg = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, length_scale=length_scale)
        audio = np.asarray(voice.phoneme_ids_to_audio(ids, cfg), dtype=np.float32)
        name = f"piper-{i}.wav"
        peak = write_wav(os.path.join(OUT, name), audio, voice.config.sample_rate)
        out.append({"text": text, "sentences": ["".join(s) for s in sentences], "ids": ids,
                    "length_scale": length_scale, "wav": name, "peak": peak, "samples": int(len(audio))})
    with open(os.path.join(OUT, "piper.json"), "w", encoding="utf-8") as f:
        json.dump({"package": "piper-tts 1.8.0", "sample_rate": voice.config.sample_rate, "cases": out}, f,
                  ensure_ascii=False, indent=1)


class ZeroNoise:
    """Stands in for numpy's Generator: the shaped-noise branch gets zeros."""

    def standard_normal(self, shape, dtype=np.float32):
        return np.zeros(shape, dtype)


def hibari_fixtures():
    from hibari import Hibari

    tts = Hibari(threads=1)
    texts = [
        "Hello there, how are you today?",
        "The quick brown fox jumps over the lazy dog.",
        "I read the book yesterday, and I'll read it again tomorrow.",
        "She doesn't live here; they live in the city.",
        "On the 3rd of March 2024, 1,250 people paid $9.99 each.",
        "Meet me at 7:30 pm on Jan. 5th, okay?",
        "Dr. Smith earned 45% more than Mr. Jones in 1999.",
        "The temperature dropped to -5°C at 10km altitude.",
        "Call 555-123-4567 or visit www.example.com for details.",
        "NASA and the FBI used AI to analyze 3.14 million records.",
        "Zorblaxian quindrofles are glimmering in the vortuxian haze.",
        "It's a well-known state-of-the-art approach, isn't it?",
        "He recorded a record, then presented the present.",
        "Chapter IV begins with King Henry VIII.",
        "We need 2 cups of flour and 1/2 a cup of sugar.",
        "The U.S. economy grew by 2.5 percent in Q3.",
        "Wait... what? No way!",
        "I can't believe it's already 2025.",
        "Her email, jane_doe@mail.org, bounced twice.",
        "They're going to the store to buy some apples.",
    ]
    g2p = [{"text": t, "phonemes": tts.g2p(t)} for t in texts]
    audio_cases = []
    for i, (ps, speed) in enumerate([("həlˈO ðˈɛɹ, wˌʌt ə bjˈuTəfəl dˈA.", 1.0), ("ɪts ə lˈɔŋ wˈA hˈOm.", 1.2)]):
        audio = tts.from_ids(tts.ids(ps), speed, ZeroNoise())
        name = f"hibari-{i}.wav"
        peak = write_wav(os.path.join(OUT, name), audio, 24000)
        audio_cases.append({"phonemes": ps, "speed": speed, "wav": name, "peak": peak, "samples": int(len(audio))})
    with open(os.path.join(OUT, "hibari.json"), "w", encoding="utf-8") as f:
        json.dump({"package": "hibari-tts 0.2.1", "sample_rate": 24000, "g2p": g2p, "audio": audio_cases}, f,
                  ensure_ascii=False, indent=1)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    which = sys.argv[1:] or ["piper", "hibari"]
    if "piper" in which:
        piper_fixtures()
    if "hibari" in which:
        hibari_fixtures()
    print(f"fixtures written to {os.path.relpath(OUT, ROOT)}", file=sys.stderr)
