//! The cluster's own addresses, read from the API server, for the block
//! guardrails: node addresses, pod ranges, service ranges, the API server
//! and the cluster DNS. Reading them may fail (RBAC); then nothing is
//! blocked, since a guardrail that cannot see is no guardrail.

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Endpoints, Node, Service};
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::api::{Api, ListParams};

use super::connect::Cluster;
use super::error::ClusterError;
use crate::guardrails::Protected;

impl Cluster {
    /// Everything a block must not cut off in this cluster.
    pub async fn protected(&self) -> Result<Protected, ClusterError> {
        let mut protected = Protected::baseline();
        let client = self.client().clone();
        let nodes: Api<Node> = Api::all(client.clone());
        let nodes = nodes
            .list(&ListParams::default())
            .await
            .map_err(|e| ClusterError::from_kube("reading the nodes (the block guardrails need their addresses)", e))?;
        for node in nodes.items {
            let name = node.metadata.name.unwrap_or_default();
            let spec = node.spec.unwrap_or_default();
            for cidr in spec.pod_cidrs.unwrap_or_default().into_iter().chain(spec.pod_cidr) {
                if let Ok(net) = cidr.parse::<IpNet>() {
                    protected.range(net, format!("the pod range of node {name}"), true);
                }
            }
            for address in node.status.and_then(|s| s.addresses).unwrap_or_default() {
                if let Ok(ip) = address.address.parse::<IpAddr>() {
                    protected.address(ip, format!("node {name} ({})", address.type_));
                }
            }
        }
        let services: Api<ServiceCIDR> = Api::all(client.clone());
        match services.list(&ListParams::default()).await {
            Ok(list) => {
                for range in list.items {
                    for cidr in range.spec.and_then(|s| s.cidrs).unwrap_or_default() {
                        if let Ok(net) = cidr.parse::<IpNet>() {
                            protected.range(net, "the service range", true);
                        }
                    }
                }
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {
                tracing::warn!(
                    "the cluster has no ServiceCIDR API; only the API server and DNS service IPs are protected"
                );
            }
            Err(e) => return Err(ClusterError::from_kube("reading the service ranges", e)),
        }
        for (namespace, name, what) in [
            ("default", "kubernetes", "the API server service"),
            ("kube-system", "kube-dns", "the cluster DNS service"),
        ] {
            let api: Api<Service> = Api::namespaced(client.clone(), namespace);
            let service = api
                .get_opt(name)
                .await
                .map_err(|e| ClusterError::from_kube(format!("reading service {namespace}/{name}"), e))?;
            let Some(spec) = service.and_then(|s| s.spec) else { continue };
            for ip in spec.cluster_ips.unwrap_or_default().into_iter().chain(spec.cluster_ip) {
                if let Ok(ip) = ip.parse::<IpAddr>() {
                    protected.address(ip, what);
                }
            }
            for port in spec.ports.unwrap_or_default() {
                if name == "kubernetes"
                    && let Ok(number) = u16::try_from(port.port)
                {
                    protected.port(number, "the API server service's port", true);
                }
            }
        }
        let endpoints: Api<Endpoints> = Api::namespaced(client, "default");
        if let Some(found) = endpoints
            .get_opt("kubernetes")
            .await
            .map_err(|e| ClusterError::from_kube("reading the API server's endpoints", e))?
        {
            for subset in found.subsets.unwrap_or_default() {
                for address in subset.addresses.unwrap_or_default() {
                    if let Ok(ip) = address.ip.parse::<IpAddr>() {
                        protected.address(ip, "the API server");
                    }
                }
                for port in subset.ports.unwrap_or_default() {
                    if let Ok(number) = u16::try_from(port.port) {
                        protected.port(number, "the API server's port", true);
                    }
                }
            }
        }
        Ok(protected)
    }
}
