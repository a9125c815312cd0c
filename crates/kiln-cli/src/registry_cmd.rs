//! `kiln registry list|promote|rollback`, on the local store or an MLflow server.

use anyhow::Result;
use kiln_domain::{ModelVersion, Stage};
use kiln_registry::PromoteTarget;

use kiln::{Opened, open_store, tracking_uri};

use crate::exit::bad_input;
use crate::table::table;

use crate::cli::RegistryCommand;

pub(crate) fn run(cmd: RegistryCommand) -> Result<u8> {
    match cmd {
        RegistryCommand::List { name, store } => {
            let opened = open_store(&tracking_uri(store.tracking_uri))?;
            match name {
                Some(name) => {
                    let versions = kiln_registry::versions(opened.as_store(), &name)?;
                    println!("{name} on {}", opened.display());
                    print!("{}", version_table(&versions));
                }
                None => list_models(&opened)?,
            }
            Ok(0)
        }
        RegistryCommand::Promote { name, version, alias, stage, archive_existing, store } => {
            // the flags first: a bad stage is named before any store is opened
            let target = match (alias, stage) {
                (Some(alias), _) => PromoteTarget::Alias(alias),
                (None, Some(s)) => {
                    let Some(stage) = Stage::parse(&s) else {
                        bad_input!("--stage '{s}': expected Staging, Production, Archived or None");
                    };
                    PromoteTarget::Stage { stage, archive_existing }
                }
                (None, None) => bad_input!("give --alias or --stage"),
            };
            let opened = open_store(&tracking_uri(store.tracking_uri))?;
            let v = kiln_registry::promote(opened.as_store(), &name, version, target)?;
            println!(
                "{name} version {}: stage {}, aliases [{}] on {}",
                v.version,
                v.stage.as_str(),
                v.aliases.join(", "),
                opened.display()
            );
            Ok(0)
        }
        RegistryCommand::Rollback { name, alias, store } => {
            let opened = open_store(&tracking_uri(store.tracking_uri))?;
            let (from, to) = kiln_registry::rollback(opened.as_store(), &name, &alias)?;
            println!("{name}@{alias}: version {} -> version {} on {}", from.version, to.version, opened.display());
            Ok(0)
        }
    }
}

fn list_models(opened: &Opened) -> Result<()> {
    let names = match opened {
        Opened::Local(s) => s.registered_models()?,
        Opened::Remote(s) => s.registered_models()?,
    };
    if names.is_empty() {
        println!("no registered models on {}", opened.display());
        return Ok(());
    }
    let mut rows = vec![["model".to_string(), "versions".into(), "latest".into(), "aliases".into(), "stages".into()]];
    for name in &names {
        let versions = kiln_registry::versions(opened.as_store(), name)?;
        let aliases: Vec<String> =
            versions.iter().flat_map(|v| v.aliases.iter().map(move |a| format!("{a}=v{}", v.version))).collect();
        let stages: Vec<String> = versions
            .iter()
            .filter(|v| v.stage != Stage::None)
            .map(|v| format!("{}=v{}", v.stage.as_str(), v.version))
            .collect();
        rows.push([
            name.clone(),
            versions.len().to_string(),
            versions.last().map_or("-".into(), |v| format!("v{}", v.version)),
            if aliases.is_empty() { "-".into() } else { aliases.join(", ") },
            if stages.is_empty() { "-".into() } else { stages.join(", ") },
        ]);
    }
    println!("registered models on {}", opened.display());
    print!("{}", table(&rows));
    Ok(())
}

fn version_table(versions: &[ModelVersion]) -> String {
    let mut rows = vec![[
        "version".to_string(),
        "stage".into(),
        "aliases".into(),
        "run".into(),
        "created (UTC)".into(),
        "source".into(),
    ]];
    for v in versions {
        rows.push([
            v.version.to_string(),
            v.stage.as_str().to_string(),
            if v.aliases.is_empty() { "-".into() } else { v.aliases.join(", ") },
            v.run_id.as_ref().map_or("-".into(), |r| r.0.clone()),
            utc(v.creation_time_ms),
            v.source.clone(),
        ]);
    }
    table(&rows)
}

/// `YYYY-MM-DD HH:MM` from epoch milliseconds (civil-from-days, no time-zone database needed).
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", rem / 3600, rem % 3600 / 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_formats_epoch_millis() {
        assert_eq!(super::utc(0), "1970-01-01 00:00");
        assert_eq!(super::utc(1_795_333_905_191), "2026-11-22 07:51");
    }
}
