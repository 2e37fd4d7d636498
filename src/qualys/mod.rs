//! The Qualys side: the CDR API client (platforms, credentials, retries,
//! paging), the wire shape of findings and the documents that carry them.
//! Knows nothing of Kubernetes, mappers or policies.

pub mod client;
pub mod credentials;
pub mod platform;
pub mod records;
pub mod retry;
pub mod wire;
