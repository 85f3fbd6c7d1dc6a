"""Peer server for scripts/bench/streams.sh: Signify's backend design, minimal.

One asyncio `websockets` server; each message is a JSON keypoint frame
{"t": ms, "keypoints": [[x, y, z] x 21]}; the handler normalises the hand (wrist-relative,
then palm-length scale: the same preprocessing timbre's manifest asks for), runs the ONNX
model with onnxruntime ([1,1,21,3] -> [1,26]), applies softmax, smooths with a sliding
window majority vote (SLIDING_WINDOW_SIZE frames, collections.deque + Counter) and replies
{"type", "t", "label", "confidence", "smoothed": {"label", "confidence"}, "hand",
"latency_ms"}: the same reply timbre sends, computed the same way.

    python signify_server.py MODEL.onnx LABELS.txt PORT

onnxruntime runs with one intra-op thread (the default, one per core with spinning threads,
only burns CPU on a model this small) and inference runs inline on the event loop, as in
Signify's server.
"""

import asyncio
import collections
import json
import sys
import time

import numpy as np
import onnxruntime as ort
import websockets

SLIDING_WINDOW_SIZE = 5
MIN_CONFIDENCE = 0.5


def main() -> None:
    model, labels_path, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    labels = [l.strip() for l in open(labels_path, encoding="utf-8") if l.strip()]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    async def handler(ws):
        window = collections.deque(maxlen=SLIDING_WINDOW_SIZE)
        async for message in ws:
            received = time.perf_counter()
            try:
                frame = json.loads(message)
                kp = np.asarray(frame["keypoints"], dtype=np.float32).reshape(21, 3)
            except (ValueError, KeyError, TypeError) as e:
                await ws.send(json.dumps({"type": "error", "message": str(e)}))
                continue
            kp = kp - kp[0]
            palm = float(np.linalg.norm(kp[9]))
            if palm > 1e-7:
                kp = kp / palm
            logits = session.run(None, {input_name: kp.reshape(1, 1, 21, 3)})[0][0]
            p = np.exp(logits - logits.max())
            p /= p.sum()
            top = int(p.argmax())
            window.append(p)
            votes = collections.Counter(int(q.argmax()) for q in window if q.max() >= MIN_CONFIDENCE)
            smoothed = {"label": None, "confidence": 0.0}
            if votes:
                best = votes.most_common(1)[0][0]
                conf = float(sum(q[best] for q in window) / len(window))
                if conf >= MIN_CONFIDENCE:
                    smoothed = {"label": labels[best], "confidence": conf}
            await ws.send(json.dumps({
                "type": "prediction", "t": frame.get("t"), "label": labels[top],
                "confidence": float(p[top]), "smoothed": smoothed, "hand": True,
                "latency_ms": round((time.perf_counter() - received) * 1000, 3),
            }))

    async def serve():
        async with websockets.serve(handler, "127.0.0.1", port, max_queue=None, compression=None):
            print(f"listening on {port}", flush=True)
            await asyncio.Future()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
