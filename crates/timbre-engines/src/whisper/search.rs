//! Token search over one encoded window, as CTranslate2 runs it for faster-whisper: the prompt
//! is fed once, then greedy (temperature 0, beam 1), beam search, or `best_of` independent
//! samples at a temperature. A hypothesis' score is its summed log-probability (end-of-text
//! included) divided by its length (end-of-text excluded) to the power `length_penalty`.

use super::logits::LogitRules;
use super::model::{CrossKv, SelfCache, WhisperModel};
use super::ops::log_softmax;

#[derive(Clone, Debug)]
pub struct SearchOptions {
    pub beam_size: usize,
    /// Hypotheses sampled at `temperature > 0`.
    pub best_of: usize,
    pub temperature: f32,
    pub patience: f32,
    pub length_penalty: f32,
    /// Total decoder positions (448 for every Whisper checkpoint).
    pub max_length: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Hypothesis {
    /// Generated tokens, end-of-text excluded.
    pub tokens: Vec<u32>,
    /// Length-normalised score (CTranslate2's `scores[0]`).
    pub score: f32,
    /// Summed log-probability, end-of-text included.
    pub sum_logprob: f32,
}

#[derive(Clone, Debug)]
pub struct SearchResult {
    pub best: Hypothesis,
    /// Probability of `<|nospeech|>` at the `<|startoftranscript|>` position.
    pub no_speech_prob: f32,
}

pub struct Searcher<'a> {
    pub model: &'a WhisperModel,
    pub cross: &'a CrossKv,
    pub rules: &'a LogitRules,
    pub no_speech: u32,
    pub threads: usize,
}

fn finalize(tokens: Vec<u32>, sum: f32, length_penalty: f32) -> Hypothesis {
    let len = tokens.len() as f32;
    Hypothesis { score: sum / len.powf(length_penalty), sum_logprob: sum, tokens }
}

impl Searcher<'_> {
    /// Decodes after `prompt` (which contains `<|startoftranscript|>` at `sot_index`).
    pub fn run(&self, prompt: &[u32], sot_index: usize, opts: &SearchOptions) -> Result<SearchResult, String> {
        let (&start, prefix) = prompt.split_last().ok_or("empty prompt")?;
        let mut cache = self.model.new_cache();
        let mut no_speech_prob = None;
        if !prefix.is_empty() {
            let (logits, _) = self.model.decode(
                &[prefix.to_vec()],
                std::slice::from_mut(&mut cache),
                self.cross,
                true,
                &[],
                self.threads,
            )?;
            if sot_index < prefix.len() {
                no_speech_prob = Some(self.no_speech_prob(logits.row(sot_index).as_slice().unwrap_or(&[])));
            }
        }
        let max_steps = (opts.max_length / 2).min(opts.max_length.saturating_sub(prefix.len()));
        if max_steps == 0 {
            return Err(format!("prompt of {} tokens leaves no room to decode", prompt.len()));
        }
        let ctx = StepCtx { start, max_steps, no_speech_prob };
        if opts.temperature > 0.0 {
            self.sample(cache, &ctx, opts)
        } else if opts.beam_size > 1 {
            self.beam(cache, &ctx, opts)
        } else {
            self.greedy(cache, &ctx, opts)
        }
    }

    fn no_speech_prob(&self, logits: &[f32]) -> f32 {
        log_softmax(logits).get(self.no_speech as usize).map_or(0.0, |lp| lp.exp())
    }

    /// One decoder step for `rows` hypotheses: processed log-probabilities per row.
    fn step(
        &self,
        tokens: Vec<Vec<u32>>,
        caches: &mut [SelfCache],
        step: usize,
        generated: &[Vec<u32>],
        no_speech: &mut Option<f32>,
    ) -> Result<Vec<Vec<f32>>, String> {
        let (logits, _) = self.model.decode(&tokens, caches, self.cross, false, &[], self.threads)?;
        let mut out = Vec::with_capacity(logits.nrows());
        for (i, row) in logits.rows().into_iter().enumerate() {
            let mut row = row.to_vec();
            if step == 0 && no_speech.is_none() && i == 0 {
                *no_speech = Some(self.no_speech_prob(&row));
            }
            self.rules.apply(step, &generated[i], &mut row);
            out.push(log_softmax(&row));
        }
        Ok(out)
    }

    fn greedy(&self, cache: SelfCache, ctx: &StepCtx, opts: &SearchOptions) -> Result<SearchResult, String> {
        let mut cache = cache;
        let mut generated = Vec::new();
        let mut sum = 0.0;
        let mut no_speech = ctx.no_speech_prob;
        let mut next = ctx.start;
        let eot = self.rules.eot as usize;
        for step in 0..ctx.max_steps {
            // Only the largest allowed logit matters here, so the model may screen the
            // vocabulary in 8 bits first (`WhisperModel::decode_greedy`); the pick is unchanged.
            let excluded = self.rules.always_banned(step);
            let mut row = self.model.decode_greedy(next, &mut cache, self.cross, eot, &excluded, self.threads)?;
            if step == 0 && no_speech.is_none() {
                no_speech = Some(self.no_speech_prob(&row));
            }
            self.rules.apply(step, &generated, &mut row);
            let (best, lp) = argmax(&log_softmax(&row));
            sum += lp;
            if best == self.rules.eot {
                break;
            }
            generated.push(best);
            next = best;
        }
        let tokens = generated;
        Ok(SearchResult { best: finalize(tokens, sum, opts.length_penalty), no_speech_prob: no_speech.unwrap_or(0.0) })
    }

    /// `best_of` independent samples from `softmax(logprobs / T)`; the best-scoring wins.
    fn sample(&self, cache: SelfCache, ctx: &StepCtx, opts: &SearchOptions) -> Result<SearchResult, String> {
        let n = opts.best_of.max(1);
        let mut rng = fastrand::Rng::new();
        // Parallel vectors over the hypotheses still running.
        let mut caches = vec![cache; n];
        let mut generated: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut sums = vec![0.0f32; n];
        let mut finished: Vec<Hypothesis> = Vec::new();
        let mut no_speech = ctx.no_speech_prob;
        for step in 0..ctx.max_steps {
            let tokens = generated.iter().map(|g| vec![g.last().copied().unwrap_or(ctx.start)]).collect();
            let logprobs = self.step(tokens, &mut caches, step, &generated, &mut no_speech)?;
            let mut keep = Vec::with_capacity(generated.len());
            for (i, row) in logprobs.iter().enumerate() {
                let id = sample_token(row, opts.temperature, &mut rng);
                sums[i] += row[id as usize];
                let done = id == self.rules.eot || step + 1 == ctx.max_steps;
                if id != self.rules.eot {
                    generated[i].push(id);
                }
                if done {
                    finished.push(finalize(std::mem::take(&mut generated[i]), sums[i], opts.length_penalty));
                } else {
                    keep.push(i);
                }
            }
            if keep.len() != generated.len() {
                caches = WhisperModel::reorder(&caches, &keep);
                generated = keep.iter().map(|&i| std::mem::take(&mut generated[i])).collect();
                sums = keep.iter().map(|&i| sums[i]).collect();
            }
            if generated.is_empty() {
                break;
            }
        }
        let best = best_of(finished).ok_or("sampling produced no hypothesis")?;
        Ok(SearchResult { best, no_speech_prob: no_speech.unwrap_or(0.0) })
    }

    /// CTranslate2's beam search: 2×beam candidates per step, finished hypotheses replaced by
    /// the next unfinished candidates, stop once `beam × patience` hypotheses are finished.
    fn beam(&self, cache: SelfCache, ctx: &StepCtx, opts: &SearchOptions) -> Result<SearchResult, String> {
        let beam = opts.beam_size;
        let candidates = beam * 2;
        let max_finished = ((beam as f32 * opts.patience).round() as usize).max(1);
        let eot = self.rules.eot;
        // Step 0 runs one hypothesis (all beams are identical); later steps run `beam`.
        let mut caches = vec![cache];
        let mut seqs: Vec<Vec<u32>> = vec![Vec::new()];
        let mut scores = vec![0.0f32];
        let mut finished: Vec<(Vec<u32>, f32)> = Vec::new();
        let mut no_speech = ctx.no_speech_prob;
        for step in 0..ctx.max_steps {
            let tokens: Vec<Vec<u32>> = seqs.iter().map(|s| vec![s.last().copied().unwrap_or(ctx.start)]).collect();
            let logprobs = self.step(tokens, &mut caches, step, &seqs, &mut no_speech)?;
            // Top `candidates` of score + logprob over (hypothesis, token).
            let mut top: Vec<(f32, usize, u32)> = Vec::with_capacity(candidates + 1);
            for (h, row) in logprobs.iter().enumerate() {
                for (id, &lp) in row.iter().enumerate() {
                    let total = scores[h] + lp;
                    if total == f32::NEG_INFINITY {
                        continue;
                    }
                    if top.len() < candidates || total > top[top.len() - 1].0 {
                        let at = top.partition_point(|c| c.0 >= total);
                        top.insert(at, (total, h, id as u32));
                        top.truncate(candidates);
                    }
                }
            }
            let last_step = step + 1 == ctx.max_steps;
            let mut next_from = Vec::with_capacity(beam);
            let mut next_seqs = Vec::with_capacity(beam);
            let mut next_scores = Vec::with_capacity(beam);
            let mut secondary = beam;
            for k in 0..beam.min(top.len()) {
                let (total, h, id) = top[k];
                let mut pick = k;
                if id == eot || last_step {
                    let mut tokens = seqs[h].clone();
                    if id != eot {
                        tokens.push(id);
                    }
                    finished.push((tokens, total));
                    while secondary < top.len() {
                        let j = secondary;
                        secondary += 1;
                        if top[j].2 != eot {
                            pick = j;
                            break;
                        }
                    }
                }
                let (total, h, id) = top[pick];
                let mut s = seqs[h].clone();
                s.push(id);
                next_from.push(h);
                next_seqs.push(s);
                next_scores.push(total);
            }
            if last_step || finished.len() >= max_finished || next_seqs.is_empty() {
                break;
            }
            caches = WhisperModel::reorder(&caches, &next_from);
            seqs = next_seqs;
            scores = next_scores;
        }
        let hyps = finished.into_iter().map(|(t, s)| finalize(t, s, opts.length_penalty)).collect();
        let best = best_of(hyps).ok_or("beam search produced no hypothesis")?;
        Ok(SearchResult { best, no_speech_prob: no_speech.unwrap_or(0.0) })
    }
}

struct StepCtx {
    start: u32,
    max_steps: usize,
    no_speech_prob: Option<f32>,
}

fn argmax(row: &[f32]) -> (u32, f32) {
    let mut best = (0u32, f32::NEG_INFINITY);
    for (i, &v) in row.iter().enumerate() {
        if v > best.1 {
            best = (i as u32, v);
        }
    }
    best
}

fn best_of(hyps: Vec<Hypothesis>) -> Option<Hypothesis> {
    // Stable: the first of equal scores wins, as `std::sort` on distinct scores would give.
    hyps.into_iter().fold(None, |best: Option<Hypothesis>, h| match best {
        Some(b) if b.score >= h.score || h.score.is_nan() => Some(b),
        _ => Some(h),
    })
}

/// Samples a token from `softmax(logprobs / temperature)`.
fn sample_token(logprobs: &[f32], temperature: f32, rng: &mut fastrand::Rng) -> u32 {
    let scaled: Vec<f32> = logprobs.iter().map(|&lp| lp / temperature).collect();
    let max = scaled.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = scaled.iter().map(|&v| f64::from((v - max).exp())).collect();
    let total: f64 = weights.iter().sum();
    let mut r = rng.f64() * total;
    for (i, w) in weights.iter().enumerate() {
        if *w > 0.0 {
            if r < *w {
                return i as u32;
            }
            r -= w;
        }
    }
    argmax(logprobs).0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sampling_follows_the_distribution_and_never_picks_banned() {
        let mut rng = fastrand::Rng::with_seed(7);
        let lp = [0.5f32.ln(), f32::NEG_INFINITY, 0.25f32.ln(), 0.25f32.ln()];
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[sample_token(&lp, 1.0, &mut rng) as usize] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!((1800..2200).contains(&counts[0]), "{counts:?}");
        // Low temperature sharpens towards the mode.
        let mut hits = 0;
        for _ in 0..1000 {
            hits += usize::from(sample_token(&lp, 0.05, &mut rng) == 0);
        }
        assert!(hits > 990);
    }

    #[test]
    fn scores_are_length_normalised() {
        let h = finalize(vec![1, 2, 3, 4], -2.0, 1.0);
        assert_eq!(h.score, -0.5);
        let best = best_of(vec![h.clone(), finalize(vec![1], -0.4, 1.0)]).unwrap();
        assert_eq!(best.tokens, vec![1]);
    }
}
