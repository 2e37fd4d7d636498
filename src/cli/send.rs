//! `send`: signs findings with Standard Webhooks and posts them to a
//! `serve` endpoint, for relays (a poller, a SOAR playbook, a cloud
//! function) and for trying the server by hand.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::exit::Exit;
use super::io::read_input;
use crate::qualys::records;
use crate::serve::auth::{SECRET_ENV, parse_secrets};
use crate::signature::{self, Secret};

/// Longest wait a server's Retry-After can impose.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Sign findings and post them to kubectl qualys-respond serve.
///
/// Reads findings (the API envelope, a JSON array, or one object per line)
/// from FILE or stdin, posts them in batches as JSON arrays, each signed with
/// every secret (webhook-id, webhook-timestamp, webhook-signature), and
/// retries on 429, 502, 503 and 504 (honouring Retry-After) and on broken
/// connections. The webhook-id is derived from the batch's bytes, so sending
/// the same batch again is recognised by the server as a repeat.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  kubectl qualys-respond send --url https://webhook:8080/webhook/cdr --secret-file /secrets/webhook findings.json\n  QUALYS_RESPOND_WEBHOOK_SECRET=whsec_… kubectl qualys-respond send --url http://localhost:8080/webhook/cdr - < finding.json"
)]
pub struct SendArgs {
    /// The findings ('-' for stdin).
    #[arg(value_name = "FILE", default_value = "-")]
    file: PathBuf,

    /// The server's webhook URL, e.g. https://webhook:8080/webhook/cdr.
    #[arg(long, value_name = "URL")]
    url: String,

    /// File of whsec_ secrets (one a line; all sign), else QUALYS_RESPOND_WEBHOOK_SECRET.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,

    /// Findings per request.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    batch: u64,

    /// Retries per request.
    #[arg(long, value_name = "N", default_value_t = 5)]
    retries: u32,

    /// Timeout of one request.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::duration::wait)]
    timeout: Duration,

    /// PEM CA bundle that signed the server's certificate.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,

    /// PEM client certificate, for a server that requires one (mTLS).
    #[arg(long, value_name = "FILE", requires = "client_key")]
    client_cert: Option<PathBuf>,

    /// PEM key of --client-cert.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    client_key: Option<PathBuf>,
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
}

fn secrets(args: &SendArgs) -> anyhow::Result<Vec<Secret>> {
    let text = match &args.secret_file {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
        None => std::env::var(SECRET_ENV).unwrap_or_default(),
    };
    let secrets = parse_secrets(&text).map_err(anyhow::Error::msg).context("the webhook secret")?;
    if secrets.is_empty() {
        bail!("no webhook secret: pass --secret-file or set {SECRET_ENV}");
    }
    Ok(secrets)
}

fn client(args: &SendArgs) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(args.timeout)
        .user_agent(concat!("kubectl-qualys-respond/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &args.ca_file {
        let pem = read(path, "CA file")?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).context("the CA file is not PEM")?;
        if certificates.is_empty() {
            bail!("the CA file {} holds no certificate", path.display());
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if let (Some(cert), Some(key)) = (&args.client_cert, &args.client_key) {
        let mut pem = read(cert, "client certificate")?;
        pem.extend(read(key, "client key")?);
        builder = builder.identity(reqwest::Identity::from_pem(&pem).context("the client certificate or key")?);
    }
    builder.build().context("cannot set up the HTTP client")
}

/// One batch delivered: the status and the server's answer.
async fn post(
    http: &reqwest::Client,
    args: &SendArgs,
    secrets: &[Secret],
    body: &[u8],
) -> anyhow::Result<(StatusCode, Value)> {
    let digest = Sha256::digest(body);
    let id = format!("msg_{}", digest.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>());
    let mut delay = Duration::from_millis(500);
    let mut attempt = 0;
    loop {
        let timestamp = chrono::Utc::now().timestamp();
        let sent = http
            .post(&args.url)
            .header("content-type", "application/json")
            .header(signature::ID_HEADER, &id)
            .header(signature::TIMESTAMP_HEADER, timestamp.to_string())
            .header(signature::SIGNATURE_HEADER, signature::sign(secrets, &id, timestamp, body))
            .body(body.to_vec())
            .send()
            .await;
        let retry = match sent {
            Ok(response) => {
                let status = response.status();
                let wait = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                let retryable = matches!(status.as_u16(), 429 | 502 | 503 | 504);
                if !retryable || attempt == args.retries {
                    return Ok((status, answer));
                }
                wait.unwrap_or(delay)
            }
            Err(error) if attempt < args.retries => {
                tracing::warn!(error = %error.without_url(), "cannot reach the server; retrying");
                delay
            }
            Err(error) => return Err(anyhow::anyhow!("cannot reach {}: {}", args.url, error.without_url())),
        };
        tokio::time::sleep(retry).await;
        delay = (delay * 2).min(MAX_RETRY_AFTER);
        attempt += 1;
    }
}

pub fn run(args: SendArgs) -> anyhow::Result<Exit> {
    let secrets = secrets(&args)?;
    let name = args.file.display().to_string();
    let text = read_input(&args.file).with_context(|| format!("cannot read findings from {name}"))?;
    let records = records::split(&text).with_context(|| format!("cannot read findings from {name}"))?;
    let mut values = Vec::with_capacity(records.len());
    for record in records {
        match record.value {
            Ok(value) => values.push(value),
            Err(why) => bail!("{name}, {}: {why}; nothing was sent", record.position),
        }
    }
    if values.is_empty() {
        bail!("{name} holds no findings; nothing was sent");
    }
    let http = client(&args)?;
    let batches: Vec<&[Value]> = values.chunks(args.batch as usize).collect();
    let runtime = super::cluster::runtime()?;
    runtime.block_on(async {
        let mut failed = 0;
        for (number, batch) in batches.iter().enumerate() {
            let body = serde_json::to_vec(batch).context("cannot encode findings")?;
            let (status, answer) = post(&http, &args, &secrets, &body).await?;
            let count = |key: &str| answer.get(key).and_then(Value::as_array).map_or(0, Vec::len);
            // A retry of an accepted message answers "duplicate"; the same
            // bytes within the same second are a replay (409): both mean the
            // server has the batch.
            let duplicate = answer.get("status").and_then(Value::as_str) == Some("duplicate");
            if duplicate || status == StatusCode::CONFLICT {
                println!("batch {}/{}: already delivered", number + 1, batches.len());
            } else if status.is_success() {
                println!(
                    "batch {}/{}: {} accepted {}, duplicates {}",
                    number + 1,
                    batches.len(),
                    status.as_u16(),
                    count("accepted"),
                    count("duplicates")
                );
            } else {
                failed += 1;
                let error = answer.get("error").and_then(Value::as_str).unwrap_or("(no error message)");
                eprintln!("error: batch {}/{}: the server answered {status}: {error}", number + 1, batches.len());
                if let Some(problems) = answer.get("problems").and_then(Value::as_array) {
                    problems.iter().filter_map(Value::as_str).for_each(|p| eprintln!("  {p}"));
                }
            }
        }
        Ok(if failed == 0 { Exit::Ok } else { Exit::Error })
    })
}
