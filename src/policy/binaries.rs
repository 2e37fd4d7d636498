//! The binaries an automatic policy must be careful with, in one place.
//!
//! - **Protected** binaries keep a node running: the kubelet, kube-proxy, the
//!   container runtimes and their shims, the security agents. No policy may
//!   ever match them; the host excludes them from every selector.
//! - **Common** system binaries are in almost every image: shells,
//!   interpreters, coreutils, package managers. A policy that kills them as
//!   the target of an exec, a file access or a connection takes down every
//!   workload that uses them, so it must name its workload narrowly (a
//!   namespace, labels, a container) to be accepted.

/// Executables a policy must never match, by base name.
pub const PROTECTED: &[&str] = &[
    "kubelet",
    "kube-proxy",
    "containerd",
    "containerd-shim",
    "containerd-shim-runc-v2",
    "runc",
    "crun",
    "crio",
    "conmon",
    "dockerd",
    "tetragon",
    "qualys-cloud-agent",
];

/// Executables in (almost) every image, by base name.
pub const COMMON: &[&str] = &[
    // shells
    "sh", "bash", "dash", "ash", "zsh", "ksh", "csh", "tcsh", "fish", "busybox",
    // interpreters and runtimes
    "python", "python2", "python3", "perl", "ruby", "node", "nodejs", "java", "php", "lua", "deno",
    // coreutils and the like
    "env", "ls", "cat", "cp", "mv", "rm", "ln", "mkdir", "chmod", "chown", "id", "echo", "head", "tail", "grep", "sed",
    "awk", "find", "xargs", "tar", "gzip", "ps", "kill", "sleep", "date", "hostname", "mount", "su", "sudo", "ssh",
    // package managers
    "apt", "apt-get", "dpkg", "yum", "dnf", "rpm", "microdnf", "apk", "pip", "pip3", "npm", "gem",
];

/// Where system binaries live.
pub const SYSTEM_DIRS: &[&str] = &["/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"];

/// The Qualys Cloud Agent's own install path.
pub const QUALYS_AGENT: &str = "/usr/local/qualys/cloud-agent/bin/qualys-cloud-agent";

/// Every path of `names` in every system directory, sorted.
pub fn paths(names: &[&str]) -> Vec<String> {
    let mut paths: Vec<String> =
        SYSTEM_DIRS.iter().flat_map(|dir| names.iter().map(move |name| format!("{dir}/{name}"))).collect();
    paths.sort();
    paths
}

/// The path of `names` that a string filter `operator value` would match
/// (`Postfix "/sh"` matches `/bin/sh`), if any. `Equal`/`In` match by base
/// name, wherever the binary lives.
pub fn hit(operator: &str, value: &str, names: &[&str]) -> Option<String> {
    let base = value.rsplit('/').next().unwrap_or(value);
    match operator {
        "In" | "Equal" => names.contains(&base).then(|| value.to_string()),
        "Prefix" => paths(names).into_iter().find(|p| p.starts_with(value)),
        "Postfix" => paths(names).into_iter().find(|p| p.ends_with(value)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_hit_binaries_by_what_they_match() {
        assert_eq!(hit("Postfix", "/sh", COMMON), Some("/bin/sh".into()));
        assert!(hit("Postfix", "h", COMMON).is_some_and(|p| p.ends_with("sh")));
        assert_eq!(hit("Postfix", "/nmap", COMMON), None);
        assert_eq!(hit("Prefix", "/usr/bin/py", COMMON), Some("/usr/bin/python".into()));
        assert_eq!(hit("In", "/opt/venv/bin/python3", COMMON), Some("/opt/venv/bin/python3".into()));
        assert_eq!(hit("In", "/usr/local/bin/app", COMMON), None);
        assert_eq!(hit("Equal", "/usr/bin/kubelet", PROTECTED), Some("/usr/bin/kubelet".into()));
        assert_eq!(hit("NotIn", "/bin/sh", COMMON), None);
    }
}
