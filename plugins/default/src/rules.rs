//! One rule per CDR category: which policies answer a finding of it.
//!
//! Each rule always emits the same spec *shape* for its template and varies
//! only the `values` lists, so the host can merge every finding of a category
//! and scope into one object. Specs are written straight into JSON text:
//! most are constants, the rest splice sorted value lists into a fixed frame
//! with `push_str` rather than `format!`, and value lists borrow what they
//! can: this runs for every finding, inside the sandbox.

use crate::Finding;
use crate::json::{SIGKILL, push_list, push_port_list, push_u16, tagged};
use crate::net::{binary_paths, host_cidr, is_link_local, is_public, specific_basename};

/// A category this mapper handles.
pub struct Category {
    /// The category as Qualys names it.
    pub name: &'static str,
    /// Its MITRE ATT&CK technique.
    pub technique: &'static str,
    /// The fields of a finding its rule reads besides the category, by their
    /// WIT names (the namespace is the scope of every policy).
    pub reads: &'static [&'static str],
    pub(crate) build: fn(&Finding) -> Vec<Draft>,
}

/// A policy before the category's technique and scope are attached.
pub(crate) struct Draft {
    pub template: &'static str,
    pub indicators: Vec<String>,
    pub spec: String,
}

/// The categories of the design, with their MITRE techniques.
pub const CATEGORIES: &[Category] = &[
    Category {
        name: "Cloud_Credentials_Accessed_By_Network_Utility",
        technique: "T1552.005",
        reads: &["namespace", "process", "destination-ip"],
        build: cloud_credentials,
    },
    Category {
        name: "Network_Scanning_Utility",
        technique: "T1046",
        reads: &["namespace", "process"],
        build: network_scanning,
    },
    Category { name: "Container_Escape", technique: "T1611", reads: &["namespace"], build: container_escape },
    Category { name: "Privilege_Escalation", technique: "T1548", reads: &["namespace"], build: privilege_escalation },
    Category {
        name: "Crypto_Mining",
        technique: "T1496",
        reads: &["namespace", "destination-ip", "destination-port"],
        build: crypto_mining,
    },
    Category {
        name: "Reverse_Shell",
        technique: "T1059.004",
        reads: &["namespace", "destination-ip"],
        build: reverse_shell,
    },
];

/// Cloud metadata endpoints: AWS/GCP/Azure IPv4 and AWS' IPv6 one.
const METADATA_CIDRS: &[&str] = &["169.254.169.254/32", "fd00:ec2::254/128"];
/// Network utilities that fetch credentials from the metadata endpoint.
const FETCH_UTILITIES: &[&str] = &["/bin/curl", "/usr/bin/curl", "/bin/wget", "/usr/bin/wget"];
/// Network scanners, matched by the end of the executed path.
const SCANNERS: &[&str] =
    &["nmap", "masscan", "zmap", "zgrab", "zgrab2", "nping", "hping3", "rustscan", "naabu", "unicornscan"];
/// Ports that mining pools listen on (stratum and its TLS variants).
const POOL_PORTS: &[u16] = &[3333, 4444, 5555, 7777, 8888, 9999, 14433, 14444, 45560, 45700];
/// Ports too common to block namespace-wide even when a miner used them.
const SERVICE_PORTS: &[u16] = &[3000, 3306, 5000, 5432, 6379, 8000, 8080, 8443, 9090, 9092, 9200, 11211, 27017];
/// Shells whose outbound connections make a reverse shell.
const SHELLS: &[&str] = &["/sh", "/bash", "/dash", "/zsh", "/ash", "/ksh"];

fn sorted(mut values: Vec<&str>) -> Vec<&str> {
    values.sort_unstable();
    values.dedup();
    values
}

/// A `tcp_connect` hook (a `sock` argument) whose selectors `selectors`
/// writes (a JSON array).
fn tcp_connect(selectors: impl FnOnce(&mut String)) -> String {
    let mut spec = String::with_capacity(512);
    spec.push_str(
        r#"{"kprobes":[{"call":"tcp_connect","syscall":false,"args":[{"index":0,"type":"sock"}],"selectors":"#,
    );
    selectors(&mut spec);
    spec.push_str("}]}");
    spec
}

/// Ends the last filter of a selector list (its array of filters is open)
/// with the enforcing action, and closes the selector and the list.
fn end_selectors(out: &mut String) {
    out.push_str(r#"}],"matchActions":"#);
    out.push_str(SIGKILL);
    out.push_str("}]");
}

/// The finding's remote address, if it parses.
fn destination(finding: &Finding) -> Option<std::net::IpAddr> {
    finding.destination_ip.as_deref()?.parse().ok()
}

/// A `tcp_connect` policy against the finding's remote peer, when that peer
/// is a public address (never a cluster, private or loopback one).
fn peer_addresses(finding: &Finding) -> Option<Draft> {
    let ip = destination(finding).filter(|ip| is_public(*ip))?;
    let cidr = host_cidr(ip);
    let address = cidr.split('/').next().unwrap_or(&cidr);
    Some(Draft {
        template: "peer-addresses",
        indicators: vec![tagged("ip:", address)],
        spec: tcp_connect(|out| {
            out.push_str(r#"[{"matchArgs":[{"index":0,"operator":"DAddr","values":"#);
            push_list(out, "", [&cidr]);
            end_selectors(out);
        }),
    })
}

fn cloud_credentials(finding: &Finding) -> Vec<Draft> {
    let link_local = destination(finding).filter(|ip| is_link_local(*ip)).map(host_cidr);
    let mut cidrs: Vec<&str> = METADATA_CIDRS.to_vec();
    cidrs.extend(link_local.as_deref());
    let paths = finding.binary.as_deref().map(binary_paths).unwrap_or_default();
    let mut binaries: Vec<&str> = FETCH_UTILITIES.to_vec();
    binaries.extend(paths.iter().map(String::as_str));
    let (cidrs, binaries) = (sorted(cidrs), sorted(binaries));
    let indicators = cidrs
        .iter()
        .map(|c| tagged("ip:", c.split('/').next().unwrap_or(c)))
        .chain(binaries.iter().map(|b| tagged("binary:", b)))
        .collect();
    vec![Draft {
        template: "imds-egress",
        indicators,
        spec: tcp_connect(|out| {
            out.push_str(r#"[{"matchArgs":[{"index":0,"operator":"DAddr","values":"#);
            push_list(out, "", &cidrs);
            out.push_str(r#"}],"matchBinaries":[{"operator":"In","values":"#);
            push_list(out, "", &binaries);
            end_selectors(out);
        }),
    }]
}

/// Raw sockets (type SOCK_RAW = 3) and packet sockets (family AF_PACKET =
/// 17), ping excepted.
const RAW_SOCKET_SPEC: &str = r#"{"kprobes":[{"call":"security_socket_create","syscall":false,"args":[{"index":0,"type":"int"},{"index":1,"type":"int"}],"selectors":[{"matchArgs":[{"index":1,"operator":"Equal","values":["3"]}],"matchBinaries":[{"operator":"NotIn","values":["/bin/ping","/bin/ping6","/usr/bin/ping","/usr/bin/ping6"]}],"matchActions":[{"action":"Sigkill"}]},{"matchArgs":[{"index":0,"operator":"Equal","values":["17"]}],"matchBinaries":[{"operator":"NotIn","values":["/bin/ping","/bin/ping6","/usr/bin/ping","/usr/bin/ping6"]}],"matchActions":[{"action":"Sigkill"}]}]}]}"#;

fn network_scanning(finding: &Finding) -> Vec<Draft> {
    let mut names: Vec<&str> = SCANNERS.to_vec();
    names.extend(finding.binary.as_deref().and_then(specific_basename));
    let names = sorted(names);
    let mut spec = String::with_capacity(512);
    spec.push_str(r#"{"kprobes":[{"call":"security_bprm_check","syscall":false,"args":[{"index":0,"type":"linux_binprm"}],"selectors":[{"matchArgs":[{"index":0,"operator":"Postfix","values":"#);
    push_list(&mut spec, "/", &names);
    end_selectors(&mut spec);
    spec.push_str("}]}");
    let scanner_exec =
        Draft { template: "scanner-exec", indicators: names.iter().map(|n| tagged("binary:*/", n)).collect(), spec };
    let raw_socket = Draft {
        template: "raw-socket",
        indicators: vec!["socket:SOCK_RAW".into(), "socket:AF_PACKET".into()],
        spec: RAW_SOCKET_SPEC.into(),
    };
    vec![scanner_exec, raw_socket]
}

/// `setns` by anything but a namespace's PID 1, and `unshare` of a user or
/// mount namespace (CLONE_NEWUSER 0x10000000, CLONE_NEWNS 0x00020000, as
/// numbers: Tetragon parses Mask values numerically and rejects symbols).
const NAMESPACE_ESCAPE_SPEC: &str = r#"{"kprobes":[{"call":"sys_setns","syscall":true,"args":[{"index":0,"type":"int"},{"index":1,"type":"int"}],"selectors":[{"matchPIDs":[{"operator":"NotIn","followForks":true,"isNamespacePID":true,"values":[0,1]}],"matchActions":[{"action":"Sigkill"}]}]},{"call":"sys_unshare","syscall":true,"args":[{"index":0,"type":"int"}],"selectors":[{"matchArgs":[{"index":0,"operator":"Mask","values":["268435456","131072"]}],"matchActions":[{"action":"Sigkill"}]}]}]}"#;

fn container_escape(_: &Finding) -> Vec<Draft> {
    vec![Draft {
        template: "namespace-escape",
        indicators: vec!["syscall:setns".into(), "syscall:unshare".into()],
        spec: NAMESPACE_ESCAPE_SPEC.into(),
    }]
}

/// `setuid(0)`, and `setreuid`/`setresuid` with an effective uid of 0
/// (argument 1). Override is rejected on these kernel functions; Sigkill is not.
const SETUID_ROOT_SPEC: &str = r#"{"kprobes":[{"call":"__sys_setuid","syscall":false,"args":[{"index":0,"type":"int"}],"selectors":[{"matchArgs":[{"index":0,"operator":"Equal","values":["0"]}],"matchActions":[{"action":"Sigkill"}]}]},{"call":"__sys_setreuid","syscall":false,"args":[{"index":1,"type":"int"}],"selectors":[{"matchArgs":[{"index":1,"operator":"Equal","values":["0"]}],"matchActions":[{"action":"Sigkill"}]}]},{"call":"__sys_setresuid","syscall":false,"args":[{"index":1,"type":"int"}],"selectors":[{"matchArgs":[{"index":1,"operator":"Equal","values":["0"]}],"matchActions":[{"action":"Sigkill"}]}]}]}"#;

fn privilege_escalation(_: &Finding) -> Vec<Draft> {
    vec![Draft {
        template: "setuid-root",
        indicators: vec![
            "syscall:setuid=0".into(),
            "syscall:setreuid-euid=0".into(),
            "syscall:setresuid-euid=0".into(),
        ],
        spec: SETUID_ROOT_SPEC.into(),
    }]
}

fn crypto_mining(finding: &Finding) -> Vec<Draft> {
    let mut ports: Vec<u16> = POOL_PORTS.to_vec();
    if let Some(port) = finding.destination_port.filter(|p| *p >= 1024 && !SERVICE_PORTS.contains(p)) {
        ports.push(port);
    }
    ports.sort_unstable();
    ports.dedup();
    let indicators = ports
        .iter()
        .map(|p| {
            let mut indicator = String::with_capacity(10);
            indicator.push_str("port:");
            push_u16(&mut indicator, *p);
            indicator
        })
        .collect();
    let mut drafts = vec![Draft {
        template: "pool-ports",
        indicators,
        spec: tcp_connect(|out| {
            out.push_str(r#"[{"matchArgs":[{"index":0,"operator":"DPort","values":"#);
            push_port_list(out, &ports);
            end_selectors(out);
        }),
    }];
    drafts.extend(peer_addresses(finding));
    drafts
}

/// Shells connecting out, in the finding's namespace only: cluster-wide it
/// would stop every shell of every container (the host refuses that).
fn reverse_shell(finding: &Finding) -> Vec<Draft> {
    let mut drafts = Vec::new();
    if finding.namespace.is_some() {
        drafts.push(Draft {
            template: "shell-egress",
            indicators: SHELLS.iter().map(|s| tagged("binary:*", s)).collect(),
            spec: tcp_connect(|out| {
                out.push_str(r#"[{"matchArgs":[{"index":0,"operator":"NotDAddr","values":["127.0.0.0/8","::1/128"]}],"matchBinaries":[{"operator":"Postfix","values":"#);
                push_list(out, "", SHELLS);
                end_selectors(out);
            }),
        });
    }
    drafts.extend(peer_addresses(finding));
    drafts
}
