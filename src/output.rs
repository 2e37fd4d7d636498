//! Writes objects out: a YAML stream, a JSON `List`, or one file per object.

use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::policy::PolicyObject;

/// A YAML multi-document stream, one document per object.
pub fn yaml_stream(objects: &[&PolicyObject]) -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&object.to_value())?);
    }
    Ok(out)
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
    let mut written = Vec::with_capacity(objects.len());
    for object in objects {
        let folder = match &object.namespace {
            Some(ns) => dir.join(ns),
            None => dir.to_path_buf(),
        };
        std::fs::create_dir_all(&folder)?;
        let path = folder.join(format!("{}.yaml", object.name));
        let text = serde_yaml::to_string(&object.to_value()).map_err(io::Error::other)?;
        let temporary = folder.join(format!(".{}.yaml.tmp", object.name));
        std::fs::write(&temporary, text)?;
        std::fs::rename(&temporary, &path)?;
        written.push(path);
    }
    Ok(written)
}
