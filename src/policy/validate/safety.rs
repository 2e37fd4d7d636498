//! Our own rules, stricter than Tetragon's: the blast radius of every
//! enforcing selector, whoever wrote it (the default mappers, a custom
//! component, `block`, `serve`, a file someone lints). Findings are
//! attacker-influenced input, so nothing here trusts where a value came from.
//!
//! An enforcing selector must:
//! - actually narrow what it matches (`safety/unfiltered`): exclusions
//!   (`NotDAddr`, `NotIn`, `NotPrefix`, …), `Prefix "/"`, empty strings,
//!   ranges covering most ports or, together, more than a /8 (IPv4) or /16
//!   (IPv6) are not filters;
//! - never match a protected binary (`safety/protected-binary`), as the
//!   process or as the target of an exec or a file access, nor a common
//!   system binary (`safety/common-binary`: shells, interpreters, coreutils,
//!   package managers, see [`crate::policy::binaries`]) unless the policy
//!   names its workload narrowly (a namespace, labels, a container);
//! - not cut off what the cluster needs (`safety/address`, `safety/port`):
//!   every address, loopback, DNS, the API server and the kubelet, and the
//!   cluster's own ranges when they are known ([`Guardrails`], shared with
//!   `block`);
//! - stay off the host (`safety/host`, `safety/host-pid`): no host selector,
//!   no selection of the host's namespaces, and the host's PID namespace
//!   excluded, which keeps hostPID pods and node processes safe.
//!
//! A cluster-wide enforcing policy must be limited to pods (`safety/unscoped`).
//!
//! A selector macro must not carry an enforcing action
//! (`safety/macro-action`): Tetragon appends a macro's actions to every
//! selector that names it, so an action there would enforce through
//! selectors these checks judge as not enforcing. With the rule, every
//! enforcing action sits on the selector it acts through, in `matchActions`
//! or `matchReturnActions`, where these checks and the guard see it. Filters
//! a macro adds are not counted: an enforcing selector must narrow on its own.

use ipnet::IpNet;
use serde_json::Value;

use super::problem::{Problem, problem};
use crate::guardrails::{Guardrails, Refusal, check_ip, check_port, parse_ip, too_broad};
use crate::policy::binaries::{COMMON, PROTECTED, hit};
use crate::policy::guard::{NAMESPACE_LABEL, protected_match};
use crate::policy::spec::{array, enforces, macros, selectors, text};
use crate::policy::{Kind, PROTECTED_BINARIES};

/// Operators that exclude rather than select.
const EXCLUDING: &[&str] = &[
    "NotEqual",
    "NotPrefix",
    "NotPostfix",
    "NotDAddr",
    "NotSAddr",
    "NotDPort",
    "NotSPort",
    "NotDPortPriv",
    "NotSportPriv",
    "NotInRange",
    "NotInMap",
    "NotFileType",
    "NotIn",
];

/// Hooks that run on exec: their path arguments are exec targets.
const EXEC_CALLS: &[&str] = &[
    "security_bprm_check",
    "security_bprm_creds_for_exec",
    "bprm_check_security",
    "bprm_creds_for_exec",
    "sys_execve",
    "sys_execveat",
];

/// Argument types that hold a path (an exec or file target).
const PATH_TYPES: &[&str] = &["linux_binprm", "filename", "string", "file", "path", "dentry", "fd"];

/// A port range covering more than this many ports is not a filter.
const MAX_PORTS: u32 = 32_768;

/// Adds the safety problems of `object` to `out`, judged with `guardrails`.
pub fn check(object: &Value, kind: Kind, guardrails: &Guardrails, out: &mut Vec<Problem>) {
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let narrow = kind == Kind::TracingPolicyNamespaced || names_workload(spec);
    for (name, _) in macros(spec).filter(|(_, selector)| enforces(selector)) {
        out.push(problem(
            format!("spec.selectorsMacros.{name}"),
            "safety/macro-action",
            "a selector macro must not carry an enforcing action: Tetragon adds it to every selector that names the macro; put the action on those selectors",
        ));
    }
    let mut enforcing = false;
    for (site, hook, selector) in selectors(spec).filter(|(_, _, selector)| enforces(selector)) {
        enforcing = true;
        let at = format!("spec.{}", site.path());
        let context = Selector { hook_list: site.hooks, hook, selector, at: &at, narrow, guardrails };
        context.check(out);
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

/// True when the policy names its workload: pod labels, or a container.
fn names_workload(spec: &Value) -> bool {
    let pods = spec.get("podSelector").unwrap_or(&Value::Null);
    let labels = pods.get("matchLabels").and_then(Value::as_object).is_some_and(|l| !l.is_empty());
    let expressions = array(pods, "matchExpressions").iter().any(|e| {
        !(text(e, "key") == NAMESPACE_LABEL && text(e, "operator") == "NotIn") && text(e, "operator") != "DoesNotExist"
    });
    let containers = spec.get("containerSelector").is_some_and(|c| c.as_object().is_some_and(|c| !c.is_empty()));
    labels || expressions || containers
}

struct Selector<'a> {
    hook_list: &'a str,
    hook: &'a Value,
    selector: &'a Value,
    at: &'a str,
    /// The policy names its workload narrowly.
    narrow: bool,
    guardrails: &'a Guardrails,
}

impl Selector<'_> {
    fn check(&self, out: &mut Vec<Problem>) {
        let (selector, at) = (self.selector, self.at);
        if selector.pointer("/matchWorkloads/hostSelector").is_some_and(|h| !h.is_null()) {
            out.push(problem(
                format!("{at}.matchWorkloads.hostSelector"),
                "safety/host",
                "an enforcing selector must not select host processes",
            ));
        }
        if matches!(self.hook_list, "uprobes" | "usdts") {
            let path = text(self.hook, "path");
            let base = path.rsplit('/').next().unwrap_or(path);
            if PROTECTED_BINARIES.contains(&base) {
                out.push(problem(at, "safety/protected-binary", format!("it probes the protected binary {path}")));
            }
            return;
        }
        self.check_namespaces(out);
        self.check_binaries(out);
        let mut filters = Vec::new();
        let mut excluding = Vec::new();
        for (m, arg) in array(selector, "matchArgs").iter().enumerate() {
            let where_ = format!("{at}.matchArgs[{m}]");
            match self.check_arg(arg, &where_, out) {
                Breadth::Narrows => filters.push(where_),
                Breadth::Everything(why) => excluding.push(format!("matchArgs[{m}] {why}")),
            }
        }
        for (d, data) in array(selector, "matchData").iter().enumerate() {
            if EXCLUDING.contains(&text(data, "operator")) {
                excluding.push(format!("matchData[{d}] {}", text(data, "operator")));
            } else {
                filters.push(format!("{at}.matchData[{d}]"));
            }
        }
        match binaries_breadth(array(selector, "matchBinaries")) {
            Some(Breadth::Narrows) => filters.push(format!("{at}.matchBinaries")),
            Some(Breadth::Everything(why)) => excluding.push(format!("matchBinaries {why}")),
            None => {}
        }
        for key in
            ["matchPIDs", "matchCapabilities", "matchNamespaceChanges", "matchCapabilityChanges", "matchReturnArgs"]
        {
            if !array(selector, key).is_empty() {
                filters.push(format!("{at}.{key}"));
            }
        }
        if array(selector, "matchNamespaces").iter().any(|e| text(e, "operator") == "In") {
            filters.push(format!("{at}.matchNamespaces"));
        }
        if binaries_breadth(array(selector, "matchParentBinaries")) == Some(Breadth::Narrows) {
            filters.push(format!("{at}.matchParentBinaries"));
        }
        if filters.is_empty() {
            let why = if excluding.is_empty() {
                "this one matches every call".to_string()
            } else {
                format!(
                    "its filters only exclude or match (almost) everything ({}), so it matches every call",
                    excluding.join("; ")
                )
            };
            out.push(problem(
                at,
                "safety/unfiltered",
                format!(
                    "an enforcing selector must filter on arguments, binaries, PIDs, namespaces or capabilities; {why}"
                ),
            ));
        }
    }

    fn check_namespaces(&self, out: &mut Vec<Problem>) {
        let entries = array(self.selector, "matchNamespaces");
        for (n, entry) in entries.iter().enumerate() {
            let host = array(entry, "values").iter().any(|v| v == "host_ns");
            if host && text(entry, "operator") == "In" {
                out.push(problem(
                    format!("{}.matchNamespaces[{n}]", self.at),
                    "safety/host",
                    format!(
                        "it selects processes in the host's {} namespace; the host is never an enforcement target",
                        text(entry, "namespace")
                    ),
                ));
            }
        }
        let excludes_host_pid = entries.iter().any(|e| {
            text(e, "namespace") == "Pid"
                && text(e, "operator") == "NotIn"
                && array(e, "values").iter().any(|v| v == "host_ns")
        });
        if !excludes_host_pid {
            out.push(problem(
                self.at,
                "safety/host-pid",
                "an enforcing selector must exclude the host's PID namespace (hostPID pods and the node's own processes): add matchNamespaces Pid NotIn [host_ns]",
            ));
        }
    }

    fn check_binaries(&self, out: &mut Vec<Problem>) {
        let binaries = array(self.selector, "matchBinaries");
        if let Some(reason) = protected_match(binaries) {
            out.push(problem(
                self.at,
                "safety/protected-binary",
                format!(
                    "an enforcing selector must never match kubelet, container runtimes or security agents: {reason}"
                ),
            ));
        }
        if self.narrow {
            return;
        }
        for entry in binaries {
            let operator = text(entry, "operator");
            let hits: Vec<String> = array(entry, "values")
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|value| hit(operator, value, COMMON))
                .collect();
            if !hits.is_empty() {
                out.push(problem(
                    format!("{}.matchBinaries", self.at),
                    "safety/common-binary",
                    format!(
                        "its matchBinaries {operator} would stop {} in every container; name the workload (a namespace, pod labels, a container) or a specific binary",
                        hits.join(", ")
                    ),
                ));
            }
        }
    }

    /// Checks one `matchArgs` entry's targets and says whether it narrows.
    fn check_arg(&self, arg: &Value, at: &str, out: &mut Vec<Problem>) -> Breadth {
        let operator = text(arg, "operator");
        let values: Vec<&str> = array(arg, "values").iter().filter_map(Value::as_str).collect();
        if EXCLUDING.contains(&operator) {
            return Breadth::Everything(operator.to_string());
        }
        match operator {
            "DAddr" | "SAddr" => self.check_addresses(&values, at, out),
            "DPort" | "SPort" => self.check_ports(&values, at, out),
            "Prefix" | "Postfix" | "Equal" | "SubString" | "SubStringIgnCase" => {
                if let Some(why) = values.iter().find_map(|v| matches_every_path(operator, v)) {
                    return Breadth::Everything(why);
                }
                self.check_targets(arg, operator, &values, at, out);
                Breadth::Narrows
            }
            _ => Breadth::Narrows,
        }
    }

    /// Exec and file targets: never a protected binary; a common one only
    /// in a narrowly scoped policy.
    fn check_targets(&self, arg: &Value, operator: &str, values: &[&str], at: &str, out: &mut Vec<Problem>) {
        let index = arg.get("index").and_then(Value::as_u64);
        let declared = array(self.hook, "args").iter().find(|a| a.get("index").and_then(Value::as_u64) == index);
        if !declared.is_some_and(|a| PATH_TYPES.contains(&text(a, "type"))) {
            return;
        }
        let call = [text(self.hook, "call"), text(self.hook, "hook")].concat();
        let what = if EXEC_CALLS.contains(&call.as_str()) { "the exec of" } else { "access to" };
        for value in values {
            if let Some(path) = hit(operator, value, PROTECTED) {
                out.push(problem(
                    at,
                    "safety/protected-binary",
                    format!("{operator} {value:?} would stop {what} the protected binary {path}"),
                ));
            } else if !self.narrow
                && let Some(path) = hit(operator, value, COMMON)
            {
                out.push(problem(
                    at,
                    "safety/common-binary",
                    format!(
                        "{operator} {value:?} would stop {what} {path} in every container; name the workload (a namespace, pod labels, a container)"
                    ),
                ));
            }
        }
    }

    fn check_addresses(&self, values: &[&str], at: &str, out: &mut Vec<Problem>) -> Breadth {
        let mut nets: Vec<IpNet> = Vec::new();
        for value in values {
            match parse_ip(value) {
                Ok(net) => {
                    if let Some(reason) = check_ip(&net, &self.guardrails.protected, false) {
                        out.push(problem(
                            at,
                            "safety/address",
                            format!("an enforcing selector must not cut off this address: {reason}"),
                        ));
                    }
                    nets.push(net);
                }
                Err(reason) => out.push(problem(at, "safety/address", reason.to_string())),
            }
        }
        if too_broad(&nets) {
            let union: Vec<String> = IpNet::aggregate(&nets).iter().map(IpNet::to_string).collect();
            out.push(problem(
                at,
                "safety/address",
                format!("its addresses together ({}) cover more than a /8 (IPv4) or a /16 (IPv6)", union.join(", ")),
            ));
            return Breadth::Everything("addresses covering most of the internet".into());
        }
        Breadth::Narrows
    }

    fn check_ports(&self, values: &[&str], at: &str, out: &mut Vec<Problem>) -> Breadth {
        let mut covered: u32 = 0;
        for value in values {
            let (low, high) = match value.split_once(':') {
                Some((a, b)) => (a.trim().parse::<u16>(), b.trim().parse::<u16>()),
                None => (value.trim().parse::<u16>(), value.trim().parse::<u16>()),
            };
            let (Ok(low), Ok(high)) = (low, high) else { continue };
            let (low, high) = (low.min(high), low.max(high));
            covered += u32::from(high - low) + 1;
            let hits: Vec<Refusal> = self
                .guardrails
                .protected
                .ports
                .iter()
                .filter(|p| (low..=high).contains(&p.port))
                .filter_map(|p| check_port(p.port, &self.guardrails.protected, false))
                .collect();
            for reason in hits {
                out.push(problem(at, "safety/port", format!("an enforcing selector must not cut off {reason}")));
            }
        }
        if covered > MAX_PORTS {
            out.push(problem(at, "safety/port", format!("its ports cover {covered} of 65535")));
            return Breadth::Everything(format!("ports covering {covered} of 65535"));
        }
        Breadth::Narrows
    }
}

/// Whether a filter narrows what a selector matches.
#[derive(Debug, PartialEq, Eq)]
enum Breadth {
    Narrows,
    /// It matches (almost) everything, for this reason.
    Everything(String),
}

/// Why a string filter matches every path, if it does.
fn matches_every_path(operator: &str, value: &str) -> Option<String> {
    match (operator, value) {
        (_, "") => Some(format!("{operator} \"\"")),
        ("Prefix", "/") => Some("Prefix \"/\"".into()),
        _ => None,
    }
}

fn binaries_breadth(entries: &[Value]) -> Option<Breadth> {
    let entry = entries.first()?;
    let operator = text(entry, "operator");
    let values: Vec<&str> = array(entry, "values").iter().filter_map(Value::as_str).collect();
    if !matches!(operator, "In" | "Prefix" | "Postfix") {
        return Some(Breadth::Everything(operator.to_string()));
    }
    match values.iter().find_map(|v| matches_every_path(operator, v)) {
        Some(why) => Some(Breadth::Everything(why)),
        None => Some(Breadth::Narrows),
    }
}
