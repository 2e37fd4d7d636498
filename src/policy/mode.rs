//! Audit or enforce: the host, not the mapper, decides whether enforcing
//! actions enforce, so no component can bypass audit mode. In enforce mode
//! each action stays what the mapper asked for (`Sigkill`, `Override` with
//! its `argError`, `Signal` with its `argSig`, `NotifyEnforcer`); in audit
//! mode each becomes `Post`, and the `enforce-actions` annotation keeps the
//! original, so `promote` restores it exactly.

use serde_json::{Value, json};

use super::spec::{ACTION_LISTS, ENFORCING_ACTIONS, for_each_action_holder_mut};

/// Whether enforcing actions enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mode {
    /// Audit: every enforcing action becomes `Post` (log only).
    #[default]
    #[value(name = "Post", alias = "post", alias = "audit")]
    Post,
    /// Enforce: enforcing actions stay as the mapper wrote them (Sigkill,
    /// Override, Signal, NotifyEnforcer).
    #[value(name = "Sigkill", alias = "sigkill", alias = "enforce")]
    Sigkill,
}

impl Mode {
    /// The value of the `qualys-respond.io/mode` label.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Post => "audit",
            Mode::Sigkill => "enforce",
        }
    }

    /// The action of a block policy in this mode.
    pub fn action(self) -> &'static str {
        match self {
            Mode::Post => "Post",
            Mode::Sigkill => "Sigkill",
        }
    }

    /// Puts `spec` in this mode: in audit mode every enforcing action (in
    /// `matchActions` and `matchReturnActions`, hooks and selector macros
    /// alike) becomes `Post`; in both modes a mapper's `policy-mode` option,
    /// which would otherwise override the mode in the agent, is dropped.
    pub fn apply(self, spec: &mut Value) {
        for_each_action_holder_mut(spec, |selector| self.rewrite_selector(selector));
        if let Some(options) = spec.get_mut("options").and_then(Value::as_array_mut) {
            options.retain(|o| o.get("name").and_then(Value::as_str) != Some("policy-mode"));
        }
    }

    fn rewrite_selector(self, selector: &mut Value) {
        for key in ACTION_LISTS {
            if let Some(actions) = selector.get_mut(*key).and_then(Value::as_array_mut) {
                self.rewrite_actions(actions);
            }
        }
    }

    /// Rewrites the enforcing actions of one `matchActions` list: to `Post`
    /// in audit mode; in enforce mode the list stays as it is.
    pub fn rewrite_actions(self, actions: &mut Vec<Value>) {
        if self == Mode::Sigkill {
            return;
        }
        for action in actions.iter_mut() {
            let name = action.get("action").and_then(Value::as_str).unwrap_or_default();
            if ENFORCING_ACTIONS.contains(&name) {
                *action = json!({ "action": self.action() });
            }
        }
        // Two enforcing actions rewritten to the same one would repeat it.
        let mut seen = Vec::new();
        actions.retain(|a| {
            let keep = !seen.contains(a);
            seen.push(a.clone());
            keep
        });
    }

    /// The mode a `qualys-respond.io/mode` label names.
    pub fn from_label(label: &str) -> Option<Mode> {
        [Mode::Post, Mode::Sigkill].into_iter().find(|m| m.label() == label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Value {
        json!({
            "options": [{"name": "policy-mode", "value": "monitor"}, {"name": "disable-kprobe-multi", "value": "1"}],
            "kprobes": [{"call": "security_file_open", "syscall": false, "selectors": [
                {"matchActions": [{"action": "Override", "argError": -1}, {"action": "Sigkill"}]},
                {"matchActions": [{"action": "Post", "rateLimit": "1m"}]},
            ]}],
            "lsmhooks": [{"hook": "file_open", "selectors": [{"matchActions": [{"action": "Signal", "argSig": 9}]}]}],
            "selectorsMacros": {"kill": {"matchReturnActions": [{"action": "Sigkill"}]}},
        })
    }

    #[test]
    fn audit_turns_every_enforcing_action_into_post() {
        let mut s = spec();
        Mode::Post.apply(&mut s);
        assert_eq!(s["kprobes"][0]["selectors"][0]["matchActions"], json!([{"action": "Post"}]));
        assert_eq!(s["kprobes"][0]["selectors"][1]["matchActions"], json!([{"action": "Post", "rateLimit": "1m"}]));
        assert_eq!(s["lsmhooks"][0]["selectors"][0]["matchActions"], json!([{"action": "Post"}]));
        assert_eq!(s["selectorsMacros"]["kill"]["matchReturnActions"], json!([{"action": "Post"}]), "macros too");
        assert_eq!(s["options"], json!([{"name": "disable-kprobe-multi", "value": "1"}]));
    }

    #[test]
    fn enforce_keeps_what_the_mapper_asked_for() {
        let mut s = spec();
        Mode::Sigkill.apply(&mut s);
        assert_eq!(
            s["kprobes"][0]["selectors"][0]["matchActions"],
            json!([{"action": "Override", "argError": -1}, {"action": "Sigkill"}])
        );
        assert_eq!(s["lsmhooks"][0]["selectors"][0]["matchActions"], json!([{"action": "Signal", "argSig": 9}]));
        assert_eq!(s["selectorsMacros"]["kill"]["matchReturnActions"], json!([{"action": "Sigkill"}]));
        assert_eq!(s["options"], json!([{"name": "disable-kprobe-multi", "value": "1"}]), "policy-mode dropped");
    }
}
