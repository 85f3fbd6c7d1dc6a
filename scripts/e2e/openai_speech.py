"""The official OpenAI Python client against timbre's speech API.

    "$(scripts/reference/tts_venv.sh)" scripts/e2e/openai_speech.py http://127.0.0.1:8080/v1 OUT_DIR

Runs `client.audio.speech.create` (mp3 default, then wav) and
`client.audio.speech.with_streaming_response.create` (pcm, iterating over chunks), writes what
came back into OUT_DIR (speech.mp3, speech.wav, streamed.pcm), checks the client raised nothing,
and that an unknown voice raises the client's NotFoundError carrying timbre's error envelope.
Prints one JSON line with what it saw; the caller decodes the files and checks them.
"""
import json
import os
import sys
import time

import openai
from openai import OpenAI

base, out = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base, api_key=os.environ.get("TIMBRE_API_KEY", "unused"), max_retries=0, timeout=60)
seen = {"openai": openai.__version__}

speech = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello from the OpenAI client.")
speech.write_to_file(os.path.join(out, "speech.mp3"))
seen["mp3_content_type"] = speech.response.headers.get("content-type")

wav = client.audio.speech.create(model="tts-1-hd", voice="en_US-joe-medium", input="A wave file, please.",
                                 response_format="wav", speed=1.25)
wav.write_to_file(os.path.join(out, "speech.wav"))

t0 = time.perf_counter()
chunks = []
with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="echo", input="Streaming starts early. The rest follows as it is made.",
        response_format="pcm", extra_body={"stream_format": "audio"}) as response:
    for chunk in response.iter_bytes():
        if not chunks:
            seen["first_chunk_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        chunks.append(chunk)
with open(os.path.join(out, "streamed.pcm"), "wb") as f:
    f.write(b"".join(chunks))
seen["chunks"] = len(chunks)

try:
    client.audio.speech.create(model="tts-1", voice="nobody", input="Hi.")
    seen["unknown_voice"] = "no error"
except openai.NotFoundError as e:
    seen["unknown_voice"] = e.status_code
    seen["unknown_voice_param"] = e.body.get("param") if isinstance(e.body, dict) else None
print(json.dumps(seen))
