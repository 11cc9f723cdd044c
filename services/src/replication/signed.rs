//! Signed replies: what lets a front end trust `f + 1` matching replies when up to `f`
//! replica managers may lie (the Byzantine strategy, `active-byzantine`).
//!
//! The cluster key authenticates a frame as coming from *some* node of the cluster; it
//! cannot tell which, since every node holds it. So each replica manager holds an Ed25519
//! signing key of its own, front ends know every replica manager's public key (listed in
//! the configuration by node id), and every reply travels as a [`SignedReply`]: the encoded
//! [`Reply`](super::Reply), the replica's node id, and its signature over a domain tag, the
//! group's name, that node id and the reply's bytes. A replica cannot speak for another
//! (it lacks the other's key), cannot move a reply to another group, and a reply names its
//! request id, so it cannot be replayed as the answer to another request.
//!
//! - [`SigningCore`] wraps any [`ReplicaCore`] and signs every reply it gives (refusals stay
//!   unsigned: a refusal never counts as a result);
//! - [`ReplyQuorum`] gathers the signed replies to one request and yields the reply once
//!   `f + 1` distinct replica managers signed the same bytes: at least one of them is
//!   correct, so the reply is the one the correct replicas computed;
//! - key files: [`generate_signing_key`], [`write_signing_key`], [`load_signing_key`] (the
//!   secret as 64 hex digits), and [`ReplicaKeys`] for the public keys.

use super::{Action, ReplicaCore, StoreError};
use bytes::Bytes;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use viewsync::runtime::ServiceEvent;
use viewsync::{GroupName, NodeId, ViewId};

/// What every signature covers first, so that a signature made for something else (another
/// protocol, another version of this one) never verifies as a reply's.
pub const SIGNATURE_DOMAIN: &[u8] = b"viewsync/signed-reply/v1\0";

/// A reply and the signature of the replica manager that gave it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedReply {
    /// The replica manager's node id (whose public key verifies the signature).
    pub replica: NodeId,
    /// The encoded [`Reply`](super::Reply).
    pub reply: Bytes,
    /// Ed25519 over [`SIGNATURE_DOMAIN`], the group, `replica` and `reply`.
    pub signature: Bytes,
}

/// The bytes a reply's signature covers.
fn signed_bytes(group: &GroupName, replica: NodeId, reply: &[u8]) -> Vec<u8> {
    let group = group.as_str().as_bytes();
    let mut bytes = Vec::with_capacity(SIGNATURE_DOMAIN.len() + 16 + group.len() + reply.len());
    bytes.extend_from_slice(SIGNATURE_DOMAIN);
    // Lengths make the encoding unambiguous: no (group, reply) pair reads as another.
    bytes.extend_from_slice(&(group.len() as u64).to_le_bytes());
    bytes.extend_from_slice(group);
    bytes.extend_from_slice(&replica.0.to_le_bytes());
    bytes.extend_from_slice(reply);
    bytes
}

/// A replica manager's signing key, for its group.
#[derive(Clone)]
pub struct ReplicaSigner {
    replica: NodeId,
    group: GroupName,
    key: SigningKey,
}

impl ReplicaSigner {
    /// The signer of replica `replica` (its node id) in `group`.
    pub fn new(replica: NodeId, group: GroupName, key: SigningKey) -> Self {
        ReplicaSigner {
            replica,
            group,
            key,
        }
    }

    /// Signs an encoded reply.
    pub fn sign(&self, reply: Bytes) -> SignedReply {
        let signature = self
            .key
            .sign(&signed_bytes(&self.group, self.replica, &reply));
        SignedReply {
            replica: self.replica,
            reply,
            signature: Bytes::copy_from_slice(&signature.to_bytes()),
        }
    }

    /// The public key that verifies this signer's replies.
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }
}

impl std::fmt::Debug for ReplicaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaSigner")
            .field("replica", &self.replica)
            .field("group", &self.group)
            .field("public_key", &hex::encode(self.public_key().as_bytes()))
            .finish()
    }
}

/// A key or key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not a key: 64 hexadecimal digits (32 bytes) are expected.
    #[error("{what}: {problem} (an Ed25519 key is 64 hexadecimal digits)")]
    Malformed {
        /// Which key.
        what: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// A new random signing key.
pub fn generate_signing_key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

/// Writes `key`'s secret to `path` as 64 hex digits and a newline, readable by its owner
/// only; refuses to overwrite an existing file.
pub fn write_signing_key(path: &Path, key: &SigningKey) -> Result<(), KeyError> {
    use std::io::Write;
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    file.write_all(format!("{}\n", hex::encode(key.to_bytes())).as_bytes())
        .map_err(io)?;
    file.sync_all().map_err(io)
}

/// Reads a signing key file written by [`write_signing_key`].
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bytes = key_bytes(&text, &path.display().to_string())?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// A public key from its 64 hex digits; `what` names it in the error.
pub fn parse_public_key(text: &str, what: &str) -> Result<VerifyingKey, KeyError> {
    let bytes = key_bytes(text, what)?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| KeyError::Malformed {
        what: what.to_string(),
        problem: format!("not an Ed25519 public key ({e})"),
    })
}

/// `key`'s public key as 64 hex digits (what the configuration lists).
pub fn public_key_hex(key: &VerifyingKey) -> String {
    hex::encode(key.as_bytes())
}

fn key_bytes(text: &str, what: &str) -> Result<[u8; 32], KeyError> {
    let malformed = |problem: String| KeyError::Malformed {
        what: what.to_string(),
        problem,
    };
    let bytes = hex::decode(text.trim()).map_err(|e| malformed(e.to_string()))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| malformed(format!("{} bytes, not 32", bytes.len())))
}

/// The public keys of a group's replica managers, by node id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaKeys {
    keys: BTreeMap<NodeId, VerifyingKey>,
}

/// Why a signed reply does not count.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyRejected {
    /// It does not decode as a signed reply.
    #[error("not a signed reply: {0}")]
    Malformed(String),
    /// It names a replica whose key is not listed.
    #[error("signed by node {0}, which is not a listed replica manager")]
    UnknownReplica(NodeId),
    /// The signature does not verify with the named replica's key (a forgery, a reply for
    /// another group, or bytes changed on the way).
    #[error("the signature of node {0} does not verify")]
    BadSignature(NodeId),
}

impl ReplicaKeys {
    /// The keys of `keys`.
    pub fn new(keys: BTreeMap<NodeId, VerifyingKey>) -> Self {
        ReplicaKeys { keys }
    }

    /// How many replica managers are listed.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The public key listed for `replica`.
    pub fn verify_key(&self, replica: NodeId) -> Option<VerifyingKey> {
        self.keys.get(&replica).copied()
    }

    /// The listed replica managers' node ids.
    pub fn replicas(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.keys.keys().copied()
    }

    /// Decodes `bytes` as a signed reply of `group` and checks its signature.
    pub fn verify(&self, group: &GroupName, bytes: &[u8]) -> Result<SignedReply, ReplyRejected> {
        let signed: SignedReply = super::decode(bytes).map_err(ReplyRejected::Malformed)?;
        let key = self
            .keys
            .get(&signed.replica)
            .ok_or(ReplyRejected::UnknownReplica(signed.replica))?;
        let signature = Signature::from_slice(&signed.signature)
            .map_err(|_| ReplyRejected::BadSignature(signed.replica))?;
        key.verify(
            &signed_bytes(group, signed.replica, &signed.reply),
            &signature,
        )
        .map_err(|_| ReplyRejected::BadSignature(signed.replica))?;
        Ok(signed)
    }
}

/// The signed replies to one request, until `f + 1` distinct replica managers signed the
/// same reply. Each replica counts once: the first reply it signed is its vote (a second,
/// different one is equivocation, and is ignored).
#[derive(Clone, Debug)]
pub struct ReplyQuorum {
    f: usize,
    votes: BTreeMap<NodeId, Bytes>,
}

impl ReplyQuorum {
    /// A quorum tolerating `f` lying replica managers.
    pub fn new(f: usize) -> Self {
        ReplyQuorum {
            f,
            votes: BTreeMap::new(),
        }
    }

    /// Counts `signed` (already verified). Returns the reply once `f + 1` replicas signed it.
    pub fn offer(&mut self, signed: SignedReply) -> Option<Bytes> {
        self.votes.entry(signed.replica).or_insert(signed.reply);
        let reply = &self.votes[&signed.replica];
        let agreeing = self.votes.values().filter(|v| *v == reply).count();
        (agreeing > self.f).then(|| reply.clone())
    }

    /// The replicas that have voted.
    pub fn voters(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.votes.keys().copied()
    }

    /// How many different replies were signed (more than one: some replica lies).
    pub fn distinct_replies(&self) -> usize {
        self.votes.values().collect::<BTreeSet<_>>().len()
    }
}

/// Signs every reply of the core it wraps (see the [module documentation](self)).
pub struct SigningCore {
    inner: Box<dyn ReplicaCore>,
    signer: ReplicaSigner,
}

impl SigningCore {
    /// `inner`, whose replies `signer` signs.
    pub fn new(inner: Box<dyn ReplicaCore>, signer: ReplicaSigner) -> Self {
        SigningCore { inner, signer }
    }

    fn sign(&self, actions: Vec<Action>) -> Vec<Action> {
        actions
            .into_iter()
            .map(|action| match action {
                Action::Reply {
                    to,
                    outcome: Ok(reply),
                } => Action::Reply {
                    to,
                    outcome: Ok(super::encode(&self.signer.sign(reply))),
                },
                other => other,
            })
            .collect()
    }
}

impl ReplicaCore for SigningCore {
    fn handle(&mut self, event: &ServiceEvent) -> Result<Vec<Action>, StoreError> {
        let actions = self.inner.handle(event)?;
        Ok(self.sign(actions))
    }

    fn tick(&mut self, now: std::time::Duration) -> Result<Vec<Action>, StoreError> {
        let actions = self.inner.tick(now)?;
        Ok(self.sign(actions))
    }

    fn snapshot(&self) -> Bytes {
        self.inner.snapshot()
    }

    fn needs_sync(&self) -> bool {
        self.inner.needs_sync()
    }

    fn snapshot_for(&mut self, view: ViewId) -> Bytes {
        self.inner.snapshot_for(view)
    }

    fn delta(&self, view: ViewId, since: u64) -> Option<Bytes> {
        self.inner.delta(view, since)
    }

    fn position(&self) -> Option<u64> {
        self.inner.position()
    }

    fn log_records(&self) -> Option<u64> {
        self.inner.log_records()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str) -> GroupName {
        GroupName::new(name).unwrap()
    }

    fn signers(n: u64) -> (Vec<ReplicaSigner>, ReplicaKeys) {
        let signers: Vec<ReplicaSigner> = (1..=n)
            .map(|i| ReplicaSigner::new(NodeId(i), group("kv"), generate_signing_key()))
            .collect();
        let keys = signers
            .iter()
            .map(|s| (s.replica, s.public_key()))
            .collect();
        (signers, ReplicaKeys::new(keys))
    }

    fn encoded(signed: &SignedReply) -> Bytes {
        super::super::encode(signed)
    }

    #[test]
    fn a_signed_reply_verifies_with_its_replicas_key_only() {
        let (signers, keys) = signers(3);
        let signed = signers[0].sign(Bytes::from_static(b"reply"));
        assert_eq!(
            keys.verify(&group("kv"), &encoded(&signed)),
            Ok(signed.clone())
        );
        // Another group: the signature covers the group's name.
        assert_eq!(
            keys.verify(&group("other"), &encoded(&signed)),
            Err(ReplyRejected::BadSignature(NodeId(1)))
        );
        // Replica 2 cannot speak for replica 1: it signs with its own key.
        let mut forged = signers[1].sign(Bytes::from_static(b"reply"));
        forged.replica = NodeId(1);
        assert_eq!(
            keys.verify(&group("kv"), &encoded(&forged)),
            Err(ReplyRejected::BadSignature(NodeId(1)))
        );
        // Changed bytes, an unlisted replica, garbage.
        let mut changed = signed.clone();
        changed.reply = Bytes::from_static(b"replz");
        assert_eq!(
            keys.verify(&group("kv"), &encoded(&changed)),
            Err(ReplyRejected::BadSignature(NodeId(1)))
        );
        let mut stranger = signed.clone();
        stranger.replica = NodeId(9);
        assert_eq!(
            keys.verify(&group("kv"), &encoded(&stranger)),
            Err(ReplyRejected::UnknownReplica(NodeId(9)))
        );
        let mut short = signed;
        short.signature = Bytes::from_static(b"too short");
        assert_eq!(
            keys.verify(&group("kv"), &encoded(&short)),
            Err(ReplyRejected::BadSignature(NodeId(1)))
        );
        assert!(matches!(
            keys.verify(&group("kv"), b"\xff\xff\xff"),
            Err(ReplyRejected::Malformed(_))
        ));
    }

    #[test]
    fn a_quorum_needs_f_plus_one_distinct_replicas_signing_the_same_reply() {
        let (signers, _) = signers(3);
        let good = Bytes::from_static(b"42");
        let bad = Bytes::from_static(b"13");
        let mut quorum = ReplyQuorum::new(1);
        // The liar answers first, then again (a replica counts once), then says otherwise.
        assert_eq!(quorum.offer(signers[2].sign(bad.clone())), None);
        assert_eq!(quorum.offer(signers[2].sign(bad.clone())), None);
        assert_eq!(quorum.offer(signers[2].sign(good.clone())), None);
        assert_eq!(quorum.offer(signers[0].sign(good.clone())), None);
        assert_eq!(quorum.distinct_replies(), 2);
        assert_eq!(quorum.offer(signers[1].sign(good.clone())), Some(good));
        // With f = 0 (crash mode) the first reply is the result.
        let mut first = ReplyQuorum::new(0);
        assert_eq!(first.offer(signers[2].sign(bad.clone())), Some(bad));
    }

    #[test]
    fn key_files_round_trip_and_bad_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replica.key");
        let key = generate_signing_key();
        write_signing_key(&path, &key).unwrap();
        assert_eq!(load_signing_key(&path).unwrap().to_bytes(), key.to_bytes());
        // Never overwritten.
        assert!(matches!(
            write_signing_key(&path, &generate_signing_key()),
            Err(KeyError::Io { .. })
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let public = public_key_hex(&key.verifying_key());
        assert_eq!(
            parse_public_key(&public, "node 1").unwrap(),
            key.verifying_key()
        );
        for bad in ["", "zz", &public[..62], &format!("{public}00")] {
            let error = parse_public_key(bad, "node 1").unwrap_err();
            assert!(error.to_string().starts_with("node 1:"), "{error}");
        }
        std::fs::write(&path, "not a key\n").unwrap();
        assert!(matches!(
            load_signing_key(&path),
            Err(KeyError::Malformed { .. })
        ));
    }
}
