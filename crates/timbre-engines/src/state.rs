//! Model load states and the snapshot every reader (health, readiness, `/v1/models`, metrics)
//! sees. Pure data: the registry publishes it on a `watch` channel so readers never lock or wait
//! on a loading model.

use std::collections::BTreeMap;

use serde::Serialize;

/// Where a model is in its life. `Failed`, `Absent` and `Skipped` carry a reason in
/// [`ModelStatus::reason`] — the operator always learns *why*.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelState {
    /// Listed (in config or a manifest) but its files are not on disk.
    Absent,
    Downloading,
    Loading,
    Warming,
    Ready,
    Failed,
    Skipped,
}

impl ModelState {
    pub const ALL: [ModelState; 7] = [
        ModelState::Absent,
        ModelState::Downloading,
        ModelState::Loading,
        ModelState::Warming,
        ModelState::Ready,
        ModelState::Failed,
        ModelState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ModelState::Absent => "absent",
            ModelState::Downloading => "downloading",
            ModelState::Loading => "loading",
            ModelState::Warming => "warming",
            ModelState::Ready => "ready",
            ModelState::Failed => "failed",
            ModelState::Skipped => "skipped",
        }
    }

    /// Still on its way to `Ready` or a final failure.
    pub fn in_progress(self) -> bool {
        matches!(self, ModelState::Downloading | ModelState::Loading | ModelState::Warming)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelStatus {
    pub name: String,
    pub family: String,
    pub capability: String,
    /// Required models gate `/readyz`.
    pub required: bool,
    pub state: ModelState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Fraction of bytes downloaded while `Downloading`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_ms: Option<u64>,
    /// Resident memory the process grew by while loading (an estimate: loads run in parallel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<f64>,
}

impl ModelStatus {
    pub fn new(
        name: impl Into<String>,
        family: impl Into<String>,
        capability: impl Into<String>,
        required: bool,
    ) -> Self {
        Self {
            name: name.into(),
            family: family.into(),
            capability: capability.into(),
            required,
            state: ModelState::Loading,
            reason: None,
            progress: None,
            load_ms: None,
            memory_mb: None,
        }
    }
}

/// Overall service status derived from the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceStatus {
    Starting,
    Healthy,
    Degraded,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// False until the registry has tried every model once: until then status is `starting`.
    pub first_pass_done: bool,
    pub skipped_by_config: bool,
    pub models: BTreeMap<String, ModelStatus>,
    /// Registry-level problems (e.g. unreadable models dir) that are not tied to one model.
    pub problems: Vec<String>,
    /// Other parts of the service that are not working (e.g. `database`), with the reason.
    /// They make the status `degraded` until cleared.
    pub components: BTreeMap<String, String>,
}

pub const SKIPPED_REASON: &str = "model loading skipped by configuration";

impl Snapshot {
    pub fn status(&self) -> ServiceStatus {
        if !self.first_pass_done {
            return ServiceStatus::Starting;
        }
        if self.reasons().is_empty() { ServiceStatus::Healthy } else { ServiceStatus::Degraded }
    }

    /// Every required model is ready (vacuously true when none is required but the pass is done
    /// and nothing was skipped by configuration).
    pub fn ready(&self) -> bool {
        self.first_pass_done
            && !self.skipped_by_config
            && self.models.values().filter(|m| m.required).all(|m| m.state == ModelState::Ready)
    }

    pub fn any_model_ready(&self) -> bool {
        self.models.values().any(|m| m.state == ModelState::Ready)
    }

    /// Why the service is not healthy, one line each; empty when healthy.
    pub fn reasons(&self) -> Vec<String> {
        let mut out = self.problems.clone();
        out.extend(self.components.iter().map(|(name, why)| format!("{name}: {why}")));
        if self.skipped_by_config {
            out.push(SKIPPED_REASON.to_string());
        }
        for m in self.models.values() {
            match m.state {
                ModelState::Ready => {}
                ModelState::Skipped if self.skipped_by_config => {}
                state => {
                    let why = m.reason.as_deref().unwrap_or("no reason recorded");
                    out.push(format!("{}: {} ({})", m.name, state.as_str(), why));
                }
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn snap(models: &[(&str, bool, ModelState)]) -> Snapshot {
        Snapshot {
            first_pass_done: true,
            models: models
                .iter()
                .map(|(n, req, st)| {
                    let mut m = ModelStatus::new(*n, "f", "c", *req);
                    m.state = *st;
                    if *st == ModelState::Failed {
                        m.reason = Some("file missing: /x".into());
                    }
                    (n.to_string(), m)
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn status_follows_models() {
        assert_eq!(Snapshot::default().status(), ServiceStatus::Starting);
        let s = snap(&[("a", true, ModelState::Ready), ("b", false, ModelState::Ready)]);
        assert_eq!(s.status(), ServiceStatus::Healthy);
        assert!(s.ready());

        let s = snap(&[("a", true, ModelState::Ready), ("b", false, ModelState::Failed)]);
        assert_eq!(s.status(), ServiceStatus::Degraded);
        assert!(s.ready(), "an optional model failing does not block readiness");
        assert_eq!(s.reasons(), vec!["b: failed (file missing: /x)"]);

        let s = snap(&[("a", true, ModelState::Failed)]);
        assert!(!s.ready());
        let s = snap(&[("a", true, ModelState::Loading)]);
        assert!(!s.ready());
        assert_eq!(s.status(), ServiceStatus::Degraded, "after the first pass a model still loading is degraded");
    }

    #[test]
    fn skipped_by_config_is_degraded_and_not_ready() {
        let mut s = snap(&[("a", true, ModelState::Skipped)]);
        s.skipped_by_config = true;
        assert_eq!(s.status(), ServiceStatus::Degraded);
        assert!(!s.ready());
        assert_eq!(s.reasons(), vec![SKIPPED_REASON.to_string()]);
    }
}
