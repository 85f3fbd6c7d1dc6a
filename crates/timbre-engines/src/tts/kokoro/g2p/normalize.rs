//! Text normalization before tokenizing (hibari's `normalize.py`, ported): times, dates, units,
//! abbreviations, other currencies, symbols and letter/digit mixes become words; plain numbers
//! are left to the lexicon, as in misaki. Word tables come from the model's `normalize.json`.

use std::collections::HashMap;

use fancy_regex::{Captures, Regex};
use serde::Deserialize;

use super::numbers as n;
use super::tokenize::esc;

/// A JSON object read in document order (the symbol table is applied in that order).
pub struct Ordered<V>(pub Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, V>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
pub struct Tables {
    pub months: HashMap<String, String>,
    pub titles: Ordered<String>,
    pub abbreviations: Ordered<String>,
    pub units: Ordered<Vec<String>>,
    pub symbols: Ordered<String>,
    pub currency: HashMap<String, Vec<String>>,
    pub roman_cardinal: Vec<String>,
    pub roman_ordinal: Vec<String>,
}

pub struct Normalizer {
    t: Tables,
    units: HashMap<String, Vec<String>>,
    titles: HashMap<String, String>,
    abbrev: HashMap<String, String>,
    month_names: Vec<String>,
    re: Patterns,
}

struct Patterns {
    time: Regex,
    date_us: Regex,
    date_iso: Regex,
    month_day: Regex,
    day_month: Regex,
    unit: Regex,
    deg: Regex,
    cents: Regex,
    currency: Regex,
    big_money: Regex,
    title: Regex,
    abbrev: Regex,
    no: Regex,
    hash: Regex,
    roman_c: Regex,
    roman_o: Regex,
    phone: Regex,
    range: Regex,
    fraction: Regex,
    plus: Regex,
    space_punct: Regex,
    symbols: Vec<(Regex, String)>,
}

/// Alternation of words, longest first (Python's stable sort keeps ties in table order).
fn alt<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let mut w: Vec<&str> = words.into_iter().collect();
    w.sort_by_key(|s| std::cmp::Reverse(s.chars().count()));
    w.iter().map(|s| esc(s)).collect::<Vec<_>>().join("|")
}

fn re(p: &str) -> Result<Regex, String> {
    Regex::new(p).map_err(|e| format!("normalizer pattern failed to compile: {e}"))
}

const NUM: &str = r"\d+(?:,\d{3})*(?:\.\d+)?";
const ROMAN_NUMERAL: &str = r"((?=[IVXLC])M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3}))";

fn fraction_word(b: i128) -> &'static str {
    match b {
        2 => "half",
        3 => "third",
        4 => "quarter",
        5 => "fifth",
        6 => "sixth",
        7 => "seventh",
        8 => "eighth",
        9 => "ninth",
        _ => "tenth",
    }
}

fn roman(s: &str) -> i128 {
    let v = |c: char| match c {
        'I' => 1,
        'V' => 5,
        'X' => 10,
        'L' => 50,
        'C' => 100,
        'D' => 500,
        'M' => 1000,
        _ => 0,
    };
    let cs: Vec<char> = s.chars().collect();
    let mut total = 0;
    for (i, c) in cs.iter().enumerate() {
        let x = v(*c);
        if i + 1 < cs.len() && v(cs[i + 1]) > x {
            total -= x;
        } else {
            total += x;
        }
    }
    total
}

fn plural<'a>(n_text: &str, words: &'a [String]) -> &'a str {
    let t = n_text.replace(',', "");
    let i = if matches!(t.as_str(), "1" | "1.0" | "-1") { 0 } else { 1 };
    words.get(i).map(String::as_str).unwrap_or("")
}

fn g<'t>(c: &Captures<'t>, i: usize) -> Option<&'t str> {
    c.get(i).map(|m| m.as_str())
}

fn num(s: &str) -> i128 {
    s.parse().unwrap_or(0)
}

/// Replace every match with `f(captures)`, like Python's `re.sub` with a function.
fn sub(re: &Regex, text: &str, mut f: impl FnMut(&Captures<'_>) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut pos = 0;
    while pos <= text.len() {
        let Ok(Some(c)) = re.captures_from_pos(text, pos) else { break };
        let Some(m) = c.get(0) else { break };
        out.push_str(&text[last..m.start()]);
        out.push_str(&f(&c));
        last = m.end();
        pos = if m.end() > m.start() {
            m.end()
        } else {
            match text[m.end()..].chars().next() {
                Some(ch) => {
                    out.push(ch);
                    last = m.end() + ch.len_utf8();
                    m.end() + ch.len_utf8()
                }
                None => break,
            }
        };
    }
    if last <= text.len() {
        out.push_str(&text[last..]);
    }
    out
}

impl Normalizer {
    pub fn new(t: Tables) -> Result<Self, String> {
        let mut month_alt: Vec<String> = Vec::new();
        let order = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
        let month_names: Vec<String> = order.iter().filter_map(|k| t.months.get(*k).cloned()).collect();
        month_alt.extend(month_names.iter().cloned());
        month_alt.extend(order.iter().map(|m| super::pystr::capitalize(m)));
        month_alt.push("Sept".into());
        let months = alt(month_alt.iter().map(String::as_str));
        let units = alt(t.units.0.iter().map(|(k, _)| k.as_str()));
        let currency_words = r"[¥₹₩]|Rs\.?|USD|EUR|GBP";
        let titles = alt(t.titles.0.iter().map(|(k, _)| k.as_str()));
        let abbrev = alt(t.abbreviations.0.iter().map(|(k, _)| k.as_str()));
        let mut symbols = Vec::new();
        for (sym, word) in &t.symbols.0 {
            let p = if "=<>~".contains(sym.as_str()) { format!(r"(?<=\S) ?{} ?(?=\S)", esc(sym)) } else { esc(sym) };
            symbols.push((re(&p)?, if word.is_empty() { " ".to_string() } else { format!(" {word} ") }));
        }
        let re = Patterns {
            time: re(r"\b(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s?([AaPp])\.?[Mm]\.?(?![A-Za-z]))?(?!\d)")?,
            date_us: re(r"\b(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})\b")?,
            date_iso: re(r"\b(\d{4})-(\d{2})-(\d{2})\b")?,
            month_day: re(&format!(r"\b({months})\.? (\d{{1,2}})(?:st|nd|rd|th)?\b(?![\d:%])(,? \d{{4}}\b)?"))?,
            day_month: re(&format!(r"\b(the )?(\d{{1,2}}) (?:of )?({months})\b\.?"))?,
            unit: re(&format!(r"(?<![\w.])(-?{NUM})\s?({units})(?![\w])"))?,
            deg: re(&format!(r"(?<![\w.])(-?{NUM})\s?°\s?([CF])?(?![\w])"))?,
            cents: re(&format!(r"(?<![\w.])({NUM})\s?¢"))?,
            currency: re(&format!(
                r"(?<![\w])({currency_words})\s?({NUM})(?:\s?(hundred|thousand|million|billion|trillion|[kKmMbB]\b))?"
            ))?,
            big_money: re(&format!(r"([$£€])({NUM})\s?(hundred|thousand|million|billion|trillion|[kKmMbB]\b)"))?,
            title: re(&format!(r"\b({titles})\.? (?=[A-Z])"))?,
            abbrev: re(&format!(r"(?<![\w.])({abbrev})(?![\w])"))?,
            no: re(r"\b(No|Nos)\. ?(?=\d)")?,
            hash: re(r"(?<![\w&])#(?=\d)")?,
            roman_c: re(&format!(
                r"\b({}) {ROMAN_NUMERAL}\b(?![.'’]\w)",
                alt(t.roman_cardinal.iter().map(String::as_str))
            ))?,
            roman_o: re(&format!(
                r"\b({}) {ROMAN_NUMERAL}\b(?![.'’]\w)",
                alt(t.roman_ordinal.iter().map(String::as_str))
            ))?,
            phone: re(r"(?<![\w.\-])(?:\d{3}-)?\d{3}-\d{4}(?![\w.\-])")?,
            range: re(r"(?<![\w.\-])(\d{1,4})\s?[-–]\s?(\d{1,4})(?![\w.\-%])")?,
            fraction: re(r"(?<![\w./])(\d{1,2})/(\d{1,2})(?![\w./])")?,
            plus: re(r"(?<![\w+])\+(?=\d)")?,
            space_punct: re(r" +([,.;:!?])")?,
            symbols,
        };
        Ok(Self {
            units: t.units.0.iter().cloned().collect(),
            titles: t.titles.0.iter().cloned().collect(),
            abbrev: t.abbreviations.0.iter().cloned().collect(),
            month_names,
            t,
            re,
        })
    }

    /// Month abbreviation (first three letters, lower-cased) → name.
    fn month(&self, m: &str) -> String {
        let key: String = m.to_lowercase().chars().take(3).collect();
        self.t.months.get(&key).cloned().unwrap_or_else(|| m.to_string())
    }

    fn date(&self, y: Option<&str>, mo: i128, d: i128) -> Option<String> {
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
            return None;
        }
        let name = self.month_names.get((mo - 1) as usize)?;
        Some(match y {
            Some(y) => format!("{name} {}, {y}", n::ordinal(d)),
            None => format!("{name} {}", n::ordinal(d)),
        })
    }

    pub fn normalize(&self, text: &str) -> String {
        let text = collapse_ws(text);
        if text.is_empty() {
            return text;
        }
        let mut text = text.replace('\u{a0}', " ").replace('’', "'").replace('‒', "-").replace('―', "—");
        let r = &self.re;
        text = {
            let src = text.clone();
            sub(&r.time, &src, |c| {
                let whole = g(c, 0).unwrap_or("");
                let (h, mi, sec, ap) = (num(g(c, 1).unwrap_or("0")), num(g(c, 2).unwrap_or("0")), g(c, 3), g(c, 4));
                if h > 24 || mi > 59 || sec.is_some_and(|s| num(s) > 59) {
                    return whole.to_string();
                }
                let mut words = n::cardinal(h);
                if mi == 0 {
                    if ap.is_none() && sec.is_none() {
                        words.push_str(" o'clock");
                    }
                } else if mi < 10 {
                    words.push_str(&format!(" oh {}", n::cardinal(mi)));
                } else {
                    words.push_str(&format!(" {}", n::cardinal(mi)));
                }
                if let Some(s) = sec {
                    let s = num(s);
                    words.push_str(&format!(" and {}{}", n::cardinal(s), if s == 1 { " second" } else { " seconds" }));
                }
                if let Some(ap) = ap {
                    let end = c.get(0).map(|m| m.end()).unwrap_or(0);
                    let next_is_dot = src[end..].starts_with('.');
                    words.push_str(&format!(" {}.M{}", ap.to_uppercase(), if next_is_dot { "" } else { "." }));
                }
                words
            })
        };
        text = sub(&r.date_iso, &text, |c| {
            self.date(g(c, 1), num(g(c, 2).unwrap_or("0")), num(g(c, 3).unwrap_or("0")))
                .unwrap_or_else(|| g(c, 0).unwrap_or("").to_string())
        });
        text = sub(&r.date_us, &text, |c| {
            let (a, b) = (num(g(c, 1).unwrap_or("0")), num(g(c, 2).unwrap_or("0")));
            let mut y = g(c, 3).unwrap_or("").to_string();
            if y.chars().count() == 2 {
                y = format!("{}{y}", if num(&y) > 30 { "19" } else { "20" });
            }
            let (mo, d) = if a <= 12 { (a, b) } else { (b, a) };
            self.date(Some(&y), mo, d).unwrap_or_else(|| g(c, 0).unwrap_or("").to_string())
        });
        text = sub(&r.big_money, &text, |c| {
            let (sym, amount, big) = (g(c, 1).unwrap_or(""), g(c, 2).unwrap_or(""), g(c, 3).unwrap_or(""));
            let big = big_word(big);
            let unit = self.t.currency.get(sym).and_then(|w| w.get(1)).cloned().unwrap_or_default();
            format!("{amount} {big} {unit}")
        });
        text = sub(&r.cents, &text, |c| {
            let amount = g(c, 1).unwrap_or("");
            let words = self.t.currency.get("¢").cloned().unwrap_or_default();
            format!("{amount} {}", plural(amount, &words))
        });
        text = sub(&r.currency, &text, |c| {
            let (sym, amount, big) = (g(c, 1).unwrap_or(""), g(c, 2).unwrap_or(""), g(c, 3));
            let words = self.t.currency.get(sym.trim_end_matches('.')).cloned().unwrap_or_default();
            match big {
                Some(b) => format!("{amount} {} {}", big_word(b), words.get(1).cloned().unwrap_or_default()),
                None => format!("{amount} {}", plural(amount, &words)),
            }
        });
        text = sub(&r.deg, &text, |c| {
            let amount = g(c, 1).unwrap_or("");
            let words = ["degree".to_string(), "degrees".to_string()];
            let mut s = format!("{amount} {}", plural(amount, &words));
            match g(c, 2) {
                Some("C") => s.push_str(" Celsius"),
                Some("F") => s.push_str(" Fahrenheit"),
                _ => {}
            }
            s
        });
        text = sub(&r.unit, &text, |c| {
            let (amount, u) = (g(c, 1).unwrap_or(""), g(c, 2).unwrap_or(""));
            let words = self.units.get(u).cloned().unwrap_or_default();
            format!("{amount} {}", plural(amount, &words))
        });
        text = sub(&r.month_day, &text, |c| {
            let (month, day, year) = (g(c, 1).unwrap_or(""), num(g(c, 2).unwrap_or("0")), g(c, 3));
            if !(1..=31).contains(&day) {
                return g(c, 0).unwrap_or("").to_string();
            }
            format!("{} {}{}", self.month(month), n::ordinal(day), year.unwrap_or(""))
        });
        text = sub(&r.day_month, &text, |c| {
            let (day, month) = (num(g(c, 2).unwrap_or("0")), g(c, 3).unwrap_or(""));
            if !(1..=31).contains(&day) {
                return g(c, 0).unwrap_or("").to_string();
            }
            format!("the {} of {}", n::ordinal(day), self.month(month))
        });
        text = sub(&r.title, &text, |c| {
            format!("{} ", self.titles.get(g(c, 1).unwrap_or("")).cloned().unwrap_or_default())
        });
        text = {
            let len = text.len();
            sub(&r.abbrev, &text, |c| {
                let k = g(c, 1).unwrap_or("");
                let at_end = c.get(0).is_some_and(|m| m.end() == len);
                format!(
                    "{}{}",
                    self.abbrev.get(k).cloned().unwrap_or_default(),
                    if at_end && k.ends_with('.') { "." } else { "" }
                )
            })
        };
        text = sub(&r.no, &text, |c| if g(c, 1) == Some("No") { "Number ".into() } else { "Numbers ".into() });
        text = sub(&r.hash, &text, |_| "number ".into());
        text = sub(&r.roman_c, &text, |c| format!("{} {}", g(c, 1).unwrap_or(""), roman(g(c, 2).unwrap_or(""))));
        text = sub(&r.roman_o, &text, |c| {
            format!("{} the {}", g(c, 1).unwrap_or(""), n::ordinal(roman(g(c, 2).unwrap_or(""))))
        });
        text = sub(&r.phone, &text, |c| {
            let digits = g(c, 0).unwrap_or("").replace('-', ", ");
            let chars: Vec<String> = digits.chars().map(String::from).collect();
            chars.join(" ")
        });
        text = sub(&r.fraction, &text, |c| {
            let (a, b) = (num(g(c, 1).unwrap_or("0")), num(g(c, 2).unwrap_or("0")));
            if 0 < a && a < b && b <= 10 {
                let unit = fraction_word(b);
                if unit == "half" {
                    return if a == 1 { "one half".into() } else { format!("{a} halves") };
                }
                return format!("{a} {unit}{}", if a == 1 { "" } else { "s" });
            }
            if (1..=12).contains(&a) && (1..=31).contains(&b) {
                return self.date(None, a, b).unwrap_or_default();
            }
            format!("{a} slash {b}")
        });
        text = sub(&r.range, &text, |c| format!("{} to {}", g(c, 1).unwrap_or(""), g(c, 2).unwrap_or("")));
        text = sub(&r.plus, &text, |_| "plus ".into());
        for ((sym, _), (pattern, word)) in self.t.symbols.0.iter().zip(&r.symbols) {
            if text.contains(sym.as_str()) {
                text = sub(pattern, &text, |_| word.clone());
            }
        }
        let text = collapse_ws(&text);
        sub(&r.space_punct, &text, |c| g(c, 1).unwrap_or("").to_string()).trim().to_string()
    }
}

fn big_word(b: &str) -> String {
    match b.to_lowercase().as_str() {
        "k" => "thousand".into(),
        "m" => "million".into(),
        "b" => "billion".into(),
        _ => b.to_string(),
    }
}

/// `re.sub(r"\s+", " ", text).strip()`
fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
