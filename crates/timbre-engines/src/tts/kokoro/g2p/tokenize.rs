//! Word tokenizer with spaCy's English rules, as hibari's `tokenize.py` writes them out: special
//! cases (contractions, `Mr.`, `10am`), then prefixes and suffixes peeled off each
//! whitespace-separated chunk, then infixes (hyphens, slashes) split what is left; finally
//! adjacent pieces that spell a special case are joined back (`Sept` + `.` → `Sept.`).

use std::collections::HashMap;

use fancy_regex::Regex;

const LO: &str = "a-zß-öø-ÿ";
const UP: &str = "A-ZÀ-ÖØ-Þ";
const Q: &str = "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉";
const PUNCT: &str = "…,:;!?¿¡()[]{}<>_#*&。？！，、；：～·";
const ICONS: &str = "™®©°§¶†‡•";
const CURRENCY: &str = r"\$|£|€|¥|฿|US\$|C\$|A\$|₽|₹|₩|₪|₺|₴|₦|₫|₱|₲|₵|₸|₼|₾|₿";
const UNITS: &str = r"km|km²|km³|m|m²|m³|dm|dm²|dm³|cm|cm²|cm³|mm|mm²|mm³|ha|µm|nm|yd|in|ft|kg|g|mg|µg|t|lb|oz|m/s|km/h|kmh|mph|hPa|Pa|mbar|mb|MB|kb|KB|gb|GB|tb|TB|T|G|M|K|%";

/// Escape for use inside or outside a character class: every ASCII punctuation character gets a
/// backslash (always allowed by the regex syntax), everything else stays.
pub fn esc(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_punctuation() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn each_escaped(s: &str) -> Vec<String> {
    s.chars().map(|c| esc(&c.to_string())).collect()
}

pub struct Tokenizer {
    special: HashMap<String, Vec<String>>,
    prefix: Regex,
    suffix: Regex,
    infix: Regex,
    url: Regex,
}

fn compile(p: &str) -> Result<Regex, String> {
    Regex::new(p).map_err(|e| format!("tokenizer pattern failed to compile: {e}"))
}

impl Tokenizer {
    pub fn new(special: HashMap<String, Vec<String>>) -> Result<Self, String> {
        let punct = each_escaped(PUNCT);
        let quotes = each_escaped(Q);
        let icons = [format!("[{}]", esc(ICONS))];
        let mut prefixes: Vec<String> =
            ["§", "%", "=", "—", "–", r"\+(?![0-9])", "…", "……"].iter().map(|s| s.to_string()).collect();
        prefixes.extend(punct.iter().cloned());
        prefixes.extend([r"\.\.+".to_string(), "…".to_string()]);
        prefixes.extend(quotes.iter().cloned());
        prefixes.push(CURRENCY.to_string());
        prefixes.extend(icons.iter().cloned());

        let mut suffixes: Vec<String> = vec!["…".into(), "……".into()];
        suffixes.extend(punct.iter().cloned());
        suffixes.extend([r"\.\.+".to_string(), "…".to_string()]);
        suffixes.extend(quotes.iter().cloned());
        suffixes.extend(icons.iter().cloned());
        suffixes.extend(["'s", "'S", "’s", "’S", "—", "–"].iter().map(|s| esc(s)));
        suffixes.extend([
            r"(?<=[0-9])\+".to_string(),
            r"(?<=°[FfCcKk])\.".to_string(),
            format!("(?<=[0-9])(?:{CURRENCY})"),
            format!("(?<=[0-9])(?:{UNITS})"),
            format!(r"(?<=[0-9{LO}%²\-\+{}{}])\.", esc(PUNCT), esc(Q)),
            format!(r"(?<=[{UP}][{UP}])\."),
        ]);
        let infixes: Vec<String> = vec![
            r"\.\.+".into(),
            "…".into(),
            icons[0].clone(),
            r"(?<=[0-9])[+\-\*^](?=[0-9-])".into(),
            format!(r"(?<=[{LO}{}])\.(?=[{UP}{}])", esc(Q), esc(Q)),
            r"(?<=[^\W\d_]),(?=[^\W\d_])".into(),
            r"(?<=[^\W_])(?:-|–|—|--|---|——|~)(?=[^\W\d_])".into(),
            r"(?<=[^\W_])[:<>=/](?=[^\W\d_])".into(),
        ];
        let prefix = compile(&prefixes.iter().map(|p| format!("^(?:{p})")).collect::<Vec<_>>().join("|"))?;
        let suffix = compile(&suffixes.iter().map(|s| format!("(?:{s})$")).collect::<Vec<_>>().join("|"))?;
        let infix = compile(&infixes.iter().map(|i| format!("(?:{i})")).collect::<Vec<_>>().join("|"))?;
        let url = compile(
            r"(?i)^(?:(?:https?|ftp)://|www\.)\S+$|^[\w.+-]+@[\w-]+(?:\.[\w-]+)+$|^(?:[\w-]+\.)+(?:com|org|net|edu|gov|io|co|uk|de|fr|info|biz|us|ca|au|tv|me|ly|ai)(?:/\S*)?$",
        )?;
        Ok(Self { special, prefix, suffix, infix, url })
    }

    /// `(token text, whitespace)` pairs; whitespace is `" "` when the token was followed by any.
    pub fn tokenize(&self, text: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut chunks = Vec::new();
        let mut start = None;
        for (i, c) in text.char_indices() {
            if c.is_whitespace() {
                if let Some(s) = start.take() {
                    chunks.push((s, i));
                }
            } else if start.is_none() {
                start = Some(i);
            }
        }
        if let Some(s) = start {
            chunks.push((s, text.len()));
        }
        for (s, e) in chunks {
            let toks = self.split(&text[s..e]);
            let ws = if e < text.len() { " " } else { "" };
            let n = toks.len();
            for (i, t) in toks.into_iter().enumerate() {
                out.push((t, if i + 1 == n { ws.to_string() } else { String::new() }));
            }
        }
        out
    }

    fn find_end(re: &Regex, s: &str) -> Option<(usize, usize)> {
        re.find(s).ok().flatten().map(|m| (m.start(), m.end()))
    }

    fn split(&self, s: &str) -> Vec<String> {
        if let Some(v) = self.special.get(s) {
            return v.clone();
        }
        let mut s = s.to_string();
        let mut pre: Vec<String> = Vec::new();
        let mut suf: Vec<String> = Vec::new();
        let mut last = usize::MAX;
        while !s.is_empty() && s.len() != last && !self.special.contains_key(&s) {
            last = s.len();
            let pre_len = Self::find_end(&self.prefix, &s).map(|(_, e)| e).unwrap_or(0);
            let (prefix, minus_pre) = (s[..pre_len].to_string(), s[pre_len..].to_string());
            if pre_len > 0 && !minus_pre.is_empty() && self.special.contains_key(&minus_pre) {
                s = minus_pre;
                pre.push(prefix);
                break;
            }
            let suf_len = Self::find_end(&self.suffix, &s[pre_len..]).map(|(a, b)| b - a).unwrap_or(0);
            let (suffix, minus_suf) = (s[s.len() - suf_len..].to_string(), s[..s.len() - suf_len].to_string());
            if suf_len > 0 && !minus_suf.is_empty() && self.special.contains_key(&minus_suf) {
                s = minus_suf;
                suf.push(suffix);
                break;
            }
            if pre_len > 0 && suf_len > 0 && pre_len + suf_len <= s.len() {
                s = s[pre_len..s.len() - suf_len].to_string();
                pre.push(prefix);
                suf.push(suffix);
            } else if pre_len > 0 {
                s = minus_pre;
                pre.push(prefix);
            } else if suf_len > 0 {
                s = minus_suf;
                suf.push(suffix);
            }
        }
        let mut toks = pre;
        if !s.is_empty() {
            if let Some(v) = self.special.get(&s) {
                toks.extend(v.iter().cloned());
            } else if self.url.is_match(&s).unwrap_or(false) {
                toks.push(s.clone());
            } else {
                let mut start = 0;
                let mut pos = 0;
                while pos <= s.len() {
                    let Ok(Some(m)) = self.infix.find_from_pos(&s, pos) else { break };
                    let (ms, me) = (m.start(), m.end());
                    pos = if me > ms { me } else { next_char(&s, me) };
                    if ms == 0 || ms == me {
                        continue;
                    }
                    if ms > start {
                        toks.push(s[start..ms].to_string());
                    }
                    toks.push(s[ms..me].to_string());
                    start = me;
                }
                if start < s.len() {
                    toks.push(s[start..].to_string());
                }
            }
        }
        toks.extend(suf.into_iter().rev());
        if toks.len() > 1 { self.rejoin(toks) } else { toks }
    }

    fn rejoin(&self, toks: Vec<String>) -> Vec<String> {
        let mut out = Vec::new();
        let mut i = 0;
        'outer: while i < toks.len() {
            for k in [3, 2] {
                if i + k <= toks.len() {
                    let joined: String = toks[i..i + k].concat();
                    if let Some(v) = self.special.get(&joined) {
                        out.extend(v.iter().cloned());
                        i += k;
                        continue 'outer;
                    }
                }
            }
            out.push(toks[i].clone());
            i += 1;
        }
        out
    }
}

fn next_char(s: &str, i: usize) -> usize {
    s[i..].chars().next().map(|c| i + c.len_utf8()).unwrap_or(s.len() + 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_spacy() {
        let mut special = HashMap::new();
        special.insert("don't".to_string(), vec!["do".to_string(), "n't".to_string()]);
        let t = Tokenizer::new(special).unwrap();
        let toks: Vec<String> =
            t.tokenize("Hi, I don't know (really) 10km well-known U.S. $5!").into_iter().map(|p| p.0).collect();
        assert_eq!(
            toks,
            [
                "Hi", ",", "I", "do", "n't", "know", "(", "really", ")", "10", "km", "well", "-", "known", "U.S.", "$",
                "5", "!"
            ]
        );
    }
}
