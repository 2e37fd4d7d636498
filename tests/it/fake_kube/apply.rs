//! JSON merge patch, field ownership in `metadata.managedFields`, and
//! server-side apply with its conflicts between managers.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::now;
use super::status::{Failure, cause, status};

/// RFC 7386 JSON merge patch.
pub(super) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(entries) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().unwrap();
    for (key, value) in entries {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key).or_insert(Value::Null), value);
        }
    }
}

/// A field, at the granularity ownership is tracked: `metadata.labels.K`,
/// `metadata.annotations.K`, `spec.K`, `data.K`, or another top-level key.
type Field = Vec<String>;

/// One `metadata.managedFields` entry.
struct Manager {
    name: String,
    operation: String,
    api_version: String,
    time: String,
    fields: BTreeSet<Field>,
}

fn fields_of(object: &Value) -> BTreeSet<Field> {
    let mut fields = BTreeSet::new();
    for (key, value) in object.as_object().into_iter().flatten() {
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                for map in ["labels", "annotations"] {
                    for entry in value[map].as_object().into_iter().flatten().map(|(k, _)| k) {
                        fields.insert(vec!["metadata".into(), map.into(), entry.clone()]);
                    }
                }
            }
            "spec" | "data" if value.as_object().is_some_and(|m| !m.is_empty()) => {
                fields.extend(value.as_object().unwrap().keys().map(|k| vec![key.clone(), k.clone()]));
            }
            _ => {
                fields.insert(vec![key.clone()]);
            }
        }
    }
    fields
}

fn value_at<'v>(object: &'v Value, field: &Field) -> Option<&'v Value> {
    field.iter().try_fold(object, |value, step| value.get(step))
}

fn set_at(object: &mut Value, field: &Field, value: Value) {
    let (last, parents) = field.split_last().unwrap();
    let parent = parents.iter().fold(object, |node, step| &mut node[step.as_str()]);
    parent[last.as_str()] = value;
}

fn remove_at(object: &mut Value, field: &Field) {
    let (last, parents) = field.split_last().unwrap();
    if let Some(Value::Object(parent)) = parents.iter().try_fold(&mut *object, |node, step| node.get_mut(step)) {
        parent.remove(last);
        if parent.is_empty() && parents.len() == 2 {
            object["metadata"].as_object_mut().unwrap().remove(&parents[1]);
        }
    }
}

fn decode_fields(node: &Value, prefix: &mut Field, out: &mut BTreeSet<Field>) {
    let children: Vec<_> = node.as_object().into_iter().flatten().filter(|(k, _)| k.starts_with("f:")).collect();
    if children.is_empty() {
        let depth = match prefix.first().map(String::as_str) {
            None => return,
            Some("metadata") if prefix.len() >= 3 && matches!(prefix[1].as_str(), "labels" | "annotations") => 3,
            Some("metadata") => return,
            Some("spec" | "data") if prefix.len() >= 2 => 2,
            Some(_) => 1,
        };
        out.insert(prefix[..depth].to_vec());
        return;
    }
    for (key, child) in children {
        prefix.push(key[2..].to_string());
        decode_fields(child, prefix, out);
        prefix.pop();
    }
}

fn managers(object: &Value) -> Vec<Manager> {
    let entries = object["metadata"]["managedFields"].as_array().into_iter().flatten();
    let text = |entry: &Value, field: &str| entry[field].as_str().unwrap_or_default().to_string();
    entries
        .map(|entry| {
            let mut fields = BTreeSet::new();
            decode_fields(&entry["fieldsV1"], &mut Vec::new(), &mut fields);
            Manager {
                name: text(entry, "manager"),
                operation: text(entry, "operation"),
                api_version: text(entry, "apiVersion"),
                time: text(entry, "time"),
                fields,
            }
        })
        .collect()
}

fn write_managers(object: &mut Value, managers: Vec<Manager>) {
    let entries: Vec<Value> = managers
        .into_iter()
        .filter(|m| !m.fields.is_empty())
        .map(|m| {
            let mut fields_v1 = json!({});
            for field in &m.fields {
                let leaf = field.iter().fold(&mut fields_v1, |node, step| &mut node[format!("f:{step}")]);
                if leaf.is_null() {
                    *leaf = json!({});
                }
            }
            json!({"manager": m.name, "operation": m.operation, "apiVersion": m.api_version, "time": m.time,
                "fieldsType": "FieldsV1", "fieldsV1": fields_v1})
        })
        .collect();
    let metadata = object["metadata"].as_object_mut().unwrap();
    if entries.is_empty() {
        metadata.remove("managedFields");
    } else {
        metadata.insert("managedFields".into(), json!(entries));
    }
}

/// Records an `Update` by `manager` that turned `old` into `new`: it owns
/// what it changed, and nobody owns what it removed.
pub(super) fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, api_version: &str) {
    let before = old.cloned().unwrap_or_default();
    let mut managers = managers(&before);
    let after = fields_of(new);
    let changed: BTreeSet<Field> = after.iter().filter(|f| value_at(&before, f) != value_at(new, f)).cloned().collect();
    for m in &mut managers {
        m.fields.retain(|f| after.contains(f) && !changed.contains(f));
    }
    if !changed.is_empty() {
        match managers.iter_mut().find(|m| m.name == manager && m.operation == "Update") {
            Some(mine) => {
                mine.fields.extend(changed);
                mine.time = now();
            }
            None => managers.push(Manager {
                name: manager.into(),
                operation: "Update".into(),
                api_version: api_version.into(),
                time: now(),
                fields: changed,
            }),
        }
    }
    write_managers(new, managers);
}

/// Server-side apply of `applied` by `manager` onto `live`: the manager's
/// fields take the applied values, fields it applied before and no longer
/// sends go unless someone else owns them, and another manager's field with
/// a different value is a conflict unless `force` takes it over.
pub(super) fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
) -> Result<Value, Failure> {
    let mut object = live.cloned().unwrap_or_else(|| {
        json!({"apiVersion": applied["apiVersion"], "kind": applied["kind"], "metadata": {"name": applied["metadata"]["name"]}})
    });
    let mut managers = managers(&object);
    if let Some(live) = live
        && managers.is_empty()
    {
        // What nobody has claimed yet belongs to whoever made it, as on a real server.
        let fields = fields_of(live);
        let (operation, time) = ("Update".into(), now());
        managers.push(Manager {
            name: "before-first-apply".into(),
            operation,
            api_version: api_version.into(),
            time,
            fields,
        });
    }
    let mine = fields_of(applied);
    let is_mine = |m: &Manager| m.name == manager && m.operation == "Apply";
    let differs = |f: &Field| value_at(&object, f) != value_at(applied, f);
    let mut conflicts = Vec::new();
    for other in managers.iter_mut().filter(|m| !is_mine(m)) {
        for field in other.fields.iter().filter(|f| mine.contains(*f) && differs(f)) {
            conflicts.push((other.name.clone(), other.api_version.clone(), format!(".{}", field.join("."))));
        }
        if force {
            other.fields.retain(|f| !(mine.contains(f) && differs(f)));
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(apply_conflict(&conflicts));
    }
    let previous = managers.iter().find(|m| is_mine(m)).map(|m| m.fields.clone()).unwrap_or_default();
    for field in previous.difference(&mine) {
        if !managers.iter().any(|m| !is_mine(m) && m.fields.contains(field)) {
            remove_at(&mut object, field);
        }
    }
    for field in &mine {
        set_at(&mut object, field, value_at(applied, field).unwrap().clone());
    }
    managers.retain(|m| !is_mine(m));
    let entry = Manager {
        name: manager.into(),
        operation: "Apply".into(),
        api_version: api_version.into(),
        time: now(),
        fields: mine,
    };
    managers.push(entry);
    write_managers(&mut object, managers);
    Ok(object)
}

fn apply_conflict(conflicts: &[(String, String, String)]) -> Failure {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(manager, version, field)| {
            cause(field, "FieldManagerConflict", &format!("conflict with {manager:?} using {version}"))
        })
        .collect();
    let message = match conflicts {
        [(manager, version, field)] => {
            format!("Apply failed with 1 conflict: conflict with {manager:?} using {version}: {field}")
        }
        _ => {
            let lines: Vec<String> =
                conflicts.iter().map(|(m, v, f)| format!("- conflict with {m:?} using {v}: {f}")).collect();
            format!("Apply failed with {} conflicts:\n{}", conflicts.len(), lines.join("\n"))
        }
    };
    status(StatusCode::CONFLICT, "Conflict", &message, json!({"causes": causes}))
}
