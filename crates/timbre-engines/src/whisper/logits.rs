//! Logit rules applied before each token is chosen, as CTranslate2 applies them for
//! faster-whisper: suppressed tokens, blank suppression at the first step, and Whisper's
//! timestamp grammar (timestamps in pairs, never decreasing, a timestamp first, the first one
//! at most `max_initial_timestamp`, and a timestamp whenever timestamps together are likelier
//! than any single text token).

use super::ops::{log_softmax, logsumexp};

#[derive(Clone, Debug, PartialEq)]
pub struct LogitRules {
    pub eot: u32,
    pub no_timestamps: u32,
    pub timestamp_begin: u32,
    /// Last token id of the vocabulary (the last timestamp).
    pub timestamp_end: u32,
    /// Tokens never generated.
    pub suppress: Vec<u32>,
    /// Tokens not generated first (`suppress_blank`: the space and end-of-text).
    pub suppress_begin: Vec<u32>,
    /// `None` = the prompt ended with `<|notimestamps|>`: no timestamp rules.
    pub max_initial_timestamp: Option<u32>,
}

impl LogitRules {
    /// Tokens banned at `step` whatever came before (the suppression lists).
    pub fn always_banned(&self, step: usize) -> Vec<u32> {
        let mut out = self.suppress.clone();
        if step == 0 {
            out.extend_from_slice(&self.suppress_begin);
        }
        out
    }

    /// Applies the rules for `step` (0 = first generated token) given the tokens generated so
    /// far, setting forbidden logits to −∞.
    pub fn apply(&self, step: usize, generated: &[u32], logits: &mut [f32]) {
        let ban = |ids: &mut dyn Iterator<Item = u32>, logits: &mut [f32]| {
            for id in ids {
                if let Some(v) = logits.get_mut(id as usize) {
                    *v = f32::NEG_INFINITY;
                }
            }
        };
        ban(&mut self.suppress.iter().copied(), logits);
        if step == 0 {
            ban(&mut self.suppress_begin.iter().copied(), logits);
        }
        let Some(max_initial) = self.max_initial_timestamp else { return };
        let (ts_begin, ts_end) = (self.timestamp_begin, self.timestamp_end);
        ban(&mut std::iter::once(self.no_timestamps), logits);
        if step == 0 {
            ban(&mut (0..ts_begin), logits);
            ban(&mut (ts_begin + max_initial + 1..=ts_end), logits);
            return;
        }
        let last = generated[step - 1];
        let mut check = true;
        if last >= ts_begin {
            let penultimate = if step >= 2 { generated[step - 2] } else { last };
            if penultimate >= ts_begin {
                // A closed pair: text (or end) must follow.
                ban(&mut (ts_begin..=ts_end), logits);
                check = false;
            } else {
                // An opening timestamp was just closed… or this is a segment end: no text.
                ban(&mut (0..self.eot), logits);
            }
        }
        // Timestamps never go backwards.
        if let Some(&t) = generated[..step].iter().rev().find(|&&t| t >= ts_begin) {
            ban(&mut (ts_begin..t), logits);
        }
        if check {
            let split = (ts_begin as usize).min(logits.len());
            let logprobs = log_softmax(logits);
            let text_max = logprobs[..split].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if logsumexp(&logprobs[split..]) > text_max {
                ban(&mut (0..ts_begin), logits);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> LogitRules {
        // Vocabulary of 20: text 0..=9, eot 10, notimestamps 11, timestamps 12..=19.
        LogitRules {
            eot: 10,
            no_timestamps: 11,
            timestamp_begin: 12,
            timestamp_end: 19,
            suppress: vec![3],
            suppress_begin: vec![10],
            max_initial_timestamp: Some(2),
        }
    }

    fn allowed(logits: &[f32]) -> Vec<usize> {
        logits.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(i, _)| i).collect()
    }

    #[test]
    fn first_step_is_an_early_timestamp() {
        let mut l = vec![0.0; 20];
        rules().apply(0, &[], &mut l);
        assert_eq!(allowed(&l), vec![12, 13, 14]);
    }

    #[test]
    fn pairs_and_monotonic_timestamps() {
        let r = rules();
        // After <|0.02|> "a": text, eot, or a timestamp ≥ 13.
        let mut l = vec![0.0; 20];
        l[5] = 3.0; // text clearly likelier than all timestamps together
        r.apply(2, &[13, 5], &mut l);
        assert_eq!(allowed(&l), vec![0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 13, 14, 15, 16, 17, 18, 19]);
        // After text then a timestamp (segment end): eot or another timestamp, not text.
        let mut l = vec![0.0; 20];
        l[10] = 5.0;
        r.apply(3, &[13, 5, 15], &mut l);
        assert_eq!(allowed(&l), vec![10, 15, 16, 17, 18, 19]);
        // After two timestamps: text or eot only.
        let mut l = vec![0.0; 20];
        r.apply(4, &[13, 5, 15, 15], &mut l);
        assert_eq!(allowed(&l), vec![0, 1, 2, 4, 5, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn timestamps_win_when_jointly_likelier() {
        let r = rules();
        let mut l = vec![0.0; 20];
        l[5] = 1.0; // best text token: p ∝ e
        for v in &mut l[12..] {
            *v = 0.9; // 8 timestamps together ≫ e
        }
        r.apply(2, &[13, 5], &mut l);
        assert!(allowed(&l).iter().all(|&i| i >= 13));
    }

    #[test]
    fn without_timestamps_only_suppression() {
        let mut r = rules();
        r.max_initial_timestamp = None;
        let mut l = vec![0.0; 20];
        r.apply(0, &[], &mut l);
        assert_eq!(allowed(&l).len(), 18);
        assert!(!allowed(&l).contains(&3) && !allowed(&l).contains(&10));
    }
}
