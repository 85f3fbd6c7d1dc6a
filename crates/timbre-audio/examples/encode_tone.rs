//! Writes a tone in any output format: `encode_tone FORMAT RATE SECONDS OUT`, e.g.
//! `cargo run -p timbre-audio --example encode_tone -- opus 48000 1.0 tone.opus`.
//! Used by `fuzz/make_seeds.sh` and the benchmark notes.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [format, rate, seconds, out] = args.as_slice() else {
        return Err("usage: encode_tone FORMAT RATE SECONDS OUT".into());
    };
    let format: timbre_audio::OutputFormat = format.parse()?;
    let rate: u32 = rate.parse()?;
    let seconds: f64 = seconds.parse()?;
    let n = (f64::from(rate) * seconds) as usize;
    // A 440 Hz tone with a slow 3 Hz tremolo: not trivially compressible, still deterministic.
    let samples: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let env = 0.6 + 0.3 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            (env * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as f32
        })
        .collect();
    std::fs::write(out, timbre_audio::encode(&samples, rate, format)?)?;
    Ok(())
}
