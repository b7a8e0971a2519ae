//! An operator's key and its signatures: the ed25519 identity behind `bfgg
//! id` (`<data dir>/operator.key`), the [`Mandate`]s it signs, and checking
//! a mandate's signature against the public key its operator's peer id
//! carries. Who may act is the cluster's policy
//! (`crate::cluster::operators`); this is only the cryptography, kept with
//! the rest of libp2p.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use bfgg_protocol::NodeId;
use bfgg_protocol::mesh::{Mandate, Order};
use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey};

/// Checks that `m` was signed by the key of the peer id it names.
pub fn verify_mandate(m: &Mandate) -> Result<(), String> {
    let key = public_key(&m.operator)?;
    if key.verify(
        &Mandate::signed_bytes(&m.order, m.signed_at_ms),
        &m.signature,
    ) {
        Ok(())
    } else {
        Err("its signature does not verify".into())
    }
}

/// A peer id as an operators list holds it, checked to be one.
pub fn parse_peer_id(text: &str) -> Result<NodeId, String> {
    PeerId::from_str(text).map_err(|e| format!("{text:?} is not a peer id ({e})"))?;
    Ok(NodeId(text.to_string()))
}

/// The public key inside an ed25519 peer id (ids of larger keys hash them
/// and cannot be checked; bfgg's are ed25519).
fn public_key(id: &NodeId) -> Result<PublicKey, String> {
    let peer = PeerId::from_str(&id.0).map_err(|e| format!("{id} is not a peer id ({e})"))?;
    let hash: &libp2p::multihash::Multihash<64> = peer.as_ref();
    if hash.code() != 0 {
        return Err(format!("{id} does not carry its public key"));
    }
    PublicKey::try_decode_protobuf(hash.digest()).map_err(|e| format!("{id}: {e}"))
}

/// An operator's own key: `<data dir>/operator.key`, created (mode 0600)
/// on first use, so its id is stable.
pub struct OperatorKey {
    keypair: Keypair,
    path: PathBuf,
}

impl std::fmt::Debug for OperatorKey {
    /// Its id and where it is kept; never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorKey")
            .field("id", &self.id())
            .field("path", &self.path)
            .finish()
    }
}

impl OperatorKey {
    /// Loads the key at `path`, creating it if missing.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            keypair: super::identity::load_or_create(path)?,
            path: path.to_path_buf(),
        })
    }

    /// A key of its own, in memory (tests, the demo).
    pub fn ephemeral() -> Self {
        Self {
            keypair: Keypair::generate_ed25519(),
            path: PathBuf::new(),
        }
    }

    /// Its operator id (a peer id).
    pub fn id(&self) -> NodeId {
        NodeId(self.keypair.public().to_peer_id().to_string())
    }

    /// Where it is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Signs `order` now.
    pub fn mandate(&self, order: Order, now_ms: u64) -> Mandate {
        let signature = self
            .keypair
            .sign(&Mandate::signed_bytes(&order, now_ms))
            .unwrap_or_default();
        Mandate {
            operator: self.id(),
            order,
            signed_at_ms: now_ms,
            signature,
        }
    }
}
