//! `kiln serve`: resolves and verifies the model as `kiln predict` does, then runs `kiln-serve`'s router on a tokio
//! runtime until SIGTERM or Ctrl-C, letting the requests in flight finish. The HTTP parts live in `kiln-serve`; this
//! module only composes them.

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result};
use kiln_domain::{ModelRef, VersionSelector};
use kiln_serve::{AppState, LoadedModel, ModelIdentity, ServeConfig};
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::ServeArgs;
use crate::commands::load_bundle_version;
use crate::stores;

pub(crate) fn serve(args: ServeArgs) -> Result<u8> {
    let start = Instant::now();
    let uri = stores::uri_or_default(args.tracking_uri.clone());
    let (bundle, label, version) = load_bundle_version(&args.model, &uri)?;
    let alias = match ModelRef::parse(&args.model)? {
        ModelRef::Registered { selector: VersionSelector::Alias(alias), .. } => Some(alias),
        _ => None,
    };
    let identity = ModelIdentity {
        reference: args.model.clone(),
        name: version.as_ref().map(|v| v.name.clone()),
        version: version.as_ref().map(|v| v.version),
        alias,
        run_id: bundle.metadata.run_id.clone(),
    };
    let kind = bundle.metadata.model_kind.as_str();
    let model = LoadedModel::new(bundle, identity).with_context(|| format!("cannot serve {label}"))?;
    let what = format!(
        "{label}: {}{kind} {}",
        version.as_ref().map(|v| format!("{} version {}, ", v.name, v.version)).unwrap_or_default(),
        model.task()
    );
    let config = ServeConfig {
        max_batch_records: usize::try_from(args.max_batch).context("--max-batch is too large")?,
        max_body_bytes: usize::try_from(args.max_body_bytes).context("--max-body-bytes is too large")?,
    };
    let state = AppState::with_model(config, model);

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start tokio")?;
    runtime.block_on(async move {
        // listen for the signals before serving, so that a failure to do so stops the start, not the shutdown
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
        let addr = listener.local_addr().context("cannot read the address listened on")?;
        println!("serving {what}");
        println!("listening on http://{addr} (ready in {} ms)", start.elapsed().as_millis());
        std::io::stdout().flush().context("cannot write to stdout")?;
        let shutdown = async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            eprintln!("{name}: finishing the requests in flight, then stopping");
        };
        kiln_serve::serve(listener, state, shutdown).await.with_context(|| format!("serving on {addr} failed"))?;
        eprintln!("stopped");
        Ok(0)
    })
}
