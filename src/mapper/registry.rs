//! Routes finding categories to the component that claims them.
//!
//! Precedence, per category: a custom component (from `--plugin`,
//! `--plugins` or the configuration) wins over the embedded defaults. Among
//! custom components a category has one owner: a second claim, by name or
//! by a pattern that matches a category some loaded component declares, is
//! an error naming both. Patterns (`Crypto_*`) are tried after exact claims,
//! in the order they were added.

use std::collections::BTreeMap;

use super::embedded::default_component;
use super::engine::Limits;
use super::error::LoadError;
use super::plugin::{Plugin, Source};
use crate::finding::category_key;

/// The loaded components and which category goes to which.
pub struct Registry {
    plugins: Vec<Plugin>,
    /// Exact category keys → (component, custom?).
    routes: BTreeMap<String, (usize, bool)>,
    /// Custom patterns (category keys with `*`) → component, in claim order.
    patterns: Vec<(String, usize)>,
}

impl Registry {
    /// A registry with no component at all.
    pub fn empty() -> Registry {
        Registry { plugins: Vec::new(), routes: BTreeMap::new(), patterns: Vec::new() }
    }

    /// A registry with the embedded default mappings.
    pub fn with_defaults(limits: Limits) -> Result<Registry, LoadError> {
        let (component, digest) = default_component()?;
        let plugin = Plugin::from_component(component, digest.to_string(), Source::Embedded, limits, Vec::new())?;
        let mut registry = Registry::empty();
        registry.add(plugin);
        Ok(registry)
    }

    /// Adds a component as a default: it takes over every category it
    /// claims from the components added before it.
    pub fn add(&mut self, plugin: Plugin) {
        let index = self.plugins.len();
        for category in &plugin.info().categories {
            self.routes.insert(category_key(category), (index, false));
        }
        self.plugins.push(plugin);
    }

    /// Adds a custom component for `claims` (category names or `*`
    /// patterns), or for the categories it declares when `claims` is `None`.
    /// It overrides the defaults; a category another custom component
    /// already owns is an error.
    pub fn add_custom(&mut self, plugin: Plugin, claims: Option<&[String]>) -> Result<(), LoadError> {
        let index = self.plugins.len();
        let claims: Vec<String> = claims.map_or_else(|| plugin.info().categories.clone(), <[String]>::to_vec);
        let known: Vec<String> = self
            .plugins
            .iter()
            .chain(std::iter::once(&plugin))
            .flat_map(|p| p.info().categories.iter().map(|c| category_key(c)))
            .collect();
        for claim in &claims {
            let key = category_key(claim);
            let clash = if key.contains('*') {
                let exact =
                    self.routes.iter().find(|(k, (_, custom))| *custom && matches(&key, k)).map(|(_, (i, _))| *i);
                exact.or_else(|| known.iter().filter(|k| matches(&key, k)).find_map(|k| self.custom_pattern_owner(k)))
            } else {
                match self.routes.get(&key) {
                    Some((other, true)) => Some(*other),
                    _ => self.custom_pattern_owner(&key),
                }
            };
            if let Some(other) = clash {
                return Err(LoadError::DuplicateClaim {
                    category: claim.clone(),
                    first: self.plugins[other].info().describe(),
                    second: plugin.info().describe(),
                });
            }
        }
        for claim in claims {
            let key = category_key(&claim);
            if key.contains('*') {
                self.patterns.push((key, index));
            } else {
                self.routes.insert(key, (index, true));
            }
        }
        self.plugins.push(plugin);
        Ok(())
    }

    fn custom_pattern_owner(&self, key: &str) -> Option<usize> {
        self.patterns.iter().find(|(pattern, _)| matches(pattern, key)).map(|(_, index)| *index)
    }

    fn index_for(&self, key: &str) -> Option<usize> {
        match self.routes.get(key) {
            Some((index, true)) => Some(*index),
            exact => self.custom_pattern_owner(key).or(exact.map(|(index, _)| *index)),
        }
    }

    /// The component for a category key (see [`category_key`]), if any.
    pub fn route(&mut self, key: &str) -> Option<&mut Plugin> {
        let index = self.index_for(key)?;
        self.plugins.get_mut(index)
    }

    /// True when some component handles the category key.
    pub fn handles(&self, key: &str) -> bool {
        self.index_for(key).is_some()
    }

    /// The loaded components, in the order they were added.
    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }

    /// The categories (or patterns) each loaded component serves, after precedence.
    pub fn served(&self) -> Vec<Vec<String>> {
        let mut served = vec![Vec::new(); self.plugins.len()];
        for (key, (index, _)) in &self.routes {
            if self.index_for(key) == Some(*index) {
                served[*index].push(key.clone());
            }
        }
        for (pattern, index) in &self.patterns {
            served[*index].push(pattern.clone());
        }
        served
    }
}

/// True when `key` matches `pattern`, a category key where `*` stands for any text.
fn matches(pattern: &str, key: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = parts.split_first().unwrap_or((&"", &[]));
    let Some(mut remaining) = key.strip_prefix(first) else { return false };
    let Some((last, middle)) = rest.split_last() else { return remaining.is_empty() };
    for part in middle {
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns_match_whole_keys() {
        assert!(matches("crypto_*", "crypto_mining"));
        assert!(matches("*_shell", "reverse_shell"));
        assert!(matches("*escape*", "container_escape"));
        assert!(matches("a*b*c", "a_x_b_y_c"));
        assert!(!matches("crypto_*", "crypt_mining"));
        assert!(!matches("*_shell", "reverse_shells"));
        assert!(matches("exact", "exact") && !matches("exact", "exactly"));
    }
}
