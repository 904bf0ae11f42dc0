//! Where environment variables come from, injectable for tests.

use std::collections::HashMap;

/// A source of environment variables (`PGHOST`, `HOME`, ...).
///
/// [`ProcessEnvironment`] reads the real process environment; a `HashMap<String, String>`, a
/// slice of pairs or a closure serve tests without touching the process.
pub trait Environment {
    /// The variable's value, `None` when unset (or not valid UTF-8).
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// No variables at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyEnvironment;

impl Environment for EmptyEnvironment {
    fn var(&self, _name: &str) -> Option<String> {
        None
    }
}

impl<S: std::hash::BuildHasher> Environment for HashMap<String, String, S> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Environment for [(&str, &str)] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

impl<const N: usize> Environment for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.as_slice().var(name)
    }
}

impl<F: Fn(&str) -> Option<String>> Environment for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}
