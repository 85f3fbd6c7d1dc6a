//! Feeds arbitrary bytes to `decode`: it must return Ok or a typed error, never panic, hang or
//! allocate without bound. The first byte picks a probe hint, so hint-driven paths run too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use timbre_audio::{DecodeLimits, DecodeOptions, decode_with};

const HINTS: [Option<&str>; 8] = [
    None,
    Some("wav"),
    Some("mp3"),
    Some("flac"),
    Some("ogg"),
    Some("m4a"),
    Some("aac"),
    Some("audio/aiff"),
];

/// `decode` contains panics raised inside symphonia (known upstream overflow bugs) and maps
/// them to `AudioError::Corrupt`; libfuzzer's hook would abort on them before the unwind is
/// caught. Let those unwind, and keep aborting on every other panic (ours included).
fn let_contained_panics_unwind() {
    let abort = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let contained = info
            .location()
            .is_some_and(|l| l.file().contains("/symphonia-"));
        if !contained {
            abort(info);
        }
    }));
}

fuzz_target!(init: let_contained_panics_unwind(), |data: &[u8]| {
    let hint = data.first().and_then(|b| HINTS[usize::from(*b) % HINTS.len()]);
    let opts = DecodeOptions {
        // Tight enough that a "valid" hostile header cannot make the fuzzer itself run out of
        // memory (64 MiB of f32), loose enough that real seeds decode.
        limits: DecodeLimits { max_seconds: 600.0, max_samples: 1 << 24 },
        // A subprocess per input would be far too slow, and ffmpeg is not what is under test.
        ffmpeg_fallback: false,
        ..DecodeOptions::default()
    };
    let _ = decode_with(data, hint, &opts);
});
