#!/usr/bin/env python3
"""Helper behind scripts/train-stream-demo (see that file for the user-facing flags).

Builds the stream-classifier models timbre ships for its keypoint WebSocket
(`WS /v1/streams/{model}`), from synthetic hand keypoints — no data set, no torch:

  signify-letters-test  Signify's exact interface: input `input` f32[1,1,21,3] -> output
                        `output` f32[1,26] (logits, letters A-Z). A nearest-prototype
                        classifier (Reshape -> Gemm) whose 26 prototype hand poses are
                        defined below, so tests know which letter a pose must give. A
                        user's own `lstm_best_acc0.9946.onnx` drops in with the same
                        manifest.
  gesture-demo          DEMO: 6 gestures (open_palm, fist, point, thumbs_up, wave, beckon)
                        from a window of 16 frames, input `keypoints` f32[1,16,63] ->
                        `probabilities` f32[1,6]; an MLP trained with numpy.
  gesture-demo-rnn      DEMO: the same 6 gestures frame by frame with recurrent state:
                        `keypoints` f32[1,63] + `state` f32[1,126] -> `probabilities`
                        f32[1,6] + `state_out` f32[1,126] (two leaky integrators feeding
                        an MLP trained with numpy).

The demo models are trained on synthetic hands (a parametric 21-point hand with finger
curls, in-plane rotation, scale, position and noise), not on real people: they show the
protocol end to end and nothing about real-world accuracy.

Each model lands in models/<name>/ with model.onnx, labels.txt and model.toml (the
registry's manifest, with a [stream] table). `--check` (standard library only) exits 0
when every model is present, at this generator version, and matches the sha256 in its
manifest; the wrapper then skips the venv entirely, so a re-run takes well under a second.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import tomllib
from pathlib import Path

# The same checksum the model fetcher writes into manifests (this directory is on sys.path).
from fetch_models import sha256_file

PREFIX = "[train-stream-demo]"
# Bump when a model's graph, training or manifest changes: older copies are rebuilt.
GENERATOR_VERSION = "1"
MODEL_NAMES = ["signify-letters-test", "gesture-demo", "gesture-demo-rnn"]
LETTERS = [chr(ord("A") + i) for i in range(26)]
GESTURES = ["open_palm", "fist", "point", "thumbs_up", "wave", "beckon"]
WINDOW = 16
FPS = 30


def log(msg: str) -> None:
    print(f"{PREFIX} {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# --check: standard library only
# --------------------------------------------------------------------------------------
def up_to_date(model_dir: Path) -> str | None:
    """None when the model is current, else why not."""
    manifest = model_dir / "model.toml"
    if not manifest.is_file():
        return "not built"
    try:
        with open(manifest, "rb") as f:
            man = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        return f"unreadable model.toml ({e})"
    if man.get("source", {}).get("version") != GENERATOR_VERSION:
        return "built by another generator version"
    for entry in man.get("files", []):
        path = model_dir / entry["path"]
        if not path.is_file() or path.stat().st_size != entry.get("bytes"):
            return f"{path} missing or resized"
        if sha256_file(path) != entry.get("sha256"):
            return f"{path} differs from its sha256"
    return None


# --------------------------------------------------------------------------------------
# Synthetic hands (numpy from here on)
# --------------------------------------------------------------------------------------
def np_module():
    import numpy as np  # noqa: PLC0415 (only after --check)
    return np


# MediaPipe's 21 landmarks: 0 wrist; thumb 1-4; index 5-8; middle 9-12; ring 13-16; pinky 17-20.
# Palm frame: x to the right (thumb side), y up, z towards the camera; wrist at the origin,
# wrist -> middle MCP length 1.
FINGER_BASES = [(0.45, 0.25), (0.28, 0.95), (0.0, 1.0), (-0.25, 0.92), (-0.45, 0.8)]
FINGER_DIRS = [(0.85, 0.53), (0.1, 1.0), (0.0, 1.0), (-0.1, 1.0), (-0.2, 1.0)]
SEGMENTS = [(0.35, 0.3), (0.45, 0.28, 0.22), (0.5, 0.3, 0.24), (0.46, 0.28, 0.22), (0.36, 0.22, 0.2)]


def hand(curls, angle=0.0, scale=0.2, origin=(0.5, 0.7, 0.0)):
    """21 x 3 keypoints in image coordinates (x right, y down, like MediaPipe) for finger
    curls in [0, 1] (thumb, index, middle, ring, pinky), an in-plane rotation (radians), a
    hand size (wrist -> middle MCP) and the wrist position."""
    np = np_module()
    pts = [np.zeros(3)]
    for f in range(5):
        bx, by = FINGER_BASES[f]
        dx, dy = FINGER_DIRS[f]
        norm = (dx * dx + dy * dy) ** 0.5
        d = np.array([dx / norm, dy / norm, 0.0])
        base = np.array([bx * 0.6, by * 0.55, 0.0]) if f == 0 else np.array([bx, by, 0.0])
        if f == 0:
            pts.append(base * 0.5)  # thumb CMC between the wrist and the thumb MCP
        pts.append(base)
        p = base.copy()
        bend = 0.0
        for seg in SEGMENTS[f]:
            bend += curls[f] * (0.9 if f == 0 else 1.35)
            # Curling turns the segment from the finger direction towards the palm (-z) and back.
            step = d * np.cos(bend) + np.array([0.0, 0.0, -1.0]) * np.sin(bend)
            if f == 0:
                step = step + np.array([-0.6, 0.0, 0.0]) * np.sin(bend)  # thumb folds across
            p = p + seg * step
            pts.append(p.copy())
    assert len(pts) == 21
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    out = np.array(pts) @ rot.T * scale
    out[:, 1] = -out[:, 1]  # image y grows downwards
    return out + np.array(origin)


def normalize(kp):
    """The engine's `wrist-relative` + `scale`: subtract the wrist, divide by the wrist ->
    middle-finger-MCP distance (left as is when that is 0)."""
    np = np_module()
    kp = kp - kp[0]
    palm = float(np.linalg.norm(kp[9]))
    return kp / palm if palm > 0 else kp


# 26 letter prototypes: distinct finger-curl patterns, a few of them rotated.
LETTER_CURLS = [
    (0, 0, 0, 0, 0), (1, 1, 1, 1, 1), (1, 0, 1, 1, 1), (0, 1, 1, 1, 1), (1, 0, 0, 1, 1),
    (1, 0, 0, 0, 1), (1, 1, 1, 1, 0), (0, 1, 1, 1, 0), (0, 0, 1, 1, 1), (1, 1, 0, 0, 0),
    (1, 0, 0, 0, 0), (0, 0, 0, 1, 1), (1, 1, 0, 1, 1), (1, 1, 1, 0, 1), (0, 1, 0, 1, 1),
    (1, 0, 1, 0, 1), (0, 0, 1, 0, 0), (1, 0, 1, 1, 0), (0, 1, 1, 0, 0), (1, 1, 1, 0, 0),
    (0.5, 0.5, 0.5, 0.5, 0.5), (1, 0.5, 0.5, 0.5, 0.5), (0, 0.5, 0.5, 0.5, 0.5),
    (1, 0, 0.5, 1, 1), (0.5, 1, 1, 1, 1), (1, 0.5, 1, 1, 1),
]
LETTER_ANGLES = [0.0] * 20 + [0.0, 0.0, 0.0, 0.6, -0.6, 0.6]


def letter_prototypes():
    np = np_module()
    return np.stack([normalize(hand(c, a)) for c, a in zip(LETTER_CURLS, LETTER_ANGLES)])


# --------------------------------------------------------------------------------------
# ONNX graphs
# --------------------------------------------------------------------------------------
def tensor(name, array):
    from onnx import numpy_helper  # noqa: PLC0415
    np = np_module()
    return numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name)


def save(graph, path: Path) -> None:
    import onnx  # noqa: PLC0415
    from onnx import helper  # noqa: PLC0415
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="timbre scripts/train-stream-demo")
    model.ir_version = 8  # readable by every onnxruntime >= 1.10
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())


def build_letters(path: Path) -> None:
    """logits_k = (2 x.p_k - |p_k|^2) / T: -|x - p_k|^2 / T up to a term equal for every k."""
    from onnx import TensorProto, helper  # noqa: PLC0415
    np = np_module()
    protos = letter_prototypes().reshape(26, 63).astype(np.float64)
    temperature = 0.05
    w = (2.0 * protos.T) / temperature  # [63, 26]
    b = -(protos * protos).sum(axis=1) / temperature
    nodes = [
        helper.make_node("Reshape", ["input", "flat_shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "W", "B"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, "signify_letters_test",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 21, 3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 26])],
        [tensor("W", w), tensor("B", b),
         helper.make_tensor("flat_shape", TensorProto.INT64, [2], [1, 63])],
    )
    save(graph, path)


# Gesture sequences: (curls, angle) at time t seconds, per class; phase/jitter random.
def gesture_frames(np, rng, cls: int, n: int):
    phase = rng.uniform(0, 2 * np.pi)
    base_angle = rng.normal(0, 0.12)
    scale = rng.uniform(0.12, 0.3)
    origin = (rng.uniform(0.25, 0.75), rng.uniform(0.4, 0.85), 0.0)
    jitter = rng.normal(0, 0.05, 5)
    freq = rng.uniform(1.6, 2.6)
    frames = []
    for i in range(n):
        t = i / FPS
        wobble = 0.03 * np.sin(2 * np.pi * 0.7 * t + phase)
        name = GESTURES[cls]
        angle = base_angle + wobble
        if name == "open_palm":
            curls = [0.05, 0.05, 0.05, 0.05, 0.05]
        elif name == "fist":
            curls = [0.95, 0.95, 0.95, 0.95, 0.95]
        elif name == "point":
            curls = [0.95, 0.05, 0.95, 0.95, 0.95]
        elif name == "thumbs_up":
            curls = [0.05, 0.95, 0.95, 0.95, 0.95]
            angle += np.pi / 2
        elif name == "wave":
            curls = [0.05, 0.05, 0.05, 0.05, 0.05]
            angle += 0.45 * np.sin(2 * np.pi * freq * t + phase)
        else:  # beckon: the four fingers curl and open again
            c = 0.5 - 0.45 * np.cos(2 * np.pi * freq * t + phase)
            curls = [0.3, c, c, c, c]
        curls = np.clip(np.array(curls) + jitter, 0, 1)
        kp = hand(curls, angle, scale, origin) + rng.normal(0, 0.004 * scale / 0.2, (21, 3))
        frames.append(normalize(kp).reshape(63))
    return np.stack(frames)


def train_mlp(np, rng, x, y, classes: int, hidden: int = 64, epochs: int = 120, lr: float = 3e-3):
    """Softmax regression through one ReLU layer, Adam, minibatches of 128."""
    n, d = x.shape
    params = {
        "w1": rng.normal(0, (2.0 / d) ** 0.5, (d, hidden)), "b1": np.zeros(hidden),
        "w2": rng.normal(0, (2.0 / hidden) ** 0.5, (hidden, classes)), "b2": np.zeros(classes),
    }
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    onehot = np.eye(classes)[y]
    step = 0
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, 128):
            idx = order[start:start + 128]
            xb, tb = x[idx], onehot[idx]
            h = np.maximum(xb @ params["w1"] + params["b1"], 0)
            logits = h @ params["w2"] + params["b2"]
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            g = (p - tb) / len(idx)
            grads = {"w2": h.T @ g, "b2": g.sum(0)}
            gh = (g @ params["w2"].T) * (h > 0)
            grads["w1"] = xb.T @ gh
            grads["b1"] = gh.sum(0)
            step += 1
            for k in params:
                m[k] = 0.9 * m[k] + 0.1 * grads[k]
                v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
                mh = m[k] / (1 - 0.9 ** step)
                vh = v[k] / (1 - 0.999 ** step)
                params[k] -= lr * mh / (np.sqrt(vh) + 1e-8)
    return params


def accuracy(np, params, x, y) -> float:
    h = np.maximum(x @ params["w1"] + params["b1"], 0)
    return float(((h @ params["w2"] + params["b2"]).argmax(1) == y).mean())


def window_dataset(np, rng, per_class: int):
    xs, ys = [], []
    for cls in range(len(GESTURES)):
        for _ in range(per_class):
            xs.append(gesture_frames(np, rng, cls, WINDOW).reshape(-1))
            ys.append(cls)
    return np.stack(xs), np.array(ys)


def mlp_nodes(helper, src: str, out: str):
    return [
        helper.make_node("Gemm", [src, "w1", "b1"], ["h_pre"]),
        helper.make_node("Relu", ["h_pre"], ["h"]),
        helper.make_node("Gemm", ["h", "w2", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [out], axis=-1),
    ]


def mlp_initializers(params):
    return [tensor(k, params[k]) for k in ("w1", "b1", "w2", "b2")]


def build_gesture_window(path: Path, seed: int) -> float:
    from onnx import TensorProto, helper  # noqa: PLC0415
    np = np_module()
    rng = np.random.default_rng(seed)
    x, y = window_dataset(np, rng, 120)
    params = train_mlp(np, rng, x, y, len(GESTURES), epochs=40)
    xt, yt = window_dataset(np, np.random.default_rng(seed + 1), 60)
    acc = accuracy(np, params, xt, yt)
    nodes = [helper.make_node("Reshape", ["keypoints", "flat_shape"], ["flat"])] + mlp_nodes(
        helper, "flat", "probabilities")
    graph = helper.make_graph(
        nodes, "gesture_demo_window",
        [helper.make_tensor_value_info("keypoints", TensorProto.FLOAT, [1, WINDOW, 63])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, len(GESTURES)])],
        mlp_initializers(params) + [helper.make_tensor("flat_shape", TensorProto.INT64, [2], [1, WINDOW * 63])],
    )
    save(graph, path)
    return acc


RNN_DECAY = 0.8  # leaky integrators: s = d * s + (1 - d) * input


def rnn_features(np, frames):
    """Per frame: [x, x - s1, s2] with s1 = leak(x), s2 = leak(|x - s1|): position, motion,
    motion energy. Returns features for every frame (state starts at zero)."""
    s1 = np.zeros(63)
    s2 = np.zeros(63)
    feats = []
    for x in frames:
        s1 = RNN_DECAY * s1 + (1 - RNN_DECAY) * x
        diff = x - s1
        s2 = RNN_DECAY * s2 + (1 - RNN_DECAY) * np.abs(diff)
        feats.append(np.concatenate([x, diff, s2]))
    return np.stack(feats)


def rnn_dataset(np, rng, per_class: int):
    xs, ys = [], []
    for cls in range(len(GESTURES)):
        for _ in range(per_class):
            f = rnn_features(np, gesture_frames(np, rng, cls, 36))
            xs.append(f[20:])  # after the integrators settled
            ys += [cls] * (len(f) - 20)
    return np.concatenate(xs), np.array(ys)


def build_gesture_rnn(path: Path, seed: int) -> float:
    from onnx import TensorProto, helper  # noqa: PLC0415
    np = np_module()
    rng = np.random.default_rng(seed)
    x, y = rnn_dataset(np, rng, 60)
    params = train_mlp(np, rng, x, y, len(GESTURES), epochs=20)
    xt, yt = rnn_dataset(np, np.random.default_rng(seed + 1), 30)
    acc = accuracy(np, params, xt, yt)
    d = RNN_DECAY
    nodes = [
        helper.make_node("Split", ["state", "split_sizes"], ["s1_prev", "s2_prev"], axis=1),
        helper.make_node("Mul", ["s1_prev", "decay"], ["s1_kept"]),
        helper.make_node("Mul", ["keypoints", "gain"], ["x_in"]),
        helper.make_node("Add", ["s1_kept", "x_in"], ["s1"]),
        helper.make_node("Sub", ["keypoints", "s1"], ["diff"]),
        helper.make_node("Abs", ["diff"], ["energy"]),
        helper.make_node("Mul", ["s2_prev", "decay"], ["s2_kept"]),
        helper.make_node("Mul", ["energy", "gain"], ["e_in"]),
        helper.make_node("Add", ["s2_kept", "e_in"], ["s2"]),
        helper.make_node("Concat", ["s1", "s2"], ["state_out"], axis=1),
        helper.make_node("Concat", ["keypoints", "diff", "s2"], ["features"], axis=1),
    ] + mlp_nodes(helper, "features", "probabilities")
    graph = helper.make_graph(
        nodes, "gesture_demo_rnn",
        [helper.make_tensor_value_info("keypoints", TensorProto.FLOAT, [1, 63]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [1, 126])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, len(GESTURES)]),
         helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [1, 126])],
        mlp_initializers(params) + [
            tensor("decay", np.array([d])), tensor("gain", np.array([1 - d])),
            helper.make_tensor("split_sizes", TensorProto.INT64, [2], [63, 63])],
    )
    save(graph, path)
    return acc


# --------------------------------------------------------------------------------------
# Manifests
# --------------------------------------------------------------------------------------
def toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def write_model(models_dir: Path, name: str, description: str, labels: list[str], stream: str,
                build) -> str:
    tmp = models_dir / f".tmp-{name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    note = build(tmp / "model.onnx")
    (tmp / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    lines = [
        "# Written by scripts/train-stream-demo; rebuilt when GENERATOR_VERSION changes.",
        f"name = {toml_str(name)}",
        'family = "stream-classifier"',
        'capability = "stream-classification"',
        "required = false",
        'license = "Apache-2.0"',
        f"description = {toml_str(description)}",
        'labels = "labels.txt"',
        "",
        "[source]",
        'registry = "generated"',
        'package = "scripts/train-stream-demo"',
        f"version = {toml_str(GENERATOR_VERSION)}",
        "",
        stream.strip(),
    ]
    for path, role in (("model.onnx", "onnx"), ("labels.txt", "labels")):
        p = tmp / path
        lines += ["", "[[files]]", f"path = {toml_str(path)}", f"role = {toml_str(role)}",
                  f"sha256 = {toml_str(sha256_file(p))}", f"bytes = {p.stat().st_size}"]
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)
    (tmp / "model.toml").write_text(text, encoding="utf-8")
    final = models_dir / name
    if final.is_symlink() or final.is_file():
        final.unlink()
    elif final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    return note


LETTERS_STREAM = """
[stream]
input = "input"
output = "output"
layout = "frame"
scores = "logits"
frame_rate = 30
normalize = ["wrist-relative", "scale"]
min_confidence = 0.5
min_presence = 0.5

[stream.smoothing]
method = "majority"
frames = 5
"""

WINDOW_STREAM = f"""
[stream]
input = "keypoints"
output = "probabilities"
layout = "window"
window = {WINDOW}
stride = 4
scores = "probabilities"
frame_rate = {FPS}
normalize = ["wrist-relative", "scale"]
min_confidence = 0.6
min_presence = 0.5

[stream.smoothing]
method = "majority"
frames = 3
"""

RNN_STREAM = f"""
[stream]
input = "keypoints"
output = "probabilities"
layout = "recurrent"
scores = "probabilities"
frame_rate = {FPS}
normalize = ["wrist-relative", "scale"]
min_confidence = 0.6
min_presence = 0.5

[[stream.state]]
input = "state"
output = "state_out"

[stream.smoothing]
method = "ema"
alpha = 0.3
"""


def build(models_dir: Path, names: list[str]) -> None:
    models_dir.mkdir(parents=True, exist_ok=True)
    specs = {
        "signify-letters-test": (
            "TEST MODEL with Signify's interface: input f32[1,1,21,3] -> output f32[1,26] logits "
            "(A-Z). Nearest-prototype classifier over 26 synthetic hand poses "
            "(scripts/lib/stream_models.py); not a sign-language model.",
            LETTERS, LETTERS_STREAM, lambda p: build_letters(p) or "26 prototypes"),
        "gesture-demo": (
            "DEMO: 6 synthetic hand gestures from a 16-frame window (MLP trained with numpy on "
            "synthetic keypoints; not trained on real hands).",
            GESTURES, WINDOW_STREAM, lambda p: f"held-out accuracy {build_gesture_window(p, 8):.3f}"),
        "gesture-demo-rnn": (
            "DEMO: 6 synthetic hand gestures frame by frame with recurrent state (leaky integrators "
            "+ MLP trained with numpy on synthetic keypoints; not trained on real hands).",
            GESTURES, RNN_STREAM, lambda p: f"held-out accuracy {build_gesture_rnn(p, 9):.3f}"),
    }
    for name in names:
        started = time.monotonic()
        desc, labels, stream, fn = specs[name]
        note = write_model(models_dir, name, desc, labels, stream, fn)
        log(f"{name}: built ({note}, {time.monotonic() - started:.1f} s)")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="scripts/train-stream-demo")
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--check", action="store_true", help="exit 0 when every model is current")
    ap.add_argument("--force", action="store_true", help="rebuild even when current")
    ap.add_argument("--only", default="", help="comma-separated model names")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or MODEL_NAMES
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown:
        log(f"error: unknown model(s) {', '.join(unknown)}; known: {', '.join(MODEL_NAMES)}")
        return 2
    models_dir = args.root / "models"
    stale = {n: why for n in names if (why := up_to_date(models_dir / n))}
    if args.check:
        for n in names:
            log(f"{n}: {stale[n]}" if n in stale else f"{n}: ready (verified)")
        return 1 if stale else 0
    todo = names if args.force else [n for n in names if n in stale]
    for n in names:
        if n not in todo:
            log(f"{n}: ready (verified)")
    if todo:
        build(models_dir, todo)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
