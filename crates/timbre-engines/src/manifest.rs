//! `models/<name>/model.toml`: what `scripts/fetch-models` writes and the registry reads.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Manifest {
    pub name: String,
    /// Engine family that can run it (`whisper`, `vad`, `piper`, `kokoro`, `ced`, `beatnet`, …).
    pub family: String,
    /// What it gives the API (`stt`, `vad`, `tts`, `tagging`, `beats`, …).
    pub capability: String,
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default)]
    pub sample_rate: Option<u32>,
    #[serde(default)]
    pub license: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Labels file, relative to the model dir.
    #[serde(default)]
    pub labels: Option<String>,
    #[serde(default)]
    pub source: Option<Source>,
    #[serde(default)]
    pub files: Vec<FileEntry>,
    /// The `[stream]` table of a `stream-classifier` model, parsed by
    /// [`crate::stream::StreamSpec::from_manifest`] (other families have none).
    #[serde(default)]
    pub stream: Option<toml::Table>,
    /// Directory the manifest was read from (not in the file).
    #[serde(skip)]
    pub dir: PathBuf,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Source {
    pub registry: String,
    pub package: String,
    pub version: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct FileEntry {
    pub path: String,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub bytes: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid manifest {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Manifest {
    pub fn from_file(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.into(), source })?;
        let mut m: Manifest =
            toml::from_str(&text).map_err(|e| ManifestError::Invalid { path: path.into(), message: e.to_string() })?;
        m.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for file in &m.files {
            if !is_safe_relative(&file.path) {
                return Err(ManifestError::Invalid {
                    path: path.into(),
                    message: format!("file path `{}` escapes the model directory", file.path),
                });
            }
        }
        Ok(m)
    }

    pub fn path_of(&self, file: &FileEntry) -> PathBuf {
        self.dir.join(&file.path)
    }

    /// The labels file's lines (blank lines dropped), in model output order.
    pub fn read_labels(&self) -> Result<Vec<String>, String> {
        let path = self.labels.as_ref().map(|l| self.dir.join(l)).ok_or("manifest names no labels file")?;
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read labels {}: {e}", path.display()))?;
        Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
    }

    /// The first file with this role (e.g. `onnx`), as an absolute path.
    pub fn file_with_role(&self, role: &str) -> Option<PathBuf> {
        self.files.iter().find(|f| f.role.as_deref() == Some(role)).map(|f| self.path_of(f))
    }
}

/// A non-empty relative path made only of normal components (no `..`, no root, no `.`).
pub(crate) fn is_safe_relative(p: &str) -> bool {
    let path = Path::new(p);
    !p.is_empty() && path.components().all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Every `*/model.toml` under `dir`, sorted by directory name. A manifest that fails to parse is
/// returned as an error for that directory so the registry can report it as a failed model
/// rather than silently skipping it.
pub fn discover(dir: &Path) -> std::io::Result<Vec<(String, Result<Manifest, ManifestError>)>> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // `.tmp-*` dirs of an interrupted fetch
        }
        let manifest = entry.path().join("model.toml");
        if manifest.is_file() {
            out.push((name, Manifest::from_file(&manifest)));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_escaping_paths() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("ced-tiny");
        std::fs::create_dir(&m).unwrap();
        std::fs::write(
            m.join("model.toml"),
            "name='ced-tiny'\nfamily='ced'\ncapability='tagging'\nsample_rate=16000\nlabels='labels.txt'\n[source]\nregistry='crates.io'\npackage='soundevents'\nversion='0.5.0'\n[[files]]\npath='model.onnx'\nrole='onnx'\nbytes=3\n",
        )
        .unwrap();
        let bad = dir.path().join("bad");
        std::fs::create_dir(&bad).unwrap();
        std::fs::write(
            bad.join("model.toml"),
            "name='bad'\nfamily='x'\ncapability='y'\n[[files]]\npath='../../etc/passwd'\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join(".tmp-x")).unwrap();

        let found = discover(dir.path()).unwrap();
        assert_eq!(found.len(), 2);
        let (name, bad) = &found[0];
        assert_eq!(name, "bad");
        assert!(bad.as_ref().unwrap_err().to_string().contains("escapes"));
        let ced = found[1].1.as_ref().unwrap();
        assert!(ced.required, "required defaults to true");
        assert_eq!(ced.file_with_role("onnx").unwrap(), m.join("model.onnx"));
        assert_eq!(ced.source.as_ref().unwrap().package, "soundevents");
    }
}
