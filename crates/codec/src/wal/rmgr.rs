//! Resource managers (`rmgrlist.h`) and their record-type names (the `*_identify`
//! functions of `src/backend/access/rmgrdesc/`), per PostgreSQL version.
//!
//! Transcribed by hand from PostgreSQL 14–18's `rmgrlist.h` and `rmgrdesc/*desc.c`, and
//! checked against pg_walinspect's `record_type` on real WAL of 15–18 by the codec's
//! integration tests.

use core::fmt;

use crate::wal::page::WalVersion;

/// A resource manager id (`xl_rmid`): 0–21 built in, 128–255 custom (15+).
///
/// ```
/// use pg_walstream_codec::wal::{RmgrId, WalVersion};
/// assert_eq!(RmgrId::HEAP.name(), Some("Heap"));
/// assert_eq!(RmgrId::from_name("btree"), Some(RmgrId::BTREE));
/// assert_eq!(RmgrId::HEAP.record_type_name(WalVersion::V16, 0x80), Some("INSERT+INIT"));
/// assert_eq!(RmgrId(130).to_string(), "custom130");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RmgrId(pub u8);

/// The built-in resource managers' names, by id, as pg_waldump prints them.
pub const BUILTIN_RMGR_NAMES: [&str; 22] = [
    "XLOG",
    "Transaction",
    "Storage",
    "CLOG",
    "Database",
    "Tablespace",
    "MultiXact",
    "RelMap",
    "Standby",
    "Heap2",
    "Heap",
    "Btree",
    "Hash",
    "Gin",
    "Gist",
    "Sequence",
    "SPGist",
    "BRIN",
    "CommitTs",
    "ReplicationOrigin",
    "Generic",
    "LogicalMessage",
];

impl RmgrId {
    /// `RM_XLOG_ID`.
    pub const XLOG: RmgrId = RmgrId(0);
    /// `RM_XACT_ID`.
    pub const XACT: RmgrId = RmgrId(1);
    /// `RM_SMGR_ID`.
    pub const SMGR: RmgrId = RmgrId(2);
    /// `RM_STANDBY_ID`.
    pub const STANDBY: RmgrId = RmgrId(8);
    /// `RM_HEAP2_ID`.
    pub const HEAP2: RmgrId = RmgrId(9);
    /// `RM_HEAP_ID`.
    pub const HEAP: RmgrId = RmgrId(10);
    /// `RM_BTREE_ID`.
    pub const BTREE: RmgrId = RmgrId(11);
    /// `RM_LOGICALMSG_ID`.
    pub const LOGICAL_MESSAGE: RmgrId = RmgrId(21);
    /// The highest built-in id, `RM_MAX_BUILTIN_ID`.
    pub const MAX_BUILTIN: u8 = 21;
    /// The lowest custom id, `RM_MIN_CUSTOM_ID`.
    pub const MIN_CUSTOM: u8 = 128;

    /// Whether `xl_rmid` may appear in WAL of `version` (custom ids exist from 15 on).
    pub fn is_valid(self, version: WalVersion) -> bool {
        self.0 <= Self::MAX_BUILTIN || (self.0 >= Self::MIN_CUSTOM && version >= WalVersion::V15)
    }

    /// Whether this is a custom resource manager id (128–255).
    pub fn is_custom(self) -> bool {
        self.0 >= Self::MIN_CUSTOM
    }

    /// The built-in resource manager's name; `None` for custom and unassigned ids.
    pub fn name(self) -> Option<&'static str> {
        BUILTIN_RMGR_NAMES.get(usize::from(self.0)).copied()
    }

    /// The built-in resource manager named `name` (case-insensitive, as pg_waldump's
    /// `--rmgr`), or a custom one written `custom128`…`custom255`.
    pub fn from_name(name: &str) -> Option<Self> {
        if let Some(i) = BUILTIN_RMGR_NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
        {
            return Some(RmgrId(i as u8));
        }
        let digits = name.strip_prefix("custom")?;
        let id: u8 = digits.parse().ok()?;
        (id >= Self::MIN_CUSTOM).then_some(RmgrId(id))
    }

    /// The record type's name for `info` (`xl_info`) in WAL of `version`, as the
    /// rmgr's `*_identify` function returns it; `None` where PostgreSQL prints
    /// `UNKNOWN (xx)` (and for custom rmgrs, whose names live in their extensions).
    pub fn record_type_name(self, version: WalVersion, info: u8) -> Option<&'static str> {
        let op = info & 0xF0;
        let v = version;
        Some(match self.0 {
            0 => xlog(v, op)?,
            1 => xact(op & 0x70)?,
            2 => match op {
                0x10 => "CREATE",
                0x20 => "TRUNCATE",
                _ => return None,
            },
            3 | 18 => match op {
                0x00 => "ZEROPAGE",
                0x10 => "TRUNCATE",
                _ => return None,
            },
            4 => database(v, op)?,
            5 => match op {
                0x00 => "CREATE",
                0x10 => "DROP",
                _ => return None,
            },
            6 => match op {
                0x00 => "ZERO_OFF_PAGE",
                0x10 => "ZERO_MEM_PAGE",
                0x20 => "CREATE_ID",
                0x30 => "TRUNCATE_ID",
                _ => return None,
            },
            7 => match op {
                0x00 => "UPDATE",
                _ => return None,
            },
            8 => match op {
                0x00 => "LOCK",
                0x10 => "RUNNING_XACTS",
                0x20 => "INVALIDATIONS",
                _ => return None,
            },
            9 => heap2(v, op)?,
            10 => heap(op)?,
            11 => btree(op)?,
            12 => hash(op)?,
            13 => gin(op)?,
            14 => gist(op)?,
            15 => match op {
                0x00 => "LOG",
                _ => return None,
            },
            16 => spgist(op)?,
            17 => brin(op)?,
            19 => match op {
                0x00 => "SET",
                0x10 => "DROP",
                _ => return None,
            },
            20 => "Generic",
            21 => match op {
                0x00 => "MESSAGE",
                _ => return None,
            },
            _ => return None,
        })
    }
}

impl fmt::Display for RmgrId {
    /// The name pg_waldump prints: built-in names, `custom%03u` for custom ids.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None if self.is_custom() => write!(f, "custom{:03}", self.0),
            None => write!(f, "unknown{}", self.0),
        }
    }
}

fn xlog(v: WalVersion, op: u8) -> Option<&'static str> {
    Some(match op {
        0x00 => "CHECKPOINT_SHUTDOWN",
        0x10 => "CHECKPOINT_ONLINE",
        0x20 => "NOOP",
        0x30 => "NEXTOID",
        0x40 => "SWITCH",
        0x50 => "BACKUP_END",
        0x60 => "PARAMETER_CHANGE",
        0x70 => "RESTORE_POINT",
        0x80 => "FPW_CHANGE",
        0x90 => "END_OF_RECOVERY",
        0xA0 => "FPI_FOR_HINT",
        0xB0 => "FPI",
        0xD0 => "OVERWRITE_CONTRECORD",
        0xE0 if v >= WalVersion::V17 => "CHECKPOINT_REDO",
        _ => return None,
    })
}

fn xact(op: u8) -> Option<&'static str> {
    Some(match op {
        0x00 => "COMMIT",
        0x10 => "PREPARE",
        0x20 => "ABORT",
        0x30 => "COMMIT_PREPARED",
        0x40 => "ABORT_PREPARED",
        0x50 => "ASSIGNMENT",
        0x60 => "INVALIDATION",
        _ => return None,
    })
}

fn database(v: WalVersion, op: u8) -> Option<&'static str> {
    if v == WalVersion::V14 {
        return match op {
            0x00 => Some("CREATE"),
            0x10 => Some("DROP"),
            _ => None,
        };
    }
    match op {
        0x00 => Some("CREATE_FILE_COPY"),
        0x10 => Some("CREATE_WAL_LOG"),
        0x20 => Some("DROP"),
        _ => None,
    }
}

fn heap2(v: WalVersion, op: u8) -> Option<&'static str> {
    Some(match op {
        0x00 => "REWRITE",
        0x10 if v >= WalVersion::V17 => "PRUNE_ON_ACCESS",
        0x20 if v >= WalVersion::V17 => "PRUNE_VACUUM_SCAN",
        0x30 if v >= WalVersion::V17 => "PRUNE_VACUUM_CLEANUP",
        0x10 => "PRUNE",
        0x20 => "VACUUM",
        0x30 => "FREEZE_PAGE",
        0x40 => "VISIBLE",
        0x50 => "MULTI_INSERT",
        0xD0 => "MULTI_INSERT+INIT",
        0x60 => "LOCK_UPDATED",
        0x70 => "NEW_CID",
        _ => return None,
    })
}

fn heap(op: u8) -> Option<&'static str> {
    Some(match op {
        0x00 => "INSERT",
        0x80 => "INSERT+INIT",
        0x10 => "DELETE",
        0x20 => "UPDATE",
        0xA0 => "UPDATE+INIT",
        0x30 => "TRUNCATE",
        0x40 => "HOT_UPDATE",
        0xC0 => "HOT_UPDATE+INIT",
        0x50 => "HEAP_CONFIRM",
        0x60 => "LOCK",
        0x70 => "INPLACE",
        _ => return None,
    })
}

fn btree(op: u8) -> Option<&'static str> {
    const NAMES: [&str; 15] = [
        "INSERT_LEAF",
        "INSERT_UPPER",
        "INSERT_META",
        "SPLIT_L",
        "SPLIT_R",
        "INSERT_POST",
        "DEDUP",
        "DELETE",
        "UNLINK_PAGE",
        "UNLINK_PAGE_META",
        "NEWROOT",
        "MARK_PAGE_HALFDEAD",
        "VACUUM",
        "REUSE_PAGE",
        "META_CLEANUP",
    ];
    NAMES.get(usize::from(op >> 4)).copied()
}

fn hash(op: u8) -> Option<&'static str> {
    const NAMES: [&str; 13] = [
        "INIT_META_PAGE",
        "INIT_BITMAP_PAGE",
        "INSERT",
        "ADD_OVFL_PAGE",
        "SPLIT_ALLOCATE_PAGE",
        "SPLIT_PAGE",
        "SPLIT_COMPLETE",
        "MOVE_PAGE_CONTENTS",
        "SQUEEZE_PAGE",
        "DELETE",
        "SPLIT_CLEANUP",
        "UPDATE_META_PAGE",
        "VACUUM_ONE_PAGE",
    ];
    NAMES.get(usize::from(op >> 4)).copied()
}

fn gin(op: u8) -> Option<&'static str> {
    Some(match op {
        0x00 => "CREATE_PTREE",
        0x10 => "INSERT",
        0x30 => "SPLIT",
        0x40 => "VACUUM_PAGE",
        0x50 => "VACUUM_DATA_LEAF_PAGE",
        0x60 => "DELETE_PAGE",
        0x70 => "UPDATE_META_PAGE",
        0x80 => "INSERT_LISTPAGE",
        0x90 => "DELETE_LISTPAGE",
        _ => return None,
    })
}

fn gist(op: u8) -> Option<&'static str> {
    Some(match op {
        0x00 => "PAGE_UPDATE",
        0x10 => "DELETE",
        0x20 => "PAGE_REUSE",
        0x30 => "PAGE_SPLIT",
        0x60 => "PAGE_DELETE",
        0x70 => "ASSIGN_LSN",
        _ => return None,
    })
}

fn spgist(op: u8) -> Option<&'static str> {
    Some(match op {
        0x10 => "ADD_LEAF",
        0x20 => "MOVE_LEAFS",
        0x30 => "ADD_NODE",
        0x40 => "SPLIT_TUPLE",
        0x50 => "PICKSPLIT",
        0x60 => "VACUUM_LEAF",
        0x70 => "VACUUM_ROOT",
        0x80 => "VACUUM_REDIRECT",
        _ => return None,
    })
}

fn brin(op: u8) -> Option<&'static str> {
    Some(match op {
        0x00 => "CREATE_INDEX",
        0x10 => "INSERT",
        0x90 => "INSERT+INIT",
        0x20 => "UPDATE",
        0xA0 => "UPDATE+INIT",
        0x30 => "SAMEPAGE_UPDATE",
        0x40 => "REVMAP_EXTEND",
        0x50 => "DESUMMARIZE",
        _ => return None,
    })
}
