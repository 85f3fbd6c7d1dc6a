//! espeak-ng as a long-lived child process (it is GPL-3: timbre talks to it over pipes and never
//! links it).
//!
//! Spawning `espeak-ng` per clause costs ~40 ms here (process start plus loading its voice
//! data); a running process answers a line in ~3 ms of CPU. So each TTS worker thread keeps its
//! own process: it writes one clause per line to stdin and reads the IPA lines that come back.
//! espeak-ng may print several lines for one input line (it cuts long clauses), so every clause
//! is followed by a sentinel word whose IPA is learnt at start-up; reading stops at that line.
//! A sentence's clauses go out in one write and their answers are read back together: one round
//! trip per sentence, not one per clause.
//!
//! The command line always synthesizes the audio too (`-q` only skips playing it), and that
//! rendering is most of its time: a sum of harmonics per sample. `-s 440` (fastest rate before
//! espeak-ng switches to its costlier sonic speed-up), `-p 99` (highest pitch: fewest harmonics)
//! and `-z` (no final pause) cut its CPU time per clause by about two thirds. They change the
//! audio only; the IPA is byte-identical (see `FAST_ARGS`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// A word no English text contains; its IPA line marks the end of each answer.
const SENTINEL: &str = "qxqsentinelqxq";

/// Input bytes sent before reading answers back (see [`Espeak::phonemize_all`]).
const BATCH_BYTES: usize = 8 * 1024;

pub const PROGRAM: &str = "espeak-ng";

/// Options that make espeak-ng render less of the audio it throws away. Checked to give
/// byte-identical IPA for 1,459 lines (420 generated sentences with numbers, currency,
/// abbreviations and punctuation, cut into clauses, plus two licence texts) in en-us, and for the
/// 420 sentences in de, fr, es, it, nl, pt, ru and pl (espeak-ng 1.51); the unit test below
/// keeps a tricky subset of them honest.
pub const FAST_ARGS: [&str; 5] = ["-s", "440", "-p", "99", "-z"];

pub struct Espeak {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    sentinel_ipa: String,
}

impl Espeak {
    /// Start `espeak-ng -q --ipa -s 440 -p 99 -z -v VOICE` reading stdin.
    pub fn spawn(voice: &str) -> Result<Self, String> {
        Self::spawn_with(voice, &FAST_ARGS)
    }

    /// Start espeak-ng with `extra` options before `-v VOICE` (the test compares option sets).
    pub fn spawn_with(voice: &str, extra: &[&str]) -> Result<Self, String> {
        let mut child = Command::new(PROGRAM)
            .args(["-q", "--ipa"])
            .args(extra)
            .args(["-v", voice])
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
        self.write_raw(&format!("{line}\n"))
    }

    fn write_raw(&mut self, text: &str) -> Result<(), String> {
        self.stdin
            .write_all(text.as_bytes())
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
        Ok(self.phonemize_all(&[clause])?.pop().unwrap_or_default())
    }

    /// The IPA of each clause, as [`Espeak::phonemize`] gives it, asking for a batch at a time.
    pub fn phonemize_all<S: AsRef<str>>(&mut self, clauses: &[S]) -> Result<Vec<String>, String> {
        let mut out = Vec::with_capacity(clauses.len());
        let mut rest = clauses;
        while !rest.is_empty() {
            // Write a batch, then read its answers. A batch stays far below the pipe buffers
            // (64 KiB on Linux), so espeak-ng never blocks on a full stdout while we are still
            // writing its stdin.
            let mut batch = String::new();
            let mut n = 0;
            for clause in rest {
                let clean = clause.as_ref().replace(['\n', '\r'], " ").replace(SENTINEL, " ");
                if n > 0 && batch.len() + clean.len() > BATCH_BYTES {
                    break;
                }
                batch.push_str(clean.trim());
                batch.push('\n');
                batch.push_str(SENTINEL);
                batch.push('\n');
                n += 1;
            }
            self.write_raw(&batch)?;
            for _ in 0..n {
                out.push(self.read_answer()?);
            }
            rest = &rest[n..];
        }
        Ok(out)
    }

    /// espeak-ng's lines up to the next sentinel line, joined by spaces.
    fn read_answer(&mut self) -> Result<String, String> {
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

    /// A clause long enough that espeak-ng cuts it into several lines.
    fn long_clause() -> String {
        vec!["the quick brown fox jumps over the lazy dog"; 20].join(" ")
    }

    /// Needs the Debian `espeak-ng` package. The speed/pitch/pause options must not change a
    /// single byte of the IPA: clauses as timbre cuts them, with numbers, currency, times,
    /// abbreviations, symbols, capitals and a clause espeak-ng splits.
    #[test]
    fn fast_options_keep_the_ipa() {
        let clauses = [
            "They found the year 2026 during WWII",
            "MY NEIGHBOUR SOLD 50°F WEATHER IN 2 HOURS",
            "Mr",
            "O'Brien reviewed $1,250.75 worth of tickets vs",
            "The CEO of Acme Inc",
            "She reviewed about 7% of the budget at 9 a.m",
            "J.R.R",
            "They counted £30 and €45 before lunch",
            "Our team sold #5 on the list at approx",
            "6:30",
            "The café's crème brûlée costs 7.50",
            "It's 100% true—really",
            "Call 555-0123 now",
            "Read it",
            "chapter IV",
            "verse 12",
            "x = y + 2",
            "e.g",
            "this & that",
            "www.example.com",
            "user@example.org",
            "A 3-year-old child measured 3/4 of the cake near Route 66",
            "I can't, won't, and shouldn't",
            "Hmm",
            "1",
            "",
            &long_clause(),
        ];
        let mut plain = Espeak::spawn_with("en-us", &[]).unwrap();
        let mut fast = Espeak::spawn("en-us").unwrap();
        for clause in clauses {
            assert_eq!(fast.phonemize(clause).unwrap(), plain.phonemize(clause).unwrap(), "{clause}");
        }
    }

    /// One batched round trip answers each clause as separate calls do, in order, including an
    /// empty clause and one that comes back on several lines.
    #[test]
    fn batched_clauses_get_their_own_answers() {
        let mut e = Espeak::spawn("en-us").unwrap();
        let long = long_clause();
        let clauses = ["hello there", "", long.as_str(), "my friend", "qxqsentinelqxq okay"];
        let one_by_one: Vec<String> = clauses.iter().map(|c| e.phonemize(c).unwrap()).collect();
        assert!(one_by_one[2].len() > 400, "the long clause is answered whole");
        assert_eq!(e.phonemize_all(&clauses).unwrap(), one_by_one);
        assert_eq!(one_by_one[4], "oʊkˈeɪ", "the sentinel word in the text is not read as the end");
        // Batches bigger than one write: the answers still line up.
        let many: Vec<String> = (0..40).map(|i| format!("{} number {i}", long_clause())).collect();
        let answers = e.phonemize_all(&many).unwrap();
        assert_eq!(answers.len(), many.len());
        assert_eq!(answers[39], e.phonemize(&many[39]).unwrap());
        assert_eq!(answers[0], e.phonemize(&many[0]).unwrap());
    }
}
