//! Embeds the SQL migrations: for each dialect, writes `$OUT_DIR/migrations_<dialect>.rs`, a list
//! of `(version, description, sql)` with the SQL pulled in by `include_str!`.
//!
//! This replaces `sqlx::migrate!`, whose proc macro (the `macros` feature) compiles a second copy
//! of sqlx's SQLite and PostgreSQL drivers, bundled SQLite included, for the host. The files
//! follow sqlx's naming (`<version>_<description>.sql`) and `src/db.rs` builds the same
//! `Migration`s (same checksums) that the macro and the `sqlx migrate` CLI would.

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    // A directory here makes cargo rerun this script when anything inside changes.
    println!("cargo:rerun-if-changed=migrations");
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    for dialect in ["sqlite", "postgres"] {
        let dir = manifest_dir.join("migrations").join(dialect);
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(stem) = name.strip_suffix(".sql") else {
                continue;
            };
            if stem.ends_with(".up") || stem.ends_with(".down") {
                return Err(format!("{name}: reversible migrations are not supported").into());
            }
            let Some((version, description)) = stem.split_once('_') else {
                return Err(format!("{name}: expected <version>_<description>.sql").into());
            };
            let version: i64 = version.parse().map_err(|_| format!("{name}: the version must be an integer"))?;
            found.push((version, description.replace('_', " "), path.clone()));
        }
        found.sort_by_key(|(version, ..)| *version);
        if let Some(pair) = found.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(format!("{dialect}: version {} used twice", pair[0].0).into());
        }
        let mut code = String::from("&[\n");
        for (version, description, path) in &found {
            writeln!(code, "    ({version}, {description:?}, include_str!({:?})),", path.display().to_string())?;
        }
        code.push_str("]\n");
        std::fs::write(out_dir.join(format!("migrations_{dialect}.rs")), code)?;
    }
    Ok(())
}
