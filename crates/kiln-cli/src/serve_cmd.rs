//! `kiln serve`: resolves and verifies the model as `kiln predict` does, then runs `kiln-serve`'s router on a tokio
//! runtime until SIGTERM or Ctrl-C, letting the requests in flight finish. The HTTP parts live in `kiln-serve`; this
//! module only composes them.

use std::io::Write;
use std::time::{Duration, Instant};

use std::sync::Arc;

use anyhow::{Context, Result};
use kiln_domain::{ModelRef, VersionSelector};
use kiln_serve::{
    AccessLog, ApiKeys, AppState, ConnectionLimits, Cors, DriftConfig, HttpConfig, LoadedModel, ModelIdentity,
    RateLimit, Role, ServeConfig, StickyKey, VariantModel,
};
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::{AccessLogFormat, ServeArgs};
use crate::exit::BadInput;

/// One variant to serve, from the flags or the variants file.
#[derive(Debug, Clone, PartialEq)]
struct VariantSpec {
    name: String,
    reference: String,
    role: Role,
}

/// What `--variant`, `--shadow`, `--sticky-key` or `--variants` ask for, checked before any model is loaded.
#[derive(Debug, PartialEq)]
struct Plan {
    variants: Vec<VariantSpec>,
    sticky: Option<StickyKey>,
}

/// `--variants FILE`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VariantsFile {
    variants: Vec<FileVariant>,
    #[serde(default)]
    shadows: Vec<FileShadow>,
    sticky_key: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileVariant {
    name: String,
    model: String,
    weight: f64,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShadow {
    name: String,
    model: String,
}

/// A weight in percent (at most two decimals) as basis points.
fn basis_points(weight: f64, what: &str) -> Result<u32, String> {
    let bp = (weight * 100.0).round();
    if !weight.is_finite() || !(0.0..=100.0).contains(&weight) || (weight * 100.0 - bp).abs() > 1e-6 {
        return Err(format!("{what}: the weight {weight} is not a percentage from 0 to 100 with at most two decimals"));
    }
    Ok(bp as u32)
}

/// `NAME=REF:WEIGHT` (the reference may hold colons: the weight is after the last one).
fn parse_variant(text: &str) -> Result<VariantSpec, String> {
    let form = "write it NAME=REF:WEIGHT, e.g. champion=models:/churn@production:90";
    let (name, rest) = text.split_once('=').ok_or_else(|| format!("--variant '{text}' has no '=': {form}"))?;
    let (reference, weight) =
        rest.rsplit_once(':').ok_or_else(|| format!("--variant '{text}' has no ':WEIGHT': {form}"))?;
    let weight: f64 = weight
        .trim()
        .parse()
        .map_err(|_| format!("--variant '{text}': '{weight}' is not a weight in percent: {form}"))?;
    if name.trim().is_empty() || reference.trim().is_empty() {
        return Err(format!("--variant '{text}' needs a name and a model reference: {form}"));
    }
    let basis_points = basis_points(weight, &format!("--variant '{text}'"))?;
    Ok(VariantSpec {
        name: name.trim().to_string(),
        reference: reference.trim().to_string(),
        role: Role::Canary { basis_points },
    })
}

/// `NAME=REF`.
fn parse_shadow(text: &str) -> Result<VariantSpec, String> {
    match text.split_once('=') {
        Some((name, reference)) if !name.trim().is_empty() && !reference.trim().is_empty() => Ok(VariantSpec {
            name: name.trim().to_string(),
            reference: reference.trim().to_string(),
            role: Role::Shadow,
        }),
        _ => Err(format!("--shadow '{text}' is not NAME=REF, e.g. candidate=models:/churn/7")),
    }
}

/// The variants to serve: one `default` for `--model`, else the flags' or the file's, names and weights checked.
fn plan(args: &ServeArgs) -> Result<Plan, BadInput> {
    let bad = |e: String| BadInput(e);
    let mut sticky_text = args.sticky_key.clone();
    let variants = if let Some(file) = &args.variants {
        let text = std::fs::read_to_string(file)
            .map_err(|e| bad(format!("cannot read the variants file {}: {e}", file.display())))?;
        let parsed: VariantsFile = serde_yaml::from_str(&text)
            .map_err(|e| bad(format!("the variants file {} is not valid: {e}", file.display())))?;
        if let Some(key) = parsed.sticky_key {
            if sticky_text.is_some() {
                return Err(bad(format!(
                    "the sticky key is given both by --sticky-key and in {}; keep one",
                    file.display()
                )));
            }
            sticky_text = Some(key);
        }
        let mut out = Vec::new();
        for v in parsed.variants {
            let what = format!("{}: variant '{}'", file.display(), v.name);
            out.push(VariantSpec {
                role: Role::Canary { basis_points: basis_points(v.weight, &what).map_err(bad)? },
                name: v.name,
                reference: v.model,
            });
        }
        out.extend(parsed.shadows.into_iter().map(|s| VariantSpec {
            name: s.name,
            reference: s.model,
            role: Role::Shadow,
        }));
        out
    } else {
        let mut out = match &args.model {
            Some(model) => vec![VariantSpec {
                name: kiln_serve::DEFAULT_VARIANT.to_string(),
                reference: model.clone(),
                role: Role::Canary { basis_points: kiln_serve::TOTAL_BASIS_POINTS },
            }],
            None => args.variant.iter().map(|v| parse_variant(v)).collect::<Result<_, _>>().map_err(bad)?,
        };
        for shadow in &args.shadow {
            out.push(parse_shadow(shadow).map_err(bad)?);
        }
        out
    };
    kiln_serve::check_variants(variants.iter().map(|v| (v.name.as_str(), v.role)))
        .map_err(|e| bad(format!("cannot serve these variants: {e}")))?;
    let sticky =
        sticky_text.map(|t| StickyKey::parse(&t)).transpose().map_err(|e| bad(format!("bad --sticky-key: {e}")))?;
    Ok(Plan { variants, sticky })
}

/// A loaded variant: the model, what the start-up line says of it, and its registry watch (when it can move).
struct Loaded {
    model: LoadedModel,
    what: String,
    source: Option<RegistrySource>,
}

/// Resolves, downloads, verifies and loads `reference`, as `kiln predict` does.
fn load(reference: &str, uri: &str, reload_interval: f64) -> Result<Loaded> {
    let kiln::LoadedBundle { bundle, label, version, .. } = kiln::load_bundle(reference, uri)?;
    let parsed = ModelRef::parse(reference)?;
    let alias = match &parsed {
        ModelRef::Registered { selector: VersionSelector::Alias(alias), .. } => Some(alias.clone()),
        _ => None,
    };
    // a reference that can move to another version: watched for hot reload
    let source = match (&parsed, &version) {
        (ModelRef::Registered { selector: VersionSelector::Number(_), .. }, _) | (_, None) => None,
        (ModelRef::Registered { .. }, Some(v)) if reload_interval > 0.0 => Some(RegistrySource {
            reference: reference.to_string(),
            name: v.name.clone(),
            alias: alias.clone(),
            uri: uri.to_string(),
        }),
        _ => None,
    };
    let identity = ModelIdentity {
        reference: reference.to_string(),
        name: version.as_ref().map(|v| v.name.clone()),
        version: version.as_ref().map(|v| v.version),
        alias,
        run_id: bundle.metadata.run_id.clone(),
    };
    let kind = bundle.model.kind().as_str();
    if let Some(note) = bundle.model.native_note() {
        eprintln!("{note}");
    }
    let model = LoadedModel::new(bundle, identity).with_context(|| format!("cannot serve {label}"))?;
    let what = format!(
        "{label}: {}{kind} {}",
        version.as_ref().map(|v| format!("{} version {}, ", v.name, v.version)).unwrap_or_default(),
        model.task()
    );
    Ok(Loaded { model, what, source })
}

pub(crate) fn serve(args: ServeArgs) -> Result<u8> {
    let start = Instant::now();
    // before the models: bad variants, a bad key file or origin should not wait for a model download
    let plan = plan(&args)?;
    let http = http_config(&args).map_err(|e| BadInput(format!("{e:#}")))?;
    let nofile = kiln_serve::raise_open_file_limit();
    let limits = connection_limits(&args, nofile)?;
    let uri = kiln::tracking_uri(args.tracking_uri.clone());
    let mut variants = Vec::new();
    let mut sources = Vec::new();
    let mut described = Vec::new();
    let several = plan.variants.len() > 1;
    for spec in &plan.variants {
        let loaded = load(&spec.reference, &uri, args.reload_interval)
            .with_context(|| if several { format!("variant '{}'", spec.name) } else { String::new() })?;
        described.push(if several {
            let share = match spec.role {
                Role::Canary { basis_points } => format!("{}%", kiln_serve::percent(basis_points)),
                Role::Shadow => "shadow".to_string(),
            };
            format!("variant {} ({share}) {}", spec.name, loaded.what)
        } else {
            loaded.what
        });
        sources.push(loaded.source);
        variants.push(VariantModel { name: spec.name.clone(), role: spec.role, model: loaded.model });
    }
    let config = ServeConfig {
        max_batch_records: usize::try_from(args.max_batch).context("--max-batch is too large")?,
        max_body_bytes: usize::try_from(args.max_body_bytes).context("--max-body-bytes is too large")?,
        max_series: usize::try_from(args.max_series).context("--max-series is too large")?,
        series_rows: usize::try_from(args.series_rows).context("--series-rows is too large")?,
        http,
    };
    let drift = (!args.no_live_drift).then(|| DriftConfig {
        window: usize::try_from(args.drift_window).unwrap_or(usize::MAX),
        every: Duration::from_secs_f64(args.drift_interval),
    });
    let sticky = plan.sticky.clone();
    let state = AppState::with_variants(config, variants, sticky, drift)
        .map_err(|e| BadInput(format!("cannot serve these variants: {e}")))?;
    let what = described.join("\n        ");
    let drift_line = match state.live_drift() {
        None => "live drift: off (--no-live-drift)".to_string(),
        Some(Ok(features)) => format!(
            "live drift: PSI of {} numeric features over the last {} records, every {} s",
            features.len(),
            args.drift_window,
            args.drift_interval
        ),
        Some(Err(reason)) => format!("live drift: off ({reason})"),
    };
    let sticky_line = match (&plan.sticky, several) {
        (_, false) => None,
        (Some(key), true) => {
            Some(format!("assignment: by FNV-1a-64 of {} mod 10000 (a draw without it)", key.describe()))
        }
        (None, true) => Some("assignment: a draw per request (no --sticky-key)".to_string()),
    };

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start tokio")?;
    runtime.block_on(async move {
        // listen for the signals before serving, so that a failure to do so stops the start, not the shutdown
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        let listener = listen(&args.host, args.port)
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
        let addr = listener.local_addr().context("cannot read the address listened on")?;
        println!("serving {what}");
        if let Some(line) = &sticky_line {
            println!("{line}");
        }
        println!("{drift_line}");
        println!("listening on http://{addr} (ready in {} ms)", start.elapsed().as_millis());
        println!(
            "connections: at most {} (open-file limit {}), a request head within {} ms, closed after {} ms idle",
            limits.max_connections,
            nofile.map_or_else(|| "unlimited".to_string(), |n| n.to_string()),
            limits.header_timeout.as_millis(),
            limits.idle_timeout.as_millis()
        );
        let every = Duration::from_secs_f64(args.reload_interval);
        let names = state.variant_names();
        for (i, source) in sources.into_iter().enumerate() {
            let name = if several { format!(" (variant {})", names[i]) } else { String::new() };
            match source {
                Some(source) => {
                    println!("hot reload{name}: asking the registry where {} points every {every:?}", source.reference);
                    tokio::spawn(kiln_serve::watch_variant(state.clone(), i, Arc::new(source), every));
                }
                None => println!("hot reload{name}: off (the reference cannot move, or --reload-interval 0)"),
            }
        }
        std::io::stdout().flush().context("cannot write to stdout")?;
        let shutdown = async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            eprintln!("{name}: finishing the requests in flight, then stopping");
        };
        kiln_serve::serve(listener, state, limits, shutdown)
            .await
            .with_context(|| format!("serving on {addr} failed"))?;
        eprintln!("stopped");
        Ok(0)
    })
}

/// The kernel's queue of connections not accepted yet: a burst beyond it loses SYNs, and each lost one costs its
/// client a second (tokio's `bind` asks for 128).
const ACCEPT_BACKLOG: u32 = 1024;

/// Listens on the first address `host` resolves to, with [`ACCEPT_BACKLOG`].
async fn listen(host: &str, port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let addr = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "the host resolves to no address"))?;
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// File descriptors kept below the open-file limit for what is not a connection: the store and the bundles hot
/// reload reads, the runtime's own, and the connections being answered 503 over the cap.
const RESERVED_FDS: u64 = 512;

/// The connection limits from the flags, with `--max-connections` checked against the open-file limit `nofile`
/// (`None`: unlimited) so that [`RESERVED_FDS`] stay free when every connection is open.
fn connection_limits(args: &ServeArgs, nofile: Option<u64>) -> Result<ConnectionLimits, BadInput> {
    let room = nofile.map(|n| n.saturating_sub(RESERVED_FDS));
    let default = ConnectionLimits::DEFAULT_MAX_CONNECTIONS as u64;
    let max = match (args.max_connections, room) {
        (Some(n), Some(room)) if n > room => {
            return Err(BadInput(format!(
                "--max-connections {n} leaves fewer than {RESERVED_FDS} of the {} open files this process may have \
                 for the store and hot reload; use at most {room}, or raise the limit (ulimit -n)",
                nofile.unwrap_or_default()
            )));
        }
        (Some(n), _) => n,
        (None, Some(0)) => {
            return Err(BadInput(format!(
                "the open-file limit ({}) is too low to serve: raise it (ulimit -n) above {RESERVED_FDS}",
                nofile.unwrap_or_default()
            )));
        }
        (None, Some(room)) => default.min(room),
        (None, None) => default,
    };
    Ok(ConnectionLimits {
        header_timeout: Duration::from_millis(args.header_timeout_ms),
        idle_timeout: Duration::from_millis(args.idle_timeout_ms),
        max_connections: usize::try_from(max).map_err(|_| BadInput("--max-connections is too large".into()))?,
    })
}

/// The environment variable holding API keys, comma-separated (never a flag: argv is visible in `ps`).
const API_KEYS_ENV: &str = "KILN_API_KEYS";

/// API keys, CORS, timeout, rate limit and access log from the flags, and the keys from `--api-keys-file` or
/// `$KILN_API_KEYS`.
fn http_config(args: &ServeArgs) -> Result<HttpConfig> {
    let from_env = match std::env::var(API_KEYS_ENV) {
        Ok(v) => Some(v),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => anyhow::bail!("{API_KEYS_ENV} is not valid UTF-8"),
    };
    let keys: Option<(Vec<String>, String)> = match (&args.api_keys_file, from_env) {
        (Some(_), Some(_)) => {
            anyhow::bail!("API keys come from either --api-keys-file or {API_KEYS_ENV}, not both; unset one")
        }
        (Some(file), None) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the API keys file {}", file.display()))?;
            let keys: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect();
            if keys.is_empty() {
                anyhow::bail!("the API keys file {} holds no key (one per line, # starts a comment)", file.display());
            }
            Some((keys, format!("the API keys file {}", file.display())))
        }
        (None, Some(v)) => {
            let keys: Vec<String> = v.split(',').map(str::trim).filter(|k| !k.is_empty()).map(str::to_string).collect();
            if keys.is_empty() {
                anyhow::bail!(
                    "{API_KEYS_ENV} is set but holds no key (comma-separated keys); unset it to serve without keys"
                );
            }
            Some((keys, API_KEYS_ENV.to_string()))
        }
        (None, None) => None,
    };
    let api_keys = match keys {
        Some((keys, source)) => {
            Some(ApiKeys::new(&args.api_key_header, keys).with_context(|| format!("bad API keys in {source}"))?)
        }
        None => None,
    };
    let cors = if args.cors_origins.is_empty() {
        None
    } else {
        Some(Cors::new(&args.cors_origins).context("bad --cors-origin")?)
    };
    let rate_limit = match args.rate_limit {
        Some(n) => Some(RateLimit::new(n, args.rate_burst.unwrap_or(n)).context("bad --rate-limit")?),
        None => None,
    };
    Ok(HttpConfig {
        api_keys,
        cors,
        request_timeout: (args.request_timeout_ms > 0).then(|| Duration::from_millis(args.request_timeout_ms)),
        rate_limit,
        access_log: match args.access_log {
            AccessLogFormat::Off => AccessLog::Off,
            AccessLogFormat::Json => AccessLog::Json,
        },
    })
}

/// The registry behind hot reload: where the served reference points now, and the bundle of a version, through
/// the same resolution, download cache and verification as `kiln predict`.
struct RegistrySource {
    /// as given to `--model`
    reference: String,
    /// the registered model
    name: String,
    alias: Option<String>,
    uri: String,
}

impl kiln_serve::ModelSource for RegistrySource {
    fn current_version(&self) -> std::result::Result<Option<u64>, String> {
        kiln::current_version(&self.reference, &self.uri)
            .map(|v| v.map(|v| v.version))
            .map_err(|e| kiln_domain::chain_text(&e))
    }

    fn load_version(&self, version: u64) -> std::result::Result<LoadedModel, String> {
        let exact = format!("models:/{}/{version}", self.name);
        let loaded = kiln::load_bundle(&exact, &self.uri).map_err(|e| kiln_domain::chain_text(&e))?;
        let identity = ModelIdentity {
            reference: self.reference.clone(),
            name: Some(self.name.clone()),
            version: Some(version),
            alias: self.alias.clone(),
            run_id: loaded.bundle.metadata.run_id.clone(),
        };
        LoadedModel::new(loaded.bundle, identity).map_err(|e| format!("{exact}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn args(flags: &[&str]) -> ServeArgs {
        let argv = ["kiln", "serve", "--model", "models:/m@a"].iter().chain(flags);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(args) => args,
            _ => unreachable!("kiln serve parses as Serve"),
        }
    }

    fn serve_args(argv: &[&str]) -> Result<ServeArgs, clap::Error> {
        let argv = ["kiln", "serve"].iter().chain(argv);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Serve(args) => args,
            _ => unreachable!("kiln serve parses as Serve"),
        })
    }

    #[test]
    fn variants_parse_from_the_flags() {
        let v = parse_variant("champion=models:/churn@production:90").unwrap();
        assert_eq!(
            (v.name.as_str(), v.reference.as_str(), v.role),
            ("champion", "models:/churn@production", Role::Canary { basis_points: 9000 })
        );
        // a folder with a colon, a fractional weight
        let v = parse_variant("b=/models/a:b:12.5").unwrap();
        assert_eq!((v.reference.as_str(), v.role), ("/models/a:b", Role::Canary { basis_points: 1250 }));
        assert!(parse_variant("b=models:/x@y:12.345").unwrap_err().contains("at most two decimals"));
        assert!(parse_variant("b=models:/x@y:101").unwrap_err().contains("from 0 to 100"));
        assert!(parse_variant("=models:/x@y:10").unwrap_err().contains("needs a name"));
        let planned = plan(&serve_args(&["--model", "models:/m@a", "--shadow", "s=models:/m/2"]).unwrap()).unwrap();
        assert_eq!(planned.variants.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["default", "s"]);
        let args = serve_args(&["--variant", "a=m1:60", "--variant", "b=m2:40", "--sticky-key", "field:id"]).unwrap();
        assert_eq!(plan(&args).unwrap().sticky, Some(StickyKey::Field("id".into())));
        let args = serve_args(&["--variant", "a=m1:60", "--variant", "b=m2:30"]).unwrap();
        assert!(plan(&args).unwrap_err().0.contains("sum to 90% (a 60 + b 30)"));
        // one of --model, --variant, --variants; not two
        assert!(serve_args(&[]).is_err());
        assert!(serve_args(&["--model", "m", "--variant", "a=m:100"]).is_err());
        assert!(serve_args(&["--variants", "f.yaml", "--shadow", "s=m"]).is_err());
    }

    #[test]
    fn max_connections_stays_below_the_open_file_limit() {
        let limits = |flags: &[&str], nofile| connection_limits(&args(flags), nofile).map(|l| l.max_connections);
        // the default: 4096, or what the limit leaves after the reserve
        assert_eq!(limits(&[], Some(20_000)).unwrap(), 4096);
        assert_eq!(limits(&[], None).unwrap(), 4096);
        assert_eq!(limits(&[], Some(2048)).unwrap(), 2048 - 512);
        assert!(limits(&[], Some(512)).unwrap_err().0.contains("too low"));
        // a flag within the room is taken, beyond it refused with the room
        assert_eq!(limits(&["--max-connections", "19488"], Some(20_000)).unwrap(), 19_488);
        let refused = limits(&["--max-connections", "19489"], Some(20_000)).unwrap_err().0;
        assert!(refused.contains("use at most 19488"), "{refused}");
        assert_eq!(limits(&["--max-connections", "1000000"], None).unwrap(), 1_000_000);
    }

    #[test]
    fn connection_timeouts_come_from_the_flags() {
        let l = connection_limits(&args(&[]), None).unwrap();
        assert_eq!(
            (l.header_timeout, l.idle_timeout),
            (ConnectionLimits::DEFAULT_HEADER_TIMEOUT, ConnectionLimits::DEFAULT_IDLE_TIMEOUT)
        );
        let l = connection_limits(&args(&["--header-timeout-ms", "1500", "--idle-timeout-ms", "250"]), None).unwrap();
        assert_eq!((l.header_timeout, l.idle_timeout), (Duration::from_millis(1500), Duration::from_millis(250)));
        assert!(Cli::try_parse_from(["kiln", "serve", "--model", "m", "--header-timeout-ms", "0"]).is_err());
    }
}
