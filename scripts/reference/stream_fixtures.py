#!/usr/bin/env python3
"""Write the stream-classifier reference fixtures for the Rust engine into tests/fixtures/onnx/.

Python onnxruntime (scripts/reference/requirements.txt, the version scripts/fetch-runtime
ships) is the reference. Run it from the reference venv, after building the models:

    scripts/train-stream-demo --only signify-letters-test
    "$(scripts/reference/venv.sh)" scripts/reference/stream_fixtures.py

Outputs (committed, small):
  stream_letters_input.f32      30 frames x 21 x [x, y, z] raw keypoints, little-endian f32:
                                the 26 letter poses of scripts/lib/stream_models.py (letter i
                                at frame i) placed, sized and tilted at random with noise, then
                                4 random-curl hands. numpy default_rng(2024) (PCG64).
  stream_letters_outputs.json   for each frame: probabilities (softmax of the model's logits
                                after `wrist-relative` + `scale` normalisation in float32, the
                                engine's order) and the top label; the model's sha256.

Sessions: CPU provider, one intra-op and one inter-op thread.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
import stream_models as sm  # noqa: E402

EXPECTED_ORT = "1.31.1"


def normalize_f32(kp: np.ndarray) -> np.ndarray:
    kp = kp.astype(np.float32)
    kp = kp - kp[0]
    palm = np.float32(np.sqrt(np.sum(kp[9] * kp[9], dtype=np.float32)))
    return kp / palm if palm > np.finfo(np.float32).eps else kp


def frames() -> np.ndarray:
    rng = np.random.default_rng(2024)
    out = []
    for curls, angle in zip(sm.LETTER_CURLS, sm.LETTER_ANGLES):
        kp = sm.hand(curls, angle + rng.normal(0, 0.05), rng.uniform(0.1, 0.3),
                     (rng.uniform(0.2, 0.8), rng.uniform(0.3, 0.9), rng.normal(0, 0.02)))
        out.append(kp + rng.normal(0, 0.002, kp.shape))
    for _ in range(4):
        kp = sm.hand(rng.uniform(0, 1, 5), rng.normal(0, 0.3), rng.uniform(0.1, 0.3), (0.5, 0.6, 0.0))
        out.append(kp)
    return np.stack(out).astype(np.float32)


def main() -> int:
    if ort.__version__ != EXPECTED_ORT:
        print(f"onnxruntime {ort.__version__} != {EXPECTED_ORT}: use scripts/reference/venv.sh", file=sys.stderr)
        return 1
    model = ROOT / "models" / "signify-letters-test" / "model.onnx"
    if not model.is_file():
        print(f"{model} missing: run scripts/train-stream-demo", file=sys.stderr)
        return 1
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    raw = frames()
    probs, tops = [], []
    for kp in raw:
        x = normalize_f32(kp).reshape(1, 1, 21, 3)
        logits = sess.run(["output"], {"input": x})[0][0].astype(np.float64)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        probs.append([float(np.float32(v)) for v in p])
        tops.append(sm.LETTERS[int(p.argmax())])
    out = ROOT / "tests" / "fixtures" / "onnx"
    out.mkdir(parents=True, exist_ok=True)
    (out / "stream_letters_input.f32").write_bytes(raw.astype("<f4").tobytes())
    doc = {
        "model": "signify-letters-test",
        "model_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        "onnxruntime": ort.__version__,
        "frames": len(raw),
        "labels": sm.LETTERS,
        "top": tops,
        "probabilities": probs,
    }
    (out / "stream_letters_outputs.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(raw)} frames; top labels {''.join(tops)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
