//! The answers: JSON bodies, warnings, and the API server's failure
//! `Status` bodies (bad request, not found, conflict, invalid, ...).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::discovery::Resource;

/// An error answer, boxed: it travels through every `?`.
pub(super) type Failure = Box<Response>;

/// A response either way: `Err` is the error answered early.
pub(super) type Answer = Result<Response, Failure>;

pub(super) fn respond(code: StatusCode, body: &Value) -> Response {
    (code, [("content-type", "application/json")], body.to_string()).into_response()
}

pub(super) fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        response.headers_mut().append("warning", HeaderValue::from_str(&format!("299 - {warning:?}")).unwrap());
    }
    response
}

/// A failure `Status`; an empty `reason` or null `details` are left out.
pub(super) fn status(code: StatusCode, reason: &str, message: &str, details: Value) -> Failure {
    let no_details = details.is_null();
    let mut body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "details": details, "code": code.as_u16()});
    let fields = body.as_object_mut().unwrap();
    if reason.is_empty() {
        fields.remove("reason");
    }
    if no_details {
        fields.remove("details");
    }
    Box::new(respond(code, &body))
}

pub(super) fn bad_request(message: &str) -> Failure {
    status(StatusCode::BAD_REQUEST, "BadRequest", message, Value::Null)
}

pub(super) fn not_found(resource: &Resource, name: &str) -> Failure {
    let message = format!("{} \"{name}\" not found", resource.qualified());
    status(StatusCode::NOT_FOUND, "NotFound", &message, resource.details(name))
}

pub(super) fn conflict(resource: &Resource, name: &str, reason: &str) -> Failure {
    let message = format!("Operation cannot be fulfilled on {} \"{name}\": {reason}", resource.qualified());
    status(StatusCode::CONFLICT, "Conflict", &message, resource.details(name))
}

pub(super) fn modified(resource: &Resource, name: &str) -> Failure {
    conflict(
        resource,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

pub(super) fn method_not_allowed() -> Failure {
    let message = "the server does not allow this method on the requested resource";
    status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message, json!({}))
}

/// A known group version without the resource.
pub(super) fn unknown_resource() -> Failure {
    status(StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource", json!({}))
}

/// A path no API serves: the plain-text answer of the server's mux.
pub(super) fn page_not_found() -> Failure {
    Box::new(
        (StatusCode::NOT_FOUND, [("content-type", "text/plain; charset=utf-8")], "404 page not found\n")
            .into_response(),
    )
}

/// One entry of `details.causes` of an `Invalid` status.
pub(super) fn cause(field: &str, reason: &str, message: &str) -> Value {
    json!({"reason": reason, "message": message, "field": field})
}

pub(super) fn invalid(resource: &Resource, name: &str, causes: Vec<Value>) -> Failure {
    let qualified =
        if resource.group.is_empty() { resource.kind.clone() } else { format!("{}.{}", resource.kind, resource.group) };
    invalid_kind(&qualified, &resource.group, &resource.kind, name, causes)
}

pub(super) fn invalid_kind(qualified: &str, group: &str, kind: &str, name: &str, causes: Vec<Value>) -> Failure {
    let listed: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c["field"].as_str().unwrap(), c["message"].as_str().unwrap()))
        .collect();
    let joined = if listed.len() == 1 { listed[0].clone() } else { format!("[{}]", listed.join(", ")) };
    let message = format!("{qualified} \"{name}\" is invalid: {joined}");
    let details = json!({"name": name, "group": group, "kind": kind, "causes": causes});
    status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &message, details)
}
