"""Peer server for scripts/bench/http.sh.

The smallest FastAPI app that answers GET /health with the same JSON shape as timbre's
/health (status, ready, model_loaded, models, version, uptime_s) — the shape the seed
services (FastAPI + uvicorn) return. Run it the way those services run:

    uvicorn fastapi_health:app --app-dir scripts/bench/peers --workers 1
"""

import time

from fastapi import FastAPI

app = FastAPI()

_STARTED = time.monotonic()


@app.get("/health")
async def health() -> dict:
    return {
        "status": "healthy",
        "ready": True,
        "model_loaded": True,
        "models": {},
        "version": "0.1.0",
        "uptime_s": round(time.monotonic() - _STARTED, 3),
    }
