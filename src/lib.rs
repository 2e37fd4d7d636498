//! `kubectl qualys-respond`: closes the loop from Qualys CDR detections to
//! Tetragon enforcement.
//!
//! Data flows one way: [`qualys`] reads findings as Qualys sends them →
//! [`finding`] is our normalised model → [`mapper`] runs sandboxed WASM
//! components that turn a finding into policy specs → [`policy`] merges,
//! names, labels, scopes and validates them. [`pipeline`] ties the stages
//! together; [`cli`] is the front door.
//!
//! ```no_run
//! use qualys_respond::mapper::{Limits, Registry};
//! use qualys_respond::pipeline::{self, Options};
//! use qualys_respond::qualys::records;
//!
//! let text = std::fs::read_to_string("samples/findings.json")?;
//! let mut registry = Registry::with_defaults(Limits::default())?;
//! let outcome = pipeline::run(records::split(&text)?, &mut registry, &Options::default());
//! for assembled in &outcome.policies {
//!     println!("{}", assembled.object.object_name());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod atomic;
pub mod block;
pub mod checkpoint;
pub mod cli;
pub mod cluster;
pub mod duration;
pub mod finding;
pub mod guardrails;
pub mod install;
pub mod ioc;
pub mod mapper;
pub mod names;
pub mod output;
pub mod pipeline;
pub mod policy;
pub mod qualys;
pub mod recent;
pub mod reconcile;
pub mod report;
pub mod reputation;
pub mod rollout;
pub mod serve;
pub mod signal;
pub mod signature;
pub mod status;
pub mod sync;
pub mod watch;
pub mod yaml;
