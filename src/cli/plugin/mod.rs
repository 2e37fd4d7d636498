//! `plugin`: the mapper author's and operator's commands: what is loaded
//! (`list`), a new mapper crate (`new`), and a component tried on findings
//! (`test`).

mod new;
mod test;

use std::collections::BTreeMap;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use super::exit::Exit;
use super::io::print_stdout;
use super::mappers::MapperArgs;

/// Work with mapper components.
#[derive(Debug, Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    command: PluginCommand,
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    List(ListArgs),
    New(new::NewArgs),
    Test(test::TestArgs),
}

/// Show the loaded mappers: name, version, WIT version, the categories each
/// serves after precedence, digest and source.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  kubectl qualys-respond plugin list\n  kubectl qualys-respond plugin list --plugins mappers/ -o json"
)]
pub struct ListArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    output: Format,

    #[command(flatten)]
    mappers: MapperArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    name: String,
    version: String,
    wit_version: String,
    categories: Vec<String>,
    /// The finding fields it is sent: all of them but for a selective mapper.
    reads: Vec<&'static str>,
    /// The fields sent per category it serves, for a category-selective mapper.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    reads_by_category: BTreeMap<String, Vec<&'static str>>,
    sha256: String,
    source: String,
}

pub fn run(args: PluginArgs) -> anyhow::Result<Exit> {
    match args.command {
        PluginCommand::List(args) => list(args),
        PluginCommand::New(args) => new::run(args),
        PluginCommand::Test(args) => test::run(args),
    }
}

fn list(args: ListArgs) -> anyhow::Result<Exit> {
    let registry = args.mappers.registry()?;
    let rows: Vec<Row> = registry
        .plugins()
        .iter()
        .zip(registry.served())
        .map(|(plugin, served)| {
            let info = plugin.info();
            Row {
                name: info.name.clone(),
                version: info.version.clone(),
                wit_version: info.wit_version.clone().unwrap_or_else(|| "-".into()),
                reads_by_category: served
                    .iter()
                    .filter_map(|c| info.reads_by_category.of(c).map(|reads| (c.clone(), reads.names())))
                    .collect(),
                categories: served,
                reads: info.reads.names(),
                sha256: info.digest.clone(),
                source: info.source.to_string(),
            }
        })
        .collect();
    let text = match args.output {
        Format::Json => serde_json::to_string_pretty(&rows).context("cannot render JSON")? + "\n",
        Format::Table => {
            let mut lines =
                vec![["NAME", "VERSION", "WIT", "CATEGORIES", "SHA256", "SOURCE"].map(String::from).to_vec()];
            for row in &rows {
                lines.push(vec![
                    row.name.clone(),
                    row.version.clone(),
                    row.wit_version.clone(),
                    if row.categories.is_empty() { "-".into() } else { row.categories.join(",") },
                    row.sha256.chars().take(12).collect(),
                    row.source.clone(),
                ]);
            }
            let widths: Vec<usize> =
                (0..6).map(|i| lines.iter().map(|l| l[i].chars().count()).max().unwrap_or(0)).collect();
            lines
                .iter()
                .map(|line| {
                    let cells: Vec<String> = line.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
                    cells.join("   ").trim_end().to_string() + "\n"
                })
                .collect()
        }
    };
    print_stdout(&text).context("cannot write to stdout")?;
    Ok(Exit::Ok)
}
