//! `status`: the policies we manage, read from the cluster alone.

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};

use super::cluster;
use super::exit::Exit;
use super::io::print_stdout;
use crate::cluster::{Cluster, KubeArgs};
use crate::status::{Row, rows};
use crate::yaml;

/// List the policies kubectl qualys-respond manages.
///
/// Shows every TracingPolicy, TracingPolicyNamespaced and NetworkPolicy with
/// our managed-by label: its mode and since when, category, MITRE technique,
/// what it blocks and the findings behind it. Everything comes from the
/// objects themselves.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  kubectl qualys-respond status\n  kubectl qualys-respond status -n payments -o yaml\n  kubectl qualys-respond status cdr-reverse-shell-shell-spawn -o json"
)]
pub struct StatusArgs {
    /// Only these policies.
    #[arg(value_name = "NAME")]
    names: Vec<String>,

    /// Only this namespace's policies (and the cluster-wide ones).
    #[arg(short, long, value_name = "NS", conflicts_with = "all_namespaces")]
    namespace: Option<String>,

    /// Every namespace (the default).
    #[arg(short = 'A', long)]
    all_namespaces: bool,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    output: Format,

    #[command(flatten)]
    kube: KubeArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Yaml,
    Json,
}

/// `3d`, `5h`, `12m`, `40s`, as kubectl shows ages.
fn age(since: &str, now: DateTime<Utc>) -> String {
    let Ok(then) = DateTime::parse_from_rfc3339(since) else { return "-".into() };
    let seconds = now.signed_duration_since(then.with_timezone(&Utc)).num_seconds().max(0);
    match seconds {
        s if s >= 2 * 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn shorten(items: &[String], width: usize) -> String {
    let all = items.join(",");
    if all.chars().count() <= width {
        return if all.is_empty() { "-".into() } else { all };
    }
    let cut: String = all.chars().take(width.saturating_sub(8)).collect();
    format!("{cut}… ({})", items.len())
}

fn table(rows: &[Row]) -> String {
    let now = Utc::now();
    let header =
        ["NAME", "KIND", "NAMESPACE", "CATEGORY", "TECHNIQUE", "MODE", "MODE-AGE", "AGE", "INDICATORS", "FINDINGS"];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for row in rows {
        let findings = match row.finding_ids.first() {
            Some(first) if row.finding_count > 1 => format!("{} ({first}, …)", row.finding_count),
            Some(first) => format!("1 ({first})"),
            None => "-".into(),
        };
        lines.push(vec![
            row.name.clone(),
            row.kind.clone(),
            row.namespace.clone().unwrap_or_else(|| "-".into()),
            row.category.clone(),
            row.technique.clone(),
            row.mode.clone(),
            row.mode_since.as_deref().map_or_else(|| "-".into(), |t| age(t, now)),
            age(&row.created, now),
            shorten(&row.indicators, 40),
            findings,
        ]);
    }
    let widths: Vec<usize> =
        (0..header.len()).map(|i| lines.iter().map(|l| l[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for line in lines {
        let cells: Vec<String> = line.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// The rows as the user asked for them; YAML keys in the order `kubectl
/// get -o yaml` gives them (sorted), every string quoted where YAML 1.1
/// readers (`yq`, PyYAML) would take it for something else.
fn render(rows: &[Row], format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::Table if rows.is_empty() => "No managed policies found.\n".to_string(),
        Format::Table => table(rows),
        Format::Yaml => yaml::to_string(&serde_json::to_value(rows).context("cannot render YAML")?),
        Format::Json => serde_json::to_string_pretty(rows).context("cannot render JSON")? + "\n",
    })
}

pub fn run(args: StatusArgs) -> anyhow::Result<Exit> {
    cluster::runtime()?.block_on(async {
        let cluster = Cluster::connect(&args.kube).await?;
        cluster.ensure_tetragon().await?;
        let namespace = args.namespace.as_deref().filter(|_| !args.all_namespaces);
        let mut rows = rows(&cluster.managed(namespace).await?);
        if !args.names.is_empty() {
            let missing: Vec<&str> =
                args.names.iter().filter(|n| !rows.iter().any(|r| &r.name == *n)).map(String::as_str).collect();
            if !missing.is_empty() {
                anyhow::bail!("no managed policy named {}", missing.join(", "));
            }
            rows.retain(|r| args.names.contains(&r.name));
        }
        print_stdout(&render(&rows, args.output)?).context("cannot write to stdout")?;
        Ok(Exit::Ok)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn yaml_rows_read_back_as_the_json_rows_even_in_a_namespace_called_no() {
        let row = Row {
            name: "cdr-reverse-shell-shell-egress".into(),
            kind: "TracingPolicyNamespaced".into(),
            namespace: Some("no".into()),
            source: "cdr".into(),
            category: "REVERSE_SHELL".into(),
            technique: "T1059.004".into(),
            mode: "audit".into(),
            mode_since: None,
            created: "2026-12-04T17:00:00Z".into(),
            indicators: vec!["on".into()],
            finding_count: 1,
            finding_ids: vec!["1_000".into()],
            excluded_binaries: vec![],
            excluded_namespaces: vec!["off".into()],
            blocks: vec![],
            history: json!([]),
        };
        let rows = [row];
        let text = render(&rows, Format::Yaml).unwrap();
        assert!(text.contains("namespace: 'no'"), "{text}");
        let read: Value = serde_yaml::from_str(&text).unwrap();
        let json: Value = serde_json::from_str(&render(&rows, Format::Json).unwrap()).unwrap();
        assert_eq!(read, json);
    }
}
