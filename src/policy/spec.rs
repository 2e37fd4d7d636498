//! Helpers for walking a TracingPolicy spec as JSON.

use serde_json::Value;

/// The spec fields that hold hooks with selectors.
pub const HOOKS: &[&str] = &["kprobes", "tracepoints", "lsmhooks", "uprobes", "usdts", "fentries"];

/// Actions that stop or kill something; everything else only observes.
pub const ENFORCING_ACTIONS: &[&str] = &["Sigkill", "Override", "Signal", "NotifyEnforcer"];

/// The selector fields that hold actions.
pub const ACTION_LISTS: &[&str] = &["matchActions", "matchReturnActions"];

/// The array at `value[key]`, or an empty slice.
pub fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// The string at `value[key]`, or "".
pub fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// True when a selector carries an enforcing action.
pub fn enforces(selector: &Value) -> bool {
    array(selector, "matchActions").iter().any(|a| ENFORCING_ACTIONS.contains(&text(a, "action")))
}

/// Every selector of the spec, mutably, with its hook list name.
pub fn for_each_selector_mut(spec: &mut Value, mut visit: impl FnMut(&str, &mut Value)) {
    for hook_list in HOOKS {
        let Some(hooks) = spec.get_mut(*hook_list).and_then(Value::as_array_mut) else { continue };
        for hook in hooks {
            let Some(selectors) = hook.get_mut("selectors").and_then(Value::as_array_mut) else { continue };
            for selector in selectors {
                visit(hook_list, selector);
            }
        }
    }
}

/// Numbers (and strings that are whole numbers, such as ports) first, in
/// numeric order, then everything else by its text.
pub fn value_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    let number = |v: &Value| v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse::<i64>().ok()).map(|n| n as f64));
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y).then_with(|| a.to_string().cmp(&b.to_string())),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => x.cmp(y),
            _ => a.to_string().cmp(&b.to_string()),
        },
    }
}
