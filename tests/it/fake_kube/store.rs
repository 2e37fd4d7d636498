//! The verbs on stored objects: list, create, replace, patch (apply or
//! merge), delete, and how a write is stamped and stored.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::apply::{merge_patch, record_update, server_side_apply};
use super::discovery::Resource;
use super::request::{APPLY, MERGE, Request, STRATEGIC, Unknown};
use super::selector::{parse_field_selector, parse_label_selector};
use super::status::{
    Answer, Failure, bad_request, cause, conflict, invalid, invalid_kind, modified, not_found, respond, status,
    with_warnings,
};
use super::validate::{admit, check_body, undeclared};
use super::{Inner, Key, key, now};

impl Inner {
    pub(super) fn list(&self, resource: &Resource, namespace: Option<&str>, request: &Request) -> Answer {
        let labels = parse_label_selector(request.param("labelSelector").unwrap_or_default())?;
        let fields = parse_field_selector(request.param("fieldSelector").unwrap_or_default())?;
        let items: Vec<&Value> = self
            .objects
            .iter()
            .filter(|((plural, ns, _), _)| *plural == resource.plural && namespace.is_none_or(|n| n == ns))
            .map(|(_, object)| object)
            .filter(|object| labels.iter().all(|r| r.matches(&object["metadata"]["labels"])))
            .filter(|object| {
                fields.iter().all(|(field, negate, value)| (object["metadata"][field] == **value) != *negate)
            })
            .collect();
        let offset: usize = request.param("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
        let limit = request.param("limit").and_then(|l| l.parse().ok()).filter(|l| *l > 0).unwrap_or(usize::MAX);
        let page: Vec<&Value> = items.iter().skip(offset).take(limit).copied().collect();
        let mut metadata = json!({"resourceVersion": self.revision.to_string()});
        if offset + page.len() < items.len() {
            metadata["continue"] = json!((offset + page.len()).to_string());
            metadata["remainingItemCount"] = json!(items.len() - offset - page.len());
        }
        let kind = format!("{}List", resource.kind);
        Ok(respond(
            StatusCode::OK,
            &json!({"apiVersion": resource.api_version(), "kind": kind, "metadata": metadata, "items": page}),
        ))
    }

    pub(super) fn create(&mut self, resource: &Resource, namespace: &str, request: &Request, user: &str) -> Answer {
        if resource.kind == "SelfSubjectReview" {
            let user_info = json!({"username": user, "groups": ["system:authenticated"]});
            return Ok(respond(
                StatusCode::CREATED,
                &json!({"kind": "SelfSubjectReview", "apiVersion": resource.api_version(),
                "metadata": {"creationTimestamp": null}, "status": {"userInfo": user_info}}),
            ));
        }
        let object = request.object(&resource.kind)?;
        check_body(resource, &object, namespace, None)?;
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
        if name.is_empty() {
            let cause =
                cause("metadata.name", "FieldValueRequired", "Required value: name or generateName is required");
            return Err(invalid(resource, "", vec![cause]));
        }
        self.namespace_exists(resource, namespace)?;
        let (mut object, warnings) = admit(resource, object, request.unknown_fields())?;
        let key = key(resource, namespace, &name);
        if self.objects.contains_key(&key) {
            let message = format!("{} \"{name}\" already exists", resource.qualified());
            return Err(status(StatusCode::CONFLICT, "AlreadyExists", &message, resource.details(&name)));
        }
        record_update(None, &mut object, &request.manager(), &resource.api_version());
        Ok(self.store(resource, key, None, object, request.dry_run(), warnings))
    }

    pub(super) fn replace(&mut self, resource: &Resource, namespace: &str, name: &str, request: &Request) -> Answer {
        let object = request.object(&resource.kind)?;
        check_body(resource, &object, namespace, Some(name))?;
        let key = key(resource, namespace, name);
        let old = self.objects.get(&key).cloned().ok_or_else(|| not_found(resource, name))?;
        match object["metadata"]["resourceVersion"].as_str() {
            Some(version) if old["metadata"]["resourceVersion"] != version => return Err(modified(resource, name)),
            None if resource.custom => {
                let message = "Invalid value: 0x0: must be specified for an update";
                return Err(invalid(
                    resource,
                    name,
                    vec![cause("metadata.resourceVersion", "FieldValueInvalid", message)],
                ));
            }
            _ => {}
        }
        let (mut object, warnings) = admit(resource, object, request.unknown_fields())?;
        record_update(Some(&old), &mut object, &request.manager(), &resource.api_version());
        Ok(self.store(resource, key, Some(old), object, request.dry_run(), warnings))
    }

    pub(super) fn patch(&mut self, resource: &Resource, namespace: &str, name: &str, request: &Request) -> Answer {
        let apply = request.content_type() == APPLY;
        let mut causes = Vec::new();
        if apply && request.param("fieldManager").is_none_or(str::is_empty) {
            causes.push(cause("fieldManager", "FieldValueRequired", "Required value: is required for apply patch"));
        }
        if !apply && request.param("force").is_some() {
            causes.push(cause("force", "FieldValueForbidden", "Forbidden: may not be specified for non-apply patch"));
        }
        if !causes.is_empty() {
            return Err(invalid_kind("PatchOptions.meta.k8s.io", "meta.k8s.io", "PatchOptions", "", causes));
        }
        match request.content_type() {
            APPLY => self.apply(resource, namespace, name, request),
            MERGE => self.merge(resource, namespace, name, request),
            STRATEGIC if !resource.custom => self.merge(resource, namespace, name, request),
            _ => Err(status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                Value::Null,
            )),
        }
    }

    fn apply(&mut self, resource: &Resource, namespace: &str, name: &str, request: &Request) -> Answer {
        let applied = request.object(&resource.kind)?;
        check_body(resource, &applied, namespace, Some(name))?;
        if !applied["metadata"]["managedFields"].is_null() {
            return Err(bad_request("metadata.managedFields must be nil"));
        }
        let key = key(resource, namespace, name);
        let old = self.objects.get(&key).cloned();
        if old.is_none() {
            self.namespace_exists(resource, namespace)?;
        }
        if let (Some(version), Some(old)) = (applied["metadata"]["resourceVersion"].as_str(), &old)
            && old["metadata"]["resourceVersion"] != version
        {
            return Err(modified(resource, name));
        }
        let undeclared = undeclared(&applied);
        if !undeclared.is_empty() {
            let errors: Vec<String> =
                undeclared.iter().map(|p| format!(".{p}: field not declared in schema")).collect();
            let message = format!(
                "failed to create typed patch object ({namespace}/{name}; {}, Kind={}): {}",
                resource.api_version(),
                resource.kind,
                errors.join("\n")
            );
            return Err(status(StatusCode::INTERNAL_SERVER_ERROR, "", &message, Value::Null));
        }
        let manager = request.param("fieldManager").unwrap_or_default();
        let force = request.param("force") == Some("true");
        let merged = server_side_apply(old.as_ref(), &applied, manager, force, &resource.api_version())?;
        let (merged, warnings) = admit(resource, merged, Unknown::Strict)?;
        Ok(self.store(resource, key, old, merged, request.dry_run(), warnings))
    }

    fn merge(&mut self, resource: &Resource, namespace: &str, name: &str, request: &Request) -> Answer {
        let patch = request.object(&resource.kind)?;
        let key = key(resource, namespace, name);
        let old = self.objects.get(&key).cloned().ok_or_else(|| not_found(resource, name))?;
        if let Some(version) = patch["metadata"]["resourceVersion"].as_str()
            && old["metadata"]["resourceVersion"] != version
        {
            return Err(modified(resource, name));
        }
        let mut object = old.clone();
        merge_patch(&mut object, &patch);
        check_body(resource, &object, namespace, Some(name))?;
        let (mut object, warnings) = admit(resource, object, request.unknown_fields())?;
        record_update(Some(&old), &mut object, &request.manager(), &resource.api_version());
        Ok(self.store(resource, key, Some(old), object, request.dry_run(), warnings))
    }

    pub(super) fn delete(&mut self, resource: &Resource, namespace: &str, name: &str, request: &Request) -> Answer {
        let key = key(resource, namespace, name);
        let old = self.objects.get(&key).cloned().ok_or_else(|| not_found(resource, name))?;
        let options: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        for (field, label) in [("resourceVersion", "ResourceVersion"), ("uid", "UID")] {
            if let Some(wanted) = options["preconditions"][field].as_str()
                && old["metadata"][field] != wanted
            {
                let actual = old["metadata"][field].as_str().unwrap_or_default();
                let reason =
                    format!("Precondition failed: {label} in precondition: {wanted}, {label} in object meta: {actual}");
                return Err(conflict(resource, name, &reason));
            }
        }
        if !request.dry_run() {
            self.objects.remove(&key);
            if resource.kind == "Namespace" {
                self.objects.retain(|(_, ns, _), _| ns != name);
            }
            self.revision += 1;
            self.writes += 1;
        }
        if resource.custom || resource.kind == "Namespace" {
            return Ok(respond(StatusCode::OK, &old));
        }
        let mut details = resource.details(name);
        details["uid"] = old["metadata"]["uid"].clone();
        Ok(respond(
            StatusCode::OK,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
        ))
    }

    fn namespace_exists(&self, resource: &Resource, namespace: &str) -> Result<(), Failure> {
        if !resource.namespaced || self.objects.contains_key(&("namespaces".into(), String::new(), namespace.into())) {
            return Ok(());
        }
        let message = format!("namespaces \"{namespace}\" not found");
        Err(status(StatusCode::NOT_FOUND, "NotFound", &message, json!({"name": namespace, "kind": "namespaces"})))
    }

    /// Stamps and stores `object` (unless `dry_run`), or answers `old` as it
    /// is when nothing but timestamps would change.
    fn store(
        &mut self,
        resource: &Resource,
        key: Key,
        old: Option<Value>,
        mut object: Value,
        dry_run: bool,
        warnings: Vec<String>,
    ) -> Response {
        let metadata = object["metadata"].as_object_mut().unwrap();
        match resource.namespaced {
            true => metadata.insert("namespace".into(), json!(key.1)),
            false => metadata.remove("namespace"),
        };
        let code = match &old {
            Some(old) => {
                for field in ["uid", "creationTimestamp", "resourceVersion", "generation"] {
                    match old["metadata"].get(field) {
                        Some(value) => metadata.insert(field.into(), value.clone()),
                        None => metadata.remove(field),
                    };
                }
                if comparable(old) == comparable(&object) {
                    return with_warnings(respond(StatusCode::OK, old), &warnings);
                }
                if let Some(generation) = old["metadata"]["generation"].as_u64()
                    && without_metadata(old) != without_metadata(&object)
                {
                    object["metadata"]["generation"] = json!(generation + 1);
                }
                StatusCode::OK
            }
            None => {
                self.uids += 1;
                metadata.insert("uid".into(), json!(format!("{:08x}-fa4e-4b0e-9c3d-{:012x}", self.uids, self.uids)));
                metadata.insert("creationTimestamp".into(), json!(now()));
                if !resource.group.is_empty() {
                    metadata.insert("generation".into(), json!(1));
                }
                StatusCode::CREATED
            }
        };
        if !dry_run {
            self.revision += 1;
            object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
            self.objects.insert(key, object.clone());
            self.writes += 1;
        }
        with_warnings(respond(code, &object), &warnings)
    }

    pub(super) fn insert(&mut self, mut object: Value) {
        let found = self.resources.iter().find(|r| object["apiVersion"] == r.api_version() && object["kind"] == r.kind);
        let resource = found.cloned().unwrap_or_else(|| panic!("the fake does not serve {}", object["kind"]));
        let namespace =
            if resource.namespaced { object["metadata"]["namespace"].as_str().unwrap_or("default") } else { "" };
        let key = key(&resource, namespace, object["metadata"]["name"].as_str().expect("a name"));
        self.uids += 1;
        self.revision += 1;
        let metadata = object["metadata"].as_object_mut().unwrap();
        let uid = json!(format!("{:08x}-5eed-4b0e-9c3d-{:012x}", self.uids, self.uids));
        let mut defaults = vec![("uid", uid), ("creationTimestamp", json!(now()))];
        if resource.namespaced {
            defaults.push(("namespace", json!(key.1)));
        }
        if !resource.group.is_empty() {
            defaults.push(("generation", json!(1)));
        }
        for (field, value) in defaults {
            metadata.entry(field).or_insert(value);
        }
        metadata.insert("resourceVersion".into(), json!(self.revision.to_string()));
        self.objects.insert(key, object);
    }
}

fn without_metadata(object: &Value) -> Value {
    let mut object = object.clone();
    object.as_object_mut().map(|fields| fields.remove("metadata"));
    object
}

/// The object without the times in its managedFields, to tell real changes.
fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    for entry in object["metadata"]["managedFields"].as_array_mut().into_iter().flatten() {
        entry.as_object_mut().map(|e| e.remove("time"));
    }
    object
}
