//! `timbre models list|verify|pull`.

use std::io::Read;
use std::process::ExitCode;

use sha2::{Digest, Sha256};
use timbre_engines::manifest::{self, Manifest};
use timbre_engines::registry::check_files;

use timbre_engines::Registry;
use timbre_engines::hub::ModelSource;

use crate::cli::{ModelsArgs, ModelsCommand, fail};

pub fn run(args: ModelsArgs) -> ExitCode {
    let config = match args.config.load() {
        Ok(l) => l.config,
        Err(e) => return fail(&e),
    };
    let dir = &config.models_dir;
    if let ModelsCommand::Pull { names } = &args.command {
        return pull(&config, names);
    }
    let mut found = match manifest::discover(dir) {
        Ok(f) => f,
        Err(_) if !config.models.is_empty() => Vec::new(),
        Err(e) => {
            return fail(&format!("cannot read models directory {}: {e} (run scripts/fetch-models)", dir.display()));
        }
    };
    // Configured entries: local ones are checked like the models dir; hub ones are listed with
    // their source (`timbre models pull` downloads them).
    for entry in &config.models {
        match &entry.source {
            ModelSource::Local(_) => {
                let m = entry
                    .local_manifest()
                    .map_err(|message| manifest::ManifestError::Invalid { path: dir.clone(), message });
                found.push((entry.name.clone(), m));
            }
            ModelSource::Hub(repo) => eprintln!("{}: hf:{repo} (`timbre models pull` downloads it)", entry.name),
        }
    }
    match args.command {
        ModelsCommand::List { json } => {
            let rows: Vec<serde_json::Value> = found
                .iter()
                .map(|(dir_name, m)| match m {
                    Ok(m) => serde_json::json!({
                        "name": m.name, "family": m.family, "capability": m.capability, "required": m.required,
                        "files": m.files.len(), "bytes": m.files.iter().filter_map(|f| f.bytes).sum::<u64>(),
                        "status": match check_files(m) { Ok(()) => "present".to_string(), Err(e) => e },
                    }),
                    Err(e) => serde_json::json!({"name": dir_name, "status": e.to_string()}),
                })
                .collect();
            if json {
                println!("{}", serde_json::Value::Array(rows));
            } else {
                println!("{:<26} {:<10} {:<9} {:>9}  status", "name", "family", "capability", "MB");
                for r in rows {
                    let mb = r["bytes"].as_u64().unwrap_or(0) as f64 / 1e6;
                    println!(
                        "{:<26} {:<10} {:<9} {:>9.1}  {}",
                        r["name"].as_str().unwrap_or("?"),
                        r["family"].as_str().unwrap_or("-"),
                        r["capability"].as_str().unwrap_or("-"),
                        mb,
                        r["status"].as_str().unwrap_or("?")
                    );
                }
            }
            ExitCode::SUCCESS
        }
        ModelsCommand::Verify => {
            let mut bad = 0;
            for (dir_name, m) in &found {
                match m.as_ref().map_err(ToString::to_string).and_then(verify) {
                    Ok(n) => println!("ok      {dir_name} ({n} files)"),
                    Err(e) => {
                        bad += 1;
                        println!("FAILED  {dir_name}: {e}");
                    }
                }
            }
            if found.is_empty() {
                return fail(&format!("no models in {}", dir.display()));
            }
            if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        ModelsCommand::Pull { .. } => ExitCode::SUCCESS, // handled above
    }
}

fn verify(m: &Manifest) -> Result<usize, String> {
    check_files(m)?;
    for f in &m.files {
        let Some(expected) = &f.sha256 else { continue };
        let path = m.path_of(f);
        let actual = sha256_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(format!("{}: sha256 {actual} does not match manifest {expected}", path.display()));
        }
    }
    Ok(m.files.len())
}

fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn pull(config: &timbre_server::Config, names: &[String]) -> ExitCode {
    let entries: Vec<_> = config
        .models
        .iter()
        .filter(|e| matches!(e.source, ModelSource::Hub(_)))
        .filter(|e| names.is_empty() || names.contains(&e.name))
        .cloned()
        .collect();
    if entries.is_empty() {
        return fail(&"no matching `hf:` entries in [[models]] (see docs/models.md)");
    }
    let hub = match crate::serve_cmd::hub_client(config) {
        Ok(Some(hub)) => hub,
        Ok(None) => return fail(&"no `hf:` entries configured"),
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    let registry = Registry::new();
    let mut failed = 0;
    for entry in &entries {
        match runtime.block_on(registry.fetch_hub_model(entry, &hub)) {
            Ok(m) => println!("ok      {} ({} files in {})", entry.name, m.files.len(), m.dir.display()),
            Err(reason) => {
                failed += 1;
                println!("FAILED  {}: {reason}", entry.name);
            }
        }
    }
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
