//! `plugin new NAME`: scaffolds a mapper crate, a Rust guest that builds as
//! generated into a component of the world `mapper`. The template files live
//! in `template/`; the WIT file is this host's own, so the copy never drifts.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

use crate::cli::exit::Exit;

/// Create a new mapper crate (Rust, built into a WebAssembly component).
///
/// Writes into DIR (default ./NAME): Cargo.toml, wit/mapper.wit (the contract
/// of this kubectl qualys-respond), src/lib.rs (a working example mapper that
/// claims Example_Category and blocks the finding's destination port),
/// README.md, and samples/ (a finding and the golden output of `plugin test`
/// for it). Refuses a DIR that exists and is not empty.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct NewArgs {
    /// The mapper's name: lowercase letters, digits and '-', starting with a
    /// letter, at most 40 characters. It names the crate, the .wasm file and
    /// the mapper in the policies' annotations.
    #[arg(value_parser = parse_name)]
    name: String,

    /// Where to create the crate (default: ./NAME).
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,
}

const EXAMPLES: &str = "\
Examples:
  kubectl qualys-respond plugin new block-ports
  cd block-ports && cargo build --target wasm32-wasip2 --release
  kubectl qualys-respond plugin test target/wasm32-wasip2/release/block_ports.wasm \\
      --finding samples/finding.json --expect samples/expected.yaml

See docs/writing-mappers.md for the contract, the sandbox and deployment.";

/// The files of a new crate: path inside it, template text.
const FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("template/Cargo.toml.tmpl")),
    (".gitignore", include_str!("template/gitignore.tmpl")),
    ("README.md", include_str!("template/README.md.tmpl")),
    ("wit/mapper.wit", include_str!("../../../wit/mapper.wit")),
    ("src/lib.rs", include_str!("template/lib.rs.tmpl")),
    ("samples/finding.json", include_str!("template/finding.json")),
    ("samples/expected.yaml", include_str!("template/expected.yaml.tmpl")),
];

/// Names a lowercase-and-dash mapper name still cannot take: they are Rust
/// keywords or standard crates, and the crate's library is named after it.
const RESERVED: &[&str] = &[
    "abstract",
    "alloc",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "core",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "proc-macro",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "std",
    "struct",
    "super",
    "test",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
];

/// Checks a mapper name (clap reports an error as a usage error, exit 2).
fn parse_name(name: &str) -> Result<String, String> {
    let well_formed = (1..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !well_formed {
        return Err("use lowercase letters, digits and '-', starting with a letter and not ending with '-' \
                    (at most 40 characters)"
            .into());
    }
    if RESERVED.contains(&name) {
        return Err(format!("{name:?} is a Rust keyword or a standard crate's name; pick another"));
    }
    Ok(name.to_string())
}

/// Creates the crate.
pub fn run(args: NewArgs) -> anyhow::Result<Exit> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    refuse_occupied(&dir)?;
    let crate_name = args.name.replace('-', "_");
    for (relative, template) in FILES {
        let text = template.replace("{{name}}", &args.name).replace("{{crate}}", &crate_name);
        write_new(&dir.join(relative), &text)?;
    }
    let shown = dir.display();
    eprintln!(
        "created mapper crate {name} in {shown}\n\nnext:\n  cd {shown}\n  cargo build --target wasm32-wasip2 --release\n  \
         kubectl qualys-respond plugin test target/wasm32-wasip2/release/{crate_name}.wasm \\\n      \
         --finding samples/finding.json --expect samples/expected.yaml",
        name = args.name,
    );
    Ok(Exit::Ok)
}

/// Fails unless `dir` is missing or an empty directory.
fn refuse_occupied(dir: &Path) -> anyhow::Result<()> {
    let shown = dir.display();
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!("{shown} already exists and is not empty; choose another --dir or remove it");
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) if dir.exists() => bail!("{shown} already exists and is not a directory"),
        Err(e) => Err(e).with_context(|| format!("cannot read {shown}")),
    }
}

/// Writes a file that must not exist yet, creating its parent directories.
fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    let shown = path.display();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {shown}"))?;
    file.write_all(text.as_bytes()).with_context(|| format!("cannot write {shown}"))
}

#[cfg(test)]
mod tests {
    use super::parse_name;

    #[test]
    fn names_are_crate_and_mapper_slugs() {
        for good in ["a", "block-ports", "m2", &"a".repeat(40)] {
            assert_eq!(parse_name(good).as_deref(), Ok(good), "{good}");
        }
        for bad in ["", "Block", "2fast", "-a", "a-", "a_b", "a.b", "fn", "std", &"a".repeat(41)] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
    }
}
