//! What Tetragon's loader rejects after the API server accepted a policy
//! (`pkg/selectors/kernel.go`, `pkg/sensors/tracing/generickprobe.go`; the
//! facts are in `../shared/reference/tetragon-policies.md`). Tetragon only
//! logs these failures in the agent, so we catch them first.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

mod macros;
mod operators;

use operators::{
    ADDRESS_OPS, ArgClass, CAPPED_INT_OPS, FILE_TYPES, PORT_OPS, PRIV_PORT_OPS, is_address, is_number, is_port_or_range,
};

use super::crd::TetragonVersion;
use super::problem::{Problem, problem};
use crate::policy::Kind;
use crate::policy::spec::{ENFORCING_ACTIONS, HOOKS, array, hooks, macro_map, text};

const MAX_SELECTORS: usize = 5;
const MAX_ARGS: usize = 5;
const MAX_MATCH_ARGS: usize = 5;
const MAX_ACTIONS: usize = 3;
const MAX_INT_VALUES: usize = 4;
const MAX_SUBSTRING_LEN: usize = 99;
const MAX_SUBSTRINGS_PER_HOOK: usize = 100;
/// Problems listed before checking stops: a macro is checked again in every
/// selector that names it, so without a bound a small hostile spec could
/// make an unbounded list.
const MAX_PROBLEMS: usize = 1000;

/// Adds the loader problems of `object` for the Tetragon `versions` to `out`.
pub fn check(object: &Value, kind: Kind, versions: &[TetragonVersion], out: &mut Vec<Problem>) {
    check_metadata(object, kind, out);
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let enforcers = array(spec, "enforcers").len();
    if enforcers > 1 {
        out.push(problem("spec.enforcers", "loader/enforcer", format!("{enforcers} enforcers; Tetragon allows one")));
    }
    // Tetragon sets the options it knows in order and refuses the policy
    // on a value it cannot parse (`getSpecOptions` in
    // `pkg/sensors/tracing/options.go`); names it does not know are
    // ignored (v1.7.0 does not know `sleepable-preload-size`). The last
    // `disable-kprobe-multi` counts.
    let mut kprobe_multi_off = false;
    for (i, option) in array(spec, "options").iter().enumerate() {
        let name = text(option, "name");
        let value = text(option, "value");
        let (takes, who) = match name {
            "disable-kprobe-multi" | "disable-uprobe-multi" => match go_bool(value) {
                Some(off) => {
                    if name == "disable-kprobe-multi" {
                        kprobe_multi_off = off;
                    }
                    continue;
                }
                None => ("1, t, T, true, TRUE, True, 0, f, F, false, FALSE or False", "Tetragon"),
            },
            "override-method" if matches!(value, "fmod-ret" | "override-return") => continue,
            "override-method" => ("fmod-ret or override-return", "Tetragon"),
            "policy-mode" if matches!(value, "enforce" | "monitor") => continue,
            "policy-mode" => ("enforce or monitor", "Tetragon"),
            "sleepable-preload-size" if value.parse::<i64>().is_ok_and(|size| size > 0) => continue,
            "sleepable-preload-size" if versions.contains(&TetragonVersion::Main) => {
                ("a positive whole number", "Tetragon main (after v1.7.0)")
            }
            _ => continue,
        };
        out.push(problem(
            format!("spec.options[{i}].value"),
            "loader/option",
            format!("{name} takes {takes}, not {value:?}; {who} refuses the policy"),
        ));
    }
    // One policy holds one kind of hook (`PolicyHandler` in
    // `pkg/sensors/tracing/policyhandler_linux.go`).
    let sections: Vec<&str> = HOOKS.iter().copied().filter(|s| !array(spec, s).is_empty()).collect();
    if sections.len() > 1 {
        out.push(problem(
            "spec",
            "loader/sections",
            format!(
                "{} in one policy; Tetragon loads one kind of hook per policy: split it into one policy per kind",
                sections.join(" and ")
            ),
        ));
    }
    // On arm64 Tetragon turns kprobe_multi off for a policy with an enforcer
    // or an Override written on a kprobe's selectors, before it adds macros
    // (`createGenericKprobeSensor`): an Override only a macro gives does not.
    let arm_single_kprobes = enforcers > 0
        || array(spec, "kprobes").iter().any(|kprobe| {
            array(kprobe, "selectors").iter().any(|selector| {
                array(selector, "matchActions")
                    .iter()
                    .any(|action| text(action, "action").eq_ignore_ascii_case("Override"))
            })
        });
    let lists = array(spec, "lists");
    let macros = macro_map(spec);
    let limit = out.len() + MAX_PROBLEMS;
    let mut calls = BTreeSet::new();
    for (list, h, hook) in hooks(spec) {
        let at = format!("spec.{list}[{h}]");
        if list == "kprobes" {
            check_kprobe(hook, &at, &mut calls, out);
        }
        let ctx = Hook {
            list,
            hook,
            at: &at,
            kprobe_multi_off,
            arm_single_kprobes,
            has_enforcer: enforcers > 0,
            lists,
            macros,
            limit,
        };
        ctx.check(out);
        if out.len() >= limit {
            out.push(problem(
                "spec",
                "loader/problems",
                format!("more than {MAX_PROBLEMS} problems; the rest are not listed"),
            ));
            break;
        }
    }
}

fn check_metadata(object: &Value, kind: Kind, out: &mut Vec<Problem>) {
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    if !crate::names::is_dns_subdomain(name) {
        out.push(problem(
            "metadata.name",
            "loader/name",
            format!("{name:?} is not a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253)"),
        ));
    }
    let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str);
    match (kind, namespace) {
        (Kind::TracingPolicyNamespaced, None) => {
            out.push(problem(
                "metadata.namespace",
                "loader/namespace-default",
                "no namespace: `kubectl apply` puts it in the current namespace, but Tetragon's agent rejects it when it loads the file itself (--tracing-policy, tetra tracingpolicy add)",
            ));
        }
        (Kind::TracingPolicyNamespaced, Some(ns)) if !crate::names::is_dns_label(ns) => {
            out.push(problem(
                "metadata.namespace",
                "loader/namespace",
                format!("{ns:?} is not a valid namespace name"),
            ));
        }
        (Kind::TracingPolicy, Some(_)) => {
            out.push(problem(
                "metadata.namespace",
                "loader/namespace",
                "a TracingPolicy is cluster-wide and takes no namespace",
            ));
        }
        _ => {}
    }
}

fn check_kprobe(hook: &Value, at: &str, calls: &mut BTreeSet<String>, out: &mut Vec<Problem>) {
    let call = text(hook, "call");
    let is_list = call.starts_with("list:");
    let syscall = hook.get("syscall").and_then(Value::as_bool);
    let looks_syscall = call.starts_with("sys_");
    match (syscall, looks_syscall || is_list) {
        (None, false) => out.push(problem(
            format!("{at}.syscall"),
            "loader/syscall",
            format!("`syscall` is missing and defaults to true, but {call:?} is not a syscall: set `syscall: false`"),
        )),
        (Some(true), false) => out.push(problem(
            format!("{at}.syscall"),
            "loader/syscall",
            format!("{call:?} is marked as a syscall; syscalls are written sys_<name>"),
        )),
        (Some(false), true) if looks_syscall => out.push(problem(
            format!("{at}.syscall"),
            "loader/syscall",
            format!("{call:?} is a syscall name but `syscall` is false: set `syscall: true`"),
        )),
        _ => {}
    }
    if !is_list && !calls.insert(call.to_string()) {
        out.push(problem(
            format!("{at}.call"),
            "loader/duplicate-call",
            format!(
                "{call:?} is hooked twice; with kprobe_multi a call may appear once per policy: merge the selectors"
            ),
        ));
    }
    for (i, arg) in array(hook, "args").iter().enumerate() {
        let arg_type = text(arg, "type");
        if matches!(arg_type, "auto" | "syscall64") {
            out.push(problem(
                format!("{at}.args[{i}].type"),
                "loader/arg-type",
                format!("{arg_type:?} is not accepted on kprobes"),
            ));
        }
    }
}

struct Hook<'a> {
    list: &'a str,
    hook: &'a Value,
    at: &'a str,
    kprobe_multi_off: bool,
    /// Whether Tetragon on arm64 loads the policy's kprobes without kprobe_multi.
    arm_single_kprobes: bool,
    has_enforcer: bool,
    lists: &'a [Value],
    macros: Option<&'a Map<String, Value>>,
    /// The length of the problem list at which checking stops.
    limit: usize,
}

impl Hook<'_> {
    fn check(&self, out: &mut Vec<Problem>) {
        let (args, data) = (array(self.hook, "args"), array(self.hook, "data"));
        if args.len() + data.len() > MAX_ARGS {
            out.push(problem(
                self.at,
                "loader/too-many-args",
                format!("{} args and data, at most {MAX_ARGS}", args.len() + data.len()),
            ));
        }
        let selectors = array(self.hook, "selectors");
        if selectors.len() > MAX_SELECTORS {
            out.push(problem(
                format!("{}.selectors", self.at),
                "loader/too-many-selectors",
                format!("{} selectors, at most {MAX_SELECTORS} per hook", selectors.len()),
            ));
        }
        let mut substrings = 0;
        for (s, selector) in selectors.iter().enumerate() {
            let at = format!("{}.selectors[{s}]", self.at);
            self.check_own_actions(selector, &at, out);
            let expanded = macros::expand(selector, self.macros, &at, out);
            let before = out.len();
            substrings += self.check_selector(&expanded.selector, &at, args, out);
            expanded.attribute(&at, &mut out[before..]);
            if out.len() >= self.limit {
                break;
            }
        }
        if substrings > MAX_SUBSTRINGS_PER_HOOK {
            out.push(problem(
                self.at,
                "loader/substring",
                format!("{substrings} SubString values, at most {MAX_SUBSTRINGS_PER_HOOK} per hook"),
            ));
        }
    }

    /// Returns the number of SubString values the selector uses.
    fn check_selector(&self, selector: &Value, at: &str, args: &[Value], out: &mut Vec<Problem>) -> usize {
        let (match_args, match_data) = (array(selector, "matchArgs"), array(selector, "matchData"));
        if match_args.len() + match_data.len() > MAX_MATCH_ARGS {
            out.push(problem(
                at,
                "loader/too-many-match-args",
                format!("{} matchArgs and matchData, at most {MAX_MATCH_ARGS}", match_args.len() + match_data.len()),
            ));
        }
        let actions = array(selector, "matchActions");
        if actions.len() > MAX_ACTIONS {
            out.push(problem(
                format!("{at}.matchActions"),
                "loader/too-many-actions",
                format!("{} actions, at most {MAX_ACTIONS}", actions.len()),
            ));
        }
        for (a, _) in actions.iter().enumerate().filter(|(_, action)| text(action, "action") == "Override") {
            self.check_override(&format!("{at}.matchActions[{a}]"), out);
        }
        for (b, entry) in array(selector, "matchBinaries").iter().enumerate() {
            check_binaries(entry, &format!("{at}.matchBinaries[{b}]"), out);
        }
        let namespaces = array(selector, "matchNamespaces");
        if namespaces.len() > 10 {
            out.push(problem(format!("{at}.matchNamespaces"), "loader/namespaces", "more than 10 entries"));
        }
        for (n, entry) in namespaces.iter().enumerate() {
            if array(entry, "values").len() > 4 {
                out.push(problem(
                    format!("{at}.matchNamespaces[{n}].values"),
                    "loader/namespaces",
                    "more than 4 values",
                ));
            }
        }
        if array(selector, "matchNamespaceChanges").len() > 1 {
            out.push(problem(format!("{at}.matchNamespaceChanges"), "loader/namespaces", "at most one entry"));
        }
        let mut substrings = 0;
        let args = Args { declared: args, by_position: self.list == "tracepoints", lists: self.lists };
        for (m, matcher) in match_args.iter().enumerate() {
            substrings += check_match_arg(matcher, &format!("{at}.matchArgs[{m}]"), &args, out);
        }
        substrings
    }

    /// The rules Tetragon applies to a selector's actions before it adds
    /// macros, so to its own `matchActions` only: NotifyEnforcer needs an
    /// enforcer (`preValidateKprobes`), and fentries do not enforce yet
    /// (`createGenericFentrySensor` in `pkg/sensors/tracing/genericfentry.go`).
    fn check_own_actions(&self, selector: &Value, at: &str, out: &mut Vec<Problem>) {
        for (a, action) in array(selector, "matchActions").iter().enumerate() {
            let name = text(action, "action");
            if name == "NotifyEnforcer" && !self.has_enforcer {
                out.push(problem(
                    format!("{at}.matchActions[{a}]"),
                    "loader/enforcer",
                    "NotifyEnforcer needs an `enforcers` section",
                ));
            }
            if self.list == "fentries" && ENFORCING_ACTIONS.iter().any(|e| e.eq_ignore_ascii_case(name)) {
                out.push(problem(
                    format!("{at}.matchActions[{a}]"),
                    "loader/fentry-enforce",
                    format!(
                        "{name} on an fentry hook: Tetragon does not support enforcement on fentries yet; hook a kprobe"
                    ),
                ));
            }
        }
    }

    /// Override works on syscalls, `security_*` functions, LSM hooks and uprobes.
    fn check_override(&self, at: &str, out: &mut Vec<Problem>) {
        let call = text(self.hook, "call");
        let syscall = self.hook.get("syscall").and_then(Value::as_bool).unwrap_or(true);
        let allowed = match self.list {
            "lsmhooks" | "uprobes" => true,
            "kprobes" | "fentries" if syscall => true,
            // fentries never use kprobe_multi; an Override can only come
            // from a macro there, as the fentry rule refuses one written on
            // the selector.
            "fentries" => call.starts_with("security_"),
            "kprobes" if call.starts_with("security_") => {
                if !self.kprobe_multi_off {
                    let without = if self.arm_single_kprobes {
                        "on a kernel that lacks kprobe_multi, and on arm64"
                    } else {
                        "only on a kernel that lacks kprobe_multi (on arm64 too, as the Override comes from a macro and the policy has no enforcer)"
                    };
                    out.push(problem(
                        at,
                        "loader/kprobe-multi-override",
                        format!(
                            "Override on {call:?} needs the option disable-kprobe-multi: \"1\" (fmod_ret) on kernels with kprobe_multi (most since 5.18); Tetragon accepts it without {without}"
                        ),
                    ));
                }
                true
            }
            _ => false,
        };
        if !allowed {
            out.push(problem(
                at,
                "loader/override",
                format!(
                    "Override only works on syscalls, security_* functions and LSM hooks, not {}; use Sigkill",
                    if call.is_empty() { self.list } else { call }
                ),
            ));
        }
    }
}

fn check_binaries(entry: &Value, at: &str, out: &mut Vec<Problem>) {
    let operator = text(entry, "operator");
    if entry.get("followChildren").and_then(Value::as_bool) == Some(true) && !matches!(operator, "In" | "NotIn") {
        out.push(problem(
            format!("{at}.followChildren"),
            "loader/follow-children",
            format!("followChildren works only with In and NotIn, not {operator}"),
        ));
    }
    let limit = match operator {
        "In" | "NotIn" => 255,
        "Prefix" | "NotPrefix" => 256,
        "Postfix" | "NotPostfix" => 127,
        _ => return,
    };
    for (v, value) in array(entry, "values").iter().enumerate() {
        let len = value.as_str().map_or(0, str::len);
        if len > limit {
            out.push(problem(
                format!("{at}.values[{v}]"),
                "loader/binary-path-length",
                format!("{len} bytes; {operator} allows at most {limit}"),
            ));
        }
    }
}

/// The arguments `matchArgs` may refer to.
struct Args<'a> {
    declared: &'a [Value],
    /// Tracepoints: an index that names no declared field is taken as the
    /// position in `args` (`pkg/sensors/tracing/generictracepoint.go`
    /// rewrites field indices to positions before compiling selectors).
    by_position: bool,
    /// The policy's `lists`, for `InMap` values `list:NAME`.
    lists: &'a [Value],
}

impl<'a> Args<'a> {
    fn find(&self, index: u64) -> Option<&'a Value> {
        let declared = self.declared.iter().find(|a| a.get("index").and_then(Value::as_u64) == Some(index));
        declared.or_else(|| {
            let position = usize::try_from(index).ok().filter(|_| self.by_position)?;
            self.declared.get(position)
        })
    }
}

/// Checks `list:NAME` values: the list exists, holds syscalls, and the
/// argument is a `syscall64` (`pkg/sensors/tracing/lists_linux.go`).
fn check_list_values(values: &[&Value], arg_type: &str, at: &str, args: &Args<'_>, out: &mut Vec<Problem>) {
    for (v, value) in values.iter().enumerate() {
        let Some(name) = value.as_str().and_then(|v| v.strip_prefix("list:")) else { continue };
        let at = format!("{at}.values[{v}]");
        let Some(list) = args.lists.iter().find(|l| text(l, "name") == name) else {
            out.push(problem(at, "loader/list", format!("list {name:?} is not defined in spec.lists")));
            continue;
        };
        if !matches!(text(list, "type"), "syscalls" | "generated_syscalls") {
            out.push(problem(&at, "loader/list", format!("list {name:?} does not hold syscalls")));
        }
        if arg_type != "syscall64" {
            out.push(problem(
                at,
                "loader/list",
                format!("a syscall list needs a syscall64 argument, this one is {arg_type}"),
            ));
        }
    }
}

/// Checks one `matchArgs` entry; returns how many SubString values it uses.
fn check_match_arg(matcher: &Value, at: &str, args: &Args<'_>, out: &mut Vec<Problem>) -> usize {
    let operator = text(matcher, "operator");
    let values: Vec<&Value> = array(matcher, "values").iter().collect();
    if operator == "Contains" {
        out.push(problem(
            format!("{at}.operator"),
            "loader/operator",
            "Tetragon has no Contains operator; use SubString",
        ));
        return 0;
    }
    let Some(index) = matcher.get("index").and_then(Value::as_u64) else { return 0 };
    let Some(arg) = args.find(index) else {
        out.push(problem(
            format!("{at}.index"),
            "loader/undeclared-index",
            format!("index {index} is not declared in the hook's args"),
        ));
        return 0;
    };
    let arg_type = text(arg, "type");
    if matches!(operator, "InMap" | "NotInMap")
        && values.iter().any(|v| v.as_str().is_some_and(|v| v.starts_with("list:")))
    {
        check_list_values(&values, arg_type, at, args, out);
        return 0;
    }
    let class = ArgClass::of(arg_type);
    let Some(allowed) = class.operators() else { return 0 };
    if operator != "CelExpr" && !allowed.contains(&operator) {
        let hint = if class == ArgClass::SockAddr && (operator.contains("DPort") || operator.contains("DAddr")) {
            " (on connect hooks the sockaddr's destination sits in the source slots: use SAddr/SPort, or hook tcp_connect with a sock argument)"
        } else {
            ""
        };
        out.push(problem(
            format!("{at}.operator"),
            "loader/operator-type",
            format!("{operator} does not work on a {arg_type} argument; allowed: {}{hint}", allowed.join(", ")),
        ));
        return 0;
    }
    let value_at = |v: usize| format!("{at}.values[{v}]");
    let strings = values.iter().enumerate().map(|(v, value)| (v, value.as_str().unwrap_or_default()));
    if class == ArgClass::Integer && CAPPED_INT_OPS.contains(&operator) && values.len() > MAX_INT_VALUES {
        out.push(problem(
            format!("{at}.values"),
            "loader/too-many-values",
            format!("{} values; {operator} on integers takes at most {MAX_INT_VALUES} (use InMap)", values.len()),
        ));
    }
    match operator {
        _ if class == ArgClass::Integer && !matches!(operator, "CapabilitiesGained" | "CelExpr") => {
            for (v, value) in strings {
                let ok = match operator {
                    "InRange" | "NotInRange" => {
                        value.split_once(':').is_some_and(|(a, b)| is_number(a) && is_number(b))
                    }
                    _ => is_number(value),
                };
                if !ok {
                    out.push(problem(value_at(v), "loader/numeric-value", format!(
                        "{value:?} is not a number; {operator} values are parsed numerically (write 0x1 or 1, not a symbol)"
                    )));
                }
            }
        }
        op if ADDRESS_OPS.contains(&op) => {
            for (v, value) in strings.filter(|(_, value)| !is_address(value)) {
                out.push(problem(
                    value_at(v),
                    "loader/address-value",
                    format!("{value:?} is not an IP address or CIDR"),
                ));
            }
        }
        op if PORT_OPS.contains(&op) && !PRIV_PORT_OPS.contains(&op) => {
            for (v, value) in strings.filter(|(_, value)| !is_port_or_range(value)) {
                out.push(problem(
                    value_at(v),
                    "loader/port-value",
                    format!("{value:?} is not a port or min:max range"),
                ));
            }
        }
        "FileType" | "NotFileType" => {
            for (v, value) in strings.filter(|(_, value)| !FILE_TYPES.contains(value)) {
                out.push(problem(
                    value_at(v),
                    "loader/file-type",
                    format!("{value:?} is not one of {}", FILE_TYPES.join(", ")),
                ));
            }
        }
        "SubString" | "SubStringIgnCase" => {
            for (v, value) in strings.filter(|(_, value)| value.len() > MAX_SUBSTRING_LEN) {
                out.push(problem(
                    value_at(v),
                    "loader/substring",
                    format!("{} bytes; SubString values must be under 100", value.len()),
                ));
            }
            return values.len();
        }
        _ => {}
    }
    0
}

/// What Go's `strconv.ParseBool` makes of `text`.
fn go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}
