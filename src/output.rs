//! Writes objects out: a YAML stream, a JSON `List`, or one file per object.

use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::atomic::{self, Access};
use crate::policy::PolicyObject;
use crate::yaml;

/// A YAML multi-document stream, one document per object.
pub fn yaml_stream(objects: &[&PolicyObject]) -> String {
    let values: Vec<Value> = objects.iter().map(|o| o.to_value()).collect();
    yaml_values(&values)
}

/// Any objects as a YAML stream, each document after `---`, in the YAML
/// that `kubectl` reads back as written ([`yaml`]).
pub fn yaml_values<'a>(objects: impl IntoIterator<Item = &'a Value>) -> String {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&yaml::to_string(object));
    }
    out
}

/// A Kubernetes `List` as pretty JSON.
pub fn json_list(objects: &[&PolicyObject]) -> String {
    let items: Vec<Value> = objects.iter().map(|o| o.to_value()).collect();
    let list = json!({ "apiVersion": "v1", "kind": "List", "items": items });
    format!("{}\n", serde_json::to_string_pretty(&list).unwrap_or_default())
}

/// Writes `<name>.yaml` for cluster-wide objects and `<namespace>/<name>.yaml`
/// for namespaced ones (two namespaces may hold the same name). Each file is
/// written to a temporary name and renamed, so a reader never sees half a file.
pub fn write_dir(dir: &Path, objects: &[&PolicyObject]) -> io::Result<Vec<PathBuf>> {
    let values: Vec<Value> = objects.iter().map(|o| o.to_value()).collect();
    write_values(dir, &values)
}

/// [`write_dir`] for objects as JSON (`metadata.name` and, when namespaced,
/// `metadata.namespace` name the file).
pub fn write_values(dir: &Path, objects: &[Value]) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::with_capacity(objects.len());
    for object in objects {
        let text = |field: &str| object.pointer(&format!("/metadata/{field}")).and_then(Value::as_str);
        let name = text("name")
            .filter(|n| is_file_name(n))
            .ok_or_else(|| io::Error::other("an object without a usable name"))?;
        let folder = match text("namespace") {
            Some(ns) if is_file_name(ns) => dir.join(ns),
            Some(_) => {
                return Err(io::Error::other(format!("{name} has a namespace that is not a usable directory name")));
            }
            None => dir.to_path_buf(),
        };
        std::fs::create_dir_all(&folder)?;
        let path = folder.join(format!("{name}.yaml"));
        atomic::write(&path, yaml::to_string(object).as_bytes(), Access::Shared)?;
        written.push(path);
    }
    Ok(written)
}

/// Names and namespaces are DNS labels or subdomains; anything else (a
/// `/`, `..`) must not become a path.
fn is_file_name(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with('.')
        && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

/// The objects [`write_values`] wrote into `dir` earlier (none if it does not exist).
pub fn read_dir(dir: &Path) -> io::Result<Vec<Value>> {
    let mut objects = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(objects) };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            folders.push(entry.path());
        }
    }
    for folder in folders {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            let visible = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.'));
            if visible && path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path)?;
                let value: Value =
                    serde_yaml::from_str(&text).map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
                objects.push(value);
            }
        }
    }
    Ok(objects)
}
