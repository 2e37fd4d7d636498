//! Our own rules, stricter than Tetragon's: an enforcing policy must be
//! limited to containers, must narrow what it matches, must never match
//! a protected host binary (`crate::policy::PROTECTED_BINARIES`), and must
//! not cut off every address or loopback (the guardrails of manual blocks). These are
//! the mistakes that kill kubelet or the container runtime on every node.

use serde_json::Value;

use super::{Problem, problem};
use crate::block::guardrails::{Protected, check_ip, parse_ip};
use crate::policy::Kind;
use crate::policy::guard::protected_match;
use crate::policy::spec::{HOOKS, array, enforces, text};

/// Selector fields that narrow what a selector matches.
const FILTERS: &[&str] = &[
    "matchArgs",
    "matchData",
    "matchPIDs",
    "matchNamespaces",
    "matchCapabilities",
    "matchNamespaceChanges",
    "matchCapabilityChanges",
    "matchReturnArgs",
    "matchParentBinaries",
];

/// What no policy may cut off in any cluster: every address, loopback, the
/// unspecified addresses. `block` adds the cluster's own addresses.
static BASELINE: std::sync::LazyLock<Protected> = std::sync::LazyLock::new(Protected::baseline);

/// Adds the safety problems of `object` to `out`.
pub fn check(object: &Value, kind: Kind, out: &mut Vec<Problem>) {
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let mut enforcing = false;
    for hook_list in HOOKS {
        for (h, hook) in array(spec, hook_list).iter().enumerate() {
            for (s, selector) in array(hook, "selectors").iter().enumerate().filter(|(_, s)| enforces(s)) {
                enforcing = true;
                let at = format!("spec.{hook_list}[{h}].selectors[{s}]");
                check_selector(hook_list, hook, selector, &at, out);
            }
        }
    }
    if !enforcing {
        return;
    }
    if kind == Kind::TracingPolicy && spec.get("podSelector").is_none_or(Value::is_null) {
        out.push(problem(
            "spec.podSelector",
            "safety/unscoped",
            "an enforcing cluster-wide policy must be limited to containers: add `podSelector: {}` or use a TracingPolicyNamespaced",
        ));
    }
    if spec.get("hostSelector").is_some_and(|h| !h.is_null()) {
        out.push(problem("spec.hostSelector", "safety/host", "an enforcing policy must not select host processes"));
    }
}

fn check_selector(hook_list: &str, hook: &Value, selector: &Value, at: &str, out: &mut Vec<Problem>) {
    if selector.pointer("/matchWorkloads/hostSelector").is_some_and(|h| !h.is_null()) {
        out.push(problem(
            format!("{at}.matchWorkloads.hostSelector"),
            "safety/host",
            "an enforcing selector must not select host processes",
        ));
    }
    if matches!(hook_list, "uprobes" | "usdts") {
        let path = text(hook, "path");
        let base = path.rsplit('/').next().unwrap_or(path);
        if crate::policy::PROTECTED_BINARIES.contains(&base) {
            out.push(problem(at, "safety/protected-binary", format!("it probes the protected binary {path}")));
        }
        return;
    }
    let binaries = array(selector, "matchBinaries");
    if let Some(reason) = protected_match(binaries) {
        out.push(problem(
            at,
            "safety/protected-binary",
            format!("an enforcing selector must never match kubelet, container runtimes or security agents: {reason}"),
        ));
    }
    for (m, arg) in array(selector, "matchArgs").iter().enumerate() {
        if !matches!(text(arg, "operator"), "DAddr" | "SAddr") {
            continue;
        }
        for value in array(arg, "values").iter().filter_map(Value::as_str) {
            let refusal = match parse_ip(value) {
                Ok(net) => check_ip(&net, &BASELINE, false),
                Err(reason) => Some(reason),
            };
            if let Some(reason) = refusal {
                out.push(problem(
                    format!("{at}.matchArgs[{m}]"),
                    "safety/address",
                    format!("an enforcing selector must not cut off this address: {reason}"),
                ));
            }
        }
    }
    let narrows_binaries = binaries.first().is_some_and(|b| matches!(text(b, "operator"), "In" | "Prefix" | "Postfix"));
    if !narrows_binaries && !FILTERS.iter().any(|f| !array(selector, f).is_empty()) {
        out.push(problem(at, "safety/unfiltered", "an enforcing selector must filter on arguments, binaries, PIDs, namespaces or capabilities; this one matches every call"));
    }
}
