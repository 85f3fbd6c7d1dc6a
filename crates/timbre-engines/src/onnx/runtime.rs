//! The ONNX Runtime shared library is loaded at run time (`ort`'s `load-dynamic`), from the
//! PyPI wheel that `scripts/fetch-runtime` unpacks. A missing library is not fatal: every ONNX
//! model fails with the list of places that were tried, and the server keeps serving.

use std::path::PathBuf;
use std::sync::OnceLock;

use ort::environment::Environment;

#[derive(Clone, Debug)]
pub struct RuntimeInfo {
    pub library: PathBuf,
}

struct Loaded {
    env: Environment,
    info: RuntimeInfo,
}

static RUNTIME: OnceLock<Result<Loaded, String>> = OnceLock::new();

/// Where to look, in order: `ORT_DYLIB_PATH`, `runtime/` next to the executable (the Docker
/// layout), `runtime/` two levels up (a cargo `target/{debug,release}` binary in a checkout),
/// `./runtime/`, then the bare name for the system loader.
pub fn library_candidates() -> Vec<PathBuf> {
    const LIB: &str = "libonnxruntime.so";
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        let mut dir = exe.parent().map(PathBuf::from);
        for _ in 0..4 {
            let Some(d) = dir else { break };
            out.push(d.join("runtime").join(LIB));
            dir = d.parent().map(PathBuf::from);
        }
    }
    out.push(PathBuf::from("runtime").join(LIB));
    out.push(PathBuf::from(LIB));
    out
}

fn load() -> Result<Loaded, String> {
    // An explicit ORT_DYLIB_PATH is the operator's choice: use it or fail, never fall back to
    // another copy they did not ask for.
    let explicit = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()).map(PathBuf::from);
    let (chosen, tried) = match explicit {
        Some(path) => (path.clone(), format!("ORT_DYLIB_PATH={}", path.display())),
        None => {
            let candidates = library_candidates();
            let chosen = candidates
                .iter()
                .find(|p| p.components().count() == 1 || p.is_file())
                .cloned()
                .unwrap_or_else(|| PathBuf::from("libonnxruntime.so"));
            (chosen, candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))
        }
    };
    // `init_from` dlopens the library; a panic inside the loader must not take the process down.
    let init = std::panic::catch_unwind(|| ort::init_from(&chosen));
    let builder = match init {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            return Err(format!(
                "ONNX Runtime library not loadable ({e}); tried {tried}. Run scripts/fetch-runtime or set ORT_DYLIB_PATH"
            ));
        }
        Err(_) => {
            return Err(format!("loading ONNX Runtime from {} panicked; tried {tried}", chosen.display()));
        }
    };
    let env =
        builder.with_name("timbre").build().map_err(|e| format!("cannot create the ONNX Runtime environment: {e}"))?;
    tracing::info!(library = %chosen.display(), "ONNX Runtime loaded");
    Ok(Loaded { env, info: RuntimeInfo { library: chosen } })
}

/// The process-wide environment, loading the library on first use.
pub fn environment() -> Result<(&'static Environment, &'static RuntimeInfo), String> {
    match RUNTIME.get_or_init(load) {
        Ok(l) => Ok((&l.env, &l.info)),
        Err(e) => Err(e.clone()),
    }
}
