"""Time to the first audio byte of a streamed two-sentence request, alternating between several
running timbre servers (an A/B of two builds in the same minutes; issue 5's first-byte target).

    python3 scripts/bench/tts_first_byte.py 127.0.0.1:8081 127.0.0.1:8082

Each server gets the request of tts.py's `ttfb` (pcm, stream_format=audio, the Piper voice) N
times (env N, default 30), in alternating order after one warm-up each; prints median and p90 per
server. Standard library only.
"""
import http.client
import json
import os
import statistics
import sys
import time

TEXT = "Thank you for calling. How can I help you today?"
VOICE = os.environ.get("VOICE", "en_US-joe-medium")


def first_byte(addr):
    host, port = addr.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port))
    body = json.dumps({"input": TEXT, "voice": VOICE, "response_format": "pcm", "stream_format": "audio"})
    t0 = time.perf_counter()
    c.request("POST", "/v1/audio/speech", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    first = r.read1(65536)
    t = time.perf_counter() - t0
    r.read()
    c.close()
    if r.status != 200 or not first:
        sys.exit(f"{addr}: status {r.status}, no audio")
    return t


def main():
    addrs = sys.argv[1:]
    if not addrs:
        sys.exit(__doc__)
    times = {a: [] for a in addrs}
    for a in addrs:
        first_byte(a)
    for i in range(int(os.environ.get("N", "30"))):
        for a in addrs if i % 2 == 0 else addrs[::-1]:
            times[a].append(first_byte(a))
    for a, ts in times.items():
        ts.sort()
        p90 = ts[max(0, int(len(ts) * 0.9) - 1)]
        print(f"{a}: median {statistics.median(ts) * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms (n={len(ts)})")


if __name__ == "__main__":
    main()
