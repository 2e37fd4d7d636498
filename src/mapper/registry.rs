//! Routes finding categories to the component that claims them.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::embedded::{DEFAULT_MAPPER, default_component};
use super::engine::Limits;
use super::error::LoadError;
use super::plugin::{Plugin, Source};
use crate::finding::category_key;

/// The loaded components and which category goes to which.
pub struct Registry {
    plugins: Vec<Plugin>,
    routes: BTreeMap<String, usize>,
}

impl Registry {
    /// A registry with no component at all.
    pub fn empty() -> Registry {
        Registry { plugins: Vec::new(), routes: BTreeMap::new() }
    }

    /// A registry with the embedded default mappings.
    pub fn with_defaults(limits: Limits) -> Result<Registry, LoadError> {
        let digest = Sha256::digest(DEFAULT_MAPPER).iter().map(|b| format!("{b:02x}")).collect();
        let plugin = Plugin::from_component(default_component()?, digest, Source::Embedded, limits)?;
        let mut registry = Registry::empty();
        registry.add(plugin);
        Ok(registry)
    }

    /// Adds a component; it takes over every category it claims from the
    /// components added before it.
    pub fn add(&mut self, plugin: Plugin) {
        let index = self.plugins.len();
        for category in &plugin.info().categories {
            self.routes.insert(category_key(category), index);
        }
        self.plugins.push(plugin);
    }

    /// The component for a category key (see [`category_key`]), if any.
    pub fn route(&mut self, key: &str) -> Option<&mut Plugin> {
        let index = *self.routes.get(key)?;
        self.plugins.get_mut(index)
    }

    /// True when some component handles the category key.
    pub fn handles(&self, key: &str) -> bool {
        self.routes.contains_key(key)
    }

    /// The loaded components, in the order they were added.
    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }
}
