//! espeak-ng as a long-lived child process (it is GPL-3: timbre talks to it over pipes and never
//! links it).
//!
//! Spawning `espeak-ng` per clause costs ~40 ms here (process start plus loading its voice
//! data); a running process answers a line in ~3 ms of CPU. So each TTS worker thread keeps its
//! own process: it writes one clause per line to stdin and reads the IPA lines that come back.
//! espeak-ng may print several lines for one input line (it cuts long clauses), so every request
//! is followed by a sentinel word whose IPA is learnt at start-up; reading stops at that line.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// A word no English text contains; its IPA line marks the end of each answer.
const SENTINEL: &str = "qxqsentinelqxq";

pub const PROGRAM: &str = "espeak-ng";

pub struct Espeak {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    sentinel_ipa: String,
}

impl Espeak {
    /// Start `espeak-ng --ipa -q -v VOICE` reading stdin.
    pub fn spawn(voice: &str) -> Result<Self, String> {
        let mut child = Command::new(PROGRAM)
            .args(["-q", "--ipa", "-v", voice])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {PROGRAM} (Debian: apt-get install espeak-ng): {e}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(format!("{PROGRAM} started without pipes"));
        };
        let mut me = Self { child, stdin, stdout: BufReader::new(stdout), sentinel_ipa: String::new() };
        me.write_line(SENTINEL)?;
        let first = me.read_line()?;
        if first.is_empty() {
            return Err(format!("{PROGRAM} -v {voice} printed nothing for a test word (unknown voice?)"));
        }
        me.sentinel_ipa = first;
        Ok(me)
    }

    fn write_line(&mut self, line: &str) -> Result<(), String> {
        self.stdin
            .write_all(line.as_bytes())
            .and_then(|()| self.stdin.write_all(b"\n"))
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("{PROGRAM} stopped reading: {e}"))
    }

    fn read_line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).map_err(|e| format!("reading from {PROGRAM} failed: {e}"))?;
        if n == 0 {
            return Err(format!("{PROGRAM} exited"));
        }
        Ok(line.trim().to_string())
    }

    /// The IPA of one clause (no newlines inside): espeak-ng's lines joined by spaces, with
    /// language-switch marks such as `(fr)` removed as piper does.
    pub fn phonemize(&mut self, clause: &str) -> Result<String, String> {
        let clean: String = clause.replace(['\n', '\r'], " ").replace(SENTINEL, " ");
        self.write_line(clean.trim())?;
        self.write_line(SENTINEL)?;
        let mut parts = Vec::new();
        loop {
            let line = self.read_line()?;
            if line == self.sentinel_ipa {
                break;
            }
            if !line.is_empty() {
                parts.push(strip_language_flags(&line));
            }
        }
        Ok(parts.join(" "))
    }
}

impl Drop for Espeak {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `(en)` / `(fr)` marks around words from another language.
fn strip_language_flags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_removed() {
        assert_eq!(strip_language_flags("bˈɒnʒuːɹ (fr)mɔ̃(en) fɹˈɛnd"), "bˈɒnʒuːɹ mɔ̃ fɹˈɛnd");
    }

    /// Needs the Debian `espeak-ng` package (listed in .ci/run).
    #[test]
    fn long_lived_process_answers_clause_by_clause() {
        let mut e = Espeak::spawn("en-us").unwrap();
        assert_eq!(e.phonemize("hello there").unwrap(), "həlˈoʊ ðˈɛɹ");
        // A second question gets its own answer (no leftovers from the first).
        assert_eq!(e.phonemize("my friend").unwrap(), "maɪ fɹˈɛnd");
        // Nothing speakable: an empty answer, and the process still works afterwards.
        assert_eq!(e.phonemize("").unwrap(), "");
        assert_eq!(e.phonemize("okay").unwrap(), "oʊkˈeɪ");
    }
}
