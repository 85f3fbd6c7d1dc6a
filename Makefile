# timbre — the two commands a newcomer needs:
#   make run    fetch the ONNX Runtime and the models (first time only), build, serve :8080
#   make test   format check, clippy, every test in the workspace
# Everything they install is idempotent and cached in $(TIMBRE_CACHE) (default ~/.cache/timbre).

SHELL := /bin/bash
CARGO ?= cargo
export TIMBRE_CACHE ?= $(HOME)/.cache/timbre

.PHONY: run test setup runtime models test-tools testdata build fmt fmt-check clippy test-only bench-http bench-tagging bench-jobs bench-stt bench-stt-serve bench-tts bench-music clean-models

run: setup
	$(CARGO) build --release --locked -p timbre
	$(CARGO) run --release --locked -q -p timbre -- serve

test: setup test-tools testdata fmt-check clippy test-only

setup: runtime models

runtime:
	@scripts/fetch-runtime >/dev/null

models:
	@scripts/fetch-models
	@scripts/train-stream-demo

# Test sets the fidelity and accuracy tests read (idempotent): speech (target/testdata/speech),
# music songs (mma + fluidsynth renders with chart truth, cached in $(TIMBRE_CACHE)/testdata/music)
# and the peers' reference outputs written on this machine (target/testdata/{onnx,tts}: ONNX
# Runtime's kernels differ between AVX2 and AVX-512 CPUs, see crates/timbre-engines/tests/common).
testdata:
	@scripts/testdata/speech
	@scripts/testdata/music short >/dev/null
	@"$$(scripts/reference/venv.sh)" scripts/reference/ort_fixtures.py --out target/testdata/onnx >/dev/null
	@TTS_FIXTURES_OUT=target/testdata/tts "$$(scripts/reference/tts_venv.sh)" scripts/reference/tts_fixtures.py >/dev/null

# Tools the tests run against (a local S3-compatible server), built once into $(TIMBRE_CACHE)/tools.
test-tools:
	@scripts/install-test-tools >/dev/null

build:
	$(CARGO) build --release --locked -p timbre

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) clippy -p timbre-engines --features gpu --locked -- -D warnings

test-only:
	ORT_DYLIB_PATH="$${ORT_DYLIB_PATH:-$(CURDIR)/runtime/libonnxruntime.so}" $(CARGO) test --workspace --locked

bench-http:
	scripts/bench/http.sh

# Sound-tagging accuracy and speed (builds the clip set with scripts/testdata/sounds first).
bench-tagging: setup
	scripts/bench/tagging.sh

# Job queue throughput on SQLite and PostgreSQL against RQ on Redis.
bench-jobs:
	scripts/bench/jobs.sh

# Whisper speed against faster-whisper int8/float32 (builds the speech test set first).
bench-stt: setup
	scripts/bench/stt.sh

# Speech-to-text serving: HTTP one-at-a-time vs 4 concurrent, live-streaming latency.
bench-stt-serve: setup
	scripts/bench/stt_serve.sh

# Text-to-speech: RTF vs piper-tts and hibari-tts, concurrency, first byte, faster-whisper WER.
bench-tts: setup
	scripts/bench/tts.sh

clean-models:
	rm -rf models runtime
