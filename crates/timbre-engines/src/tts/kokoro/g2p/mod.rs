//! Text → misaki-style English phonemes without spaCy or espeak-ng: hibari's G2P (the
//! package's `g2p/`, which ports misaki 0.9.4's `en.py`), ported to Rust. Pipeline: normalize →
//! tokenize (spaCy rules) → tag (perceptron) → lexicon with part-of-speech and context rules →
//! OOV network for unknown words → stress resolution.

pub mod lexicon;
pub mod normalize;
pub mod numbers;
pub mod pystr;
pub mod tagger;
pub mod tokenize;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use fancy_regex::Regex;

use lexicon::{Dict, Entry, Lexicon, PRIMARY, apply_stress, is_consonant, is_vowel, stress_weight};
use normalize::{Normalizer, Tables};
use pystr::{first_char, isalpha, last_char};
use tagger::Tagger;
use tokenize::Tokenizer;

const SUBTOKEN_JUNKS: &str = "',-._‘’/";
const PUNCTS: &str = ";:,.!?—…\"“”";
const NON_QUOTE_PUNCTS: &str = ";:,.!?—…";
const PUNCT_TAGS: [&str; 10] = [".", ",", "-LRB-", "-RRB-", "``", "\"\"", "''", ":", "$", "#"];

fn punct_tag(tag: &str) -> bool {
    PUNCT_TAGS.contains(&tag) || tag == "NFP"
}

fn punct_tag_phonemes(tag: &str) -> Option<&'static str> {
    match tag {
        "-LRB-" => Some("("),
        "-RRB-" => Some(")"),
        "``" => Some("“"),
        "\"\"" | "''" => Some("”"),
        _ => None,
    }
}

fn symbol_phonemes(c: char) -> &'static str {
    match c {
        '/' => "slˈæʃ",
        '=' => "ˈikwᵊlz",
        '+' => "plˈʌs",
        '&' => "ænd",
        '@' => "æt",
        '%' => "pəɹsˈɛnt",
        '#' => "hˈæʃ",
        '*' => "ˈæstəɹˌɪsk",
        '~' => "tˈɪldə",
        '^' => "kˈɛɹət",
        '<' => "lˈɛs ðən",
        '>' => "ɡɹˈATəɹ ðən",
        '—' => "—",
        _ => "",
    }
}

/// misaki's MToken, flattened.
#[derive(Clone, Debug, Default)]
pub struct Tok {
    pub text: String,
    pub tag: String,
    pub whitespace: String,
    pub phonemes: Option<String>,
    pub is_head: bool,
    pub alias: Option<String>,
    pub stress: Option<f32>,
    pub currency: Option<String>,
    pub num_flags: String,
    pub prespace: bool,
    pub rating: Option<i32>,
}

/// What the words to the right tell the current one: whether the next sound is a vowel
/// (`None`: punctuation or nothing), and whether the next word is "to".
#[derive(Clone, Copy, Debug, Default)]
pub struct Context {
    pub future_vowel: Option<bool>,
    pub future_to: bool,
}

enum Word {
    One(Tok),
    Group(Vec<Tok>),
}

fn merge_tokens(tokens: &[Tok], unk: Option<&str>) -> Tok {
    let mut stress: Vec<f32> = Vec::new();
    for t in tokens {
        if let Some(s) = t.stress
            && !stress.contains(&s)
        {
            stress.push(s);
        }
    }
    let currency = tokens.iter().filter_map(|t| t.currency.clone()).max();
    let phonemes = unk.map(|unk| {
        let mut p = String::new();
        for tk in tokens {
            if tk.prespace
                && !p.is_empty()
                && !last_char(&p).is_some_and(char::is_whitespace)
                && tk.phonemes.as_deref().is_some_and(|x| !x.is_empty())
            {
                p.push(' ');
            }
            p.push_str(tk.phonemes.as_deref().unwrap_or(unk));
        }
        p
    });
    let n = tokens.len();
    let mut text = String::new();
    for (i, t) in tokens.iter().enumerate() {
        text.push_str(&t.text);
        if i + 1 < n {
            text.push_str(&t.whitespace);
        }
    }
    let weight =
        |t: &Tok| t.text.chars().map(|c| if c.to_lowercase().eq(std::iter::once(c)) { 1 } else { 2 }).sum::<usize>();
    let mut best = 0;
    for (i, t) in tokens.iter().enumerate() {
        if weight(t) > weight(&tokens[best]) {
            best = i;
        }
    }
    let mut flags: Vec<char> = tokens.iter().flat_map(|t| t.num_flags.chars()).collect();
    flags.sort();
    flags.dedup();
    let rating =
        if tokens.iter().any(|t| t.rating.is_none()) { None } else { tokens.iter().filter_map(|t| t.rating).min() };
    Tok {
        text,
        tag: tokens[best].tag.clone(),
        whitespace: tokens[n - 1].whitespace.clone(),
        phonemes,
        is_head: tokens[0].is_head,
        alias: None,
        stress: if stress.len() == 1 { Some(stress[0]) } else { None },
        currency,
        num_flags: flags.into_iter().collect(),
        prespace: tokens[0].prespace,
        rating,
    }
}

pub struct G2p {
    lexicon: Lexicon,
    tokenizer: Tokenizer,
    tagger: Tagger,
    normalizer: Normalizer,
    subtoken: Regex,
    link: Regex,
    fallback_piece: Regex,
    pub british: bool,
}

fn read_maybe_gz(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .map_err(|e| format!("cannot gunzip {}: {e}", path.display()))?;
        Ok(s)
    } else {
        String::from_utf8(bytes).map_err(|e| format!("{} is not UTF-8: {e}", path.display()))
    }
}

fn json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    serde_json::from_str(&read_maybe_gz(path)?).map_err(|e| format!("invalid {}: {e}", path.display()))
}

fn rx(p: &str) -> Result<Regex, String> {
    Regex::new(p).map_err(|e| format!("G2P pattern failed to compile: {e}"))
}

impl G2p {
    /// Load the lexicons, tokenizer exceptions, tagger and normalization tables from a hibari
    /// model directory.
    pub fn load(dir: &Path, british: bool) -> Result<Self, String> {
        let acc = if british { "gb" } else { "us" };
        let gold: HashMap<String, Entry> = json(&dir.join(format!("lexicon_{acc}_gold.json.gz")))?;
        let silver: HashMap<String, Entry> = json(&dir.join(format!("lexicon_{acc}_silver.json.gz")))?;
        let exceptions: HashMap<String, Vec<String>> = json(&dir.join("tokenizer_exceptions.json"))?;
        let tagger = Tagger::from_json(&read_maybe_gz(&dir.join("tagger.json.gz"))?)?;
        let tables: Tables = json(&dir.join("normalize.json"))?;
        Ok(Self {
            lexicon: Lexicon { golds: Dict(gold), silvers: Dict(silver), british },
            tokenizer: Tokenizer::new(exceptions)?,
            tagger,
            normalizer: Normalizer::new(tables)?,
            subtoken: rx(concat!(
                r"^['‘’]+|[A-ZÀ-ÖØ-Þ](?=[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ])|(?:^-)?(?:\d?[,.]?\d)+|[-_]+|['‘’]{2,}",
                r"|[^\W\d_]*?(?:['‘’][^\W\d_])*?[a-zß-öø-ÿ](?=[A-ZÀ-ÖØ-Þ])|[^\W\d_]+(?:['‘’][^\W\d_])*",
                r"|[^\w\-'‘’]|['‘’]+$"
            ))?,
            link: rx(r"\[([^\]]+)\]\(([^\)]*)\)")?,
            fallback_piece: rx(r"[^\W\d_]+(?:['’][^\W\d_]+)*|\d+(?:[,.]\d+)*|[^\w\s]+")?,
            british,
        })
    }

    pub fn normalize(&self, text: &str) -> String {
        self.normalizer.normalize(text)
    }

    fn plain_tokens(&self, text: &str) -> Vec<Tok> {
        let pairs = self.tokenizer.tokenize(text);
        if pairs.is_empty() {
            return Vec::new();
        }
        let words: Vec<String> = pairs.iter().map(|(t, _)| t.clone()).collect();
        let tags = self.tagger.tag(&words);
        pairs
            .into_iter()
            .zip(tags)
            .map(|((text, whitespace), tag)| Tok { text, tag, whitespace, is_head: true, ..Tok::default() })
            .collect()
    }

    /// Tokens with tags; `[text](/phonemes/)` sets a token's phonemes directly.
    pub fn tokenize(&self, text: &str) -> Vec<Tok> {
        let mut toks = Vec::new();
        let mut pos = 0;
        for c in self.link.captures_iter(text).flatten() {
            let (Some(m), Some(word), Some(target)) = (c.get(0), c.get(1), c.get(2)) else { continue };
            toks.extend(self.plain_tokens(&text[pos..m.start()]));
            let f = target.as_str();
            let ps = (f.chars().count() > 1 && f.starts_with('/') && f.ends_with('/'))
                .then(|| f[1..].trim_end_matches('/').to_string());
            let ws = if text[m.end()..].chars().next().is_some_and(char::is_whitespace) { " " } else { "" };
            toks.push(Tok {
                text: word.as_str().to_string(),
                tag: "NN".into(),
                whitespace: ws.into(),
                phonemes: ps,
                rating: Some(5),
                is_head: true,
                ..Tok::default()
            });
            pos = m.end();
        }
        toks.extend(self.plain_tokens(&text[pos..]));
        toks
    }

    fn retokenize(&self, tokens: Vec<Tok>) -> Vec<Word> {
        let mut words: Vec<Word> = Vec::new();
        let mut currency: Option<String> = None;
        let n_tokens = tokens.len();
        let next_tags: Vec<String> = tokens.iter().map(|t| t.tag.clone()).collect();
        for (i, token) in tokens.into_iter().enumerate() {
            let mut tks: Vec<Tok> = if token.alias.is_none() && token.phonemes.is_none() {
                self.subtoken
                    .find_iter(&token.text)
                    .flatten()
                    .map(|m| Tok {
                        text: m.as_str().to_string(),
                        whitespace: String::new(),
                        is_head: true,
                        prespace: false,
                        ..token.clone()
                    })
                    .collect()
            } else {
                vec![token.clone()]
            };
            if tks.is_empty() {
                continue;
            }
            let last = tks.len() - 1;
            tks[last].whitespace = token.whitespace.clone();
            let count = tks.len();
            for j in 0..count {
                let (prev_last, next_first) = (
                    if j > 0 { last_char(&tks[j - 1].text) } else { None },
                    if j + 1 < count { first_char(&tks[j + 1].text) } else { None },
                );
                let tk = &mut tks[j];
                if tk.alias.is_some() || tk.phonemes.is_some() {
                } else if tk.tag == "$" && lexicon::currency_units(&tk.text).is_some() {
                    currency = Some(tk.text.clone());
                    tk.phonemes = Some(String::new());
                    tk.rating = Some(4);
                } else if tk.tag == ":" && (tk.text == "-" || tk.text == "–") {
                    tk.phonemes = Some("—".into());
                    tk.rating = Some(3);
                } else if punct_tag(&tk.tag)
                    && !tk.text.chars().all(|c| c.to_lowercase().next().is_some_and(|l| l.is_ascii_lowercase()))
                {
                    tk.phonemes = Some(match punct_tag_phonemes(&tk.tag) {
                        Some(p) => p.to_string(),
                        None => tk.text.chars().filter(|c| PUNCTS.contains(*c)).collect(),
                    });
                    tk.rating = Some(4);
                } else if currency.is_some() {
                    if tk.tag != "CD" {
                        currency = None;
                    } else if j + 1 == count && (i + 1 == n_tokens || next_tags[i + 1] != "CD") {
                        tk.currency = currency.clone();
                    }
                } else if j > 0
                    && j + 1 < count
                    && tk.text == "2"
                    && prev_last.zip(next_first).is_some_and(|(a, b)| a.is_alphabetic() && b.is_alphabetic())
                {
                    tk.alias = Some("to".into());
                }
                let tk = tks[j].clone();
                if tk.alias.is_some() || tk.phonemes.is_some() {
                    words.push(Word::One(tk));
                } else if let Some(Word::Group(g)) = words.last_mut()
                    && g.last().is_some_and(|t| t.whitespace.is_empty())
                {
                    let mut tk = tk;
                    tk.is_head = false;
                    g.push(tk);
                } else if !tk.whitespace.is_empty() {
                    words.push(Word::One(tk));
                } else {
                    words.push(Word::Group(vec![tk]));
                }
            }
        }
        words
            .into_iter()
            .map(|w| match w {
                Word::Group(mut g) if g.len() == 1 => Word::One(g.remove(0)),
                other => other,
            })
            .collect()
    }

    fn token_context(ctx: Context, ps: Option<&str>, token: &Tok) -> Context {
        let mut vowel = ctx.future_vowel;
        if let Some(ps) = ps.filter(|p| !p.is_empty()) {
            for c in ps.chars() {
                if NON_QUOTE_PUNCTS.contains(c) {
                    vowel = None;
                    break;
                }
                if is_vowel(c) {
                    vowel = Some(true);
                    break;
                }
                if is_consonant(c) {
                    vowel = Some(false);
                    break;
                }
            }
        }
        let t = token.text.as_str();
        let future_to = t == "to" || t == "To" || (t == "TO" && (token.tag == "TO" || token.tag == "IN"));
        Context { future_vowel: vowel, future_to }
    }

    fn resolve_tokens(tokens: &mut [Tok]) {
        let n = tokens.len();
        let mut text = String::new();
        for (i, t) in tokens.iter().enumerate() {
            text.push_str(&t.text);
            if i + 1 < n {
                text.push_str(&t.whitespace);
            }
        }
        let classes: std::collections::HashSet<u8> = text
            .chars()
            .filter(|c| !SUBTOKEN_JUNKS.contains(*c))
            .map(|c| {
                if c.is_alphabetic() {
                    0
                } else if c.is_ascii_digit() {
                    1
                } else {
                    2
                }
            })
            .collect();
        let prespace = text.contains(' ') || text.contains('/') || classes.len() > 1;
        for (i, tk) in tokens.iter_mut().enumerate() {
            if tk.phonemes.is_none() {
                if i == n - 1 && tk.text.chars().count() == 1 && NON_QUOTE_PUNCTS.contains(tk.text.as_str()) {
                    tk.phonemes = Some(tk.text.clone());
                    tk.rating = Some(3);
                } else if tk.text.chars().all(|c| SUBTOKEN_JUNKS.contains(c)) {
                    tk.phonemes = Some(String::new());
                    tk.rating = Some(3);
                }
            } else if i > 0 {
                tk.prespace = prespace;
            }
        }
        if prespace {
            return;
        }
        let mut indices: Vec<(bool, usize, usize)> = tokens
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                t.phonemes.as_deref().filter(|p| !p.is_empty()).map(|p| (p.contains(PRIMARY), stress_weight(p), i))
            })
            .collect();
        if indices.len() == 2 && tokens[indices[0].2].text.chars().count() == 1 {
            let i = indices[1].2;
            tokens[i].phonemes = tokens[i].phonemes.as_deref().map(|p| apply_stress(p, Some(-0.5)));
            return;
        }
        let primaries = indices.iter().filter(|x| x.0).count();
        if indices.len() < 2 || primaries <= indices.len().div_ceil(2) {
            return;
        }
        indices.sort();
        let half = indices.len() / 2;
        for &(_, _, i) in &indices[..half] {
            tokens[i].phonemes = tokens[i].phonemes.as_deref().map(|p| apply_stress(p, Some(-0.5)));
        }
    }

    fn fallback(&self, tk: &Tok, oov: &mut dyn FnMut(&str) -> Option<String>) -> (String, i32) {
        let mut out = Vec::new();
        for m in self.fallback_piece.find_iter(&tk.text).flatten() {
            let piece = m.as_str();
            let first = first_char(piece).unwrap_or(' ');
            let ps = if first.is_numeric() {
                self.lexicon.get_number(piece, None, false).0
            } else if first.is_alphabetic() {
                oov(piece)
            } else {
                Some(piece.chars().map(symbol_phonemes).collect())
            };
            if let Some(p) = ps.filter(|p| !p.is_empty()) {
                out.push(p);
            }
        }
        if out.is_empty() { (String::new(), 3) } else { (out.join(" "), 2) }
    }

    fn phonemize_tokens(&self, tokens: Vec<Tok>, oov: &mut dyn FnMut(&str) -> Option<String>) -> Vec<Tok> {
        let mut words = self.retokenize(tokens);
        let mut ctx = Context::default();
        for w in words.iter_mut().rev() {
            match w {
                Word::One(tk) => {
                    if tk.phonemes.is_none() {
                        let (p, r) = self.lexicon.phonemize(tk, &ctx);
                        tk.phonemes = p;
                        tk.rating = r;
                    }
                    if tk.phonemes.is_none() {
                        let (p, r) = self.fallback(tk, oov);
                        tk.phonemes = Some(p);
                        tk.rating = Some(r);
                    }
                    ctx = Self::token_context(ctx, tk.phonemes.as_deref(), tk);
                }
                Word::Group(g) => {
                    let (mut left, mut right) = (0, g.len());
                    let mut should_fallback = false;
                    while left < right {
                        let merged = if g[left..right].iter().any(|t| t.alias.is_some() || t.phonemes.is_some()) {
                            None
                        } else {
                            Some(merge_tokens(&g[left..right], None))
                        };
                        let (ps, rating) = match &merged {
                            None => (None, None),
                            Some(tk) => self.lexicon.phonemize(tk, &ctx),
                        };
                        if let (Some(ps), Some(tk)) = (ps, merged.as_ref()) {
                            g[left].phonemes = Some(ps.clone());
                            g[left].rating = rating;
                            for x in &mut g[left + 1..right] {
                                x.phonemes = Some(String::new());
                                x.rating = rating;
                            }
                            ctx = Self::token_context(ctx, Some(&ps), tk);
                            right = left;
                            left = 0;
                        } else if left + 1 < right {
                            left += 1;
                        } else {
                            right -= 1;
                            let tk = &mut g[right];
                            if tk.phonemes.is_none() {
                                if tk.text.chars().all(|c| SUBTOKEN_JUNKS.contains(c)) {
                                    tk.phonemes = Some(String::new());
                                    tk.rating = Some(3);
                                } else {
                                    should_fallback = true;
                                    break;
                                }
                            }
                            left = 0;
                        }
                    }
                    if should_fallback {
                        let merged = merge_tokens(g, None);
                        let (p, r) = self.fallback(&merged, oov);
                        g[0].phonemes = Some(p);
                        g[0].rating = Some(r);
                        for x in g.iter_mut().skip(1) {
                            x.phonemes = Some(String::new());
                            x.rating = Some(r);
                        }
                    } else {
                        Self::resolve_tokens(g);
                    }
                }
            }
        }
        words
            .into_iter()
            .map(|w| match w {
                Word::One(t) => t,
                Word::Group(g) => merge_tokens(&g, Some("")),
            })
            .map(|mut t| {
                if let Some(p) = t.phonemes.as_mut()
                    && !p.is_empty()
                {
                    *p = p.replace('ɾ', "T").replace('ʔ', "t");
                }
                t
            })
            .collect()
    }

    /// The phoneme string for one line of text; `oov` reads words the lexicon cannot.
    pub fn phonemize(&self, text: &str, oov: &mut dyn FnMut(&str) -> Option<String>) -> String {
        let text = self.normalize(text);
        let tokens = self.phonemize_tokens(self.tokenize(&text), oov);
        let mut out = String::new();
        for tk in tokens {
            out.push_str(tk.phonemes.as_deref().unwrap_or(""));
            if !tk.whitespace.is_empty() {
                out.push(' ');
            }
        }
        out.trim().to_string()
    }
}

/// Whether a token's text is all letters (used by callers that pre-filter input).
pub fn is_word(s: &str) -> bool {
    isalpha(s)
}
