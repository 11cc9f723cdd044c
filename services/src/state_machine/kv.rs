//! The key-value store: string keys to string values.
//!
//! Keys and values are UTF-8 strings (what the CLI and the JSON-lines histories carry without
//! escaping); an application storing bytes encodes them (hex, base64) itself. The map is a
//! `BTreeMap`, so iteration and the snapshot are in key order and deterministic.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{decode_snapshot, encode_snapshot, SnapshotError, StateMachine};

/// The kind byte of key-value snapshots.
pub const KV_SNAPSHOT_KIND: u8 = 1;

/// An operation on the key-value store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvOp {
    /// Sets `key` to `value` (creating it). Returns [`KvOutput::Written`].
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Reads `key`. Returns [`KvOutput::Value`] (`None` when absent). Read-only.
    Get {
        /// The key.
        key: String,
    },
    /// Removes `key`. Returns [`KvOutput::Deleted`] saying whether it existed.
    Delete {
        /// The key.
        key: String,
    },
    /// Compare-and-swap: sets `key` to `new` only if its current value is `expected`
    /// (`None`: only if absent). Returns [`KvOutput::Swapped`] or [`KvOutput::CasMismatch`]
    /// with the current value.
    Cas {
        /// The key.
        key: String,
        /// The value the key must hold (`None`: must be absent).
        expected: Option<String>,
        /// The value to set.
        new: String,
    },
}

impl KvOp {
    /// The key this operation touches.
    pub fn key(&self) -> &str {
        match self {
            KvOp::Put { key, .. }
            | KvOp::Get { key }
            | KvOp::Delete { key }
            | KvOp::Cas { key, .. } => key,
        }
    }

    /// `Put { key, value }`.
    pub fn put(key: impl Into<String>, value: impl Into<String>) -> Self {
        KvOp::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    /// `Get { key }`.
    pub fn get(key: impl Into<String>) -> Self {
        KvOp::Get { key: key.into() }
    }

    /// `Delete { key }`.
    pub fn delete(key: impl Into<String>) -> Self {
        KvOp::Delete { key: key.into() }
    }

    /// `Cas { key, expected, new }`.
    pub fn cas(key: impl Into<String>, expected: Option<&str>, new: impl Into<String>) -> Self {
        KvOp::Cas {
            key: key.into(),
            expected: expected.map(str::to_owned),
            new: new.into(),
        }
    }
}

/// What a key-value operation returns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvOutput {
    /// A put took effect.
    Written,
    /// A get's result: the value, or `None` when the key is absent.
    Value(Option<String>),
    /// A delete took effect; `existed` says whether the key was present.
    Deleted {
        /// Whether the key was present before.
        existed: bool,
    },
    /// A compare-and-swap matched and set the new value.
    Swapped,
    /// A compare-and-swap did not match; nothing changed.
    CasMismatch {
        /// The key's value at that moment.
        current: Option<String>,
    },
}

impl KvOutput {
    /// `Value(Some(v))`.
    pub fn value(v: &str) -> Self {
        KvOutput::Value(Some(v.to_owned()))
    }
}

/// The key-value store state machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KvStore {
    entries: BTreeMap<String, String>,
}

impl KvStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`, if any (a local read, outside any replication).
    pub fn value(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All entries in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl StateMachine for KvStore {
    type Operation = KvOp;
    type Output = KvOutput;

    fn apply(&mut self, op: &KvOp) -> KvOutput {
        match op {
            KvOp::Put { key, value } => {
                self.entries.insert(key.clone(), value.clone());
                KvOutput::Written
            }
            KvOp::Get { key } => KvOutput::Value(self.entries.get(key).cloned()),
            KvOp::Delete { key } => KvOutput::Deleted {
                existed: self.entries.remove(key).is_some(),
            },
            KvOp::Cas { key, expected, new } => {
                let current = self.entries.get(key);
                if current == expected.as_ref() {
                    self.entries.insert(key.clone(), new.clone());
                    KvOutput::Swapped
                } else {
                    KvOutput::CasMismatch {
                        current: current.cloned(),
                    }
                }
            }
        }
    }

    fn preview(&self, op: &KvOp) -> Option<KvOutput> {
        Some(match op {
            KvOp::Put { .. } => KvOutput::Written,
            KvOp::Get { key } => KvOutput::Value(self.entries.get(key).cloned()),
            KvOp::Delete { key } => KvOutput::Deleted {
                existed: self.entries.contains_key(key),
            },
            KvOp::Cas { key, expected, .. } => {
                let current = self.entries.get(key);
                if current == expected.as_ref() {
                    KvOutput::Swapped
                } else {
                    KvOutput::CasMismatch {
                        current: current.cloned(),
                    }
                }
            }
        })
    }

    fn is_read_only(op: &KvOp) -> bool {
        matches!(op, KvOp::Get { .. })
    }

    fn keys(op: &KvOp) -> Vec<String> {
        vec![op.key().to_owned()]
    }

    fn snapshot(&self) -> Bytes {
        encode_snapshot(KV_SNAPSHOT_KIND, &self.entries)
    }

    fn restore(bytes: &[u8]) -> Result<Self, SnapshotError> {
        Ok(KvStore {
            entries: decode_snapshot(KV_SNAPSHOT_KIND, bytes)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_machine::{decode_value, encode_value};
    use proptest::prelude::*;

    #[test]
    fn put_get_delete() {
        let mut kv = KvStore::new();
        assert_eq!(kv.apply(&KvOp::get("a")), KvOutput::Value(None));
        assert_eq!(kv.apply(&KvOp::put("a", "1")), KvOutput::Written);
        assert_eq!(kv.apply(&KvOp::get("a")), KvOutput::value("1"));
        assert_eq!(kv.apply(&KvOp::put("a", "2")), KvOutput::Written);
        assert_eq!(kv.apply(&KvOp::get("a")), KvOutput::value("2"));
        assert_eq!(
            kv.apply(&KvOp::delete("a")),
            KvOutput::Deleted { existed: true }
        );
        assert_eq!(
            kv.apply(&KvOp::delete("a")),
            KvOutput::Deleted { existed: false }
        );
        assert_eq!(kv.apply(&KvOp::get("a")), KvOutput::Value(None));
        assert!(kv.is_empty());
    }

    #[test]
    fn compare_and_swap() {
        let mut kv = KvStore::new();
        // Absent expected: only when absent.
        assert_eq!(kv.apply(&KvOp::cas("k", None, "1")), KvOutput::Swapped);
        assert_eq!(
            kv.apply(&KvOp::cas("k", None, "2")),
            KvOutput::CasMismatch {
                current: Some("1".into())
            }
        );
        assert_eq!(
            kv.apply(&KvOp::cas("k", Some("0"), "2")),
            KvOutput::CasMismatch {
                current: Some("1".into())
            }
        );
        assert_eq!(kv.value("k"), Some("1"));
        assert_eq!(kv.apply(&KvOp::cas("k", Some("1"), "2")), KvOutput::Swapped);
        assert_eq!(kv.value("k"), Some("2"));
        assert_eq!(
            kv.apply(&KvOp::cas("other", Some("x"), "y")),
            KvOutput::CasMismatch { current: None }
        );
        assert_eq!(kv.value("other"), None);
    }

    #[test]
    fn read_only_and_keys() {
        assert!(KvStore::is_read_only(&KvOp::get("a")));
        assert!(!KvStore::is_read_only(&KvOp::put("a", "b")));
        assert!(!KvStore::is_read_only(&KvOp::delete("a")));
        assert!(!KvStore::is_read_only(&KvOp::cas("a", None, "b")));
        assert_eq!(KvStore::keys(&KvOp::cas("a", None, "b")), vec!["a"]);
    }

    #[test]
    fn snapshot_round_trip_and_corruption() {
        let mut kv = KvStore::new();
        kv.apply(&KvOp::put("a", "1"));
        kv.apply(&KvOp::put("b", "héllo"));
        let snap = kv.snapshot();
        assert_eq!(KvStore::restore(&snap).unwrap(), kv);
        assert_eq!(
            KvStore::restore(&KvStore::new().snapshot()).unwrap(),
            KvStore::new()
        );
        let mut bad = snap.to_vec();
        let mid = bad.len() / 2;
        bad[mid] ^= 1;
        assert_eq!(KvStore::restore(&bad), Err(SnapshotError::Checksum));
        assert!(KvStore::restore(&[]).is_err());
        assert!(KvStore::restore(b"garbage that is long enough to pass the length check").is_err());
        // A bank snapshot is not a key-value snapshot.
        let bank = crate::state_machine::bank::Bank::new().snapshot();
        assert!(matches!(
            KvStore::restore(&bank),
            Err(SnapshotError::WrongMachine { .. })
        ));
    }

    #[test]
    fn json_shape_of_operations() {
        // The shape recorded histories use (docs/ARCHITECTURE.md).
        assert_eq!(
            serde_json::to_string(&KvOp::put("x", "1")).unwrap(),
            r#"{"put":{"key":"x","value":"1"}}"#
        );
        assert_eq!(
            serde_json::to_string(&KvOutput::value("1")).unwrap(),
            r#"{"value":"1"}"#
        );
        assert_eq!(
            serde_json::to_string(&KvOutput::Written).unwrap(),
            r#""written""#
        );
    }

    fn arb_op() -> impl Strategy<Value = KvOp> {
        let key = prop::sample::select(vec!["a", "b", "c"]).prop_map(str::to_owned);
        let val = prop::sample::select(vec!["1", "2", "3"]).prop_map(str::to_owned);
        prop_oneof![
            (key.clone(), val.clone()).prop_map(|(k, v)| KvOp::Put { key: k, value: v }),
            key.clone().prop_map(|k| KvOp::Get { key: k }),
            key.clone().prop_map(|k| KvOp::Delete { key: k }),
            (key, prop::option::of(val.clone()), val).prop_map(|(k, e, n)| KvOp::Cas {
                key: k,
                expected: e,
                new: n
            }),
        ]
    }

    proptest! {
        /// Determinism: two replicas applying the same operations agree on outputs and state;
        /// a replica restored from a snapshot taken midway continues identically; reads change
        /// nothing; operations and outputs survive the bincode codec.
        #[test]
        fn replicas_agree(ops in prop::collection::vec(arb_op(), 0..60), cut in 0usize..60) {
            let mut a = KvStore::new();
            let mut b = KvStore::new();
            let cut = cut.min(ops.len());
            for op in &ops[..cut] {
                prop_assert_eq!(a.apply(op), b.apply(op));
            }
            let mut c = KvStore::restore(&a.snapshot()).unwrap();
            for op in &ops[cut..] {
                let before = a.clone();
                let out = a.apply(op);
                prop_assert_eq!(&out, &b.apply(op));
                prop_assert_eq!(&out, &c.apply(op));
                if KvStore::is_read_only(op) {
                    prop_assert_eq!(&before, &a);
                }
                prop_assert_eq!(decode_value::<KvOp>(&encode_value(op)).unwrap(), op.clone());
                prop_assert_eq!(decode_value::<KvOutput>(&encode_value(&out)).unwrap(), out);
            }
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(&a, &c);
        }

        /// `preview` answers what `apply` will answer and changes nothing.
        #[test]
        fn preview_is_apply_without_the_change(ops in prop::collection::vec(arb_op(), 0..60)) {
            let mut store = KvStore::new();
            for op in &ops {
                let before = store.clone();
                let previewed = store.preview(op);
                prop_assert_eq!(&before, &store);
                prop_assert_eq!(previewed, Some(store.apply(op)));
            }
        }

        /// Arbitrary bytes never restore (and never panic).
        #[test]
        fn arbitrary_bytes_refused(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            prop_assert!(KvStore::restore(&bytes).is_err());
        }
    }
}
