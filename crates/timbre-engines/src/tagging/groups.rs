//! AudioSet's label hierarchy, for grouping tags ("Dog" under "Domestic animals, pets" under
//! "Animal"). The 527 labels come in the ontology's depth-first order, so every group is a
//! contiguous index range; the ranges below follow the AudioSet ontology. Only valid for the
//! 527-label AudioSet label set (checked by the caller against the label count).

/// (group name, first index, last index), inclusive. Parents before children.
pub const AUDIOSET_GROUPS: &[(&str, usize, usize)] = &[
    ("Human sounds", 0, 71),
    ("Speech", 0, 7),
    ("Shout", 8, 14),
    ("Laughter", 16, 21),
    ("Singing", 27, 36),
    ("Respiratory sounds", 41, 50),
    ("Human group actions", 66, 71),
    ("Animal", 72, 136),
    ("Domestic animals, pets", 73, 85),
    ("Dog", 74, 80),
    ("Cat", 81, 85),
    ("Livestock, farm animals, working animals", 86, 107),
    ("Fowl", 98, 107),
    ("Wild animals", 108, 136),
    ("Bird", 111, 121),
    ("Insect", 126, 131),
    ("Music", 137, 282),
    ("Musical instrument", 138, 215),
    ("Plucked string instrument", 139, 151),
    ("Keyboard (musical)", 152, 160),
    ("Percussion", 161, 183),
    ("Brass instrument", 185, 188),
    ("Bowed string instrument", 189, 194),
    ("Wind instrument, woodwind instrument", 195, 198),
    ("Music genre", 216, 265),
    ("Music role", 266, 275),
    ("Music mood", 276, 282),
    ("Natural sounds", 283, 299),
    ("Wind", 283, 285),
    ("Thunderstorm", 286, 287),
    ("Water", 288, 297),
    ("Fire", 298, 299),
    ("Sounds of things", 300, 465),
    ("Vehicle", 300, 342),
    ("Motor vehicle (road)", 306, 327),
    ("Rail transport", 328, 334),
    ("Aircraft", 335, 340),
    ("Engine", 343, 353),
    ("Domestic sounds, home sounds", 354, 387),
    ("Alarm", 388, 403),
    ("Mechanisms", 404, 417),
    ("Tools", 418, 425),
    ("Explosion", 426, 436),
    ("Wood", 437, 440),
    ("Glass", 441, 443),
    ("Liquid", 444, 456),
    ("Source-ambiguous sounds", 466, 505),
    ("Channel, environment and background", 506, 526),
    ("Acoustic environment", 506, 512),
    ("Noise", 513, 523),
    ("Sound reproduction", 524, 526),
];

pub const AUDIOSET_LABELS: usize = 527;

/// Groups containing label `index`, outermost first, excluding a group that is the label itself.
pub fn ancestors(index: usize, labels: &[String]) -> Vec<&'static str> {
    if labels.len() != AUDIOSET_LABELS {
        return Vec::new();
    }
    let own = labels.get(index).map(String::as_str);
    let mut found: Vec<(&'static str, usize)> = AUDIOSET_GROUPS
        .iter()
        .filter(|(name, lo, hi)| (*lo..=*hi).contains(&index) && Some(*name) != own)
        .map(|(name, lo, hi)| (*name, hi - lo))
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.1));
    found.into_iter().map(|(n, _)| n).collect()
}

/// Label indices inside a named group (e.g. "Music genre" for song analysis).
pub fn members(group: &str) -> Option<std::ops::RangeInclusive<usize>> {
    AUDIOSET_GROUPS.iter().find(|(n, _, _)| *n == group).map(|(_, lo, hi)| *lo..=*hi)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        super::super::audioset_labels()
    }

    #[test]
    fn groups_that_name_a_label_point_at_it() {
        let labels = labels();
        assert_eq!(labels.len(), AUDIOSET_LABELS);
        // A group named like a label starts at that label: the ranges line up with the list.
        for (name, lo, _) in AUDIOSET_GROUPS {
            if let Some(i) = labels.iter().position(|l| l == name) {
                assert_eq!(i, *lo, "{name}");
            }
        }
        assert_eq!(labels[216], "Pop music");
        assert_eq!(labels[265], "Independent music");
        assert_eq!(labels[276], "Happy music");
        assert_eq!(labels[282], "Scary music");
    }

    #[test]
    fn dog_is_a_domestic_animal() {
        let labels = labels();
        let bark = labels.iter().position(|l| l == "Bark").unwrap();
        assert_eq!(ancestors(bark, &labels), vec!["Animal", "Domestic animals, pets", "Dog"]);
        let dog = labels.iter().position(|l| l == "Dog").unwrap();
        assert_eq!(ancestors(dog, &labels), vec!["Animal", "Domestic animals, pets"]);
        assert!(ancestors(0, &labels[..10]).is_empty(), "other label sets get no hierarchy");
    }
}
