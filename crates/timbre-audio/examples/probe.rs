//! Decodes each file given on the command line and prints what came out: a quick way to see
//! how `timbre_audio::decode` handles a real-world file.
#![allow(clippy::unwrap_used)]
fn main() {
    for p in std::env::args().skip(1) {
        let b = std::fs::read(&p).unwrap();
        let t = std::time::Instant::now();
        match timbre_audio::decode(&b, None) {
            Ok(d) => println!(
                "{p}: {} Hz {} ch {:.4} s codec {} ({:?})",
                d.sample_rate,
                d.channels,
                d.duration_s,
                d.codec,
                t.elapsed()
            ),
            Err(e) => println!("{p}: ERR {e:?}"),
        }
    }
}
