//! `serve`: the signed webhook server and the manual blocking API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use super::exit::Exit;
use super::guard::GuardArgs;
use super::mappers::MapperArgs;
use super::reputation::ReputationArgs;
use crate::block::MAX_ENTRIES;
use crate::cluster::{Cluster, KubeArgs};
use crate::guardrails::{Protected, parse_ip};
use crate::pipeline::Options;
use crate::policy::Mode;
use crate::policy::validate::TetragonVersion;
use crate::serve::http::{BlockSettings, HttpLimits};
use crate::serve::tls::TlsFiles;
use crate::serve::{self, Config};

const EXAMPLES: &str = "\
Examples:
  # In the cluster: secrets mounted from Kubernetes Secrets, policies applied (audit mode)
  kubectl qualys-respond serve --apply --webhook-secret-file /secrets/webhook --api-token-file /secrets/api-tokens
  # TLS, with client certificates required
  kubectl qualys-respond serve --apply --webhook-secret-file s --api-token-file t \\
      --tls-cert tls.crt --tls-key tls.key --client-ca clients-ca.crt
  # Only trust addresses AbuseIPDB or a feed call malicious
  kubectl qualys-respond serve --apply --webhook-secret-file s --feed drop.txt --abuseipdb-key-file abuseipdb-key
  # No cluster: write the policies to /policies/*.yaml
  kubectl qualys-respond serve --output-dir /policies --webhook-secret-file s

  # Send findings to it, signed (see send --help)
  kubectl qualys-respond send --url https://webhook:8080/webhook/cdr --secret-file s findings.json
  # Block and look, with a token
  curl -X POST https://webhook:8080/api/block -H \"Authorization: Bearer $TOKEN\" \\
      -H 'Content-Type: application/json' -d '{\"type\":\"ip\",\"values\":[\"203.0.113.7\"],\"reason\":\"C2\"}'
  curl -H \"Authorization: Bearer $TOKEN\" https://webhook:8080/status

Endpoints: POST /webhook/cdr (Standard Webhooks signature), POST /api/block and /api/unblock,
GET /status (bearer token), GET /health, /readyz, /metrics (no authentication).
Secrets: whsec_ secrets in --webhook-secret-file or QUALYS_RESPOND_WEBHOOK_SECRET, API tokens
in --api-token-file or QUALYS_RESPOND_API_TOKEN; files are re-read when they change, so both
old and new values work while both are listed.";

/// Receive CDR findings in real time and serve the manual blocking API.
///
/// POST /webhook/cdr takes one finding, an array, or the API envelope
/// {"content": [...]}, signed with Standard Webhooks (webhook-id,
/// webhook-timestamp, webhook-signature). Findings that arrive within
/// --coalesce of each other are mapped and applied together, through the
/// same pipeline as sync. /api/block and /api/unblock take the bodies of the
/// design ({"type":"ip","values":["1.2.3.4"],"reason":"…","action":"Sigkill"},
/// plus "ttl" and "namespace") with the guardrails of block and unblock.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,

    /// Apply policies to the cluster (server-side apply); needed for /api/block and /api/unblock.
    #[arg(long)]
    apply: bool,

    /// Also (or, without --apply, only) write the policies as YAML files into DIR.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,

    /// What enforcing actions of new policies become: Post audits, Sigkill enforces.
    #[arg(long, value_enum, default_value_t = Mode::Post)]
    action: Mode,

    /// Validate against this Tetragon CRD version only (default: both main and v1.7.0).
    #[arg(long, value_enum)]
    tetragon_version: Option<TetragonVersion>,

    /// File of webhook signing secrets (whsec_…, one a line); re-read when it changes.
    #[arg(long, value_name = "FILE", help_heading = "Authentication")]
    webhook_secret_file: Option<PathBuf>,

    /// Accept webhooks without a signature (tests only; every request's log line says so).
    #[arg(long, help_heading = "Authentication")]
    insecure_skip_signature: bool,

    /// How far a webhook's timestamp may be from now, either way.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = tolerance, help_heading = "Authentication")]
    signature_tolerance: Duration,

    /// File of bearer tokens for /api/* and /status (one a line); re-read when it changes.
    #[arg(long, value_name = "FILE", help_heading = "Authentication")]
    api_token_file: Option<PathBuf>,

    /// PEM certificate chain: serve HTTPS.
    #[arg(long, value_name = "FILE", requires = "tls_key", help_heading = "TLS")]
    tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert", help_heading = "TLS")]
    tls_key: Option<PathBuf>,

    /// PEM CA bundle: clients must present a certificate it signed (mTLS).
    #[arg(long, value_name = "FILE", requires = "tls_cert", help_heading = "TLS")]
    client_ca: Option<PathBuf>,

    /// Findings arriving within this window are applied together (one apply per policy).
    #[arg(long, value_name = "DURATION", default_value = "200ms", value_parser = coalesce, help_heading = "Limits")]
    coalesce: Duration,

    /// Largest request body (bytes; KiB and MiB suffixes).
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = size, help_heading = "Limits")]
    max_body: usize,

    /// Longest a request may take, body included.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::duration::wait,
        help_heading = "Limits")]
    http_timeout: Duration,

    /// Longest a client may take to send its headers (and the TLS handshake).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::duration::wait,
        help_heading = "Limits")]
    header_timeout: Duration,

    /// Requests handled at once; more wait.
    #[arg(long, value_name = "N", default_value_t = 256, help_heading = "Limits")]
    concurrency: usize,

    /// Requests a second per client address (0: no limit); probes and metrics are exempt.
    #[arg(long, value_name = "N", default_value_t = 200, help_heading = "Limits")]
    rate_limit: u32,

    /// Requests a client may send in a burst above --rate-limit.
    #[arg(long, value_name = "N", default_value_t = 2000, help_heading = "Limits")]
    rate_burst: u32,

    /// Most entries one block policy may hold.
    #[arg(long, value_name = "N", default_value_t = MAX_ENTRIES, help_heading = "Limits")]
    max_entries: usize,

    /// A range /api/block must never block (e.g. a VPN); repeatable.
    #[arg(long, value_name = "CIDR", help_heading = "Limits")]
    protect: Vec<String>,

    /// How often expired block entries are removed.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::duration::span)]
    expire_interval: Duration,

    /// How long requests in flight may finish after SIGTERM.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::duration::wait)]
    shutdown_grace: Duration,

    #[command(flatten)]
    reputation: ReputationArgs,

    #[command(flatten)]
    guard: GuardArgs,

    /// With --apply: take over fields another field manager set on our
    /// objects; without it such a write is refused and their edit stays.
    #[arg(long, requires = "apply", help_heading = "Cluster")]
    force_conflicts: bool,

    #[command(flatten)]
    clusters: super::scope::ClusterArgs,

    #[command(flatten)]
    election: super::election::ElectionArgs,

    #[command(flatten)]
    kube: KubeArgs,

    #[command(flatten)]
    mappers: MapperArgs,
}

fn tolerance(text: &str) -> Result<Duration, String> {
    crate::duration::parse_bounded(text, Duration::from_secs(3600), "the tolerance")
}

fn coalesce(text: &str) -> Result<Duration, String> {
    let window = humantime::parse_duration(text.trim()).map_err(|e| format!("{text:?}: {e}"))?;
    if window > Duration::from_secs(60) {
        return Err(format!("{text:?} is longer than a minute; findings would wait too long"));
    }
    Ok(window)
}

/// `1048576`, `512KiB`, `1MiB`.
fn size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "k" => 1024,
        "MiB" | "M" => 1024 * 1024,
        other => return Err(format!("unknown unit {other:?} (use B, KiB or MiB)")),
    };
    let bytes = number.parse::<usize>().map_err(|_| format!("{text:?} is not a size"))?.saturating_mul(factor);
    if bytes == 0 || bytes > 64 * 1024 * 1024 {
        return Err(format!("{text:?} must be between 1 byte and 64MiB"));
    }
    Ok(bytes)
}

pub fn run(args: ServeArgs) -> anyhow::Result<Exit> {
    if !args.apply && args.output_dir.is_none() {
        bail!("serve needs somewhere to put policies: --apply (the cluster), --output-dir DIR, or both");
    }
    let mut protect = Vec::new();
    for cidr in &args.protect {
        protect.push((parse_ip(cidr)?, cidr.clone()));
    }
    let versions = args.tetragon_version.map_or_else(|| TetragonVersion::ALL.to_vec(), |v| vec![v]);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async move {
        let cluster = match args.apply {
            true => Some(Cluster::connect(&args.kube).await?.forcing_conflicts(args.force_conflicts)),
            false => None,
        };
        if args.election.leader_elect && cluster.is_none() {
            anyhow::bail!("--leader-elect needs --apply: the Lease lives in the cluster");
        }
        let leader = cluster.as_ref().and_then(|cluster| args.election.start(cluster));
        let protected = Arc::new(RwLock::new(Protected::baseline()));
        let judge = Arc::new(args.reputation.judge(Arc::clone(&protected))?);
        let tls = args.tls_cert.clone().zip(args.tls_key.clone()).map(|(cert, key)| TlsFiles {
            cert,
            key,
            client_ca: args.client_ca.clone(),
        });
        let config = Config {
            listen: args.listen,
            tls,
            secret_file: args.webhook_secret_file.clone(),
            insecure_skip_signature: args.insecure_skip_signature,
            token_file: args.api_token_file.clone(),
            cluster,
            dir: args.output_dir.clone(),
            options: Options {
                mode: args.action,
                versions: versions.clone(),
                guardrails: args.guard.guardrails(),
                cluster: args.clusters.scope(args.apply),
            },
            coalesce: args.coalesce,
            limits: HttpLimits {
                max_body: args.max_body,
                timeout: args.http_timeout,
                tolerance: args.signature_tolerance.as_secs() as i64,
            },
            header_timeout: args.header_timeout,
            concurrency: args.concurrency,
            rate: (args.rate_limit, args.rate_burst),
            blocks: BlockSettings {
                max_entries: args.max_entries,
                protect,
                versions,
                guardrails: args.guard.guardrails(),
            },
            judge,
            protected,
            expire_interval: args.expire_interval,
            grace: args.shutdown_grace,
            leader,
        };
        let mappers = args.mappers.clone();
        serve::run(config, move || mappers.registry()).await?;
        Ok(Exit::Ok)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_windows_are_bounded() {
        assert_eq!(size("1MiB"), Ok(1 << 20));
        assert_eq!(size("512KiB"), Ok(512 << 10));
        assert_eq!(size("100"), Ok(100));
        assert!(size("1GiB").is_err() && size("0").is_err() && size("99999999999999999999").is_err());
        assert!(coalesce("2m").is_err());
        assert!(tolerance("300000y").is_err());
    }
}
