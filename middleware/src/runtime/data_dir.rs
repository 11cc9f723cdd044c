//! A node's data directory (`data_dir` in the configuration): what a node keeps across
//! restarts. That is its last incarnation, so that a restart gets a larger one even if the
//! clock was stepped back (see [`next_incarnation`]); the groups it has been a member of, so
//! that a restarted node never founds one of them again (see [`record_membership`]); and, per
//! group, the last view it installed and the latest view it accepted in a view change, which
//! recovery from a total failure needs (see [`record_last_view`], [`record_accepted_view`]).
//!
//! The file `incarnation` holds the decimal incarnation and a newline; `member-of` holds one
//! group name per line; `last-view-<group>` and `accepted-view-<group>` hold the hex of a
//! bincode encoding. Each is replaced atomically: written to a `.tmp` file, synced, renamed
//! over the old one, and the directory synced; a crash at any point leaves the old or the new
//! contents, never a torn file.

use crate::id::Incarnation;
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file holding the last incarnation, in the data directory.
pub const INCARNATION_FILE: &str = "incarnation";
/// The file listing the groups this node has been a member of, in the data directory.
pub const MEMBER_OF_FILE: &str = "member-of";

/// The data directory cannot be used. The node does not start; nothing was changed but, at
/// most, the directory created.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// The directory does not exist and cannot be created, or is not a directory.
    #[error("data_dir {path}: cannot create or open the directory: {source}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The incarnation file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The incarnation file does not hold an incarnation.
    #[error(
        "{path} is corrupt ({problem}); it must hold the last incarnation as a decimal number. \
         Removing it makes the node start from the clock alone"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A last-view file does not hold a view of its group.
    #[error(
        "{path} is corrupt ({problem}); it records the last view this node installed, which \
         recovery from a total failure needs. Removing it makes the node wait for a member \
         instead of re-forming the group"
    )]
    CorruptView {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The new incarnation could not be written (directory not writable, disk full).
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The last incarnation is the largest possible; no later one exists.
    #[error("{path} holds the largest possible incarnation; no later one exists")]
    Exhausted {
        /// The file.
        path: PathBuf,
    },
}

/// Chooses the incarnation of a node starting now with data directory `dir`: the clock
/// (`clock`), or one above the last incarnation recorded there if that is larger. Records it
/// before returning, so every later start gets a larger one still. Creates `dir` if needed.
pub fn next_incarnation(dir: &Path, clock: Incarnation) -> Result<Incarnation, DataDirError> {
    fs::create_dir_all(dir).map_err(|source| DataDirError::Create {
        path: dir.to_path_buf(),
        source,
    })?;
    let last = last_incarnation(dir)?;
    let path = dir.join(INCARNATION_FILE);
    let next = Incarnation::after(clock, last).ok_or(DataDirError::Exhausted { path })?;
    store_incarnation(dir, next)?;
    Ok(next)
}

/// The incarnation recorded in `dir`, if any.
pub fn last_incarnation(dir: &Path) -> Result<Option<Incarnation>, DataDirError> {
    let path = dir.join(INCARNATION_FILE);
    let text = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(DataDirError::Read { path, source }),
    };
    let corrupt = |problem: String| DataDirError::Corrupt {
        path: path.clone(),
        problem,
    };
    let text = std::str::from_utf8(&text).map_err(|_| corrupt("not text".into()))?;
    let value = text.trim();
    if value.is_empty() {
        return Err(corrupt("empty".into()));
    }
    value
        .parse::<u64>()
        .map(|n| Some(Incarnation(n)))
        .map_err(|e| {
            let shown: String = value.chars().take(40).collect();
            corrupt(format!("{shown:?}: {e}"))
        })
}

/// Records `incarnation` in `dir`, atomically (temporary file, sync, rename, directory sync).
pub fn store_incarnation(dir: &Path, incarnation: Incarnation) -> Result<(), DataDirError> {
    write_atomically(dir, INCARNATION_FILE, &format!("{}\n", incarnation.0))
}

/// The groups recorded in `dir` as ones this node has been a member of.
pub fn recorded_memberships(dir: &Path) -> Result<BTreeSet<String>, DataDirError> {
    let path = dir.join(MEMBER_OF_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(source) => Err(DataDirError::Read { path, source }),
    }
}

/// Records in `dir` that this node is a member of `groups` (all it has been a member of): a
/// later start never founds them again, whatever `bootstrap` says.
pub fn record_membership(dir: &Path, groups: &BTreeSet<String>) -> Result<(), DataDirError> {
    let text: String = groups.iter().map(|g| format!("{g}\n")).collect();
    write_atomically(dir, MEMBER_OF_FILE, &text)
}

/// The prefix of the files holding the last view installed in each group
/// (`last-view-<group>`), in the data directory.
pub const LAST_VIEW_PREFIX: &str = "last-view-";

/// Records `view` as the last view this node installed in its group (hex of its bincode
/// encoding, replaced atomically), so that after a total failure the restarted members know
/// which view's majority must be back before the group re-forms.
pub fn record_last_view(dir: &Path, view: &crate::view::View) -> Result<(), DataDirError> {
    let name = format!("{LAST_VIEW_PREFIX}{}", view.group.as_str());
    write_atomically(dir, &name, &encode_hex(view))
}

/// The last view this node recorded installing in `group`, if any.
pub fn recorded_last_view(
    dir: &Path,
    group: &crate::id::GroupName,
) -> Result<Option<crate::view::View>, DataDirError> {
    let path = dir.join(format!("{LAST_VIEW_PREFIX}{}", group.as_str()));
    let Some(view) = read_hex::<crate::view::View>(&path)? else {
        return Ok(None);
    };
    if &view.group != group || !view.is_well_formed() {
        return Err(corrupt_view(&path, format!("not a view of group {group}")));
    }
    Ok(Some(view))
}

/// The prefix of the files holding the latest view this node accepted in a view change of
/// each group (`accepted-view-<group>`), in the data directory.
pub const ACCEPTED_VIEW_PREFIX: &str = "accepted-view-";

/// Records `accepted` as the latest view this node accepted in its group's view changes
/// (hex of its bincode encoding, replaced atomically). The node writes it before its
/// `Accepted` leaves: a view may be decided by the acceptances of members that all crash
/// before installing it, and only these records tell the restarted members that it may
/// have been the last view (see `proto::membership::join`).
pub fn record_accepted_view(
    dir: &Path,
    accepted: &crate::wire::AcceptedView,
) -> Result<(), DataDirError> {
    let name = format!("{ACCEPTED_VIEW_PREFIX}{}", accepted.view.group.as_str());
    write_atomically(dir, &name, &encode_hex(accepted))
}

/// The latest view this node recorded accepting in `group`, if any.
pub fn recorded_accepted_view(
    dir: &Path,
    group: &crate::id::GroupName,
) -> Result<Option<crate::wire::AcceptedView>, DataDirError> {
    let path = dir.join(format!("{ACCEPTED_VIEW_PREFIX}{}", group.as_str()));
    let Some(accepted) = read_hex::<crate::wire::AcceptedView>(&path)? else {
        return Ok(None);
    };
    if &accepted.view.group != group || !accepted.view.is_well_formed() {
        return Err(corrupt_view(&path, format!("not a view of group {group}")));
    }
    Ok(Some(accepted))
}

fn corrupt_view(path: &Path, problem: String) -> DataDirError {
    DataDirError::CorruptView {
        path: path.to_path_buf(),
        problem,
    }
}

/// Hex of the bincode encoding of `value`, and a newline.
fn encode_hex(value: &impl serde::Serialize) -> String {
    let bytes = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("in-memory encoding of a view does not fail");
    format!("{}\n", hex::encode(bytes))
}

/// The value `encode_hex` wrote at `path`, if the file exists.
fn read_hex<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, DataDirError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(DataDirError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let bytes = hex::decode(text.trim()).map_err(|e| corrupt_view(path, e.to_string()))?;
    let (value, _): (T, usize) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
            .map_err(|e| corrupt_view(path, e.to_string()))?;
    Ok(Some(value))
}

/// Replaces `dir/name` with `contents`: temporary file, sync, rename, directory sync.
fn write_atomically(dir: &Path, name: &str, contents: &str) -> Result<(), DataDirError> {
    let temp = dir.join(format!("{name}.tmp"));
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DataDirError::Write { path, source }
    };
    let mut file = File::create(&temp).map_err(write_error(&temp))?;
    file.write_all(contents.as_bytes())
        .map_err(write_error(&temp))?;
    file.sync_all().map_err(write_error(&temp))?;
    drop(file);
    let path = dir.join(name);
    fs::rename(&temp, &path).map_err(write_error(&path))?;
    // The rename is durable once the directory is synced.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_error(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temporary directory, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let path = std::env::temp_dir().join(format!(
                "viewsync-data-dir-{tag}-{}-{}",
                std::process::id(),
                rand::random::<u64>()
            ));
            Scratch(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_first_start_uses_the_clock_and_records_it() {
        let dir = Scratch::new("first");
        let data = dir.0.join("nested/node1");
        let got = next_incarnation(&data, Incarnation(500)).unwrap();
        assert_eq!(got, Incarnation(500));
        assert_eq!(
            fs::read_to_string(data.join(INCARNATION_FILE)).unwrap(),
            "500\n"
        );
        assert!(!data.join(format!("{INCARNATION_FILE}.tmp")).exists());
    }

    #[test]
    fn a_clock_behind_the_last_run_still_gets_a_larger_incarnation() {
        let dir = Scratch::new("behind");
        fs::create_dir_all(&dir.0).unwrap();
        fs::write(dir.0.join(INCARNATION_FILE), "9000\n").unwrap();
        assert_eq!(
            next_incarnation(&dir.0, Incarnation(100)).unwrap(),
            Incarnation(9001)
        );
        assert_eq!(
            next_incarnation(&dir.0, Incarnation(100)).unwrap(),
            Incarnation(9002)
        );
        // A clock ahead wins.
        assert_eq!(
            next_incarnation(&dir.0, Incarnation(20_000)).unwrap(),
            Incarnation(20_000)
        );
        assert_eq!(last_incarnation(&dir.0).unwrap(), Some(Incarnation(20_000)));
    }

    #[test]
    fn memberships_are_recorded_and_read_back() {
        let scratch = Scratch::new("member-of");
        let data = scratch.0.join("data");
        fs::create_dir_all(&data).unwrap();
        assert!(recorded_memberships(&data).unwrap().is_empty());
        let groups: BTreeSet<String> = ["demo".to_string(), "audit".to_string()].into();
        record_membership(&data, &groups).unwrap();
        assert_eq!(recorded_memberships(&data).unwrap(), groups);
        let group = crate::id::GroupName::new("kv").unwrap();
        assert_eq!(recorded_last_view(&data, &group).unwrap(), None);
        let me = crate::view::Member {
            id: crate::id::ProcessId {
                node: crate::id::NodeId(3),
                incarnation: Incarnation(9),
            },
            addr: "127.0.0.1:7003".parse().unwrap(),
        };
        let view = crate::view::View::of_voters(
            group.clone(),
            crate::id::ViewId {
                epoch: 12,
                coordinator: me.id,
            },
            vec![me],
        );
        record_last_view(&data, &view).unwrap();
        assert_eq!(
            recorded_last_view(&data, &group).unwrap(),
            Some(view.clone())
        );
        fs::write(data.join("last-view-kv"), "zz\n").unwrap();
        assert!(matches!(
            recorded_last_view(&data, &group),
            Err(DataDirError::CorruptView { .. })
        ));
        assert_eq!(recorded_accepted_view(&data, &group).unwrap(), None);
        let accepted = crate::wire::AcceptedView {
            base: view.id,
            view: crate::view::View::of_voters(
                group.clone(),
                crate::id::ViewId {
                    epoch: 13,
                    coordinator: me.id,
                },
                vec![me],
            ),
        };
        record_accepted_view(&data, &accepted).unwrap();
        assert_eq!(
            recorded_accepted_view(&data, &group).unwrap(),
            Some(accepted)
        );
        // A view of another group in the file is refused, as is a truncated one.
        let other = crate::id::GroupName::new("other").unwrap();
        fs::copy(
            data.join("accepted-view-kv"),
            data.join("accepted-view-other"),
        )
        .unwrap();
        assert!(matches!(
            recorded_accepted_view(&data, &other),
            Err(DataDirError::CorruptView { .. })
        ));
        fs::write(data.join("accepted-view-kv"), "0a0b\n").unwrap();
        assert!(matches!(
            recorded_accepted_view(&data, &group),
            Err(DataDirError::CorruptView { .. })
        ));
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = Scratch::new("corrupt");
        fs::create_dir_all(&dir.0).unwrap();
        for text in ["", "\n", "twelve", "-3", "1.5", "99999999999999999999999"] {
            fs::write(dir.0.join(INCARNATION_FILE), text).unwrap();
            let error = next_incarnation(&dir.0, Incarnation(1)).unwrap_err();
            assert!(matches!(error, DataDirError::Corrupt { .. }), "{text:?}");
            assert!(error.to_string().contains("incarnation"), "{error}");
        }
        fs::write(dir.0.join(INCARNATION_FILE), [0xff, 0xfe]).unwrap();
        assert!(matches!(
            next_incarnation(&dir.0, Incarnation(1)),
            Err(DataDirError::Corrupt { .. })
        ));
        // Unchanged by the failed starts.
        assert_eq!(
            fs::read(dir.0.join(INCARNATION_FILE)).unwrap(),
            [0xff, 0xfe]
        );
    }

    #[test]
    fn a_path_that_is_not_a_directory_is_an_error() {
        let dir = Scratch::new("file");
        fs::create_dir_all(&dir.0).unwrap();
        let file = dir.0.join("plain-file");
        fs::write(&file, "x").unwrap();
        for data in [file.clone(), file.join("below")] {
            let error = next_incarnation(&data, Incarnation(1)).unwrap_err();
            assert!(
                matches!(error, DataDirError::Create { .. }),
                "{}: {error}",
                data.display()
            );
        }
    }

    #[test]
    fn the_largest_incarnation_has_no_successor() {
        let dir = Scratch::new("max");
        fs::create_dir_all(&dir.0).unwrap();
        fs::write(dir.0.join(INCARNATION_FILE), format!("{}\n", u64::MAX)).unwrap();
        assert!(matches!(
            next_incarnation(&dir.0, Incarnation(1)),
            Err(DataDirError::Exhausted { .. })
        ));
    }
}
