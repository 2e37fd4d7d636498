//! The fake API server (`fake_kube`) behaves like a real one: the real
//! `kubectl` lists, applies and reads through it, authenticates through an
//! exec credential plugin, and sees the API server's errors; kube-rs (the
//! binary's client) discovers, applies, lists and deletes through it; raw
//! requests get the real status codes and `Status` bodies.
//!
//! What kubectl needs, found out against it:
//! - TLS: kubectl sends a token (or runs an exec plugin) only to an `https`
//!   server, so the fake serves HTTPS with a self-signed certificate that its
//!   kubeconfig names as the certificate authority.
//! - OpenAPI: before `apply`, kubectl reads `/openapi/v3` to learn whether the
//!   server validates fields itself; with no OpenAPI document it stops with
//!   "failed to download openapi" unless given `--validate=false`. The fake
//!   serves a minimal v3 document, enough for kubectl 1.29 and later (the
//!   gcloud dispatcher on `PATH` picks 1.33 from the fake's `/version`).
//!   kubectl 1.28 and older read the protobuf `/openapi/v2` instead, which
//!   the fake does not serve: they need `--validate=false`.
//! - Nothing else: the plain list answers (no `Table`) print as NAME and AGE.

use std::path::Path;
use std::process::{Command, Output};

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde_json::{Value, json};

use crate::fake_kube::{FakeKube, Options};

const ADMIN: Option<&str> = Some("admin-token");
const APPLY: &str = "application/apply-patch+yaml";
const JSON: &str = "application/json";

/// The real `kubectl` with `kubeconfig` and an empty home, so no discovery
/// cache outlives the test.
fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env("HOME", home.path())
        .env_remove("KUBECONFIG")
        .output()
        .expect("kubectl is installed (.ci/run installs it)")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One request from a client that trusts the certificate authority the
/// fake's kubeconfig names: the status code and the body (JSON when it
/// parses, else a string).
fn http(fake: &FakeKube, token: Option<&str>, method: &str, path: &str, body: Option<(&str, &str)>) -> (u16, Value) {
    let kubeconfig: Value = serde_yaml::from_str(&std::fs::read_to_string(fake.kubeconfig()).unwrap()).unwrap();
    let ca = std::fs::read(kubeconfig["clusters"][0]["cluster"]["certificate-authority"].as_str().unwrap()).unwrap();
    let client = reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap());
    let client = client.build().unwrap();
    let mut request =
        client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", fake.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some((content_type, body)) = body {
        request = request.header("content-type", content_type).body(body.to_string());
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let response = request.send().await.unwrap();
        let code = response.status().as_u16();
        let body = response.text().await.unwrap();
        (code, serde_json::from_str(&body).unwrap_or(Value::String(body)))
    })
}

/// A TracingPolicy `name` matching daddr 203.0.113.7 with `operator`.
fn policy(name: &str, operator: &str) -> String {
    format!(
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: {name}\nspec:\n  podSelector: {{}}\n  \
         kprobes:\n  - call: tcp_connect\n    syscall: false\n    args:\n    - index: 0\n      type: sock\n    \
         selectors:\n    - matchArgs:\n      - index: 0\n        operator: {operator}\n        values: \
         [\"203.0.113.7/32\"]\n      matchActions:\n      - action: Post\n"
    )
}

fn write(dir: &Path, file: &str, content: &str) -> String {
    let path = dir.join(file);
    std::fs::write(&path, content).unwrap();
    path.to_string_lossy().into_owned()
}

fn config_map(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "payments", "labels": labels},
        "data": {"k": "v"}})
}

#[test]
fn kubectl_lists_applies_and_gets_tracing_policies() {
    let fake = FakeKube::start();
    let dir = tempfile::tempdir().unwrap();
    let empty = kubectl(fake.kubeconfig(), &["get", "tracingpolicies"]);
    assert!(empty.status.success(), "{}", text(&empty.stderr));
    assert!(text(&empty.stderr).contains("No resources found"), "{}", text(&empty.stderr));

    let file = write(dir.path(), "tp.yaml", &policy("tp-ok", "DAddr"));
    let applied = kubectl(fake.kubeconfig(), &["apply", "--server-side", "-f", &file]);
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    assert!(
        text(&applied.stdout).contains("tracingpolicy.cilium.io/tp-ok serverside-applied"),
        "{}",
        text(&applied.stdout)
    );

    let listed = kubectl(fake.kubeconfig(), &["get", "tracingpolicies"]);
    assert!(text(&listed.stdout).contains("tp-ok"), "{}{}", text(&listed.stdout), text(&listed.stderr));
    let got = kubectl(fake.kubeconfig(), &["get", "tgtp", "tp-ok", "-o", "json"]);
    assert!(got.status.success(), "{}", text(&got.stderr));
    let got: Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(got["spec"]["kprobes"][0]["call"], "tcp_connect");

    let mut stored = fake.get("tracingpolicies", None, "tp-ok").unwrap();
    let managed = stored["metadata"].as_object_mut().unwrap().remove("managedFields").unwrap();
    assert_eq!(stored, got, "kubectl shows the stored object, without managedFields");
    assert_eq!((&managed[0]["manager"], &managed[0]["operation"]), (&json!("kubectl"), &json!("Apply")));
    assert_eq!(stored["metadata"]["generation"], 1);
}

#[test]
fn kubectl_apply_of_an_invalid_policy_shows_the_servers_rejection() {
    let fake = FakeKube::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.yaml", &policy("tp-bad", "Contains"));
    let rejected = kubectl(fake.kubeconfig(), &["apply", "--server-side", "-f", &file]);
    let stderr = text(&rejected.stderr);
    assert!(!rejected.status.success());
    // kubectl words a 422 from the causes of its Status, as for a real server.
    assert!(stderr.contains("The TracingPolicy \"tp-bad\" is invalid"), "{stderr}");
    assert!(
        stderr.contains("spec.kprobes[0].selectors[0].matchArgs[0].operator: Unsupported value: \"Contains\""),
        "{stderr}"
    );

    let unknown = policy("tp-unknown", "DAddr").replace("    syscall: false\n", "    syscall: false\n    bogus: 1\n");
    let file = write(dir.path(), "unknown.yaml", &unknown);
    let rejected = kubectl(fake.kubeconfig(), &["apply", "--server-side", "-f", &file]);
    let stderr = text(&rejected.stderr);
    assert!(!rejected.status.success());
    assert!(stderr.contains(".spec.kprobes[0].bogus: field not declared in schema"), "{stderr}");
    assert_eq!(fake.list("tracingpolicies"), Vec::<Value>::new());
    assert_eq!(fake.writes(), 0);
}

#[test]
fn reapplying_the_same_file_changes_nothing() {
    let fake = FakeKube::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "tp.yaml", &policy("tp-ok", "DAddr"));
    let first = kubectl(fake.kubeconfig(), &["apply", "--server-side", "-f", &file]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let (stored, writes) = (fake.get("tracingpolicies", None, "tp-ok").unwrap(), fake.writes());
    assert_eq!(writes, 1);
    let again = kubectl(fake.kubeconfig(), &["apply", "--server-side", "-f", &file]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(fake.get("tracingpolicies", None, "tp-ok").unwrap(), stored);
    assert_eq!(fake.writes(), writes);
}

#[test]
fn kubectl_authenticates_through_an_exec_plugin() {
    let fake = FakeKube::start();
    let listed = kubectl(&fake.exec_kubeconfig(), &["get", "namespaces"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    for namespace in ["default", "kube-system", "qualys-respond", "payments"] {
        assert!(text(&listed.stdout).contains(namespace), "{}", text(&listed.stdout));
    }
}

#[test]
fn requests_need_a_known_token() {
    let fake = FakeKube::start();
    let unauthorized = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Unauthorized", "reason": "Unauthorized", "code": 401});
    assert_eq!(http(&fake, None, "GET", "/api", None), (401, unauthorized.clone()));
    assert_eq!(http(&fake, Some("nope"), "GET", "/api/v1/namespaces", None), (401, unauthorized));
    assert_eq!(http(&fake, ADMIN, "GET", "/api", None).0, 200);
    assert_eq!(fake.requests(), ["GET /api", "GET /api/v1/namespaces", "GET /api"]);
}

#[test]
fn missing_objects_and_paths_answer_not_found() {
    let fake = FakeKube::start();
    let (code, body) = http(&fake, ADMIN, "GET", "/apis/cilium.io/v1alpha1/tracingpolicies/x", None);
    let expected = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "tracingpolicies.cilium.io \"x\" not found", "reason": "NotFound",
        "details": {"name": "x", "group": "cilium.io", "kind": "tracingpolicies"}, "code": 404});
    assert_eq!((code, body), (404, expected));
    let (code, body) = http(&fake, ADMIN, "GET", "/api/v1/namespaces/default/configmaps/x", None);
    assert_eq!((code, &body["details"]), (404, &json!({"name": "x", "kind": "configmaps"})));
    assert_eq!(http(&fake, ADMIN, "GET", "/apis/cilium.io/v1alpha1/widgets", None).0, 404);
    assert_eq!(http(&fake, ADMIN, "GET", "/apis/example.com/v1/widgets", None).0, 404);
    let (code, body) = http(&fake, ADMIN, "POST", "/api/v1/nodes/node-1", Some((JSON, "{}")));
    assert_eq!((code, &body["reason"]), (405, &json!("MethodNotAllowed")));
}

#[test]
fn creating_an_existing_name_conflicts_and_creating_in_a_missing_namespace_is_not_found() {
    let fake = FakeKube::start();
    let body = config_map("cm", json!({})).to_string();
    let path = "/api/v1/namespaces/payments/configmaps";
    let (code, created) = http(&fake, ADMIN, "POST", path, Some((JSON, &body)));
    assert_eq!((code, &created["metadata"]["namespace"]), (201, &json!("payments")));
    let (code, again) = http(&fake, ADMIN, "POST", path, Some((JSON, &body)));
    assert_eq!((code, &again["reason"]), (409, &json!("AlreadyExists")));
    assert_eq!(again["message"], "configmaps \"cm\" already exists");

    let mut elsewhere = config_map("cm", json!({}));
    elsewhere["metadata"]["namespace"] = json!("nope");
    let path = "/api/v1/namespaces/nope/configmaps";
    let (code, missing) = http(&fake, ADMIN, "POST", path, Some((JSON, &elsewhere.to_string())));
    assert_eq!((code, &missing["message"]), (404, &json!("namespaces \"nope\" not found")));
    assert_eq!(fake.writes(), 1);
}

#[test]
fn replacing_with_a_stale_resource_version_conflicts_and_merge_patches_merge() {
    let fake = FakeKube::start();
    let path = "/api/v1/namespaces/payments/configmaps";
    let (_, created) = http(&fake, ADMIN, "POST", path, Some((JSON, &config_map("cm", json!({})).to_string())));
    let mut changed = created.clone();
    changed["data"]["k"] = json!("w");
    let (code, replaced) = http(&fake, ADMIN, "PUT", &format!("{path}/cm"), Some((JSON, &changed.to_string())));
    assert_eq!((code, &replaced["data"]["k"]), (200, &json!("w")));
    let (code, stale) = http(&fake, ADMIN, "PUT", &format!("{path}/cm"), Some((JSON, &changed.to_string())));
    assert_eq!((code, &stale["reason"]), (409, &json!("Conflict")));
    assert!(stale["message"].as_str().unwrap().contains("the object has been modified"), "{stale}");

    let merge = Some(("application/merge-patch+json", r#"{"metadata": {"labels": {"x": "1"}}, "data": {"k": null}}"#));
    let (code, patched) = http(&fake, ADMIN, "PATCH", &format!("{path}/cm"), merge);
    assert_eq!((code, &patched["metadata"]["labels"], &patched["data"]), (200, &json!({"x": "1"}), &json!({})));
    let writes = fake.writes();
    let (code, again) = http(&fake, ADMIN, "PATCH", &format!("{path}/cm"), merge);
    assert_eq!((code, &again["metadata"]["resourceVersion"]), (200, &patched["metadata"]["resourceVersion"]));
    assert_eq!(fake.writes(), writes);
}

#[test]
fn server_side_apply_conflicts_between_managers_unless_forced() {
    let fake = FakeKube::start();
    let path = "/apis/cilium.io/v1alpha1/tracingpolicies/tp";
    let apply = |manager: &str, operator: &str, force: bool| {
        let query = format!("?fieldManager={manager}{}", if force { "&force=true" } else { "" });
        http(&fake, ADMIN, "PATCH", &format!("{path}{query}"), Some((APPLY, &policy("tp", operator))))
    };
    assert_eq!(apply("first", "DAddr", false).0, 201);
    assert_eq!(apply("first", "DAddr", false).0, 200);
    let (code, conflict) = apply("second", "NotDAddr", false);
    assert_eq!((code, &conflict["reason"]), (409, &json!("Conflict")));
    let cause = json!({"reason": "FieldManagerConflict", "message": "conflict with \"first\" using cilium.io/v1alpha1",
        "field": ".spec.kprobes"});
    assert_eq!(conflict["details"]["causes"], json!([cause]));
    assert_eq!(
        fake.get("tracingpolicies", None, "tp").unwrap()["spec"]["kprobes"][0]["selectors"][0]["matchArgs"][0]["operator"],
        "DAddr"
    );

    let (code, forced) = apply("second", "NotDAddr", true);
    assert_eq!(code, 200);
    assert_eq!(forced["spec"]["kprobes"][0]["selectors"][0]["matchArgs"][0]["operator"], "NotDAddr");
    assert_eq!(forced["metadata"]["generation"], 2);
    let owners: Vec<(&Value, &Value)> = forced["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (&m["manager"], &m["fieldsV1"]["f:spec"]))
        .collect();
    // Both still own the (equal) podSelector; only the second owns kprobes.
    assert_eq!(owners[0], (&json!("first"), &json!({"f:podSelector": {}})));
    assert_eq!(owners[1], (&json!("second"), &json!({"f:kprobes": {}, "f:podSelector": {}})));

    // An object nobody applied belongs to `before-first-apply`, as on a real server.
    fake.insert(config_map("seeded", json!({})));
    let mut changed = config_map("seeded", json!({}));
    changed["data"]["k"] = json!("other");
    let path = "/api/v1/namespaces/payments/configmaps/seeded?fieldManager=tool";
    let (code, conflict) = http(&fake, ADMIN, "PATCH", path, Some((APPLY, &changed.to_string())));
    let message = &conflict["details"]["causes"][0]["message"];
    assert_eq!((code, message), (409, &json!("conflict with \"before-first-apply\" using v1")));
}

#[test]
fn server_side_apply_drops_what_a_manager_stops_sending() {
    let fake = FakeKube::start();
    let path = "/api/v1/namespaces/payments/configmaps/cm?fieldManager=tool";
    let with = |labels: Value| config_map("cm", labels).to_string();
    assert_eq!(http(&fake, ADMIN, "PATCH", path, Some((APPLY, &with(json!({"a": "1", "b": "2"}))))).0, 201);
    let (code, applied) = http(&fake, ADMIN, "PATCH", path, Some((APPLY, &with(json!({"a": "1"})))));
    assert_eq!((code, &applied["metadata"]["labels"]), (200, &json!({"a": "1"})));
    let (code, missing) =
        http(&fake, ADMIN, "PATCH", "/api/v1/namespaces/payments/configmaps/cm", Some((APPLY, &with(json!({})))));
    assert_eq!((code, &missing["reason"]), (422, &json!("Invalid")));
}

#[test]
fn label_and_field_selectors_filter_lists() {
    let fake = FakeKube::start();
    fake.insert(config_map("a", json!({"app": "x", "tier": "web"})));
    fake.insert(config_map("b", json!({"app": "y"})));
    fake.insert(config_map("c", json!({})));
    let names = |query: &str| {
        let path = format!("/api/v1/namespaces/payments/configmaps?{query}");
        let (code, list) = http(&fake, ADMIN, "GET", &path, None);
        assert_eq!((code, &list["kind"]), (200, &json!("ConfigMapList")), "{list}");
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names("labelSelector=app%3Dx"), ["a"]);
    assert_eq!(names("labelSelector=app%3D%3Dx"), ["a"]);
    assert_eq!(names("labelSelector=app!%3Dx"), ["b", "c"]);
    assert_eq!(names("labelSelector=app"), ["a", "b"]);
    assert_eq!(names("labelSelector=!app"), ["c"]);
    assert_eq!(names("labelSelector=app+in+(x,y),tier"), ["a"]);
    assert_eq!(names("labelSelector=app%20notin%20(x)"), ["b", "c"]);
    assert_eq!(names("fieldSelector=metadata.name%3Db"), ["b"]);
    assert_eq!(names("limit=2"), ["a", "b"]);
    assert_eq!(names("limit=2&continue=2"), ["c"]);
    assert_eq!(http(&fake, ADMIN, "GET", "/api/v1/configmaps?fieldSelector=spec.x%3D1", None).0, 400);
}

#[test]
fn dry_runs_validate_but_store_nothing() {
    let fake = FakeKube::start();
    let path = "/apis/cilium.io/v1alpha1/tracingpolicies/tp?fieldManager=tool&dryRun=All";
    let (code, answer) = http(&fake, ADMIN, "PATCH", path, Some((APPLY, &policy("tp", "DAddr"))));
    assert_eq!((code, &answer["metadata"]["name"]), (201, &json!("tp")));
    let (code, invalid) = http(&fake, ADMIN, "PATCH", path, Some((APPLY, &policy("tp", "Contains"))));
    assert_eq!((code, &invalid["reason"]), (422, &json!("Invalid")));
    assert_eq!(fake.get("tracingpolicies", None, "tp"), None);
    assert_eq!(fake.writes(), 0);
}

#[test]
fn network_policy_cidrs_are_validated() {
    let fake = FakeKube::start();
    let netpol = |cidr: &str, except: &str| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"ipBlock": {"cidr": cidr, "except": [except]}}]}]}})
        .to_string()
    };
    let path = "/apis/networking.k8s.io/v1/namespaces/payments/networkpolicies?dryRun=All";
    assert_eq!(http(&fake, ADMIN, "POST", path, Some((JSON, &netpol("10.0.0.0/8", "10.1.0.0/16")))).0, 201);
    for (cidr, except, field) in [
        ("10.0.0.0/33", "10.1.0.0/16", "spec.egress[0].to[0].ipBlock.cidr"),
        ("10.0.0.0/8", "10.0.0.0/8", "spec.egress[0].to[0].ipBlock.except[0]"),
        ("10.0.0.0/8", "fd00::/64", "spec.egress[0].to[0].ipBlock.except[0]"),
    ] {
        let (code, answer) = http(&fake, ADMIN, "POST", path, Some((JSON, &netpol(cidr, except))));
        assert_eq!((code, &answer["details"]["causes"][0]["field"]), (422, &json!(field)), "{answer}");
    }
}

#[test]
fn without_tetragon_the_cilium_group_is_absent() {
    let fake = FakeKube::start_with(Options { tetragon: false, ..Options::default() });
    let (code, groups) = http(&fake, ADMIN, "GET", "/apis", None);
    assert_eq!(code, 200);
    assert!(!groups.to_string().contains("cilium.io"), "{groups}");
    assert_eq!(http(&fake, ADMIN, "GET", "/apis/cilium.io/v1alpha1", None).0, 404);
    assert_eq!(http(&fake, ADMIN, "GET", "/apis/cilium.io/v1alpha1/tracingpolicies", None).0, 404);
    let listed = kubectl(fake.kubeconfig(), &["get", "tracingpolicies"]);
    assert!(!listed.status.success());
    assert!(text(&listed.stderr).contains("the server doesn't have a resource type"), "{}", text(&listed.stderr));
}

#[test]
fn writes_fail_after_the_configured_count() {
    let fake = FakeKube::start();
    fake.fail_writes_after(1);
    let path = "/api/v1/namespaces/payments/configmaps";
    let body = |name: &str| config_map(name, json!({})).to_string();
    assert_eq!(http(&fake, ADMIN, "POST", path, Some((JSON, &body("one")))).0, 201);
    let (code, failed) = http(&fake, ADMIN, "POST", path, Some((JSON, &body("two"))));
    assert_eq!((code, &failed["reason"]), (500, &json!("InternalError")));
    assert_eq!(http(&fake, ADMIN, "POST", &format!("{path}?dryRun=All"), Some((JSON, &body("three")))).0, 201);
    assert_eq!(http(&fake, ADMIN, "GET", path, None).0, 200);
    assert_eq!(fake.writes(), 1);
}

#[test]
fn a_self_subject_review_names_the_tokens_user() {
    let tokens = vec![("t1".to_string(), "alice".to_string())];
    let fake = FakeKube::start_with(Options { tokens, ..Options::default() });
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).to_string();
    let path = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
    let (code, answer) = http(&fake, Some("t1"), "POST", path, Some((JSON, &review)));
    assert_eq!((code, &answer["status"]["userInfo"]["username"]), (201, &json!("alice")));
    assert_eq!(http(&fake, Some("admin-token"), "POST", path, Some((JSON, &review))).0, 401);
}

#[test]
fn kube_rs_discovers_applies_lists_and_deletes() {
    let fake = FakeKube::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        for (path, name) in [(fake.kubeconfig().to_path_buf(), "tp-token"), (fake.exec_kubeconfig(), "tp-exec")] {
            let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
            let client = kube::Client::try_from(config).unwrap();
            assert_eq!(client.apiserver_version().await.unwrap().git_version, "v1.33.1");
            let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
            let gvk = GroupVersionKind::gvk("cilium.io", "v1alpha1", "TracingPolicy");
            let (resource, capabilities) = discovery.resolve_gvk(&gvk).unwrap();
            assert_eq!((resource.plural.as_str(), capabilities.scope), ("tracingpolicies", Scope::Cluster));

            let api: Api<DynamicObject> = Api::all_with(client, &resource);
            let mut object: Value = serde_yaml::from_str(&policy(name, "DAddr")).unwrap();
            object["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "qualys-respond"});
            let params = PatchParams::apply("qualys-respond").force().validation_strict();
            let applied = api.patch(name, &params, &Patch::Apply(&object)).await.unwrap();
            assert_eq!(applied.metadata.generation, Some(1));
            let listed = api.list(&ListParams::default().labels("app.kubernetes.io/managed-by=qualys-respond")).await;
            assert_eq!(listed.unwrap().items.len(), 1);

            object["spec"]["kprobes"][0]["selectors"][0]["matchArgs"][0]["operator"] = json!("Contains");
            let kube::Error::Api(status) = api.patch(name, &params, &Patch::Apply(&object)).await.unwrap_err() else {
                panic!("not an API error");
            };
            assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
            api.delete(name, &DeleteParams::default()).await.unwrap();
            assert!(api.get_opt(name).await.unwrap().is_none());
        }
    });
    assert_eq!(fake.list("tracingpolicies"), Vec::<Value>::new());
}

#[test]
fn undeclared_fields_are_dropped_unless_validation_is_strict() {
    let fake = FakeKube::start();
    let mut object: Value = serde_yaml::from_str(&policy("tp", "DAddr")).unwrap();
    object["spec"]["kprobes"][0]["bogus"] = json!(1);
    let (path, body) = ("/apis/cilium.io/v1alpha1/tracingpolicies", object.to_string());
    let (code, strict) = http(&fake, ADMIN, "POST", &format!("{path}?fieldValidation=Strict"), Some((JSON, &body)));
    let message = "TracingPolicy in version \"v1alpha1\" cannot be handled as a TracingPolicy: strict decoding error: \
                   unknown field \"spec.kprobes[0].bogus\"";
    assert_eq!((code, &strict["message"]), (400, &json!(message)));
    let (code, created) = http(&fake, ADMIN, "POST", path, Some((JSON, &body)));
    assert_eq!((code, created["spec"]["kprobes"][0].get("bogus")), (201, None));
}
