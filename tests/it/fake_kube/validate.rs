//! What the API server checks before it stores an object: the body against
//! the URL, maps of strings, names, labels and annotations, the CRD schema
//! and CEL rules (`crd_problems`), undeclared fields, NetworkPolicy CIDRs,
//! ports and policy types, and ConfigMap keys.

use std::net::IpAddr;

use qualys_respond::policy::validate::{Problem, TetragonVersion, crd_problems};
use serde_json::Value;

use super::discovery::Resource;
use super::request::Unknown;
use super::status::{Failure, bad_request, cause, invalid};

/// What the URL says the body must be.
pub(super) fn check_body(
    resource: &Resource,
    object: &Value,
    namespace: &str,
    name: Option<&str>,
) -> Result<(), Failure> {
    let (api_version, kind) =
        (object["apiVersion"].as_str().unwrap_or_default(), object["kind"].as_str().unwrap_or_default());
    if api_version != resource.api_version() {
        let expected = resource.api_version();
        return Err(bad_request(&format!(
            "the API version in the data ({api_version}) does not match the expected API version ({expected})"
        )));
    }
    if kind != resource.kind {
        return Err(bad_request(&format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            resource.kind
        )));
    }
    let actual = object["metadata"]["name"].as_str().unwrap_or_default();
    if let Some(name) = name
        && actual != name
    {
        return Err(bad_request(&format!(
            "the name of the object ({actual}) does not match the name on the URL ({name})"
        )));
    }
    if resource.namespaced
        && let Some(ns) = object["metadata"]["namespace"].as_str()
        && ns != namespace
    {
        return Err(bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// Paths (`spec.kprobes[0].bogus`) of the fields Tetragon's schema does not declare.
pub(super) fn undeclared(object: &Value) -> Vec<String> {
    let problems = crd_problems(object, TetragonVersion::Main).unwrap_or_default();
    problems.into_iter().filter(|p| p.message == "unknown field").map(|p| p.path).collect()
}

/// Validates `object` as the API server does before storing it. Answers
/// the object as stored (undeclared fields dropped where `unknown` allows)
/// with the warnings for the client, or the error.
pub(super) fn admit(resource: &Resource, mut object: Value, unknown: Unknown) -> Result<(Value, Vec<String>), Failure> {
    string_maps(resource, &object)?;
    let undeclared = undeclared(&object);
    let listed: Vec<String> = undeclared.iter().map(|path| format!("unknown field {path:?}")).collect();
    if !undeclared.is_empty() && unknown == Unknown::Strict {
        let (kind, version) = (&resource.kind, &resource.version);
        let message = format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
            listed.join(", ")
        );
        return Err(bad_request(&message));
    }
    for path in &undeclared {
        if let Some((parent, last)) = json_pointer(path).rsplit_once('/')
            && let Some(Value::Object(map)) = object.pointer_mut(parent)
        {
            map.remove(&last.replace("~1", "/").replace("~0", "~"));
        }
    }
    let mut causes = metadata_causes(resource, &object);
    let problems = crd_problems(&object, TetragonVersion::Main).unwrap_or_default();
    causes.extend(problems.iter().map(|p| crd_cause(&object, p)));
    match resource.kind.as_str() {
        "NetworkPolicy" => network_policy_causes(&object["spec"], &mut causes),
        "ConfigMap" => {
            for key in object["data"].as_object().into_iter().flatten().map(|(k, _)| k) {
                if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)) {
                    let message = format!(
                        "Invalid value: {key:?}: a valid config key must consist of alphanumeric \
                        characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for \
                        validation is '[-._a-zA-Z0-9]+')"
                    );
                    causes.push(cause(&format!("data[{key}]"), "FieldValueInvalid", &message));
                }
            }
        }
        _ => {}
    }
    if !causes.is_empty() {
        return Err(invalid(resource, object["metadata"]["name"].as_str().unwrap_or_default(), causes));
    }
    let warnings = if unknown == Unknown::Warn { listed } else { Vec::new() };
    Ok((object, warnings))
}

/// Labels, annotations and ConfigMap data are maps of strings: anything else
/// does not decode (400).
fn string_maps(resource: &Resource, object: &Value) -> Result<(), Failure> {
    let mut maps = vec![(&object["metadata"]["labels"], "ObjectMeta.metadata.labels")];
    maps.push((&object["metadata"]["annotations"], "ObjectMeta.metadata.annotations"));
    let data = format!("{}.data", resource.kind);
    if resource.kind == "ConfigMap" {
        maps.push((&object["data"], &data));
    }
    let go_type = |value: &Value| match value {
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        _ => "string",
    };
    for (map, field) in maps {
        let wrong = match map {
            Value::Null => None,
            Value::Object(entries) => entries.values().find(|v| !v.is_string()).map(|v| (go_type(v), "string")),
            other => Some((go_type(other), "map[string]string")),
        };
        if let Some((found, expected)) = wrong {
            let kind = &resource.kind;
            return Err(bad_request(&format!(
                "{kind} in version {:?} cannot be handled as a {kind}: json: cannot unmarshal {found} into Go struct \
                 field {field} of type {expected}",
                resource.version
            )));
        }
    }
    Ok(())
}

const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or \
    '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is \
    '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must \
    start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is \
    '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an \
    alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for \
    validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const NAME_PART: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end \
    with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is \
    '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or \
    '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex \
    used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// Non-empty, made of `inner` characters, starting and ending with `edge` ones.
fn shaped(text: &str, inner: impl Fn(char) -> bool, edge: impl Fn(char) -> bool) -> bool {
    !text.is_empty() && text.chars().all(inner) && text.starts_with(&edge) && text.ends_with(&edge)
}

fn lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn name_part(text: &str) -> bool {
    text.len() <= 63 && shaped(text, |c| c.is_ascii_alphanumeric() || "-_.".contains(c), |c| c.is_ascii_alphanumeric())
}

/// What is wrong with a label or annotation key, if anything.
fn qualified_name(key: &str) -> Option<String> {
    let (prefix, name) = key.split_once('/').map_or((None, key), |(p, n)| (Some(p), n));
    if let Some(prefix) = prefix
        && (prefix.len() > 253 || !prefix.split('.').all(|p| shaped(p, |c| lower_alnum(c) || c == '-', lower_alnum)))
    {
        return Some(format!("prefix part {SUBDOMAIN}"));
    }
    (!name_part(name))
        .then(|| if name.len() > 63 { "name part must be no more than 63 characters".into() } else { NAME_PART.into() })
}

fn metadata_causes(resource: &Resource, object: &Value) -> Vec<Value> {
    let metadata = &object["metadata"];
    let name = metadata["name"].as_str().unwrap_or_default();
    let dashed = |c: char| lower_alnum(c) || c == '-';
    let problem = match resource.kind.as_str() {
        "Namespace" => (name.len() > 63 || !shaped(name, dashed, lower_alnum)).then_some(LABEL),
        "Service" => (name.len() > 63
            || !shaped(name, dashed, lower_alnum)
            || !name.starts_with(|c: char| c.is_ascii_lowercase()))
        .then_some(DNS1035),
        _ => (name.len() > 253 || !name.split('.').all(|part| shaped(part, dashed, lower_alnum))).then_some(SUBDOMAIN),
    };
    let mut causes = Vec::new();
    let mut push = |field: &str, value: &str, message: &str| {
        causes.push(cause(field, "FieldValueInvalid", &format!("Invalid value: {value:?}: {message}")));
    };
    if let Some(problem) = problem {
        push("metadata.name", name, problem);
    }
    for (key, value) in metadata["labels"].as_object().into_iter().flatten() {
        if let Some(problem) = qualified_name(key) {
            push("metadata.labels", key, &problem);
        }
        let value = value.as_str().unwrap_or_default();
        if !value.is_empty() && !name_part(value) {
            let problem = if value.len() > 63 { "must be no more than 63 characters" } else { LABEL_VALUE };
            push("metadata.labels", value, problem);
        }
    }
    let mut size = 0;
    for (key, value) in metadata["annotations"].as_object().into_iter().flatten() {
        size += key.len() + value.as_str().unwrap_or_default().len();
        if let Some(problem) = qualified_name(key) {
            push("metadata.annotations", key, &problem);
        }
    }
    if size > 262_144 {
        causes.push(cause("metadata.annotations", "FieldValueTooLong", "Too long: must have at most 262144 bytes"));
    }
    causes
}

/// `spec.kprobes[0].bogus` as the JSON pointer `/spec/kprobes/0/bogus`.
fn json_pointer(path: &str) -> String {
    let steps = path.split('.').flat_map(|part| part.split('[')).filter(|s| !s.is_empty());
    steps.map(|s| format!("/{}", s.trim_end_matches(']').replace('~', "~0").replace('/', "~1"))).collect()
}

/// A value as the API server quotes it in messages.
fn quoted(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => format!("{text:?}"),
        Some(Value::Object(_)) => "\"object\"".into(),
        Some(Value::Array(_)) => "\"array\"".into(),
        Some(other) => other.to_string(),
        None => "null".into(),
    }
}

/// A schema or CEL problem as the API server words it.
fn crd_cause(object: &Value, problem: &Problem) -> Value {
    let value = quoted(object.pointer(&json_pointer(&problem.path)));
    if problem.message == "required field is missing" {
        return cause(&problem.path, "FieldValueRequired", "Required value");
    }
    if let Some((_, allowed)) = problem.message.split_once(" is not one of: ") {
        let allowed: Vec<String> = allowed.split(", ").map(|a| format!("{a:?}")).collect();
        let message = format!("Unsupported value: {value}: supported values: {}", allowed.join(", "));
        return cause(&problem.path, "FieldValueNotSupported", &message);
    }
    cause(&problem.path, "FieldValueInvalid", &format!("Invalid value: {value}: {}", problem.message))
}

fn network_policy_causes(spec: &Value, causes: &mut Vec<Value>) {
    for (i, kind) in spec["policyTypes"].as_array().into_iter().flatten().enumerate() {
        if kind != "Ingress" && kind != "Egress" {
            let message =
                format!("Unsupported value: {}: supported values: \"Ingress\", \"Egress\"", quoted(Some(kind)));
            causes.push(cause(&format!("spec.policyTypes[{i}]"), "FieldValueNotSupported", &message));
        }
    }
    for (direction, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in spec[direction].as_array().into_iter().flatten().enumerate() {
            let here = format!("spec.{direction}[{i}]");
            for (j, port) in rule["ports"].as_array().into_iter().flatten().enumerate() {
                for field in ["port", "endPort"] {
                    if let Some(number) = port[field].as_i64()
                        && !(1..=65535).contains(&number)
                    {
                        let message = format!("Invalid value: {number}: must be between 1 and 65535, inclusive");
                        causes.push(cause(&format!("{here}.ports[{j}].{field}"), "FieldValueInvalid", &message));
                    }
                }
            }
            for (j, peer) in rule[peers].as_array().into_iter().flatten().enumerate() {
                if !peer["ipBlock"].is_null() {
                    ip_block_causes(&peer["ipBlock"], &format!("{here}.{peers}[{j}].ipBlock"), causes);
                }
            }
        }
    }
}

fn ip_block_causes(block: &Value, here: &str, causes: &mut Vec<Value>) {
    let text = block["cidr"].as_str().unwrap_or_default();
    let Some(cidr) = parse_cidr(text) else {
        let (reason, message) = if text.is_empty() {
            ("FieldValueRequired", "Required value".to_string())
        } else {
            (
                "FieldValueInvalid",
                format!("Invalid value: {text:?}: must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"),
            )
        };
        causes.push(cause(&format!("{here}.cidr"), reason, &message));
        return;
    };
    for (i, except) in block["except"].as_array().into_iter().flatten().enumerate() {
        let text = except.as_str().unwrap_or_default();
        let message = match parse_cidr(text) {
            None => "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            Some((ip, bits)) if !contains(cidr, ip) || bits <= cidr.1 => "must be a strict subset of `cidr`",
            Some(_) => continue,
        };
        causes.push(cause(
            &format!("{here}.except[{i}]"),
            "FieldValueInvalid",
            &format!("Invalid value: {text:?}: {message}"),
        ));
    }
}

fn parse_cidr(text: &str) -> Option<(IpAddr, u32)> {
    let (ip, bits) = text.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    if bits.is_empty() || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u32 = bits.parse().ok()?;
    (bits <= if ip.is_ipv4() { 32 } else { 128 }).then_some((ip, bits))
}

fn contains((network, bits): (IpAddr, u32), ip: IpAddr) -> bool {
    let (shift, a, b) = match (network, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => (32 - bits, u128::from(u32::from(n)), u128::from(u32::from(i))),
        (IpAddr::V6(n), IpAddr::V6(i)) => (128 - bits, u128::from(n), u128::from(i)),
        _ => return false,
    };
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}
