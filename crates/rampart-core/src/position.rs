//! Where a followed source was left, so that a restart resumes exactly.

use serde::{Deserialize, Serialize};

/// Where a followed file (or journal) was left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The source's configured name.
    pub source: String,
    /// The path followed (or `journal` for journald).
    pub path: String,
    /// Device of the file the offset is in.
    pub dev: u64,
    /// Inode of the file the offset is in.
    pub inode: u64,
    /// Bytes of that file already delivered (whole lines only).
    pub offset: u64,
    /// A hash of the file's first bytes, to notice a different file with a reused inode.
    pub fingerprint: Option<u64>,
    /// The journal cursor, for journald sources.
    pub cursor: Option<String>,
}
