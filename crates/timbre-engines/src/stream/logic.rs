//! What happens to a stream between the socket and the model, without the model: normalising
//! keypoints, assembling windows, carrying recurrent state, turning scores into probabilities
//! and smoothing labels over time. Pure and synchronous, so every rule has a unit test; the
//! engine and the WebSocket route only move data through it.

use std::collections::VecDeque;
use std::sync::Arc;

use super::spec::{HAND, Layout, Method, Normalize, Scores, Smoothing, StreamSpec};

/// Applies `steps` in order to one hand (21 × `[x, y, z]`, row-major).
pub fn normalize_hand(hand: &mut [f32], steps: &[Normalize]) {
    debug_assert_eq!(hand.len(), HAND);
    for step in steps {
        match step {
            Normalize::WristRelative => {
                let (x, y, z) = (hand[0], hand[1], hand[2]);
                for p in hand.chunks_exact_mut(3) {
                    p[0] -= x;
                    p[1] -= y;
                    p[2] -= z;
                }
            }
            Normalize::Scale => {
                // Palm length, wrist (0) → middle-finger MCP (9): unlike the hand's extent it does
                // not change when fingers curl, so a fist stays smaller than an open hand.
                let d = [hand[27] - hand[0], hand[28] - hand[1], hand[29] - hand[2]];
                let palm = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
                if palm > f32::EPSILON {
                    hand.iter_mut().for_each(|v| *v /= palm);
                }
            }
        }
    }
}

/// In place, numerically stable.
pub fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    if sum > 0.0 {
        v.iter_mut().for_each(|x| *x /= sum);
    }
}

/// Index and value of the largest score (the first of equals).
pub fn top(scores: &[f32]) -> Option<(usize, f32)> {
    scores.iter().copied().enumerate().fold(None, |best, (i, s)| match best {
        Some((_, b)) if b >= s => best,
        _ => Some((i, s)),
    })
}

/// Per-session smoothing settings (the manifest's, possibly changed by a config message).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmoothingConfig {
    pub smoothing: Smoothing,
    /// A frame whose top probability is below this does not vote (majority) and a smoothed
    /// label below it is not reported.
    pub min_confidence: f32,
}

/// Labels over time. Every frame enters, with or without a hand, so "the last N frames" means
/// wall-clock frames: a hand that leaves stops being reported after N frames.
#[derive(Clone, Debug)]
pub struct Smoother {
    config: SmoothingConfig,
    /// Majority: the probabilities of the last `frames` frames (`None`: no hand).
    history: VecDeque<Option<Vec<f32>>>,
    /// EMA: the running average (empty until the first frame).
    average: Vec<f32>,
}

impl Smoother {
    pub fn new(config: SmoothingConfig) -> Self {
        Self { config, history: VecDeque::new(), average: Vec::new() }
    }

    pub fn config(&self) -> SmoothingConfig {
        self.config
    }

    pub fn reset(&mut self) {
        self.history.clear();
        self.average.clear();
    }

    /// Add one frame (`None` when it had no hand) and return the smoothed label and its
    /// confidence, if any reaches `min_confidence`.
    pub fn push(&mut self, probabilities: Option<&[f32]>) -> Option<(usize, f32)> {
        let min = self.config.min_confidence;
        let result = match self.config.smoothing.method {
            Method::None => probabilities.and_then(top),
            Method::Ema => {
                let alpha = self.config.smoothing.alpha;
                match probabilities {
                    Some(p) if self.average.len() != p.len() => self.average = p.to_vec(),
                    Some(p) => self.average.iter_mut().zip(p).for_each(|(a, x)| *a = alpha * x + (1.0 - alpha) * *a),
                    // No hand: the average decays towards nothing.
                    None => self.average.iter_mut().for_each(|a| *a *= 1.0 - alpha),
                }
                top(&self.average)
            }
            Method::Majority => {
                self.history.push_back(probabilities.map(<[f32]>::to_vec));
                while self.history.len() > self.config.smoothing.frames {
                    self.history.pop_front();
                }
                self.majority()
            }
        };
        result.filter(|&(_, c)| c >= min)
    }

    /// The label most confident frames voted for (ties: the most recent vote wins), with its
    /// mean probability over the frames in the window (frames without a hand count as 0).
    fn majority(&self) -> Option<(usize, f32)> {
        let min = self.config.min_confidence;
        let mut votes: Vec<(usize, usize, usize)> = Vec::new(); // (label, count, last position)
        for (pos, p) in self.history.iter().enumerate() {
            if let Some((label, conf)) = p.as_deref().and_then(top)
                && conf >= min
            {
                match votes.iter_mut().find(|v| v.0 == label) {
                    Some(v) => {
                        v.1 += 1;
                        v.2 = pos;
                    }
                    None => votes.push((label, 1, pos)),
                }
            }
        }
        let (label, _, _) = votes.into_iter().max_by_key(|&(_, count, last)| (count, last))?;
        let sum: f32 = self.history.iter().flatten().map(|p| p.get(label).copied().unwrap_or(0.0)).sum();
        Some((label, sum / self.history.len() as f32))
    }
}

/// What the model must be given for one inference.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInput {
    /// Normalised keypoints: `window × hands × 63` floats.
    pub keypoints: Vec<f32>,
    /// Recurrent state tensors, in `[[stream.state]]` order (empty for other layouts).
    pub state: Vec<Vec<f32>>,
}

/// One frame's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Top label of this inference and its probability (`None`: no hand in the frame).
    pub raw: Option<(usize, f32)>,
    /// After smoothing (`None` when nothing reaches `min_confidence`).
    pub smoothed: Option<(usize, f32)>,
}

/// The per-connection state of a stream: lives with the session, while the engine (weights,
/// ONNX sessions) is shared by all of them.
#[derive(Clone, Debug)]
pub struct StreamSession {
    spec: Arc<StreamSpec>,
    /// Layout `window`: the last `window` frames' features.
    frames: VecDeque<Vec<f32>>,
    /// Frames since the window was last sent (layout `window`).
    since_last: usize,
    /// A full window was sent since the last gap or reset.
    primed: bool,
    state: Vec<Vec<f32>>,
    initial_state: Vec<Vec<f32>>,
    smoother: Smoother,
}

impl StreamSession {
    /// `initial_state`: zeros of each state tensor's size (the engine knows the sizes).
    pub fn new(spec: Arc<StreamSpec>, initial_state: Vec<Vec<f32>>) -> Self {
        let smoother =
            Smoother::new(SmoothingConfig { smoothing: spec.smoothing, min_confidence: spec.min_confidence });
        Self {
            spec,
            frames: VecDeque::new(),
            since_last: 0,
            primed: false,
            state: initial_state.clone(),
            initial_state,
            smoother,
        }
    }

    pub fn spec(&self) -> &StreamSpec {
        &self.spec
    }

    pub fn smoothing(&self) -> SmoothingConfig {
        self.smoother.config()
    }

    /// Change smoothing for this session only; history starts again.
    pub fn set_smoothing(&mut self, config: SmoothingConfig) {
        self.smoother = Smoother::new(config);
    }

    /// Forget everything: window, recurrent state, smoothing history (`{"type":"reset"}`).
    pub fn reset(&mut self) {
        self.frames.clear();
        self.since_last = 0;
        self.primed = false;
        self.state.clone_from(&self.initial_state);
        self.smoother.reset();
    }

    /// A frame with these hands (each 63 raw floats; more than the model takes are ignored,
    /// fewer are zero-filled). Returns the model input when this frame triggers an inference.
    pub fn push_frame(&mut self, hands: &[Vec<f32>]) -> Option<ModelInput> {
        let mut features = vec![0.0; self.spec.hands * HAND];
        for (slot, hand) in features.chunks_exact_mut(HAND).zip(hands) {
            slot.copy_from_slice(hand);
            normalize_hand(slot, &self.spec.normalize);
        }
        match self.spec.layout {
            Layout::Frame => Some(ModelInput { keypoints: features, state: Vec::new() }),
            Layout::Recurrent => Some(ModelInput { keypoints: features, state: self.state.clone() }),
            Layout::Window => {
                self.frames.push_back(features);
                self.since_last += 1;
                while self.frames.len() > self.spec.window {
                    self.frames.pop_front();
                }
                // The first full window is sent at once, then every `stride` frames.
                if self.frames.len() < self.spec.window || (self.primed && self.since_last < self.spec.stride) {
                    return None;
                }
                self.since_last = 0;
                self.primed = true;
                Some(ModelInput { keypoints: self.frames.iter().flatten().copied().collect(), state: Vec::new() })
            }
        }
    }

    /// A frame without a (sufficiently present) hand: no inference. A window never spans the
    /// gap, so it starts again; recurrent state is kept.
    pub fn push_absent(&mut self) -> Prediction {
        self.frames.clear();
        self.since_last = 0;
        self.primed = false;
        Prediction { raw: None, smoothed: self.smoother.push(None) }
    }

    /// The model's answer to the input [`StreamSession::push_frame`] returned.
    pub fn apply(&mut self, mut scores: Vec<f32>, state: Vec<Vec<f32>>) -> Prediction {
        if self.spec.scores == Scores::Logits {
            softmax(&mut scores);
        }
        if self.spec.layout == Layout::Recurrent {
            self.state = state;
        }
        let raw = top(&scores);
        Prediction { raw, smoothed: self.smoother.push(Some(&scores)) }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::stream::spec::StateSpec;

    fn hand(offset: f32, size: f32) -> Vec<f32> {
        // Keypoint k at (k, 2k, 0) * size / |kp9| + offset, so the palm (0 → 9) has length `size`.
        let palm = (81.0f32 + 324.0).sqrt();
        (0..21).flat_map(|k| [k as f32, 2.0 * k as f32, 0.0]).map(|v| v * size / palm + offset).collect()
    }

    #[test]
    fn normalisation_removes_position_and_size() {
        let mut a = hand(0.3, 0.2);
        let mut b = hand(-5.0, 3.0);
        let steps = [Normalize::WristRelative, Normalize::Scale];
        normalize_hand(&mut a, &steps);
        normalize_hand(&mut b, &steps);
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5));
        assert_eq!(&a[..3], &[0.0, 0.0, 0.0], "wrist at the origin");
        let palm = (a[27] * a[27] + a[28] * a[28] + a[29] * a[29]).sqrt();
        assert!((palm - 1.0).abs() < 1e-5, "palm length 1, got {palm}");
        // Degenerate hand (every point on the wrist): left as is, no NaN.
        let mut flat = vec![0.5; 63];
        normalize_hand(&mut flat, &steps);
        assert!(flat.iter().all(|v| *v == 0.0));
        // No steps: untouched.
        let mut raw = hand(0.3, 0.2);
        normalize_hand(&mut raw, &[]);
        assert_eq!(raw, hand(0.3, 0.2));
    }

    #[test]
    fn softmax_and_top() {
        let mut v = vec![1.0, 3.0, 3.0, -1000.0];
        softmax(&mut v);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(top(&v).unwrap().0, 1, "the first of equals");
        assert!(v[3] >= 0.0);
        assert_eq!(top(&[]), None);
    }

    fn one_hot(label: usize, p: f32) -> Vec<f32> {
        let mut v = vec![(1.0 - p) / 3.0; 4];
        v[label] = p;
        v
    }

    fn smoother(method: Method, frames: usize, alpha: f32, min: f32) -> Smoother {
        Smoother::new(SmoothingConfig { smoothing: Smoothing { method, frames, alpha }, min_confidence: min })
    }

    /// A scripted sequence: labels 0 0 1 0 1 1 1 (p = 0.9), then a low-confidence 2 and a gap.
    #[test]
    fn majority_over_a_scripted_sequence() {
        let mut s = smoother(Method::Majority, 3, 0.5, 0.5);
        let labels = [0, 0, 1, 0, 1, 1, 1];
        let smoothed: Vec<usize> = labels.iter().map(|&l| s.push(Some(&one_hot(l, 0.9))).unwrap().0).collect();
        assert_eq!(smoothed, vec![0, 0, 0, 0, 1, 1, 1]);
        // A frame below min_confidence does not vote; label 1 still has 2 of the last 3.
        let (label, conf) = s.push(Some(&one_hot(2, 0.4))).unwrap();
        assert_eq!(label, 1);
        // Mean probability of label 1 over the 3 frames: (0.9 + 0.9 + 0.2) / 3.
        assert!((conf - (0.9 + 0.9 + 0.2) / 3.0).abs() < 1e-6, "{conf}");
        // Hand gone: one vote is left and label 1's mean, (0.9 + 0.2 + 0) / 3, is below 0.5.
        assert_eq!(s.push(None), None);
        // Fewer frames than the window so far: the mean is over the frames seen.
        let mut fresh = smoother(Method::Majority, 5, 0.5, 0.5);
        assert_eq!(fresh.push(Some(&one_hot(2, 0.8))), Some((2, 0.8)));
    }

    #[test]
    fn majority_tie_goes_to_the_latest_vote() {
        let mut s = smoother(Method::Majority, 4, 0.5, 0.0);
        for l in [0, 1, 0, 1] {
            s.push(Some(&one_hot(l, 0.9)));
        }
        assert_eq!(s.push(Some(&one_hot(0, 0.9))).unwrap().0, 0); // window 1 0 1 0 → 2:2, 0 latest
        assert_eq!(s.push(Some(&one_hot(1, 0.9))).unwrap().0, 1); // window 0 1 0 1 → 1 latest
    }

    #[test]
    fn ema_follows_with_lag_and_decays_without_a_hand() {
        let mut s = smoother(Method::Ema, 5, 0.5, 0.5);
        assert_eq!(s.push(Some(&one_hot(0, 1.0))).unwrap(), (0, 1.0));
        // One frame of label 1: average [0.5, 0.5, 0, 0] → the first of equals, still 0.
        assert_eq!(s.push(Some(&one_hot(1, 1.0))).unwrap().0, 0);
        assert_eq!(s.push(Some(&one_hot(1, 1.0))).unwrap(), (1, 0.75));
        // Without a hand: 0.375 < 0.5, so nothing is reported.
        assert_eq!(s.push(None), None);
        s.reset();
        assert_eq!(s.push(Some(&one_hot(2, 0.8))).unwrap().0, 2, "reset forgets the average");
    }

    #[test]
    fn none_passes_frames_through_above_min_confidence() {
        let mut s = smoother(Method::None, 1, 1.0, 0.6);
        assert_eq!(s.push(Some(&one_hot(3, 0.9))), Some((3, 0.9)));
        assert_eq!(s.push(Some(&one_hot(3, 0.5))), None);
        assert_eq!(s.push(None), None);
    }

    fn spec(layout: Layout, window: usize, stride: usize) -> Arc<StreamSpec> {
        let state = if layout == Layout::Recurrent {
            vec![StateSpec { input: "s".into(), output: "s_out".into(), shape: None }]
        } else {
            Vec::new()
        };
        Arc::new(StreamSpec { layout, window, stride, state, ..StreamSpec::default() })
    }

    fn frame(v: f32) -> Vec<Vec<f32>> {
        vec![vec![v; 63]]
    }

    #[test]
    fn windows_fill_then_slide_by_stride_and_restart_after_a_gap() {
        let mut s = StreamSession::new(spec(Layout::Window, 4, 2), Vec::new());
        let sent: Vec<Option<f32>> = (0..9).map(|i| s.push_frame(&frame(i as f32)).map(|m| m.keypoints[0])).collect();
        // Full at frame 3 (0-based), then every 2 frames; each window starts 3 frames back.
        assert_eq!(sent, vec![None, None, None, Some(0.0), None, Some(2.0), None, Some(4.0), None]);
        let w = s.push_frame(&frame(9.0)).unwrap();
        assert_eq!(w.keypoints.len(), 4 * 63);
        assert_eq!(w.keypoints.iter().step_by(63).copied().collect::<Vec<_>>(), vec![6.0, 7.0, 8.0, 9.0]);
        s.push_absent();
        assert!((0..3).all(|i| s.push_frame(&frame(i as f32)).is_none()), "a new window fills first");
        assert!(s.push_frame(&frame(3.0)).is_some());
        s.reset();
        assert!(s.push_frame(&frame(0.0)).is_none());

        // A stride longer than the window: the first full window at once, then every 5 frames.
        let mut s = StreamSession::new(spec(Layout::Window, 2, 5), Vec::new());
        let sent: Vec<bool> = (0..12).map(|i| s.push_frame(&frame(i as f32)).is_some()).collect();
        let at: Vec<usize> = sent.iter().enumerate().filter(|(_, s)| **s).map(|(i, _)| i).collect();
        assert_eq!(at, vec![1, 6, 11]);
    }

    #[test]
    fn recurrent_state_is_carried_and_reset() {
        let mut s = StreamSession::new(spec(Layout::Recurrent, 1, 1), vec![vec![0.0; 2]]);
        assert_eq!(s.push_frame(&frame(1.0)).unwrap().state, vec![vec![0.0, 0.0]]);
        s.apply(vec![0.2, 0.8], vec![vec![1.0, 2.0]]);
        assert_eq!(s.push_frame(&frame(1.0)).unwrap().state, vec![vec![1.0, 2.0]]);
        s.push_absent();
        assert_eq!(s.push_frame(&frame(1.0)).unwrap().state, vec![vec![1.0, 2.0]], "a gap keeps the state");
        s.reset();
        assert_eq!(s.push_frame(&frame(1.0)).unwrap().state, vec![vec![0.0, 0.0]]);
    }

    #[test]
    fn hands_are_zero_filled_or_truncated_and_logits_become_probabilities() {
        let two = Arc::new(StreamSpec { hands: 2, scores: Scores::Logits, ..StreamSpec::default() });
        let mut s = StreamSession::new(two, Vec::new());
        let input = s.push_frame(&frame(1.0)).unwrap();
        assert_eq!(input.keypoints.len(), 126);
        assert!(input.keypoints[63..].iter().all(|v| *v == 0.0));
        let p = s.apply(vec![0.0, 2.0_f32.ln()], Vec::new());
        let (label, conf) = p.raw.unwrap();
        assert_eq!(label, 1);
        assert!((conf - 2.0 / 3.0).abs() < 1e-6);

        let mut one = StreamSession::new(spec(Layout::Frame, 1, 1), Vec::new());
        let input = one.push_frame(&[vec![1.0; 63], vec![2.0; 63]]).unwrap();
        assert_eq!(input.keypoints, vec![1.0; 63], "a one-hand model takes the first hand");
    }
}
