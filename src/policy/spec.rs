//! Helpers for walking a TracingPolicy spec as JSON.

use serde_json::Value;

/// The spec fields that hold hooks with selectors.
pub const HOOKS: &[&str] = &["kprobes", "tracepoints", "lsmhooks", "uprobes", "usdts", "fentries"];

/// Actions that stop, kill or change something (`Set` writes into a USDT's
/// process); everything else only observes.
pub const ENFORCING_ACTIONS: &[&str] = &["Sigkill", "Override", "Signal", "NotifyEnforcer", "Set"];

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

/// True when a selector carries an enforcing action, on the call or on its
/// return.
pub fn enforces(selector: &Value) -> bool {
    ACTION_LISTS.iter().any(|list| array(selector, list).iter().any(|a| ENFORCING_ACTIONS.contains(&text(a, "action"))))
}

/// The spec's selector macros (`selectorsMacros`), by name.
pub fn macro_map(spec: &Value) -> Option<&serde_json::Map<String, Value>> {
    spec.get("selectorsMacros").and_then(Value::as_object)
}

/// The spec's selector macros, by name, in the order of [`macro_map`].
pub fn macros(spec: &Value) -> impl Iterator<Item = (&String, &Value)> {
    macro_map(spec).into_iter().flatten()
}

/// Where a selector sits in a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Site {
    /// The hook list, one of [`HOOKS`].
    pub hooks: &'static str,
    /// The hook's index in its list.
    pub hook: usize,
    /// The selector's index in its hook.
    pub selector: usize,
}

impl Site {
    /// `kprobes[0].selectors[1]`, for messages.
    pub fn path(&self) -> String {
        format!("{}[{}].selectors[{}]", self.hooks, self.hook, self.selector)
    }

    /// `/kprobes/0/selectors/1`, a JSON pointer into the spec.
    pub fn pointer(&self) -> String {
        format!("/{}/{}/selectors/{}", self.hooks, self.hook, self.selector)
    }

    /// True for a kernel hook; uprobes and USDTs are bound to one binary's
    /// path, so binary filters are not added to them.
    pub fn is_kernel(&self) -> bool {
        !matches!(self.hooks, "uprobes" | "usdts")
    }
}

/// Every hook of the spec with its list's name and its index, lists in the
/// order of [`HOOKS`].
pub fn hooks(spec: &Value) -> impl Iterator<Item = (&'static str, usize, &Value)> {
    HOOKS.iter().flat_map(move |list| array(spec, list).iter().enumerate().map(move |(h, hook)| (*list, h, hook)))
}

/// Every selector of the spec with its site and its hook, in the order of [`hooks`].
pub fn selectors(spec: &Value) -> impl Iterator<Item = (Site, &Value, &Value)> {
    hooks(spec).flat_map(|(hooks, h, hook)| {
        array(hook, "selectors")
            .iter()
            .enumerate()
            .map(move |(s, selector)| (Site { hooks, hook: h, selector: s }, hook, selector))
    })
}

/// Calls `visit` with every selector of the spec, mutably, in the order of
/// [`selectors`], until it returns an error.
pub fn try_for_each_selector_mut<E>(
    spec: &mut Value,
    mut visit: impl FnMut(Site, &mut Value) -> Result<(), E>,
) -> Result<(), E> {
    for hooks in HOOKS {
        let Some(list) = spec.get_mut(*hooks).and_then(Value::as_array_mut) else { continue };
        for (h, hook) in list.iter_mut().enumerate() {
            let Some(selectors) = hook.get_mut("selectors").and_then(Value::as_array_mut) else { continue };
            for (s, selector) in selectors.iter_mut().enumerate() {
                visit(Site { hooks, hook: h, selector: s }, selector)?;
            }
        }
    }
    Ok(())
}

/// Calls `visit` with every selector of the spec, mutably.
pub fn for_each_selector_mut(spec: &mut Value, mut visit: impl FnMut(Site, &mut Value)) {
    let visited: Result<(), std::convert::Infallible> = try_for_each_selector_mut(spec, |site, selector| {
        visit(site, selector);
        Ok(())
    });
    let Ok(()) = visited;
}

/// Every selector of the spec, then every selector macro (whose actions
/// Tetragon adds to the selectors naming it): all the places that hold
/// action lists, each with its JSON pointer into the spec.
pub fn action_holders(spec: &Value) -> impl Iterator<Item = (String, &Value)> {
    let selectors = selectors(spec).map(|(site, _, selector)| (site.pointer(), selector));
    let macros = macros(spec)
        .map(|(name, selector)| (format!("/selectorsMacros/{}", name.replace('~', "~0").replace('/', "~1")), selector));
    selectors.chain(macros)
}

/// Calls `visit` with every place [`action_holders`] names, mutably.
pub fn for_each_action_holder_mut(spec: &mut Value, mut visit: impl FnMut(&mut Value)) {
    for_each_selector_mut(spec, |_, selector| visit(selector));
    if let Some(macros) = spec.get_mut("selectorsMacros").and_then(Value::as_object_mut) {
        macros.values_mut().for_each(visit);
    }
}

/// Replaces every `values` list with null (what is left is a spec's shape).
pub fn erase_values(value: &mut Value) {
    visit_values(value, &mut |values| *values = Value::Null);
}

/// Empties every `values` list.
pub fn clear_values(value: &mut Value) {
    visit_values(value, &mut |values| *values = Value::Array(Vec::new()));
}

fn visit_values(value: &mut Value, f: &mut impl FnMut(&mut Value)) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "values" && child.is_array() {
                    f(child);
                } else {
                    visit_values(child, f);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| visit_values(item, f)),
        _ => {}
    }
}

/// Adds `from`'s `values` to `into`'s, which has the same shape; every list
/// of `into` ends sorted by [`value_order`] and without duplicates.
pub fn unite_values(into: &mut Value, from: &Value) {
    zip_values(into, from, &mut |values, other| {
        values.extend(other.iter().cloned());
        values.sort_by(value_order);
        values.dedup();
    });
}

/// [`unite_values`] for an `into` whose lists are already sorted and
/// distinct (as [`clear_values`] leaves them): each value of `from` is
/// inserted where it belongs, so merging many specs costs a binary search
/// per value rather than a sort per merge. `value_order` is equal only for
/// equal values, so the result is the same.
pub fn insert_values(into: &mut Value, from: &Value) {
    zip_values(into, from, &mut |values, other| {
        for value in other {
            if let Err(at) = values.binary_search_by(|v| value_order(v, value)) {
                values.insert(at, value.clone());
            }
        }
    });
}

/// Calls `f` with each `values` list of `into` and the list at the same place in `from`.
fn zip_values(into: &mut Value, from: &Value, f: &mut impl FnMut(&mut Vec<Value>, &[Value])) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            // Both maps iterate in key order and most often hold the same
            // keys: the next entry of `from` is the one, else it is looked up.
            let mut others = from.iter();
            for (key, child) in into.iter_mut() {
                let other = match others.next() {
                    Some((other_key, other)) if other_key == key => other,
                    _ => match from.get(key) {
                        Some(other) => other,
                        None => continue,
                    },
                };
                match (key.as_str(), child) {
                    ("values", Value::Array(values)) => {
                        f(values, other.as_array().map(Vec::as_slice).unwrap_or_default())
                    }
                    (_, child) => zip_values(child, other, f),
                }
            }
        }
        (Value::Array(into), Value::Array(from)) => {
            into.iter_mut().zip(from).for_each(|(a, b)| zip_values(a, b, f));
        }
        _ => {}
    }
}

/// Numbers (and strings that are whole numbers, such as ports) first, in
/// numeric order, then everything else by its text.
pub fn value_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    if a == b {
        return std::cmp::Ordering::Equal; // the common case of a merge: the value is in already
    }
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
