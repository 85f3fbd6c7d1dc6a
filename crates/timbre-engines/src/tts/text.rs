//! Text → clauses and sentences, the unit of synthesis and of streaming.
//!
//! Piper's reference phonemizer (espeak-ng's `TextToPhonemesWithTerminator`) cuts text into
//! clauses at punctuation followed by a space and keeps the punctuation as a phoneme; a clause
//! ending in `.`, `!` or `?` ends a sentence. The `espeak-ng` command line prints the clauses but
//! drops their punctuation, so timbre cuts the clauses itself, with the same rule, and sends them
//! one at a time.

/// One clause: its text (punctuation removed) and the punctuation that ended it.
#[derive(Clone, Debug, PartialEq)]
pub struct Clause {
    pub text: String,
    /// `,` `:` `;` `.` `!` `?`, or `None` when the text simply ended.
    pub terminator: Option<char>,
}

impl Clause {
    pub fn ends_sentence(&self) -> bool {
        matches!(self.terminator, None | Some('.' | '!' | '?'))
    }
}

/// Punctuation that ends a clause when followed by whitespace (or the end of the text), and the
/// terminator it stands for. The ellipsis and the em dash read as a pause, not an end.
fn terminator_of(c: char) -> Option<char> {
    match c {
        '.' | '!' | '?' | ',' | ':' | ';' => Some(c),
        '…' => Some('.'),
        '—' => Some(','),
        '。' => Some('.'),
        '！' => Some('!'),
        '？' => Some('?'),
        '，' | '、' => Some(','),
        _ => None,
    }
}

/// Whitespace and control characters become single spaces: one line per clause is what the
/// espeak-ng process reads, so no newline may survive inside a clause.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() {
            space = !out.is_empty();
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
    out
}

/// Clauses of `text` in order. A run of terminators (`?!`, `...`) counts as one, named by its
/// last sentence-ending member if any (`?!` → `!`, `...` → `.`).
pub fn clauses(text: &str) -> Vec<Clause> {
    let text = clean(text);
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut current = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if terminator_of(c).is_some() {
            // The whole run of punctuation, then whether a space or the end follows.
            let mut j = i;
            let mut term: Option<char> = None;
            while j < chars.len() && terminator_of(chars[j]).is_some() {
                let t = terminator_of(chars[j]);
                if term.is_none() || matches!(t, Some('.' | '!' | '?')) {
                    term = t;
                }
                j += 1;
            }
            // Closing quotes and brackets may sit between the punctuation and the space.
            let mut k = j;
            while k < chars.len() && matches!(chars[k], '"' | '\'' | '”' | '’' | ')' | ']' | '»') {
                k += 1;
            }
            if k == chars.len() || chars[k] == ' ' {
                let body = current.trim().to_string();
                if body.chars().any(|c| c.is_alphanumeric()) {
                    out.push(Clause { text: body, terminator: term });
                } else if let Some(last) = out.last_mut() {
                    // Stray punctuation after a clause strengthens its ending (`word , .`).
                    if matches!(term, Some('.' | '!' | '?')) {
                        last.terminator = term;
                    }
                }
                current.clear();
                i = k;
                continue;
            }
            current.extend(&chars[i..j]);
            i = j;
            continue;
        }
        current.push(c);
        i += 1;
    }
    let body = current.trim().to_string();
    if body.chars().any(|c| c.is_alphanumeric()) {
        out.push(Clause { text: body, terminator: None });
    }
    out
}

/// Clauses grouped into sentences.
pub fn sentences(text: &str) -> Vec<Vec<Clause>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for clause in clauses(text) {
        let end = clause.ends_sentence();
        current.push(clause);
        if end {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The text of a sentence as clauses joined back (for markers and logs).
pub fn sentence_text(clauses: &[Clause]) -> String {
    let mut s = String::new();
    for c in clauses {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(&c.text);
        if let Some(t) = c.terminator {
            s.push(t);
        }
    }
    s
}

/// How much of a growing text buffer (an LLM's deltas) is complete sentences: the byte offset up
/// to which sentences have ended and a space has followed. Text after it may still grow.
pub fn complete_prefix(buffer: &str) -> usize {
    let mut end = 0;
    let mut prev: Option<(usize, char)> = None;
    for (i, c) in buffer.char_indices() {
        if c.is_whitespace()
            && let Some((_, p)) = prev
            && (matches!(p, '.' | '!' | '?' | '…' | '。' | '！' | '？')
                || (matches!(p, '"' | '\'' | '”' | '’' | ')') && ends_after_quote(&buffer[..i])))
        {
            end = i;
        }
        if c == '\n' && buffer[..i].ends_with('\n') {
            end = i; // a blank line ends whatever came before it
        }
        prev = Some((i, c));
    }
    end
}

fn ends_after_quote(s: &str) -> bool {
    let trimmed = s.trim_end_matches(['"', '\'', '”', '’', ')']);
    trimmed.ends_with(['.', '!', '?', '…'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(cs: &[Clause]) -> Vec<(String, Option<char>)> {
        cs.iter().map(|c| (c.text.clone(), c.terminator)).collect()
    }

    #[test]
    fn clauses_keep_their_punctuation() {
        let cs = clauses("Hello there, my friend. How are you?! Fine: thanks");
        assert_eq!(
            texts(&cs),
            vec![
                ("Hello there".into(), Some(',')),
                ("my friend".into(), Some('.')),
                ("How are you".into(), Some('!')),
                ("Fine".into(), Some(':')),
                ("thanks".into(), None),
            ]
        );
    }

    #[test]
    fn numbers_and_inner_dots_do_not_split() {
        let cs = clauses("It cost $3.50 for 1,000 apples.");
        assert_eq!(texts(&cs), vec![("It cost $3.50 for 1,000 apples".into(), Some('.'))]);
    }

    #[test]
    fn quotes_and_newlines() {
        let cs = clauses("He said \"stop.\"\nThen\tleft...");
        assert_eq!(texts(&cs), vec![("He said \"stop".into(), Some('.')), ("Then left".into(), Some('.'))]);
    }

    #[test]
    fn punctuation_only_is_nothing() {
        assert!(clauses("... !!! ,").is_empty());
        assert!(sentences("   ").is_empty());
    }

    #[test]
    fn sentences_group_clauses() {
        let s = sentences("One, two. Three! Four");
        assert_eq!(s.len(), 3);
        assert_eq!(sentence_text(&s[0]), "One, two.");
        assert_eq!(sentence_text(&s[2]), "Four");
    }

    #[test]
    fn complete_prefix_waits_for_the_space() {
        assert_eq!(complete_prefix("Hello there. How ar"), "Hello there.".len());
        assert_eq!(complete_prefix("Hello there."), 0, "the sentence may continue (3.5)");
        assert_eq!(complete_prefix("Pi is 3.14 and"), 0);
        assert_eq!(complete_prefix("He said \"go!\" then"), "He said \"go!\"".len());
        assert_eq!(complete_prefix("a line\n\nnext"), "a line\n".len());
    }
}
