//! The `[stream]` table of a `stream-classifier` manifest: how keypoint frames become the
//! model's input, and how its scores become smoothed labels.
//!
//! ```toml
//! [stream]
//! input = "input"                 # graph input that takes the keypoints
//! output = "output"               # graph output with one score per label (default: the first)
//! layout = "frame"                # frame | window | recurrent
//! window = 1                      # frames per inference (layout = "window")
//! stride = 1                      # frames between inferences (layout = "window")
//! hands = 1                       # hands per frame the model takes (21 x [x, y, z] each)
//! scores = "logits"               # logits (softmax applied) | probabilities
//! frame_rate = 30                 # the rate the model was trained at (a hint for clients)
//! normalize = ["wrist-relative", "scale"]
//! min_confidence = 0.5            # below it a frame does not vote for a smoothed label
//! min_presence = 0.5              # hand-presence score below which a frame counts as no hand
//! [stream.smoothing]
//! method = "majority"             # majority (over `frames`) | ema (with `alpha`) | none
//! frames = 5
//! [[stream.state]]                # layout = "recurrent": carried between frames
//! input = "state"
//! output = "state_out"
//! ```
//!
//! Shapes come from the model itself (a dynamic batch is 1, a dynamic time axis is the
//! window), so a model such as Signify's `[1,1,21,3]` LSTM needs no shape in its manifest;
//! `input_shape` (and `shape` of a state) override when the graph leaves more than one axis
//! open.

use serde::Deserialize;

use crate::manifest::Manifest;

/// Keypoints per hand (MediaPipe's hand landmarks).
pub const KEYPOINTS: usize = 21;
/// Coordinates per keypoint (`x`, `y`, `z`).
pub const COORDS: usize = 3;
/// Floats per hand.
pub const HAND: usize = KEYPOINTS * COORDS;

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// One frame per inference (`[1,1,21,3]`, `[1,63]`, …).
    #[default]
    Frame,
    /// The last `window` frames per inference (`[1,T,63]`), every `stride` frames.
    Window,
    /// One frame per inference plus state tensors carried from one call to the next.
    Recurrent,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Scores {
    /// The output already sums to 1.
    #[default]
    Probabilities,
    /// Raw scores: softmax is applied.
    Logits,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Normalize {
    /// Subtract the wrist (keypoint 0) from every keypoint: position in the image drops out.
    WristRelative,
    /// Divide by the wrist → middle-finger MCP (keypoint 9) distance: hand size drops out.
    Scale,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The label most frames among the last `frames` voted for (Signify's SLIDING_WINDOW_SIZE).
    #[default]
    Majority,
    /// An exponential moving average of the probabilities with weight `alpha` on the new frame.
    Ema,
    /// The frame's own label.
    None,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Smoothing {
    pub method: Method,
    pub frames: usize,
    pub alpha: f32,
}

impl Default for Smoothing {
    fn default() -> Self {
        Self { method: Method::Majority, frames: 5, alpha: 0.5 }
    }
}

impl Smoothing {
    pub fn validate(&self) -> Result<(), String> {
        if self.frames == 0 || self.frames > 1000 {
            return Err(format!("smoothing.frames must be 1–1000, got {}", self.frames));
        }
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return Err(format!("smoothing.alpha must be in (0, 1], got {}", self.alpha));
        }
        Ok(())
    }
}

/// One recurrent state tensor: fed to `input`, read back from `output`, zeros at the start.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StateSpec {
    pub input: String,
    pub output: String,
    #[serde(default)]
    pub shape: Option<Vec<i64>>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    #[serde(default = "default_input")]
    pub input: String,
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default)]
    pub layout: Layout,
    #[serde(default)]
    pub input_shape: Option<Vec<i64>>,
    #[serde(default = "one")]
    pub hands: usize,
    #[serde(default = "one")]
    pub window: usize,
    #[serde(default = "one")]
    pub stride: usize,
    #[serde(default)]
    pub frame_rate: Option<f64>,
    #[serde(default)]
    pub scores: Scores,
    #[serde(default)]
    pub normalize: Vec<Normalize>,
    #[serde(default)]
    pub min_confidence: f32,
    #[serde(default)]
    pub min_presence: f32,
    #[serde(default)]
    pub smoothing: Smoothing,
    #[serde(default)]
    pub state: Vec<StateSpec>,
}

fn default_input() -> String {
    "input".into()
}

fn one() -> usize {
    1
}

impl Default for StreamSpec {
    fn default() -> Self {
        Self {
            input: default_input(),
            output: None,
            layout: Layout::Frame,
            input_shape: None,
            hands: 1,
            window: 1,
            stride: 1,
            frame_rate: None,
            scores: Scores::Probabilities,
            normalize: Vec::new(),
            min_confidence: 0.0,
            min_presence: 0.0,
            smoothing: Smoothing::default(),
            state: Vec::new(),
        }
    }
}

impl StreamSpec {
    /// The manifest's `[stream]` table (all defaults when it has none), validated.
    pub fn from_manifest(manifest: &Manifest) -> Result<Self, String> {
        let table = manifest.stream.clone().unwrap_or_default();
        let spec: StreamSpec =
            toml::Value::Table(table).try_into().map_err(|e| format!("invalid [stream] table in model.toml: {e}"))?;
        spec.validate()?;
        Ok(spec)
    }

    pub fn validate(&self) -> Result<(), String> {
        let bad = |m: String| Err(format!("invalid [stream] table in model.toml: {m}"));
        if self.hands == 0 || self.hands > 4 {
            return bad(format!("hands must be 1–4, got {}", self.hands));
        }
        if self.window == 0 || self.window > 1000 || self.stride == 0 || self.stride > 1000 {
            return bad(format!("window and stride must be 1–1000, got {} and {}", self.window, self.stride));
        }
        if self.layout != Layout::Window && (self.window != 1 || self.stride != 1) {
            return bad("window and stride apply to layout = \"window\" only".into());
        }
        if (self.layout == Layout::Recurrent) == self.state.is_empty() {
            return bad("layout = \"recurrent\" needs [[stream.state]] entries, and only it takes them".into());
        }
        for (name, v) in [("min_confidence", self.min_confidence), ("min_presence", self.min_presence)] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} must be in [0, 1], got {v}"));
            }
        }
        if let Some(rate) = self.frame_rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return bad(format!("frame_rate must be > 0, got {rate}"));
        }
        self.smoothing.validate().or_else(bad)
    }

    /// Floats in one inference's keypoint input.
    pub fn input_len(&self) -> usize {
        self.window * self.hands * HAND
    }
}

/// A concrete shape for a declared one: a dynamic batch (first axis) is 1; one other dynamic
/// axis is whatever makes the element count `len`. More open axes need an explicit shape.
pub fn resolve_shape(declared: &[i64], len: usize, what: &str) -> Result<Vec<usize>, String> {
    if declared.is_empty() {
        return Err(format!("{what}: the model declares no shape; set it in the manifest"));
    }
    let mut dims: Vec<Option<usize>> = declared.iter().map(|&d| usize::try_from(d).ok().filter(|&d| d > 0)).collect();
    if dims[0].is_none() {
        dims[0] = Some(1);
    }
    let known: usize = dims.iter().flatten().product();
    let open: Vec<usize> = dims.iter().enumerate().filter(|(_, d)| d.is_none()).map(|(i, _)| i).collect();
    match open.as_slice() {
        [] if known == len => {}
        [i] if known > 0 && len.is_multiple_of(known) => dims[*i] = Some(len / known),
        [] | [_] => {
            return Err(format!("{what}: shape {declared:?} cannot hold {len} values"));
        }
        _ => return Err(format!("{what}: shape {declared:?} has several dynamic axes; set the shape in the manifest")),
    }
    Ok(dims.into_iter().flatten().collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn manifest(stream: &str) -> Manifest {
        let text = format!("name='m'\nfamily='stream-classifier'\ncapability='c'\n{stream}");
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn parses_every_key_and_defaults() {
        let m = manifest(
            "[stream]\ninput='x'\noutput='y'\nlayout='window'\nwindow=16\nstride=4\nhands=2\nscores='logits'\n\
             frame_rate=30\nnormalize=['wrist-relative','scale']\nmin_confidence=0.6\nmin_presence=0.5\n\
             [stream.smoothing]\nmethod='ema'\nalpha=0.3\n",
        );
        let s = StreamSpec::from_manifest(&m).unwrap();
        assert_eq!((s.layout, s.window, s.stride, s.hands, s.scores), (Layout::Window, 16, 4, 2, Scores::Logits));
        assert_eq!(s.normalize, vec![Normalize::WristRelative, Normalize::Scale]);
        assert_eq!(s.smoothing, Smoothing { method: Method::Ema, frames: 5, alpha: 0.3 });
        assert_eq!(s.input_len(), 16 * 2 * 63);

        let d = StreamSpec::from_manifest(&manifest("")).unwrap();
        assert_eq!(d, StreamSpec::default(), "no [stream] table: Signify-like defaults");
    }

    #[test]
    fn rejects_inconsistent_tables() {
        for (stream, needle) in [
            ("[stream]\nlayout='recurrent'\n", "needs [[stream.state]]"),
            ("[stream]\nwindow=4\n", "layout = \"window\" only"),
            ("[stream]\nmin_confidence=1.5\n", "min_confidence"),
            ("[stream]\nnormalize=['mirror']\n", "unknown variant"),
            ("[stream]\nsmoothing={method='ema', alpha=0}\n", "alpha"),
            ("[stream]\nlayuot='frame'\n", "unknown field"),
        ] {
            let err = StreamSpec::from_manifest(&manifest(stream)).unwrap_err();
            assert!(err.contains(needle), "{stream}: {err}");
        }
    }

    #[test]
    fn shapes_resolve_from_the_graph() {
        assert_eq!(resolve_shape(&[1, 1, 21, 3], 63, "x").unwrap(), vec![1, 1, 21, 3]);
        assert_eq!(resolve_shape(&[-1, -1, 63], 16 * 63, "x").unwrap(), vec![1, 16, 63]);
        assert_eq!(resolve_shape(&[-1, 63], 63, "x").unwrap(), vec![1, 63]);
        assert!(resolve_shape(&[1, 1, 21, 3], 126, "x").unwrap_err().contains("cannot hold"));
        assert!(resolve_shape(&[-1, -1, -1], 63, "x").unwrap_err().contains("several dynamic"));
    }
}
