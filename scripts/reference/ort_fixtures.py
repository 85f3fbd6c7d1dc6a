#!/usr/bin/env python3
"""Write ONNX reference fixtures for the Rust engine into tests/fixtures/onnx/.

Python onnxruntime (the version pinned in scripts/reference/requirements.txt, the same as
scripts/fetch-runtime) is the reference. Run it from the reference venv, after fetching models:

    scripts/fetch-models --only ced-tiny,silero-vad
    "$(scripts/reference/venv.sh)" scripts/reference/ort_fixtures.py

Outputs (all committed, small):
  ced_input.f32      2.0 s at 16 kHz, raw little-endian f32 (formula: ced_input() below)
  ced_logits.json    CED-tiny output for it ([1, 527]; already sigmoid probabilities)
  vad_input.f32      8 x 512 samples at 16 kHz, raw little-endian f32 (formula: vad_input())
  vad_outputs.json   Silero VAD per-chunk probabilities + final state, run chunk by chunk

Floats in the JSON are the shortest decimal strings that round-trip the f32 values.
Sessions: CPU provider, intra_op_num_threads = inter_op_num_threads = 1, default graph
optimization level — except CED-tiny, whose reference runs with graph optimization disabled:
every DequantizeLinear and MatMul node as the graph defines it, in f32. The default level
fuses those pairs into MatMulNBits with int8 activations, 2.1e-3 away from the graph's own
arithmetic (measured against the onnx package's reference evaluator; timbre computes them in
f32, see crates/timbre-engines/src/onnx/session.rs). Fails loudly when a model is missing or
differs from its model.toml.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort

EXPECTED_ORT = "1.31.1"
ROOT = Path(__file__).resolve().parents[2]
SR = 16000


# ---------------------------------------------------------------------------------------
# Deterministic inputs (reimplementable anywhere: float64 maths, cast to f32 at the end)
# ---------------------------------------------------------------------------------------
def lcg_noise(n: int, seed: int) -> np.ndarray:
    """Numerical Recipes LCG: s = (1664525 * s + 1013904223) mod 2^32, noise = s / 2^32 * 2 - 1
    (uniform in [-1, 1), one value per step, first value from the first update)."""
    out = np.empty(n, np.float64)
    s = seed & 0xFFFFFFFF
    for i in range(n):
        s = (1664525 * s + 1013904223) & 0xFFFFFFFF
        out[i] = s / 4294967296.0 * 2.0 - 1.0
    return out


def ced_input() -> np.ndarray:
    """2.0 s: x[n] = 0.25 sin(2pi 440 t) + 0.15 sin(2pi 1000 t) + 0.05 noise[n], t = n / 16000,
    noise = lcg_noise(seed 12345). |x| < 0.45."""
    n = np.arange(2 * SR, dtype=np.float64)
    t = n / SR
    x = 0.25 * np.sin(2 * math.pi * 440.0 * t) + 0.15 * np.sin(2 * math.pi * 1000.0 * t) \
        + 0.05 * lcg_noise(len(n), 12345)
    return x.astype(np.float32)


def vad_input() -> np.ndarray:
    """8 chunks of 512 samples at 16 kHz (n = global sample index, t = n / 16000):
      chunks 0-1: silence (0.0)
      chunks 2-5: 'vowel' = sum_{k=1..8} (0.3 / k) sin(2pi 150 k t) * (0.6 + 0.4 sin(2pi 4 t))
                  + 0.02 noise[n]
      chunks 6-7: 0.01 noise[n]
    noise = lcg_noise(seed 777) over the whole 4096 samples. |x| < 0.9."""
    n = np.arange(8 * 512, dtype=np.float64)
    t = n / SR
    noise = lcg_noise(len(n), 777)
    vowel = sum((0.3 / k) * np.sin(2 * math.pi * 150.0 * k * t) for k in range(1, 9))
    vowel = vowel * (0.6 + 0.4 * np.sin(2 * math.pi * 4.0 * t)) + 0.02 * noise
    x = np.zeros_like(n)
    x[2 * 512:6 * 512] = vowel[2 * 512:6 * 512]
    x[6 * 512:] = 0.01 * noise[6 * 512:]
    return x.astype(np.float32)


# ---------------------------------------------------------------------------------------
def die(msg: str) -> None:
    print(f"[ort_fixtures] error: {msg}", file=sys.stderr)
    sys.exit(1)


def model_file(name: str, path: str) -> tuple[Path, str]:
    """The model file, checked against models/<name>/model.toml; returns (path, sha256)."""
    mdir = ROOT / "models" / name
    manifest = mdir / "model.toml"
    if not manifest.is_file():
        die(f"{manifest} not found: run `scripts/fetch-models --only {name}` first")
    with open(manifest, "rb") as f:
        man = tomllib.load(f)
    entry = next((e for e in man.get("files", []) if e.get("path") == path), None)
    if entry is None:
        die(f"{manifest} lists no file {path}")
    p = mdir / path
    if not p.is_file():
        die(f"{p} missing: run `scripts/fetch-models --only {name}`")
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    if digest != entry["sha256"]:
        die(f"{p}: sha256 {digest} does not match model.toml ({entry['sha256']}); refetch it")
    return p, digest


def session(path: Path, optimize: bool = True) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def f32s(a: np.ndarray) -> list[float]:
    """Shortest decimals that round-trip each f32."""
    return [float(np.format_float_scientific(v, unique=True)) for v in
            np.asarray(a, np.float32).ravel()]


def io_desc(sess: ort.InferenceSession) -> dict:
    def d(x):
        # ints are fixed dims, strings named symbolic dims, null unnamed dynamic dims
        return {"name": x.name, "type": x.type, "shape": list(x.shape)}
    return {"inputs": [d(i) for i in sess.get_inputs()], "outputs": [d(o) for o in sess.get_outputs()]}


def write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def common_meta() -> dict:
    return {"generator": "scripts/reference/ort_fixtures.py", "onnxruntime": ort.__version__,
            "provider": "CPUExecutionProvider", "intra_op_num_threads": 1,
            "inter_op_num_threads": 1, "graph_optimization_level": "ORT_ENABLE_ALL (default)"}


# ---------------------------------------------------------------------------------------
def ced_fixture(out: Path) -> None:
    path, digest = model_file("ced-tiny", "tiny.onnx")
    labels = (ROOT / "models" / "ced-tiny" / "labels.txt").read_text(encoding="utf-8").splitlines()
    sess = session(path, optimize=False)
    inp, outp = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    x = ced_input()
    (out / "ced_input.f32").write_bytes(x.astype("<f4").tobytes())
    y = sess.run([outp], {inp: x[None, :]})[0]
    if y.shape != (1, 527):
        die(f"ced-tiny output shape {y.shape}, expected (1, 527)")
    top = np.argsort(-y[0], kind="stable")[:5]
    write_json(out / "ced_logits.json", {
        **common_meta(),
        "graph_optimization_level": "ORT_DISABLE_ALL (each node as the graph defines it)",
        "model": "models/ced-tiny/tiny.onnx", "model_sha256": digest,
        "io": io_desc(sess),
        "input_file": "ced_input.f32", "input_dtype": "f32le",
        "input_shape": [1, int(x.size)], "sample_rate": SR,
        "input_formula": ced_input.__doc__.strip(),
        "noise_formula": lcg_noise.__doc__.strip(),
        "input_name": inp, "output_name": outp,
        "note": "the graph ends in a Sigmoid: values are probabilities already (do not apply sigmoid again)",
        "top5": [{"index": int(i), "label": labels[i], "score": float(np.format_float_scientific(
            y[0, i], unique=True))} for i in top],
        "shape": list(y.shape),
        "values": f32s(y),
    })
    print(f"[ort_fixtures] ced-tiny: {inp}{[1, x.size]} -> {outp}{list(y.shape)}, "
          f"top: {labels[top[0]]} {y[0, top[0]]:.4f}")


def run_vad(sess: ort.InferenceSession, x: np.ndarray, chunk: int,
            ctx: int) -> tuple[list, np.ndarray, list]:
    names = {i.name for i in sess.get_inputs()}
    if names != {"input", "state", "sr"}:
        die(f"silero inputs are {sorted(names)}, expected input/state/sr")
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros((1, ctx), np.float32)
    probs = []
    out_names = [o.name for o in sess.get_outputs()]  # ["output", "stateN"]
    for c in range(len(x) // chunk):
        frame = np.concatenate([context, x[None, c * chunk:(c + 1) * chunk]], axis=1)  # [1, 576]
        prob, state = sess.run(out_names, {"input": frame, "state": state,
                                           "sr": np.array(SR, dtype=np.int64)})
        context = frame[:, -ctx:]  # last 64 samples of this chunk
        probs.append(float(prob.reshape(-1)[0]))
    return probs, state, out_names


def vad_fixture(out: Path) -> None:
    chunk, ctx = 512, 64
    x = vad_input()
    (out / "vad_input.f32").write_bytes(x.astype("<f4").tobytes())
    path, digest = model_file("silero-vad", "silero_vad.onnx")
    sess = session(path)
    probs, state, out_names = run_vad(sess, x, chunk, ctx)

    ipath, idigest = model_file("silero-vad", "silero_vad_op18_ifless.onnx")
    isess = session(ipath)
    iprobs, istate, _ = run_vad(isess, x, chunk, ctx)
    extra = {"ifless": {
        "model": "models/silero-vad/silero_vad_op18_ifless.onnx", "model_sha256": idigest,
        "io": io_desc(isess),
        "probabilities": f32s(np.array(iprobs)),
        "final_state": f32s(istate),
        "max_abs_diff_vs_main": {
            "probabilities": float(np.max(np.abs(np.array(iprobs) - np.array(probs)))),
            "final_state": float(np.max(np.abs(istate - state)))},
    }}
    write_json(out / "vad_outputs.json", {
        **common_meta(),
        "model": "models/silero-vad/silero_vad.onnx", "model_sha256": digest,
        "io": io_desc(sess),
        "input_names": {"audio": "input", "state": "state", "sample_rate": "sr"},
        "output_names": {"probability": out_names[0], "state": out_names[1]},
        "input_file": "vad_input.f32", "input_dtype": "f32le", "sample_rate": SR,
        "input_formula": vad_input.__doc__.strip(),
        "noise_formula": lcg_noise.__doc__.strip(),
        "chunk_samples": chunk, "context_samples": ctx, "chunks": len(probs),
        "context_convention": (
            "per chunk c: input = concat(context, x[512c : 512c+512]) as f32[1, 576]; context "
            "starts as 64 zeros and becomes the last 64 samples of that 576-sample input "
            "(= last 64 samples of chunk c); state starts as zeros f32[2, 1, 128] and is replaced "
            "by the 'stateN' output after every chunk; sr = int64 scalar (shape []) 16000. "
            "Same as silero_vad.utils_vad.OnnxWrapper."),
        "state_shape": [2, 1, 128],
        "probabilities": f32s(np.array(probs)),
        "final_state": f32s(state),
        **extra,
    })
    print(f"[ort_fixtures] silero-vad: probabilities {[round(p, 4) for p in probs]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "onnx")
    args = ap.parse_args()
    if ort.__version__ != EXPECTED_ORT:
        die(f"onnxruntime {ort.__version__} here, fixtures must come from {EXPECTED_ORT}: "
            "run with \"$(scripts/reference/venv.sh)\"")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    ced_fixture(out)
    vad_fixture(out)
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"[ort_fixtures] wrote {out} ({total / 1e3:.1f} kB)")


if __name__ == "__main__":
    main()
