//! Just enough ISO-BMFF parsing to read an audio track's edit list, which is where MP4/M4A files
//! record AAC encoder priming (`media_time`) and the playable length (`segment_duration`).
//! symphonia parses the boxes but does not apply the edit, so decoded AAC would otherwise keep
//! ~1024 frames of priming and the last frame's padding.

/// The part of an audio track to keep, in frames of the track's own sample rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AudioEdit {
    pub skip_frames: u64,
    pub keep_frames: Option<u64>,
}

/// Iterates over the boxes inside `data`, yielding (type, body). Stops at the first malformed
/// header instead of guessing.
fn boxes(data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.len() < 8 {
            return None;
        }
        let size32 = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let kind = [rest[4], rest[5], rest[6], rest[7]];
        let (header, size) = match size32 {
            0 => (8usize, rest.len()),
            1 => {
                let large = read_u64(rest, 8)?;
                (16usize, usize::try_from(large).ok()?)
            }
            n => (8usize, n as usize),
        };
        if size < header || size > rest.len() {
            rest = &[];
            return None;
        }
        let body = &rest[header..size];
        rest = &rest[size..];
        Some((kind, body))
    })
}

fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(data).find(|(k, _)| k == kind).map(|(_, body)| body)
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_u64(data: &[u8], at: usize) -> Option<u64> {
    let b = data.get(at..at + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_be_bytes(a))
}

/// Timescale of an `mvhd` or `mdhd` body (same layout for the fields we need).
fn timescale(full_box: &[u8]) -> Option<u32> {
    let version = *full_box.first()?;
    let at = if version == 1 { 4 + 8 + 8 } else { 4 + 4 + 4 };
    read_u32(full_box, at).filter(|&t| t > 0)
}

/// Reads the first sound track's edit list. `None` when the bytes are not MP4 or carry no
/// usable edit (then the caller falls back to defaults).
pub(crate) fn audio_edit(bytes: &[u8]) -> Option<AudioEdit> {
    let moov = child(bytes, b"moov")?;
    let movie_scale = timescale(child(moov, b"mvhd")?)?;
    for (kind, trak) in boxes(moov) {
        if &kind != b"trak" {
            continue;
        }
        let mdia = child(trak, b"mdia")?;
        let handler = child(mdia, b"hdlr")?;
        if handler.get(8..12) != Some(b"soun".as_slice()) {
            continue;
        }
        let media_scale = timescale(child(mdia, b"mdhd")?)?;
        let elst = child(child(trak, b"edts")?, b"elst")?;
        return parse_elst(elst, movie_scale, media_scale);
    }
    None
}

fn parse_elst(elst: &[u8], movie_scale: u32, media_scale: u32) -> Option<AudioEdit> {
    let version = *elst.first()?;
    let count = read_u32(elst, 4)?;
    let entry_len = if version == 1 { 20 } else { 12 };
    // An initial empty edit (media_time = -1) delays playback; it does not trim anything.
    for i in 0..count.min(4) as usize {
        let at = 8 + i * entry_len;
        let (duration, media_time) = if version == 1 {
            (read_u64(elst, at)?, read_u64(elst, at + 8)? as i64)
        } else {
            (u64::from(read_u32(elst, at)?), i64::from(read_u32(elst, at + 4)? as i32))
        };
        if media_time < 0 {
            continue;
        }
        let keep =
            (duration > 0).then(|| (u128::from(duration) * u128::from(media_scale) / u128::from(movie_scale)) as u64);
        return Some(AudioEdit { skip_frames: media_time as u64, keep_frames: keep });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    fn scale_box(kind: &[u8; 4], scale: u32) -> Vec<u8> {
        let mut body = vec![0u8; 12];
        body.extend_from_slice(&scale.to_be_bytes());
        body.extend_from_slice(&[0u8; 4]);
        bx(kind, &body)
    }

    #[test]
    fn reads_priming_and_length_from_edit_list() {
        let mut elst = vec![0u8, 0, 0, 0, 0, 0, 0, 1];
        elst.extend_from_slice(&1000u32.to_be_bytes()); // 1 s at movie timescale 1000
        elst.extend_from_slice(&1024u32.to_be_bytes());
        elst.extend_from_slice(&0x0001_0000u32.to_be_bytes());
        let mut hdlr = vec![0u8; 8];
        hdlr.extend_from_slice(b"soun");
        hdlr.extend_from_slice(&[0u8; 12]);
        let mdia = [scale_box(b"mdhd", 44_100), bx(b"hdlr", &hdlr)].concat();
        let trak = [bx(b"edts", &bx(b"elst", &elst)), bx(b"mdia", &mdia)].concat();
        let moov = [scale_box(b"mvhd", 1000), bx(b"trak", &trak)].concat();
        let file = [bx(b"ftyp", b"M4A \0\0\0\0"), bx(b"moov", &moov)].concat();
        assert_eq!(audio_edit(&file), Some(AudioEdit { skip_frames: 1024, keep_frames: Some(44_100) }));
        // A truncated moov box is ignored rather than half-read.
        assert_eq!(audio_edit(&file[..file.len() - 3]), None);
        assert_eq!(audio_edit(b"RIFF\0\0\0\0WAVE"), None);
    }
}
