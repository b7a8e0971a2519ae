//! Identifiers that cross the wire: nodes and runs. Plain strings so this
//! crate needs no libp2p: a [`NodeId`] is the text form of a libp2p peer id.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A node: the base58 text of its libp2p peer id (stable across restarts,
/// since the identity key is persisted in the node's data dir).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub String);

impl NodeId {
    /// The last 8 characters, for tables ("…k3Xq9Pzd").
    pub fn short(&self) -> &str {
        let s = self.0.as_str();
        let cut = s.char_indices().rev().nth(7).map_or(0, |(i, _)| i);
        &s[cut..]
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A run: `<utc yyyymmdd-hhmmss>-<scenario>-<4 hex>`, unique per cluster.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RunId(pub String);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_keep_the_tail() {
        assert_eq!(
            NodeId("12D3KooWabcdefgh12345678".into()).short(),
            "12345678"
        );
        assert_eq!(NodeId("abc".into()).short(), "abc");
    }
}
