"""TTS benchmark driver (see scripts/bench/tts.sh for what it measures and how to run it).

Runs inside the TTS venv: piper-tts and hibari-tts in-process as the peers, timbre through its
HTTP API (a `timbre serve` the shell script started), faster-whisper as the intelligibility judge.
"""
import argparse
import concurrent.futures as cf
import http.client
import io
import json
import os
import re
import statistics
import sys
import time
import wave

import numpy as np


def log(*a):
    print("tts.py:", *a, file=sys.stderr, flush=True)


def post(addr, body, stream=False):
    host, port = addr.split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=120)
    c.request("POST", "/v1/audio/speech", body=json.dumps(body), headers={"Content-Type": "application/json"})
    return c, c.getresponse()


def timbre_wav(addr, text, voice):
    """One request; (wall seconds, audio seconds, wav bytes)."""
    t0 = time.perf_counter()
    c, r = post(addr, {"model": "tts-1", "input": text, "voice": voice, "response_format": "wav"})
    data = r.read()
    wall = time.perf_counter() - t0
    c.close()
    if r.status != 200:
        raise RuntimeError(f"timbre answered {r.status}: {data[:300]!r}")
    with wave.open(io.BytesIO(data)) as w:
        audio = w.getnframes() / w.getframerate()
    return wall, audio, data


def ttfb(addr, text, voice):
    t0 = time.perf_counter()
    c, r = post(addr, {"input": text, "voice": voice, "response_format": "pcm", "stream_format": "audio"})
    first = r.read1(65536) if hasattr(r, "read1") else r.read(1)
    t = time.perf_counter() - t0
    r.read()
    c.close()
    assert first, "no audio"
    return t


def piper_peer(model, threads):
    import onnxruntime as ort
    from piper import PiperVoice
    from piper.config import PiperConfig

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    with open(model + ".json", encoding="utf-8") as f:
        config = PiperConfig.from_dict(json.load(f))
    voice = PiperVoice(session=ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"]),
                       config=config)

    def synth(text):
        t0 = time.perf_counter()
        n = sum(len(c.audio_float_array) for c in voice.synthesize(text))
        return time.perf_counter() - t0, n / config.sample_rate
    return synth


def hibari_peer(threads):
    from hibari import Hibari

    tts = Hibari(threads=threads)

    def synth(text):
        t0 = time.perf_counter()
        a = tts(text)
        return time.perf_counter() - t0, len(a) / 24000
    return synth


# The options timbre's espeak-ng processes run with (tts/piper/espeak.rs `FAST_ARGS`): they cut
# the audio rendering the command line does and throws away; the IPA is the same.
ESPEAK = ["espeak-ng", "-q", "--ipa", "-s", "440", "-p", "99", "-z", "-v", "en-us"]


def espeak_costs(sentences):
    """Per sentence: spawning `espeak-ng` for it vs one long-lived process reading lines (what
    timbre does, sentinel line included), both with timbre's options. Wall milliseconds, medians."""
    import subprocess

    spawn = []
    for s in sentences:
        t0 = time.perf_counter()
        subprocess.run(ESPEAK + [s], capture_output=True, check=True)
        spawn.append((time.perf_counter() - t0) * 1000)
    p = subprocess.Popen(ESPEAK, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, bufsize=1)
    p.stdin.write("qxqsentinelqxq\n")
    p.stdin.flush()
    sentinel = p.stdout.readline()
    pooled = []
    for s in sentences:
        t0 = time.perf_counter()
        p.stdin.write(s + "\nqxqsentinelqxq\n")
        p.stdin.flush()
        while p.stdout.readline() != sentinel:
            pass
        pooled.append((time.perf_counter() - t0) * 1000)
    p.kill()
    return statistics.median(spawn), statistics.median(pooled)


def rtf(pairs):
    return sum(w for w, _ in pairs) / sum(a for _, a in pairs)


def compare(name, sentences, ours, theirs, passes):
    """Interleaved passes (timbre, peer, peer, timbre, …); RTF over all sentences of all passes."""
    o, t = [], []
    for p in range(passes):
        order = (ours, theirs) if p % 2 == 0 else (theirs, ours)
        for fn in order:
            rows = [fn(s) for s in sentences]
            (o if fn is ours else t).extend(rows)
    r_o, r_t = rtf(o), rtf(t)
    log(f"{name}: timbre RTF {r_o:.4f}, peer RTF {r_t:.4f}")
    return r_o, r_t


def words(s):
    s = s.lower().replace("-", " ")
    return re.sub(r"[^a-z0-9' ]+", " ", s).split()


def wer(ref, hyp):
    r, h = words(ref), words(hyp)
    d = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        prev, d[0] = d[0], i
        for j, hw in enumerate(h, 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (rw != hw))
            prev, d[j] = d[j], cur
    return d[len(h)], len(r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--sentences", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    sentences = [l.strip() for l in open(a.sentences, encoding="utf-8") if l.strip()]
    piper_voice, hibari_voice = "en_US-joe-medium", "heart"
    results = {"threads": a.threads, "sentences": len(sentences)}
    results["espeak_ms"] = espeak_costs(sentences)
    log("espeak-ng per sentence: spawn %.1f ms, long-lived process %.1f ms" % results["espeak_ms"])

    # Warm-up both sides.
    for v in (piper_voice, hibari_voice):
        timbre_wav(a.addr, "Warm up.", v)
    piper = piper_peer(os.path.join(a.models, "piper-en_US-joe-medium", "en_US-joe-medium.onnx"), a.threads)
    hibari = hibari_peer(a.threads)
    piper("Warm up.")
    hibari("Warm up.")

    ours = lambda v: (lambda s: timbre_wav(a.addr, s, v)[:2])
    results["piper"] = compare("piper", sentences, ours(piper_voice), piper, a.passes)
    results["hibari"] = compare("hibari", sentences, ours(hibari_voice), hibari, a.passes)

    # Throughput: one at a time vs 4 concurrent requests, audio seconds per wall second.
    for v, key in ((piper_voice, "piper_concurrency"), (hibari_voice, "hibari_concurrency")):
        t0 = time.perf_counter()
        audio = sum(timbre_wav(a.addr, s, v)[1] for s in sentences)
        seq = audio / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(4) as ex:
            audio = sum(r[1] for r in ex.map(lambda s: timbre_wav(a.addr, s, v), sentences))
        par = audio / (time.perf_counter() - t0)
        results[key] = (seq, par)
        log(f"{key}: one at a time {seq:.1f} s/s, 4 concurrent {par:.1f} s/s ({par / seq:.2f}x)")

    # Time to first audio byte, two-sentence streamed request.
    two = "Thank you for calling. How can I help you today?"
    for v, key in ((piper_voice, "piper_ttfb"), (hibari_voice, "hibari_ttfb")):
        ts = sorted(ttfb(a.addr, two, v) for _ in range(15))
        results[key] = (statistics.median(ts), ts[-2])
        log(f"{key}: median {results[key][0] * 1000:.1f} ms, p90 {results[key][1] * 1000:.1f} ms")

    # Intelligibility: faster-whisper transcribes timbre's audio.
    from faster_whisper import WhisperModel

    judge = WhisperModel(os.path.join(a.models, "whisper-tiny.en"), device="cpu", compute_type="int8",
                         cpu_threads=a.threads)
    os.makedirs(a.out, exist_ok=True)
    for v, key in ((piper_voice, "piper_wer"), (hibari_voice, "hibari_wer")):
        errors = total = 0
        misses = []
        for i, s in enumerate(sentences):
            _, _, data = timbre_wav(a.addr, s, v)
            path = os.path.join(a.out, f"{v}-{i:02d}.wav")
            with open(path, "wb") as f:
                f.write(data)
            segs, _ = judge.transcribe(path, beam_size=5, language="en")
            hyp = " ".join(seg.text for seg in segs)
            e, n = wer(s, hyp)
            errors, total = errors + e, total + n
            if e:
                misses.append((s, hyp.strip()))
        results[key] = (errors / total, errors, total, misses)
        log(f"{key}: WER {errors / total:.3f} ({errors}/{total})")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
