//! The deployment files agree with the code.
//!
//! `railway.toml`, `deploy/Dockerfile`, `deploy/docker-compose.yml` and `deploy/k8s/*` name
//! the port and the health paths the server really uses (`timbre_server` constants), and
//! refer to each other consistently (a Service selects the API pods, the HPA scales the
//! worker Deployment by its real name, compose `depends_on` conditions have health checks).
//! No Docker or Kubernetes is needed: the files are parsed with real parsers (TOML, YAML via
//! `serde_norway`, JSON for exec-form Dockerfile arguments) and a small Dockerfile
//! instruction reader (continuations, comments, stages).

use std::collections::BTreeSet;
use std::error::Error;
use std::fs;
use std::path::PathBuf;

use serde_norway::Value as Yaml;
use timbre_server::{DEFAULT_PORT, HEALTH_PATH, LIVENESS_PATH, READINESS_PATH};

type TestResult = Result<(), Box<dyn Error>>;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

fn read(rel: &str) -> Result<String, Box<dyn Error>> {
    let path = repo_root().join(rel);
    fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()).into())
}

fn yaml(rel: &str) -> Result<Yaml, Box<dyn Error>> {
    serde_norway::from_str(&read(rel)?).map_err(|e| format!("parsing {rel}: {e}").into())
}

// ---------------------------------------------------------------------------------------------
// YAML navigation

/// Walks a dotted path: mapping keys, or sequence indexes for numeric segments.
fn at<'a>(value: &'a Yaml, path: &str) -> Result<&'a Yaml, String> {
    let mut cur = value;
    for seg in path.split('.') {
        let next = match (seg.parse::<usize>(), cur) {
            (Ok(i), Yaml::Sequence(seq)) => seq.get(i),
            _ => cur.get(seg),
        };
        cur = next.ok_or_else(|| format!("missing `{path}` (at `{seg}`)"))?;
    }
    Ok(cur)
}

fn str_at<'a>(value: &'a Yaml, path: &str) -> Result<&'a str, String> {
    at(value, path)?.as_str().ok_or_else(|| format!("`{path}` is not a string"))
}

fn u64_at(value: &Yaml, path: &str) -> Result<u64, String> {
    at(value, path)?.as_u64().ok_or_else(|| format!("`{path}` is not an integer"))
}

fn seq_at<'a>(value: &'a Yaml, path: &str) -> Result<&'a Vec<Yaml>, String> {
    at(value, path)?.as_sequence().ok_or_else(|| format!("`{path}` is not a list"))
}

/// A compose `command`/`test` or a k8s `args`: a list of strings, or one shell string.
fn words(value: &Yaml) -> Vec<String> {
    match value {
        Yaml::Sequence(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string())))
            .collect(),
        Yaml::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

fn yaml_port(value: &Yaml) -> Option<u64> {
    value.as_u64().or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

// ---------------------------------------------------------------------------------------------
// railway.toml

#[test]
fn railway_toml_builds_the_dockerfile_and_polls_health() -> TestResult {
    let doc: toml::Table = toml::from_str(&read("railway.toml")?)?;
    let build = doc.get("build").and_then(|v| v.as_table()).ok_or("railway.toml: no [build]")?;
    let deploy = doc.get("deploy").and_then(|v| v.as_table()).ok_or("railway.toml: no [deploy]")?;

    assert_eq!(build.get("builder").and_then(|v| v.as_str()), Some("DOCKERFILE"));
    let dockerfile =
        build.get("dockerfilePath").and_then(|v| v.as_str()).ok_or("railway.toml: build.dockerfilePath missing")?;
    assert!(repo_root().join(dockerfile).is_file(), "build.dockerfilePath `{dockerfile}` does not exist");

    assert_eq!(deploy.get("healthcheckPath").and_then(|v| v.as_str()), Some(HEALTH_PATH));
    let timeout = deploy
        .get("healthcheckTimeout")
        .and_then(|v| v.as_integer())
        .ok_or("railway.toml: deploy.healthcheckTimeout missing")?;
    assert!(timeout >= 60, "healthcheckTimeout {timeout}s is too short for a cold start");
    assert_eq!(deploy.get("restartPolicyType").and_then(|v| v.as_str()), Some("ON_FAILURE"));
    if let Some(cmd) = deploy.get("startCommand").and_then(|v| v.as_str()) {
        assert!(cmd.contains("serve"), "startCommand `{cmd}` does not run `serve`");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

#[derive(Debug)]
struct Instruction {
    /// Index of the build stage (counted by `FROM`); 0 before the first `FROM`.
    stage: usize,
    keyword: String,
    args: String,
}

/// Splits a Dockerfile into instructions: joins `\` continuations, drops comments (including
/// comment lines inside a continuation, as Docker does) and blank lines.
fn parse_dockerfile(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut stage = 0;
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        let (body, continued) = match trimmed.strip_suffix('\\') {
            Some(body) => (body, true),
            None => (trimmed, false),
        };
        if !pending.is_empty() {
            pending.push(' ');
        }
        pending.push_str(body.trim());
        if continued {
            continue;
        }
        let full = std::mem::take(&mut pending);
        let (keyword, args) = full.split_once(char::is_whitespace).unwrap_or((full.as_str(), ""));
        let keyword = keyword.to_ascii_uppercase();
        if keyword == "FROM" {
            stage += 1;
        }
        out.push(Instruction { stage, keyword, args: args.trim().to_owned() });
    }
    out
}

/// Exec-form (`["a", "b"]`) arguments as a list; shell form as whitespace-separated words.
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(args).unwrap_or_else(|_| args.split_whitespace().map(str::to_owned).collect())
}

/// `FROM image AS name` → name.
fn stage_name(from_args: &str) -> Option<String> {
    let words: Vec<&str> = from_args.split_whitespace().collect();
    words.iter().position(|w| w.eq_ignore_ascii_case("as")).and_then(|i| words.get(i + 1)).map(|s| s.to_string())
}

/// The uid the final stage runs as, from its last `USER` line.
fn dockerfile_user(instructions: &[Instruction]) -> Option<String> {
    let last_stage = instructions.iter().map(|i| i.stage).max()?;
    instructions
        .iter()
        .rev()
        .find(|i| i.stage == last_stage && i.keyword == "USER")
        .map(|i| i.args.split(':').next().unwrap_or("").trim().to_owned())
}

#[test]
fn dockerfile_exposes_the_port_runs_unprivileged_and_serves() -> TestResult {
    let instructions = parse_dockerfile(&read("deploy/Dockerfile")?);
    let last_stage = instructions.iter().map(|i| i.stage).max().ok_or("no FROM")?;
    assert!(last_stage >= 2, "the Dockerfile should be multi-stage");
    let runtime: Vec<&Instruction> = instructions.iter().filter(|i| i.stage == last_stage).collect();
    let find = |kw: &'static str| runtime.iter().filter(move |i| i.keyword == kw);

    // EXPOSE in the runtime stage names DEFAULT_PORT.
    let exposed: Vec<u16> = find("EXPOSE")
        .flat_map(|i| i.args.split_whitespace())
        .filter_map(|p| p.split('/').next().and_then(|n| n.parse().ok()))
        .collect();
    assert!(exposed.contains(&DEFAULT_PORT), "EXPOSE {exposed:?} lacks {DEFAULT_PORT}");

    // Runs as a non-root user.
    let user = dockerfile_user(&instructions).ok_or("the runtime stage has no USER line")?;
    assert!(!user.is_empty() && user != "root" && user != "0", "runs as root (USER {user})");

    // The default command is `timbre serve` behind an init.
    let entrypoint = find("ENTRYPOINT").next_back().map(|i| exec_form(&i.args)).unwrap_or_default();
    let cmd = find("CMD").next_back().map(|i| exec_form(&i.args)).unwrap_or_default();
    assert!(entrypoint.iter().any(|w| w == "/app/timbre"), "ENTRYPOINT {entrypoint:?} does not run /app/timbre");
    assert!(
        entrypoint.iter().chain(cmd.iter()).any(|w| w == "serve"),
        "ENTRYPOINT {entrypoint:?} + CMD {cmd:?} do not run `serve`"
    );

    // HEALTHCHECK, when present, probes liveness on the default port.
    for hc in find("HEALTHCHECK") {
        assert!(
            hc.args.contains(LIVENESS_PATH) && hc.args.contains(&DEFAULT_PORT.to_string()),
            "HEALTHCHECK `{}` does not probe {LIVENESS_PATH} on {DEFAULT_PORT}",
            hc.args
        );
    }

    // Data and model directories are where the docs and manifests say.
    let env: String = find("ENV").map(|i| i.args.as_str()).collect::<Vec<_>>().join(" ");
    for pair in ["TIMBRE_DATA_DIR=/data", "TIMBRE_MODELS_DIR=/app/models"] {
        assert!(env.split_whitespace().any(|w| w == pair), "runtime ENV lacks {pair}");
    }

    // The release binary of the `timbre` package is what gets built.
    assert!(
        instructions.iter().any(|i| i.keyword == "RUN"
            && i.args.contains("cargo build")
            && i.args.contains("--release")
            && i.args.contains("-p timbre")),
        "no `cargo build --release -p timbre` step"
    );
    // Models are baked only on request.
    assert!(
        instructions.iter().any(|i| i.keyword == "ARG" && i.args.starts_with("BAKE_MODELS")),
        "no BAKE_MODELS build arg"
    );

    // COPY --from refers to stages that exist.
    let stages: BTreeSet<String> =
        instructions.iter().filter(|i| i.keyword == "FROM").filter_map(|i| stage_name(&i.args)).collect();
    for copy in instructions.iter().filter(|i| i.keyword == "COPY") {
        for word in copy.args.split_whitespace() {
            if let Some(from) = word.strip_prefix("--from=") {
                assert!(stages.contains(from), "COPY --from={from}: no such stage in {stages:?}");
            }
        }
    }
    Ok(())
}

#[test]
fn dockerignore_keeps_build_inputs_and_drops_outputs() -> TestResult {
    let text = read(".dockerignore")?;
    let patterns: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches('/').trim_end_matches('/'))
        .collect();
    for excluded in ["target", ".git"] {
        assert!(patterns.contains(&excluded), ".dockerignore does not exclude {excluded}");
    }
    for needed in ["crates", "scripts", "Cargo.toml", "Cargo.lock", "deploy", "deploy/Dockerfile"] {
        assert!(!patterns.contains(&needed), ".dockerignore excludes {needed}, which the build needs");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

/// `environment:` as a mapping or as a list of `KEY=VALUE`.
fn compose_env(service: &Yaml, key: &str) -> Option<String> {
    match service.get("environment")? {
        Yaml::Mapping(map) => map.get(key).and_then(|v| v.as_str()).map(str::to_owned),
        Yaml::Sequence(items) => items
            .iter()
            .filter_map(|v| v.as_str())
            .find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v.to_owned())),
        _ => None,
    }
}

/// Host part of a URL such as `postgres://user:pw@host:5432/db`.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host_port.split(':').next().unwrap_or(host_port)
}

/// (published, target) for each entry of a compose `ports:` list, short or long syntax.
fn compose_ports(service: &Yaml) -> Vec<(Option<u64>, Option<u64>)> {
    let Some(Yaml::Sequence(items)) = service.get("ports") else {
        return Vec::new();
    };
    items
        .iter()
        .map(|item| match item {
            Yaml::Mapping(_) => (item.get("published").and_then(yaml_port), item.get("target").and_then(yaml_port)),
            other => {
                let s = other.as_str().map(str::to_owned).or_else(|| other.as_u64().map(|n| n.to_string()));
                let s = s.unwrap_or_default();
                let s = s.split('/').next().unwrap_or("").to_owned();
                let parts: Vec<&str> = s.split(':').collect();
                let target = parts.last().and_then(|p| p.parse().ok());
                let published = if parts.len() >= 2 { parts[parts.len() - 2].parse().ok() } else { None };
                (published, target)
            }
        })
        .collect()
}

#[test]
fn compose_wires_api_workers_and_backing_services() -> TestResult {
    let doc = yaml("deploy/docker-compose.yml")?;
    let services = at(&doc, "services")?;
    for name in ["api", "worker", "postgres", "redis", "s3"] {
        assert!(services.get(name).is_some(), "compose has no `{name}` service");
    }
    let api = at(services, "api")?;
    let worker = at(services, "worker")?;

    // Commands.
    let api_cmd = words(at(api, "command")?);
    assert!(api_cmd.iter().any(|w| w == "serve"), "api command {api_cmd:?} lacks `serve`");
    let worker_cmd = words(at(worker, "command")?);
    assert!(worker_cmd.iter().any(|w| w == "worker"), "worker command {worker_cmd:?} lacks `worker`");
    assert!(u64_at(worker, "deploy.replicas")? >= 2, "worker should run at least 2 replicas");

    // The API's port.
    let ports = compose_ports(api);
    assert!(
        ports.iter().any(|&(published, target)| target == Some(u64::from(DEFAULT_PORT))
            && published.is_none_or(|p| p == u64::from(DEFAULT_PORT))),
        "api ports {ports:?} do not map {DEFAULT_PORT}"
    );

    // The API's health check hits liveness or readiness on that port.
    let test = words(at(api, "healthcheck.test")?).join(" ");
    assert!(
        [LIVENESS_PATH, READINESS_PATH].iter().any(|path| test.contains(&format!(":{DEFAULT_PORT}{path}"))),
        "api healthcheck `{test}` does not probe {LIVENESS_PATH} or {READINESS_PATH} on {DEFAULT_PORT}"
    );

    // Backing-service URLs point at the services defined here.
    for svc in [api, worker] {
        for (var, host) in [("DATABASE_URL", "postgres"), ("REDIS_URL", "redis"), ("S3_ENDPOINT_URL", "s3")] {
            let url = compose_env(svc, var).ok_or_else(|| format!("{var} not set"))?;
            assert_eq!(url_host(&url), host, "{var}={url} does not point at the `{host}` service");
        }
        for var in ["S3_BUCKET_NAME", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_REGION"] {
            assert!(compose_env(svc, var).is_some(), "{var} not set");
        }
    }

    // depends_on: every dependency exists; waiting for health needs a health check there.
    for (name, svc) in [("api", api), ("worker", worker)] {
        let deps = at(svc, "depends_on")?.as_mapping().ok_or("depends_on must be the long form")?;
        for backing in ["postgres", "redis", "s3"] {
            let cond = deps
                .get(backing)
                .and_then(|d| d.get("condition"))
                .and_then(|c| c.as_str())
                .ok_or_else(|| format!("{name} does not depend on {backing}"))?;
            assert_eq!(cond, "service_healthy", "{name} → {backing}");
        }
        for (dep, spec) in deps {
            let dep = dep.as_str().ok_or("depends_on key is not a string")?;
            let dep_svc = services.get(dep).ok_or_else(|| format!("{name} depends on unknown {dep}"))?;
            if spec.get("condition").and_then(|c| c.as_str()) == Some("service_healthy") {
                assert!(
                    dep_svc.get("healthcheck").is_some(),
                    "{name} waits for {dep}'s health, which has no healthcheck"
                );
            }
        }
    }

    assert!(str_at(&doc, "services.postgres.image")?.starts_with("postgres:16"), "postgres should be postgres:16");
    let pg_test = words(at(services, "postgres.healthcheck.test")?).join(" ");
    assert!(pg_test.contains("pg_isready"), "postgres healthcheck `{pg_test}` lacks pg_isready");
    assert!(str_at(&doc, "services.redis.image")?.starts_with("redis:7"));
    assert!(str_at(&doc, "services.s3.image")?.starts_with("minio/minio"));

    // Named volumes used by services are declared.
    let declared: BTreeSet<&str> = doc
        .get("volumes")
        .and_then(|v| v.as_mapping())
        .map(|m| m.keys().filter_map(|k| k.as_str()).collect())
        .unwrap_or_default();
    for (name, svc) in services.as_mapping().ok_or("services is not a mapping")? {
        let Some(Yaml::Sequence(vols)) = svc.get("volumes") else {
            continue;
        };
        for vol in vols.iter().filter_map(|v| v.as_str()) {
            let source = vol.split(':').next().unwrap_or("");
            let is_path = source.starts_with(['.', '/', '$', '~']);
            assert!(is_path || declared.contains(source), "{name:?}: volume `{source}` is not declared");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

/// The named container of a Deployment's pod template (or its only container).
fn container<'a>(deployment: &'a Yaml, name: &str) -> Result<&'a Yaml, String> {
    let containers = seq_at(deployment, "spec.template.spec.containers")?;
    containers
        .iter()
        .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(name))
        .or_else(|| if containers.len() == 1 { containers.first() } else { None })
        .ok_or_else(|| format!("no container `{name}`"))
}

/// Resolves a probe or Service port (number or port name) against a container's ports.
fn resolve_port(port: &Yaml, container: &Yaml) -> Option<u64> {
    if let Some(n) = port.as_u64() {
        return Some(n);
    }
    let name = port.as_str()?;
    container.get("ports")?.as_sequence()?.iter().find_map(|p| {
        (p.get("name").and_then(|n| n.as_str()) == Some(name))
            .then(|| p.get("containerPort").and_then(|v| v.as_u64()))
            .flatten()
    })
}

fn env_from_names(container: &Yaml, kind: &str) -> Vec<String> {
    container
        .get("envFrom")
        .and_then(|e| e.as_sequence())
        .map(|items| items.iter().filter_map(|i| i.get(kind)?.get("name")?.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[test]
fn k8s_api_probes_ports_and_service_match_the_server() -> TestResult {
    let api = yaml("deploy/k8s/deployment-api.yaml")?;
    assert_eq!(str_at(&api, "kind")?, "Deployment");
    let c = container(&api, "timbre")?;
    let port = u64::from(DEFAULT_PORT);

    let container_ports: Vec<u64> =
        seq_at(c, "ports")?.iter().filter_map(|p| p.get("containerPort").and_then(|v| v.as_u64())).collect();
    assert!(container_ports.contains(&port), "containerPorts {container_ports:?} lack {port}");

    assert_eq!(str_at(c, "livenessProbe.httpGet.path")?, LIVENESS_PATH);
    assert_eq!(str_at(c, "readinessProbe.httpGet.path")?, READINESS_PATH);
    let startup_path = str_at(c, "startupProbe.httpGet.path")?;
    assert!(
        [LIVENESS_PATH, HEALTH_PATH].contains(&startup_path),
        "startupProbe path {startup_path} should not depend on models"
    );
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let p = at(c, &format!("{probe}.httpGet.port"))?;
        assert_eq!(resolve_port(p, c), Some(port), "{probe} port {p:?}");
    }
    // Generous startup: at least a minute before liveness may kill the pod.
    let budget = u64_at(c, "startupProbe.periodSeconds")? * u64_at(c, "startupProbe.failureThreshold")?;
    assert!(budget >= 60, "startupProbe allows only {budget}s");

    let args = words(at(c, "args")?);
    assert!(args.iter().any(|a| a == "serve"), "api args {args:?} lack `serve`");

    // Runs as the image's non-root user.
    let uid = dockerfile_user(&parse_dockerfile(&read("deploy/Dockerfile")?)).ok_or("no USER")?;
    assert_eq!(at(&api, "spec.template.spec.securityContext.runAsNonRoot")?.as_bool(), Some(true));
    assert_eq!(u64_at(&api, "spec.template.spec.securityContext.runAsUser")?.to_string(), uid);

    // The Service sends port 80 to the API pods' DEFAULT_PORT.
    let svc = yaml("deploy/k8s/service.yaml")?;
    assert_eq!(str_at(&svc, "kind")?, "Service");
    let svc_port = at(&svc, "spec.ports.0")?;
    assert_eq!(u64_at(svc_port, "port")?, 80);
    assert_eq!(resolve_port(at(svc_port, "targetPort")?, c), Some(port), "Service targetPort");
    let labels = at(&api, "spec.template.metadata.labels")?.as_mapping().ok_or("pod labels")?;
    let selector = at(&svc, "spec.selector")?.as_mapping().ok_or("Service selector")?;
    for (k, v) in selector {
        assert_eq!(labels.get(k), Some(v), "Service selector {k:?}={v:?} does not match the API pods");
    }
    let dep_selector = at(&api, "spec.selector.matchLabels")?.as_mapping().ok_or("matchLabels")?;
    for (k, v) in dep_selector {
        assert_eq!(labels.get(k), Some(v), "Deployment selector does not match its pod template");
    }
    Ok(())
}

#[test]
fn k8s_worker_hpa_config_and_kustomization_are_consistent() -> TestResult {
    let worker = yaml("deploy/k8s/deployment-worker.yaml")?;
    assert_eq!(str_at(&worker, "kind")?, "Deployment");
    let worker_name = str_at(&worker, "metadata.name")?;
    let wc = container(&worker, "timbre")?;
    let args = words(at(wc, "args")?);
    assert!(args.iter().any(|a| a == "worker"), "worker args {args:?} lack `worker`");

    let hpa = yaml("deploy/k8s/hpa-worker.yaml")?;
    assert_eq!(str_at(&hpa, "apiVersion")?, "autoscaling/v2");
    assert_eq!(str_at(&hpa, "kind")?, "HorizontalPodAutoscaler");
    assert_eq!(str_at(&hpa, "spec.scaleTargetRef.kind")?, "Deployment");
    assert_eq!(str_at(&hpa, "spec.scaleTargetRef.apiVersion")?, str_at(&worker, "apiVersion")?);
    assert_eq!(str_at(&hpa, "spec.scaleTargetRef.name")?, worker_name, "HPA targets the wrong Deployment");
    let on_cpu = seq_at(&hpa, "spec.metrics")?
        .iter()
        .any(|m| m.get("resource").and_then(|r| r.get("name")).and_then(|n| n.as_str()) == Some("cpu"));
    assert!(on_cpu, "HPA does not scale on CPU");
    // CPU utilization is relative to requests; without one the HPA can't compute it.
    assert!(at(wc, "resources.requests.cpu").is_ok(), "worker has no CPU request");

    // envFrom names resolve to the ConfigMap and the (example) Secret.
    let cm = yaml("deploy/k8s/configmap.yaml")?;
    let secret = yaml("deploy/k8s/secret.example.yaml")?;
    let api = yaml("deploy/k8s/deployment-api.yaml")?;
    let ac = container(&api, "timbre")?;
    for c in [ac, wc] {
        assert_eq!(env_from_names(c, "configMapRef"), vec![str_at(&cm, "metadata.name")?.to_owned()]);
        assert_eq!(env_from_names(c, "secretRef"), vec![str_at(&secret, "metadata.name")?.to_owned()]);
    }
    assert_eq!(
        yaml_port(at(&cm, "data.PORT")?),
        Some(u64::from(DEFAULT_PORT)),
        "ConfigMap PORT differs from the container port"
    );

    // kustomization lists every manifest except the example Secret, and nothing missing.
    let kustomization = yaml("deploy/k8s/kustomization.yaml")?;
    let resources: BTreeSet<&str> = seq_at(&kustomization, "resources")?.iter().filter_map(|r| r.as_str()).collect();
    for file in &resources {
        assert!(repo_root().join("deploy/k8s").join(file).is_file(), "kustomization lists missing {file}");
    }
    for file in ["configmap.yaml", "deployment-api.yaml", "deployment-worker.yaml", "service.yaml", "hpa-worker.yaml"] {
        assert!(resources.contains(file), "kustomization does not list {file}");
    }
    assert!(!resources.contains("secret.example.yaml"), "placeholder Secret must not be applied");
    Ok(())
}

#[test]
fn dockerfile_reader_handles_continuations_comments_and_stages() {
    let parsed = parse_dockerfile(
        "# syntax=docker/dockerfile:1\nFROM a AS one\nRUN x \\\n  # inner comment\n  && y\n\nfrom b\nUSER 10001:10001\n",
    );
    let summary: Vec<(usize, &str, &str)> =
        parsed.iter().map(|i| (i.stage, i.keyword.as_str(), i.args.as_str())).collect();
    assert_eq!(
        summary,
        vec![(1, "FROM", "a AS one"), (1, "RUN", "x && y"), (2, "FROM", "b"), (2, "USER", "10001:10001")]
    );
    assert_eq!(dockerfile_user(&parsed).as_deref(), Some("10001"));
    assert_eq!(stage_name("a AS one").as_deref(), Some("one"));
    assert_eq!(exec_form(r#"["tini", "--", "/app/timbre"]"#), vec!["tini", "--", "/app/timbre"]);
    assert_eq!(url_host("postgres://u:p@postgres:5432/db"), "postgres");
    assert_eq!(url_host("http://s3:9000"), "s3");
}
