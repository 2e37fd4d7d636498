//! The Qualys side: the wire shape of CDR findings and the documents that
//! carry them. Knows nothing of Kubernetes, mappers or policies.

pub mod records;
pub mod wire;
