//! Decode throughput: 10 minutes of 44.1 kHz mono 128 kbit/s MP3 (encoded by this crate on
//! first run and cached in the temp directory). Target: under 1 s per decode in release.
//!
//! cargo bench -p timbre-audio --bench decode

use std::time::Instant;

use timbre_audio::{OutputFormat, decode, decode_mono, encode};

const RATE: u32 = 44_100;
const SECONDS: u32 = 600;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join("timbre-bench-10min-44k1-mono-128k.mp3");
    let mp3 = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(_) => {
            let started = Instant::now();
            // Music-like content: two detuned tones under a slow tremolo, so the encoder and
            // decoder do real work (silence would be nearly free).
            let samples: Vec<f32> = (0..RATE * SECONDS)
                .map(|i| {
                    let t = f64::from(i) / f64::from(RATE);
                    let env = 0.5 + 0.25 * (2.0 * std::f64::consts::PI * 0.7 * t).sin();
                    let x = (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                        + 0.5 * (2.0 * std::f64::consts::PI * 1234.5 * t).sin();
                    (0.5 * env * x) as f32
                })
                .collect();
            let bytes = encode(&samples, RATE, OutputFormat::Mp3)?;
            std::fs::write(&path, &bytes)?;
            println!("encoded 10 min to MP3 in {:.2} s", started.elapsed().as_secs_f64());
            bytes
        }
    };
    println!("input: {} ({:.1} MB)", path.display(), mp3.len() as f64 / 1e6);

    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let decoded = decode(&mp3, Some("mp3"))?;
        times.push(started.elapsed().as_secs_f64());
        assert!((decoded.duration_s - f64::from(SECONDS)).abs() < 0.1);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "decode 10 min MP3: best {:.3} s, median {:.3} s ({:.0}x real time)",
        times[0],
        times[2],
        f64::from(SECONDS) / times[2]
    );

    let started = Instant::now();
    let mono = decode_mono(&mp3, Some("mp3"), 16_000)?;
    println!(
        "decode_mono to 16 kHz (decode + resample): {:.3} s, {} samples",
        started.elapsed().as_secs_f64(),
        mono.len()
    );
    Ok(())
}
