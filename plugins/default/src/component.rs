//! The WASM component glue: WIT types in, [`crate::map_finding`], WIT types out.
//!
//! It is a `category-selective-mapper`: it says per category which fields its
//! rule reads ([`crate::CATEGORIES`]), so the host sends a finding only those
//! and maps each distinct combination of them once. A container escape, which
//! reads nothing but the namespace, is mapped once per namespace.

wit_bindgen::generate!({ path: "../../wit", world: "category-selective-mapper" });

use qualys::respond::types::Scope;

struct DefaultMapper;

impl Guest for DefaultMapper {
    fn info() -> MapperInfo {
        MapperInfo {
            name: crate::NAME.into(),
            version: crate::VERSION.into(),
            categories: crate::CATEGORIES.iter().map(|c| c.name.to_string()).collect(),
        }
    }

    fn reads() -> Vec<String> {
        let mut fields = vec!["category".to_string()];
        for field in crate::CATEGORIES.iter().flat_map(|c| c.reads) {
            if !fields.iter().any(|f| f == field) {
                fields.push(field.to_string());
            }
        }
        fields
    }

    fn reads_by_category() -> Vec<(String, Vec<String>)> {
        crate::CATEGORIES
            .iter()
            .map(|c| (c.name.to_string(), c.reads.iter().map(|f| f.to_string()).collect()))
            .collect()
    }

    fn configure(settings: Vec<(String, String)>) -> Result<(), String> {
        match settings.first() {
            None => Ok(()),
            Some((key, _)) => Err(format!("the default mapper takes no settings (got {key:?})")),
        }
    }

    fn map_finding(finding: Finding) -> Result<Vec<Policy>, String> {
        let input = crate::Finding {
            category: finding.category,
            namespace: finding.namespace,
            binary: finding.process.map(|p| p.binary),
            destination_ip: finding.destination_ip,
            destination_port: finding.destination_port,
        };
        Ok(crate::map_finding(&input)?
            .into_iter()
            .map(|p| Policy {
                template: p.template.into(),
                technique: p.technique.into(),
                scope: match p.scope {
                    crate::Scope::Cluster => Scope::Cluster,
                    crate::Scope::Namespace(ns) => Scope::Namespace(ns),
                },
                indicators: p.indicators,
                spec: p.spec,
            })
            .collect())
    }
}

export!(DefaultMapper);
