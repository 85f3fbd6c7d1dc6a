//! Word timestamps from cross-attention (Whisper's and faster-whisper's method): the decoder
//! re-reads the window's text tokens, the alignment heads' attention over the audio frames is
//! softmaxed, standardised per frame over tokens, median-filtered along time and averaged over
//! heads; dynamic time warping through the negated matrix gives each token's first frame.

use ndarray::{Array2, Axis, s};

use super::tokenizer::Tokenizer;

/// Frames per second of the encoder output (100 mel frames/s, conv stride 2).
pub const TOKENS_PER_SECOND: f64 = 50.0;
pub const MEDIAN_FILTER_WIDTH: usize = 7;
pub const PREPEND_PUNCTUATIONS: &str = "\"'“¿([{-";
pub const APPEND_PUNCTUATIONS: &str = "\"'.。,，!！?？:：”)]}、";

#[derive(Clone, Debug, PartialEq)]
pub struct WordTiming {
    pub word: String,
    pub tokens: Vec<u32>,
    /// Seconds from the window start.
    pub start: f64,
    pub end: f64,
    pub probability: f32,
}

/// Median filter along each row with reflected edges (CTranslate2's `MedianFilter`).
pub fn median_filter_rows(x: &Array2<f32>, width: usize) -> Array2<f32> {
    let depth = x.ncols() as isize;
    let rank = (width / 2) as isize;
    if depth <= rank {
        return x.clone();
    }
    let mut out = x.clone();
    let mut window = vec![0f32; width];
    for (row, mut dst) in x.rows().into_iter().zip(out.rows_mut()) {
        for j in 0..depth {
            for k in -rank..=rank {
                let mut read = (j + k).abs();
                if read >= depth {
                    read = depth - (read - depth) - 2;
                }
                window[(k + rank) as usize] = row[read.max(0) as usize];
            }
            window.sort_by(f32::total_cmp);
            dst[j as usize] = window[rank as usize];
        }
    }
    out
}

/// Standardises each column over the rows (tokens): `(x − mean) / std`, population std.
pub fn normalize_columns(x: &mut Array2<f32>) {
    let n = x.nrows() as f32;
    for mut col in x.columns_mut() {
        let mean = col.sum() / n;
        let var = col.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let std = var.sqrt();
        col.mapv_inplace(|v| (v - mean) / std);
    }
}

/// The averaged, filtered attention matrix: `heads` are raw cross-attention scores
/// `[tokens, 1500]`; only the first `num_frames / 2` positions carry audio.
pub fn alignment_matrix(heads: &[Array2<f32>], num_frames: usize) -> Option<Array2<f32>> {
    let first = heads.first()?;
    let cols = (num_frames / 2).min(first.ncols());
    if cols == 0 {
        return None;
    }
    let mut sum = Array2::<f32>::zeros((first.nrows(), cols));
    for h in heads {
        let mut w = h.slice(s![.., ..cols]).to_owned();
        for mut row in w.rows_mut() {
            if let Some(r) = row.as_slice_mut() {
                super::ops::softmax_slice(r);
            }
        }
        normalize_columns(&mut w);
        sum += &median_filter_rows(&w, MEDIAN_FILTER_WIDTH);
    }
    Some(sum / heads.len() as f32)
}

/// Minimum-cost monotonic path through `cost` from (0,0) to (N-1,M-1); returns the row and
/// column index of every step. Ties prefer the diagonal only when strictly cheaper, as
/// Whisper's `dtw_cpu`.
pub fn dtw(cost: &Array2<f32>) -> (Vec<usize>, Vec<usize>) {
    let (n, m) = cost.dim();
    let mut acc = Array2::<f32>::from_elem((n + 1, m + 1), f32::INFINITY);
    let mut trace = Array2::<i8>::from_elem((n + 1, m + 1), -1);
    acc[[0, 0]] = 0.0;
    for j in 1..=m {
        for i in 1..=n {
            let (c0, c1, c2) = (acc[[i - 1, j - 1]], acc[[i - 1, j]], acc[[i, j - 1]]);
            let (c, t) = if c0 < c1 && c0 < c2 {
                (c0, 0)
            } else if c1 < c0 && c1 < c2 {
                (c1, 1)
            } else {
                (c2, 2)
            };
            acc[[i, j]] = cost[[i - 1, j - 1]] + c;
            trace[[i, j]] = t;
        }
    }
    for j in 0..=m {
        trace[[0, j]] = 2;
    }
    for i in 0..=n {
        trace[[i, 0]] = 1;
    }
    let (mut i, mut j) = (n, m);
    let (mut rows, mut cols) = (Vec::new(), Vec::new());
    while i > 0 || j > 0 {
        rows.push(i.saturating_sub(1));
        cols.push(j.saturating_sub(1));
        match trace[[i, j]] {
            0 => {
                i -= 1;
                j -= 1;
            }
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    rows.reverse();
    cols.reverse();
    (rows, cols)
}

const ASCII_PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Groups tokens into words: pieces that decode to whole characters, joined unless a piece
/// starts with a space, is punctuation, or is a special token (faster-whisper's
/// `split_tokens_on_spaces`).
pub fn split_to_words(tok: &Tokenizer, tokens: &[u32]) -> (Vec<String>, Vec<Vec<u32>>) {
    let eot = tok.special.eot;
    let full = tok.decode(tokens);
    let full_chars: Vec<char> = full.chars().collect();
    let mut pieces: Vec<(String, Vec<u32>)> = Vec::new();
    let mut current = Vec::new();
    let mut offset = 0usize;
    for &t in tokens {
        current.push(t);
        let decoded = tok.decode(&current);
        let bad = decoded.chars().position(|c| c == '\u{fffd}').map(|i| i + offset);
        let whole = match bad {
            None => true,
            Some(i) => full_chars.get(i) == Some(&'\u{fffd}'),
        };
        if whole {
            offset += decoded.chars().count();
            pieces.push((decoded, std::mem::take(&mut current)));
        }
    }
    let mut words: Vec<String> = Vec::new();
    let mut word_tokens: Vec<Vec<u32>> = Vec::new();
    for (piece, ptoks) in pieces {
        let special = ptoks.first().is_some_and(|&t| t >= eot);
        let with_space = piece.starts_with(' ');
        let punctuation = ASCII_PUNCTUATION.contains(piece.trim());
        if special || with_space || punctuation || words.is_empty() {
            words.push(piece);
            word_tokens.push(ptoks);
        } else if let (Some(w), Some(t)) = (words.last_mut(), word_tokens.last_mut()) {
            w.push_str(&piece);
            t.extend(ptoks);
        }
    }
    (words, word_tokens)
}

/// Word timings from the alignment path: `text_probs[i]` is the probability of text token
/// `i`; `matrix` has one row per text token plus the `<|notimestamps|>` row first.
pub fn word_timings(tok: &Tokenizer, text_tokens: &[u32], text_probs: &[f32], matrix: &Array2<f32>) -> Vec<WordTiming> {
    let mut with_eot = text_tokens.to_vec();
    with_eot.push(tok.special.eot);
    let (words, word_tokens) = split_to_words(tok, &with_eot);
    if word_tokens.len() <= 1 {
        return Vec::new();
    }
    let (rows, cols) = dtw(&matrix.mapv(|v| -v));
    let mut jump_times = Vec::new();
    for (k, (&r, &c)) in rows.iter().zip(&cols).enumerate() {
        if k == 0 || r != rows[k - 1] {
            jump_times.push(c as f64 / TOKENS_PER_SECOND);
        }
    }
    let mut boundaries = vec![0usize];
    for t in &word_tokens[..word_tokens.len() - 1] {
        boundaries.push(boundaries[boundaries.len() - 1] + t.len());
    }
    let mut out = Vec::new();
    for (w, pair) in boundaries.windows(2).enumerate() {
        let (i, j) = (pair[0], pair[1]);
        let (Some(&start), Some(&end)) = (jump_times.get(i), jump_times.get(j)) else { break };
        let probs = &text_probs[i.min(text_probs.len())..j.min(text_probs.len())];
        let probability = if probs.is_empty() { f32::NAN } else { probs.iter().sum::<f32>() / probs.len() as f32 };
        out.push(WordTiming { word: words[w].clone(), tokens: word_tokens[w].clone(), start, end, probability });
    }
    out
}

/// Attaches leading punctuation to the following word and trailing punctuation to the
/// preceding one (the merged-away entries keep an empty word).
pub fn merge_punctuations(alignment: &mut [WordTiming], prepended: &str, appended: &str) {
    if alignment.len() >= 2 {
        let mut i = alignment.len() as isize - 2;
        let mut j = alignment.len() - 1;
        while i >= 0 {
            let iu = i as usize;
            let previous = alignment[iu].word.clone();
            if previous.starts_with(' ') && prepended.contains(previous.trim()) {
                let tokens = std::mem::take(&mut alignment[iu].tokens);
                alignment[j].word = format!("{previous}{}", alignment[j].word);
                alignment[j].tokens.splice(0..0, tokens);
                alignment[iu].word.clear();
            } else {
                j = iu;
            }
            i -= 1;
        }
    }
    let (mut i, mut j) = (0usize, 1usize);
    while j < alignment.len() {
        let following = alignment[j].word.clone();
        if !alignment[i].word.ends_with(' ') && appended.contains(following.as_str()) {
            let tokens = std::mem::take(&mut alignment[j].tokens);
            alignment[i].word.push_str(&following);
            alignment[i].tokens.extend(tokens);
            alignment[j].word.clear();
        } else {
            i = j;
        }
        j += 1;
    }
}

/// Median word duration (capped at 0.7 s) and twice it, over the non-zero durations.
pub fn median_and_max(words: &[WordTiming]) -> (f64, f64) {
    let mut d: Vec<f64> = words.iter().map(|w| w.end - w.start).filter(|&d| d != 0.0).collect();
    if d.is_empty() {
        return (0.0, 0.0);
    }
    d.sort_by(f64::total_cmp);
    let n = d.len();
    let median = if n % 2 == 1 { d[n / 2] } else { (d[n / 2 - 1] + d[n / 2]) / 2.0 };
    let median = median.min(0.7);
    (median, median * 2.0)
}

/// Caps over-long words at sentence ends (faster-whisper's "truncate long words at sentence
/// boundaries" rule).
pub fn clamp_sentence_ends(words: &mut [WordTiming], max_duration: f64) {
    const MARKS: &str = ".。!！?？";
    for i in 1..words.len() {
        if words[i].end - words[i].start > max_duration {
            if MARKS.contains(words[i].word.as_str()) && !words[i].word.is_empty() {
                words[i].end = words[i].start + max_duration;
            } else if MARKS.contains(words[i - 1].word.as_str()) && !words[i - 1].word.is_empty() {
                words[i].start = words[i].end - max_duration;
            }
        }
    }
}

/// Picks rows `offset ..= offset + text_len` of the averaged matrix (the `<|notimestamps|>`
/// row and one per text token; the final end-of-text row is dropped).
pub fn text_rows(matrix: &Array2<f32>, offset: usize, text_len: usize) -> Array2<f32> {
    let end = (offset + text_len + 1).min(matrix.nrows());
    matrix.slice_axis(Axis(0), (offset..end).into()).to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn dtw_follows_the_cheap_diagonal() {
        let cost = array![[0.0f32, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 0.0]];
        let (rows, cols) = dtw(&cost);
        assert_eq!(rows, vec![0, 1, 1, 2]);
        assert_eq!(cols, vec![0, 1, 2, 3]);
    }

    #[test]
    fn median_filter_reflects_edges() {
        let x = array![[5.0f32, 1.0, 9.0, 2.0, 7.0]];
        let m = median_filter_rows(&x, 3);
        // Row reflected: [1,5,1,9,2,7,2].
        assert_eq!(m, array![[1.0, 5.0, 2.0, 7.0, 2.0]]);
        assert_eq!(median_filter_rows(&array![[1.0f32, 2.0]], 7), array![[1.0, 2.0]]);
    }

    fn w(word: &str) -> WordTiming {
        WordTiming { word: word.into(), tokens: vec![1], start: 0.0, end: 0.0, probability: 1.0 }
    }

    #[test]
    fn punctuation_merges_like_faster_whisper() {
        let mut a = vec![w(" \""), w(" Hello"), w(","), w(" world"), w("!\"")];
        merge_punctuations(&mut a, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS);
        let words: Vec<&str> = a.iter().map(|x| x.word.as_str()).collect();
        assert_eq!(words, vec!["", " \" Hello,", "", " world", "!\""]);
        assert_eq!(a[1].tokens.len(), 3);
    }

    #[test]
    fn median_of_durations() {
        let mk = |s: f64, e: f64| WordTiming { start: s, end: e, ..w("x") };
        let (m, x) = median_and_max(&[mk(0.0, 0.2), mk(0.2, 0.2), mk(0.2, 0.6), mk(1.0, 3.0)]);
        assert!((m - 0.4).abs() < 1e-9 && (x - 0.8).abs() < 1e-9);
    }
}
