//! Python's `str` predicates and case mappings, which the reference G2P's rules are written in.

pub fn isalpha(s: &str) -> bool {
    !s.is_empty() && s.chars().all(char::is_alphabetic)
}

pub fn isdigit(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || matches!(c, '²' | '³' | '¹'))
}

pub fn islower(s: &str) -> bool {
    s.chars().any(char::is_lowercase) && !s.chars().any(char::is_uppercase)
}

pub fn isupper(s: &str) -> bool {
    s.chars().any(char::is_uppercase) && !s.chars().any(char::is_lowercase)
}

pub fn lower(s: &str) -> String {
    s.to_lowercase()
}

pub fn upper(s: &str) -> String {
    s.to_uppercase()
}

/// First character upper-cased, the rest lower-cased.
pub fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c.as_str().to_lowercase().chars()).collect(),
        None => String::new(),
    }
}

/// `s[n:]` in characters.
pub fn skip(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[i..],
        None => "",
    }
}

/// `s[-n:]` in characters.
pub fn last_n(s: &str, n: usize) -> &str {
    let count = s.chars().count();
    if count <= n { s } else { skip(s, count - n) }
}

/// `s[:n]` in characters.
pub fn first_n(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `s[:-n]` in characters.
pub fn drop_last(s: &str, n: usize) -> &str {
    let count = s.chars().count();
    first_n(s, count.saturating_sub(n))
}

pub fn char_len(s: &str) -> usize {
    s.chars().count()
}

pub fn first_char(s: &str) -> Option<char> {
    s.chars().next()
}

pub fn last_char(s: &str) -> Option<char> {
    s.chars().next_back()
}
