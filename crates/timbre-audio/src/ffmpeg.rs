//! Last-resort decoding through an `ffmpeg` subprocess, for what symphonia and libopus cannot
//! read (WebM/Matroska Opus, video containers, AMR, WMA, …).
//!
//! A subprocess rather than bindings: no C ABI to keep in step, a crash cannot take the server
//! down, and the process is killed when it exceeds its time or output budget. ffmpeg writes
//! 32-bit float WAV to a pipe, whose header tells us the rate and channel count it chose.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::decode::{DecodeOptions, Decoded};
use crate::{AudioError, Result};

/// Bytes of ffmpeg's diagnostics kept for error messages; the rest is drained and dropped.
const STDERR_KEEP: u64 = 64 * 1024;

/// Whether an `ffmpeg` executable runs from PATH. Checked once per process: installing ffmpeg
/// while the server runs needs a restart.
pub fn ffmpeg_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        Command::new("ffmpeg")
            .arg("-version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Kills the child if we return early (timeout, oversize output, error) so no ffmpeg outlives
/// the request that started it.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

pub(crate) fn decode(bytes: &[u8], opts: &DecodeOptions) -> Result<Decoded> {
    let limits = opts.limits;
    // One second of slack so that "exactly at the limit" is distinguishable from "over it".
    let max_t = format!("{:.3}", limits.max_seconds + 1.0);
    let child = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-nostats", "-loglevel", "info"])
        .args(["-i", "pipe:0", "-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1"])
        .args(["-t", &max_t, "-c:a", "pcm_f32le", "-f", "wav", "-bitexact", "pipe:1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| AudioError::unsupported(format!("cannot run ffmpeg: {e}")))?;
    let mut child = KillOnDrop(child);

    let input = bytes.to_vec();
    let mut stdin = child.0.stdin.take();
    let writer = thread::spawn(move || {
        if let Some(stdin) = stdin.as_mut() {
            // ffmpeg may stop reading early (it has seen enough, or gave up): not an error.
            let _ = stdin.write_all(&input);
        }
    });

    // Header allowance on top of the sample budget.
    let out_cap = (limits.max_samples as u64).saturating_mul(4).saturating_add(1 << 16);
    let oversize = Arc::new(AtomicBool::new(false));
    let stdout = child.0.stdout.take();
    let oversize_flag = Arc::clone(&oversize);
    let reader = thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(mut stdout) = stdout {
            let _ = (&mut stdout).take(out_cap + 1).read_to_end(&mut out);
            if out.len() as u64 > out_cap {
                oversize_flag.store(true, Ordering::Relaxed);
            }
        }
        out
    });
    let stderr = child.0.stderr.take();
    let err_reader = thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(mut stderr) = stderr {
            let _ = (&mut stderr).take(STDERR_KEEP).read_to_end(&mut kept);
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        }
        String::from_utf8_lossy(&kept).into_owned()
    });

    let started = Instant::now();
    let status = loop {
        if oversize.load(Ordering::Relaxed) {
            return Err(limits.exceeded());
        }
        match child.0.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(AudioError::internal(format!("waiting for ffmpeg: {e}"))),
        }
        if started.elapsed() > opts.ffmpeg_timeout {
            return Err(AudioError::corrupt(format!(
                "ffmpeg did not finish within {} s",
                opts.ffmpeg_timeout.as_secs_f64()
            )));
        }
        thread::sleep(Duration::from_millis(5));
    };
    let _ = writer.join();
    let out = reader.join().unwrap_or_default();
    let diagnostics = err_reader.join().unwrap_or_default();
    if oversize.load(Ordering::Relaxed) {
        return Err(limits.exceeded());
    }
    if !status.success() {
        return Err(classify_failure(&diagnostics));
    }
    let codec = input_codec(&diagnostics).unwrap_or_else(|| "unknown".to_string());
    let (rate, channels, data) = parse_float_wav(&out)?;
    let samples: Vec<f32> = data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let decoded = Decoded::new(rate, channels, samples, codec)?;
    if decoded.duration_s > limits.max_seconds || decoded.samples.len() > limits.max_samples {
        return Err(limits.exceeded());
    }
    Ok(decoded)
}

/// ffmpeg's last error line, sorted into "not a format it knows" and "broken input".
fn classify_failure(diagnostics: &str) -> AudioError {
    let last = diagnostics.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let unknown = [
        "Invalid data found",
        "could not find codec parameters",
        "matches no streams",
        "does not contain any stream",
        "Decoder not found",
        "Unknown input format",
    ];
    if unknown.iter().any(|m| diagnostics.contains(m)) {
        AudioError::unsupported(format!("not a decodable audio format (ffmpeg: {last})"))
    } else {
        AudioError::corrupt(format!("ffmpeg failed: {last}"))
    }
}

/// Codec of the first input audio stream, from ffmpeg's `Stream #0:0: Audio: opus, …` line.
fn input_codec(diagnostics: &str) -> Option<String> {
    let line = diagnostics.lines().find(|l| l.contains("Stream #0") && l.contains("Audio: "))?;
    let after = line.split("Audio: ").nth(1)?;
    let name: String = after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    (!name.is_empty()).then_some(name)
}

/// Reads the `fmt ` chunk and returns everything after the `data` chunk header. ffmpeg cannot
/// seek back on a pipe to fill in sizes, so the data size field is ignored.
fn parse_float_wav(out: &[u8]) -> Result<(u32, usize, &[u8])> {
    let bad = || AudioError::internal("ffmpeg produced malformed WAV output");
    if out.len() < 12 || &out[..4] != b"RIFF" || &out[8..12] != b"WAVE" {
        return Err(bad());
    }
    let mut at = 12usize;
    let mut format: Option<(u32, usize)> = None;
    while at + 8 <= out.len() {
        let id = &out[at..at + 4];
        let size = u32::from_le_bytes([out[at + 4], out[at + 5], out[at + 6], out[at + 7]]) as usize;
        let body = at + 8;
        if id == b"data" {
            let (rate, channels) = format.ok_or_else(bad)?;
            let data = &out[body..];
            let whole = data.len() - data.len() % (4 * channels);
            return Ok((rate, channels, &data[..whole]));
        }
        if id == b"fmt " {
            let fmt = out.get(body..body + 16).ok_or_else(bad)?;
            let tag = u16::from_le_bytes([fmt[0], fmt[1]]);
            let channels = usize::from(u16::from_le_bytes([fmt[2], fmt[3]]));
            let rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
            let bits = u16::from_le_bytes([fmt[14], fmt[15]]);
            // 3 = IEEE float, 0xFFFE = extensible (used for > 2 channels).
            if !(tag == 3 || tag == 0xFFFE) || bits != 32 || channels == 0 {
                return Err(bad());
            }
            format = Some((rate, channels));
        }
        at = body.saturating_add(size).saturating_add(size & 1);
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_name_from_diagnostics() {
        let text = "Input #0, matroska,webm, from 'pipe:0':\n  Stream #0:0: Audio: opus, 48000 Hz, \
                    stereo, fltp (default)\nOutput #0, wav\n  Stream #0:0: Audio: pcm_f32le";
        assert_eq!(input_codec(text).as_deref(), Some("opus"));
    }

    #[test]
    fn failures_are_classified() {
        assert!(matches!(
            classify_failure("pipe:0: Invalid data found when processing input"),
            AudioError::Unsupported { .. }
        ));
        assert!(matches!(classify_failure("Error while decoding stream"), AudioError::Corrupt { .. }));
    }
}
