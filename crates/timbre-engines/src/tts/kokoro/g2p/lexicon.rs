//! misaki's English lexicon logic as hibari ports it (`lexicon.py`; misaki 0.9.4, Apache-2.0):
//! gold and silver dictionaries with part-of-speech entries, function-word special cases,
//! `-s`/`-ed`/`-ing` stemming, stress rules and number reading.

use std::collections::HashMap;

use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use super::numbers as n;
use super::pystr::{capitalize, char_len, drop_last, isalpha, last_char, skip};
use super::{Context, Tok};

pub const PRIMARY: char = 'ˈ';
pub const SECONDARY: char = 'ˌ';
pub const VOWELS: &str = "AIOQWYaiuæɑɒɔəɛɜɪʊʌᵻ";
pub const CONSONANTS: &str = "bdfhjklmnpstvwzðŋɡɹɾʃʒʤʧθ";
const DIPHTHONGS: &str = "AIOQWYʤʧ";
const US_TAUS: &str = "AIOWYiuæɑəɛɪɹʊʌ";
const ORDINALS: [&str; 4] = ["st", "nd", "rd", "th"];

pub fn is_vowel(c: char) -> bool {
    VOWELS.contains(c)
}

pub fn is_consonant(c: char) -> bool {
    CONSONANTS.contains(c)
}

/// `$` `£` `€` → (unit, sub-unit).
pub fn currency_units(c: &str) -> Option<(&'static str, &'static str)> {
    match c {
        "$" => Some(("dollar", "cent")),
        "£" => Some(("pound", "pence")),
        "€" => Some(("euro", "cent")),
        _ => None,
    }
}

fn symbol_word(w: &str) -> Option<&'static str> {
    match w {
        "%" => Some("percent"),
        "&" => Some("and"),
        "+" => Some("plus"),
        "@" => Some("at"),
        _ => None,
    }
}

pub type Rated = (Option<String>, Option<i32>);

const NONE: Rated = (None, None);

pub fn stress_weight(ps: &str) -> usize {
    ps.chars().map(|c| if DIPHTHONGS.contains(c) { 2 } else { 1 }).sum()
}

fn has_stress(ps: &str) -> bool {
    ps.contains(PRIMARY) || ps.contains(SECONDARY)
}

/// Put each stress mark right before the next vowel.
fn restress(ps: &str) -> String {
    let chars: Vec<char> = ps.chars().collect();
    let mut keyed: Vec<(f64, usize, char)> = chars.iter().enumerate().map(|(i, c)| (i as f64, i, *c)).collect();
    for (i, c) in chars.iter().enumerate() {
        if (*c == PRIMARY || *c == SECONDARY)
            && let Some(j) = (i..chars.len()).find(|&j| is_vowel(chars[j]))
        {
            keyed[i].0 = j as f64 - 0.5;
        }
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, _, c)| c).collect()
}

pub fn apply_stress(ps: &str, stress: Option<f32>) -> String {
    let Some(s) = stress else { return ps.to_string() };
    let has_vowel = ps.chars().any(is_vowel);
    if s < -1.0 {
        ps.replace([PRIMARY, SECONDARY], "")
    } else if s == -1.0 || ((s == 0.0 || s == -0.5) && ps.contains(PRIMARY)) {
        ps.replace(SECONDARY, "").replace(PRIMARY, &SECONDARY.to_string())
    } else if (s == 0.0 || s == 0.5 || s == 1.0) && !has_stress(ps) {
        if !has_vowel { ps.to_string() } else { restress(&format!("{SECONDARY}{ps}")) }
    } else if s >= 1.0 && !ps.contains(PRIMARY) && ps.contains(SECONDARY) {
        ps.replace(SECONDARY, &PRIMARY.to_string())
    } else if s > 1.0 && !has_stress(ps) {
        if !has_vowel { ps.to_string() } else { restress(&format!("{PRIMARY}{ps}")) }
    } else {
        ps.to_string()
    }
}

fn is_digit_str(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

fn parent_tag(tag: Option<&str>) -> Option<String> {
    let t = tag?;
    Some(
        if t.starts_with("VB") {
            "VERB"
        } else if t.starts_with("NN") {
            "NOUN"
        } else if t.starts_with("ADV") || t.starts_with("RB") {
            "ADV"
        } else if t.starts_with("ADJ") || t.starts_with("JJ") {
            "ADJ"
        } else {
            t
        }
        .to_string(),
    )
}

#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
pub enum Entry {
    Plain(String),
    Tagged(HashMap<String, Option<String>>),
}

/// A misaki dictionary with `grow_dictionary` done at lookup time: a lowercase key also answers
/// for its Capitalized form and vice versa, unless that form has its own entry.
pub struct Dict(pub HashMap<String, Entry>);

impl Dict {
    pub fn get(&self, w: &str) -> Option<&Entry> {
        if let Some(v) = self.0.get(w) {
            return Some(v);
        }
        if char_len(w) < 2 {
            return None;
        }
        let lower = w.to_lowercase();
        if w == lower {
            let c = capitalize(w);
            return if c != w { self.0.get(&c) } else { None };
        }
        if w == capitalize(&lower) {
            return self.0.get(&lower);
        }
        None
    }

    pub fn contains(&self, w: &str) -> bool {
        self.get(w).is_some()
    }

    /// A plain entry, or a tagged entry's DEFAULT.
    fn plain(&self, w: &str) -> Option<String> {
        match self.get(w)? {
            Entry::Plain(s) => Some(s.clone()),
            Entry::Tagged(m) => m.get("DEFAULT").cloned().flatten(),
        }
    }
}

pub struct Lexicon {
    pub golds: Dict,
    pub silvers: Dict,
    pub british: bool,
}

impl Lexicon {
    fn nnp(&self, word: &str) -> Rated {
        let mut joined = String::new();
        for c in word.chars().filter(|c| c.is_alphabetic()) {
            match self.golds.plain(&c.to_uppercase().to_string()) {
                Some(p) => joined.push_str(&p),
                None => return NONE,
            }
        }
        let ps = apply_stress(&joined, Some(0.0));
        let ps = match ps.rfind(SECONDARY) {
            Some(i) => format!("{}{PRIMARY}{}", &ps[..i], &ps[i + SECONDARY.len_utf8()..]),
            None => ps,
        };
        (Some(ps), Some(3))
    }

    fn special_case(&self, word: &str, tag: &str, stress: Option<f32>, ctx: &Context) -> Rated {
        let fv = ctx.future_vowel;
        if tag == "ADD" && (word == "." || word == "/") {
            return self.lookup(if word == "." { "dot" } else { "slash" }, None, Some(-0.5), Some(ctx));
        }
        if let Some(w) = symbol_word(word) {
            return self.lookup(w, None, None, Some(ctx));
        }
        let stripped = word.trim_matches('.');
        if stripped.contains('.')
            && isalpha(&word.replace('.', ""))
            && word.split('.').map(char_len).max().unwrap_or(0) < 3
        {
            return self.nnp(word);
        }
        match word {
            "a" | "A" => return (Some(if tag == "DT" { "ɐ".into() } else { "ˈA".into() }), Some(4)),
            "am" | "Am" | "AM" => {
                if tag.starts_with("NN") {
                    return self.nnp(word);
                }
                if fv.is_none() || word != "am" || stress.is_some_and(|s| s > 0.0) {
                    return (self.golds.plain("am"), Some(4));
                }
                return (Some("ɐm".into()), Some(4));
            }
            "an" | "An" | "AN" => {
                if word == "AN" && tag.starts_with("NN") {
                    return self.nnp(word);
                }
                return (Some("ɐn".into()), Some(4));
            }
            "I" if tag == "PRP" => return (Some(format!("{SECONDARY}I")), Some(4)),
            "by" | "By" | "BY" if parent_tag(Some(tag)).as_deref() == Some("ADV") => {
                return (Some("bˈI".into()), Some(4));
            }
            _ => {}
        }
        if matches!(word, "to" | "To") || (word == "TO" && matches!(tag, "TO" | "IN")) {
            return (
                match fv {
                    None => self.golds.plain("to"),
                    Some(false) => Some("tə".into()),
                    Some(true) => Some("tʊ".into()),
                },
                Some(4),
            );
        }
        if matches!(word, "in" | "In") || (word == "IN" && tag != "NNP") {
            let s = if fv.is_none() || tag != "IN" { PRIMARY.to_string() } else { String::new() };
            return (Some(format!("{s}ɪn")), Some(4));
        }
        if matches!(word, "the" | "The") || (word == "THE" && tag == "DT") {
            return (Some(if fv == Some(true) { "ði".into() } else { "ðə".into() }), Some(4));
        }
        if tag == "IN" && matches!(word.to_lowercase().as_str(), "vs" | "vs.") {
            return self.lookup("versus", None, None, Some(ctx));
        }
        if matches!(word, "used" | "Used" | "USED") {
            let key = if matches!(tag, "VBD" | "JJ") && ctx.future_to { "VBD" } else { "DEFAULT" };
            let ps = match self.golds.get("used") {
                Some(Entry::Tagged(m)) => m.get(key).cloned().flatten(),
                Some(Entry::Plain(s)) => Some(s.clone()),
                None => None,
            };
            return (ps, Some(4));
        }
        NONE
    }

    pub fn is_known(&self, word: &str) -> bool {
        if self.golds.contains(word) || symbol_word(word).is_some() || self.silvers.contains(word) {
            return true;
        }
        let lexicon_ord = |c: char| c == '\'' || c == '-' || c.is_ascii_alphabetic();
        if !isalpha(word) || !word.chars().all(lexicon_ord) {
            return false;
        }
        if char_len(word) == 1 {
            return true;
        }
        if word == word.to_uppercase() && self.golds.contains(&word.to_lowercase()) {
            return true;
        }
        let rest = skip(word, 1);
        rest == rest.to_uppercase()
    }

    pub fn lookup(&self, word: &str, tag: Option<&str>, stress: Option<f32>, ctx: Option<&Context>) -> Rated {
        let mut word = word.to_string();
        let mut is_nnp: Option<bool> = None;
        if word == word.to_uppercase() && !self.golds.contains(&word) {
            word = word.to_lowercase();
            is_nnp = Some(tag == Some("NNP"));
        }
        let mut entry = self.golds.get(&word).cloned();
        let mut rating = 4;
        if entry.is_none() && is_nnp != Some(true) {
            entry = self.silvers.get(&word).cloned();
            rating = 3;
        }
        let ps: Option<String> = match entry {
            None => None,
            Some(Entry::Plain(s)) => Some(s),
            Some(Entry::Tagged(m)) => {
                let key = if ctx.is_some_and(|c| c.future_vowel.is_none()) && m.contains_key("None") {
                    Some("None".to_string())
                } else if tag.is_some_and(|t| m.contains_key(t)) {
                    tag.map(String::from)
                } else {
                    parent_tag(tag)
                };
                match key.as_deref().and_then(|k| m.get(k)) {
                    Some(v) => v.clone(),
                    None => m.get("DEFAULT").cloned().flatten(),
                }
            }
        };
        if ps.is_none() || (is_nnp == Some(true) && !ps.as_deref().unwrap_or("").contains(PRIMARY)) {
            let (p, r) = self.nnp(&word);
            if p.is_some() {
                return (p, r);
            }
        }
        (ps.map(|p| apply_stress(&p, stress)), Some(rating))
    }

    fn s_suffix(&self, stem: Option<String>) -> Option<String> {
        let stem = stem.filter(|s| !s.is_empty())?;
        let last = last_char(&stem)?;
        Some(if "ptkfθ".contains(last) {
            format!("{stem}s")
        } else if "szʃʒʧʤ".contains(last) {
            format!("{stem}{}z", if self.british { "ɪ" } else { "ᵻ" })
        } else {
            format!("{stem}z")
        })
    }

    pub fn stem_s(&self, word: &str, tag: Option<&str>, stress: Option<f32>, ctx: Option<&Context>) -> Rated {
        let len = char_len(word);
        if len < 3 || !word.ends_with('s') {
            return NONE;
        }
        let stem = if !word.ends_with("ss") && self.is_known(drop_last(word, 1)) {
            drop_last(word, 1).to_string()
        } else if (word.ends_with("'s") || (len > 4 && word.ends_with("es") && !word.ends_with("ies")))
            && self.is_known(drop_last(word, 2))
        {
            drop_last(word, 2).to_string()
        } else if len > 4 && word.ends_with("ies") && self.is_known(&format!("{}y", drop_last(word, 3))) {
            format!("{}y", drop_last(word, 3))
        } else {
            return NONE;
        };
        let (ps, rating) = self.lookup(&stem, tag, stress, ctx);
        (self.s_suffix(ps), rating)
    }

    fn ed_suffix(&self, stem: Option<String>) -> Option<String> {
        let stem = stem.filter(|s| !s.is_empty())?;
        let chars: Vec<char> = stem.chars().collect();
        let last = *chars.last()?;
        Some(if "pkfθʃsʧ".contains(last) {
            format!("{stem}t")
        } else if last == 'd' {
            format!("{stem}{}d", if self.british { "ɪ" } else { "ᵻ" })
        } else if last != 't' {
            format!("{stem}d")
        } else if self.british || chars.len() < 2 {
            format!("{stem}ɪd")
        } else if US_TAUS.contains(chars[chars.len() - 2]) {
            format!("{}ɾᵻd", drop_last(&stem, 1))
        } else {
            format!("{stem}ᵻd")
        })
    }

    pub fn stem_ed(&self, word: &str, tag: Option<&str>, stress: Option<f32>, ctx: Option<&Context>) -> Rated {
        let len = char_len(word);
        if len < 4 || !word.ends_with('d') {
            return NONE;
        }
        let stem = if !word.ends_with("dd") && self.is_known(drop_last(word, 1)) {
            drop_last(word, 1)
        } else if len > 4 && word.ends_with("ed") && !word.ends_with("eed") && self.is_known(drop_last(word, 2)) {
            drop_last(word, 2)
        } else {
            return NONE;
        };
        let (ps, rating) = self.lookup(stem, tag, stress, ctx);
        (self.ed_suffix(ps), rating)
    }

    fn ing_suffix(&self, stem: Option<String>) -> Option<String> {
        let stem = stem.filter(|s| !s.is_empty())?;
        let chars: Vec<char> = stem.chars().collect();
        let last = *chars.last()?;
        if self.british {
            if "əː".contains(last) {
                return None;
            }
        } else if chars.len() > 1 && last == 't' && US_TAUS.contains(chars[chars.len() - 2]) {
            return Some(format!("{}ɾɪŋ", drop_last(&stem, 1)));
        }
        Some(format!("{stem}ɪŋ"))
    }

    pub fn stem_ing(&self, word: &str, tag: Option<&str>, stress: Option<f32>, ctx: Option<&Context>) -> Rated {
        let len = char_len(word);
        if len < 5 || !word.ends_with("ing") {
            return NONE;
        }
        let base = drop_last(word, 3);
        let doubled = {
            let cs: Vec<char> = word.chars().collect();
            word.ends_with("cking")
                || (cs.len() >= 5
                    && cs[cs.len() - 5] == cs[cs.len() - 4]
                    && "bcdgklmnprstvxz".contains(cs[cs.len() - 4]))
        };
        let stem = if len > 5 && self.is_known(base) {
            base.to_string()
        } else if self.is_known(&format!("{base}e")) {
            format!("{base}e")
        } else if len > 5 && doubled && self.is_known(drop_last(word, 4)) {
            drop_last(word, 4).to_string()
        } else {
            return NONE;
        };
        let (ps, rating) = self.lookup(&stem, tag, stress, ctx);
        (self.ing_suffix(ps), rating)
    }

    fn get_word(&self, word: &str, tag: &str, stress: Option<f32>, ctx: &Context) -> Rated {
        let special = self.special_case(word, tag, stress, ctx);
        if special.0.is_some() {
            return special;
        }
        let wl = word.to_lowercase();
        let mut word = word.to_string();
        let t = Some(tag);
        let c = Some(ctx);
        if char_len(&word) > 1
            && isalpha(&word.replace('\'', ""))
            && word != wl
            && (tag != "NNP" || char_len(&word) > 7)
            && !self.golds.contains(&word)
            && !self.silvers.contains(&word)
            && (word == word.to_uppercase() || skip(&word, 1) == skip(&word, 1).to_lowercase())
            && (self.golds.contains(&wl)
                || self.silvers.contains(&wl)
                || self.stem_s(&wl, t, stress, c).0.is_some_and(|p| !p.is_empty())
                || self.stem_ed(&wl, t, stress, c).0.is_some_and(|p| !p.is_empty())
                || self.stem_ing(&wl, t, stress, c).0.is_some_and(|p| !p.is_empty()))
        {
            word = wl;
        }
        if self.is_known(&word) {
            return self.lookup(&word, t, stress, c);
        }
        if word.ends_with("s'") && self.is_known(&format!("{}'s", drop_last(&word, 2))) {
            return self.lookup(&format!("{}'s", drop_last(&word, 2)), t, stress, c);
        }
        if word.ends_with('\'') && self.is_known(drop_last(&word, 1)) {
            return self.lookup(drop_last(&word, 1), t, stress, c);
        }
        let r = self.stem_s(&word, t, stress, c);
        if r.0.is_some() {
            return r;
        }
        let r = self.stem_ed(&word, t, stress, c);
        if r.0.is_some() {
            return r;
        }
        let r = self.stem_ing(&word, t, Some(stress.unwrap_or(0.5)), c);
        if r.0.is_some() {
            return r;
        }
        NONE
    }

    fn is_currency(word: &str) -> bool {
        if !word.contains('.') {
            return true;
        }
        if word.matches('.').count() > 1 {
            return false;
        }
        word.split('.').nth(1).is_some_and(|c| char_len(c) < 3)
    }

    pub fn get_number(&self, word: &str, currency: Option<&str>, is_head: bool) -> Rated {
        let suffix_len = word.chars().rev().take_while(|c| c.is_ascii_lowercase() || *c == '\'').count();
        let suffix: Option<String> = (suffix_len > 0).then(|| super::pystr::last_n(word, suffix_len).to_string());
        let mut word = drop_last(word, suffix_len).to_string();
        let sfx = suffix.as_deref();
        let mut result: Vec<(Option<String>, Option<i32>)> = Vec::new();
        if word.starts_with('-') {
            result.push(self.lookup("minus", None, None, None));
            word = skip(&word, 1).to_string();
        }
        let extend = |result: &mut Vec<Rated>, words: &str| {
            for w in words.split(|c: char| !c.is_ascii_lowercase()).filter(|w| !w.is_empty()) {
                if w != "and" {
                    result.push(self.lookup(w, None, if w == "point" { Some(-2.0) } else { None }, None));
                }
            }
        };
        let card = |s: &str| n::cardinal(s.parse::<i128>().unwrap_or(0));
        let is_ord = sfx.is_some_and(|s| ORDINALS.contains(&s));
        let known_currency = currency.and_then(currency_units);
        if is_digit_str(&word) && is_ord {
            extend(&mut result, &n::ordinal(word.parse().unwrap_or(0)));
        } else if result.is_empty() && char_len(&word) == 4 && known_currency.is_none() && is_digit_str(&word) {
            extend(&mut result, &n::year(word.parse().unwrap_or(0)));
        } else if !is_head && !word.contains('.') {
            let num = word.replace(',', "");
            let cs: Vec<char> = num.chars().collect();
            if cs.first() == Some(&'0') || cs.len() > 3 {
                for c in &cs {
                    extend(&mut result, &card(&c.to_string()));
                }
            } else if cs.len() == 3 && !num.ends_with("00") {
                extend(&mut result, &card(&cs[0].to_string()));
                if cs[1] == '0' {
                    result.push(self.lookup("O", None, Some(-2.0), None));
                    extend(&mut result, &card(&cs[2].to_string()));
                } else {
                    extend(&mut result, &card(&num[1..]));
                }
            } else if !num.is_empty() {
                extend(&mut result, &card(&num));
            }
        } else if word.matches('.').count() > 1 || !is_head {
            for part in word.replace(',', "").split('.') {
                if part.is_empty() {
                    continue;
                }
                let cs: Vec<char> = part.chars().collect();
                if cs[0] == '0' || (cs.len() != 2 && cs[1..].iter().any(|c| *c != '0')) {
                    for c in &cs {
                        extend(&mut result, &card(&c.to_string()));
                    }
                } else {
                    extend(&mut result, &card(part));
                }
            }
        } else if let (Some((unit, sub)), true) = (known_currency, Self::is_currency(&word)) {
            let cleaned = word.replace(',', "");
            let mut pairs: Vec<(i128, &str)> =
                cleaned.split('.').zip([unit, sub]).map(|(num, u)| (num.parse().unwrap_or(0), u)).collect();
            if pairs.len() > 1 {
                if pairs[1].0 == 0 {
                    pairs.truncate(1);
                } else if pairs[0].0 == 0 {
                    pairs.remove(0);
                }
            }
            for (i, (num, unit)) in pairs.iter().enumerate() {
                if i > 0 {
                    result.push(self.lookup("and", None, None, None));
                }
                extend(&mut result, &n::cardinal(*num));
                result.push(if num.abs() != 1 && *unit != "pence" {
                    self.stem_s(&format!("{unit}s"), None, None, None)
                } else {
                    self.lookup(unit, None, None, None)
                });
            }
        } else {
            let words = if is_digit_str(&word) {
                card(&word)
            } else if !word.contains('.') {
                let v: i128 = word.replace(',', "").parse().unwrap_or(0);
                if is_ord { n::ordinal(v) } else { n::cardinal(v) }
            } else {
                let w = word.replace(',', "");
                if let Some(rest) = w.strip_prefix('.') {
                    let digits: Vec<String> = rest.chars().map(|c| card(&c.to_string())).collect();
                    format!("point {}", digits.join(" "))
                } else {
                    n::decimal(&w)
                }
            };
            extend(&mut result, &words);
        }
        if result.is_empty() {
            return NONE;
        }
        let joined = result.iter().map(|(p, _)| p.clone().unwrap_or_default()).collect::<Vec<_>>().join(" ");
        let rating = result.iter().filter_map(|(_, r)| *r).min();
        let ps = match sfx {
            Some("s" | "'s") => self.s_suffix(Some(joined)),
            Some("ed" | "'d") => self.ed_suffix(Some(joined)),
            Some("ing") => self.ing_suffix(Some(joined)),
            _ => Some(joined),
        };
        (ps, rating)
    }

    fn append_currency(&self, ps: String, currency: Option<&str>) -> String {
        let Some((unit, _)) = currency.and_then(currency_units) else { return ps };
        match self.stem_s(&format!("{unit}s"), None, None, None).0 {
            Some(c) if !c.is_empty() => format!("{ps} {c}"),
            _ => ps,
        }
    }

    fn is_number(word: &str, is_head: bool) -> bool {
        if !word.chars().any(|c| c.is_ascii_digit()) {
            return false;
        }
        let mut w = word;
        for s in ["ing", "'d", "ed", "'s", "st", "nd", "rd", "th", "s"] {
            if let Some(stripped) = w.strip_suffix(s) {
                w = stripped;
                break;
            }
        }
        w.chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || c == ',' || c == '.' || (is_head && i == 0 && c == '-'))
    }

    /// Phonemes and rating for one token in context.
    pub fn phonemize(&self, tk: &Tok, ctx: &Context) -> Rated {
        let word = tk.alias.as_deref().unwrap_or(&tk.text).replace(['‘', '’'], "'");
        let word: String = word.nfkc().collect();
        let word: String = word
            .chars()
            .map(|c| match c {
                '²' => '2',
                '³' => '3',
                '¹' => '1',
                other => other,
            })
            .collect();
        let stress = if word == word.to_lowercase() {
            None
        } else if word == word.to_uppercase() {
            Some(2.0)
        } else {
            Some(0.5)
        };
        let (ps, rating) = self.get_word(&word, &tk.tag, stress, ctx);
        if let Some(ps) = ps {
            return (Some(apply_stress(&self.append_currency(ps, tk.currency.as_deref()), tk.stress)), rating);
        }
        if Self::is_number(&word, tk.is_head) {
            let (ps, rating) = self.get_number(&word, tk.currency.as_deref(), tk.is_head);
            return (ps.map(|p| apply_stress(&p, tk.stress)), rating);
        }
        NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stress_rules() {
        assert_eq!(apply_stress("hɛlO", Some(2.0)), "hˈɛlO");
        assert_eq!(apply_stress("hˈɛlO", Some(-1.0)), "hˌɛlO");
        assert_eq!(apply_stress("hˈɛlˌO", Some(-3.0)), "hɛlO");
        assert_eq!(apply_stress("tst", Some(2.0)), "tst");
        assert_eq!(apply_stress("ˌæ", Some(1.0)), "ˈæ");
    }
}
