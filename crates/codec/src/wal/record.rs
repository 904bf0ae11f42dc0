//! The anatomy of one WAL record (`XLogRecord` + block references + main data), decoded
//! as views over the record's bytes.

use crate::lsn::Lsn;
use crate::wal::error::{RecordDefect, WalError};
use alloc::vec::Vec;

use crate::wal::page::{WalVersion, le_u32, le_u64};
use crate::wal::rmgr::RmgrId;

/// Size of the fixed record header, `SizeOfXLogRecord`.
pub const RECORD_HEADER_LEN: u32 = 24;
/// Highest block reference id, `XLR_MAX_BLOCK_ID`.
pub const MAX_BLOCK_ID: u8 = 32;
const BLOCK_ID_DATA_SHORT: u8 = 255;
const BLOCK_ID_DATA_LONG: u8 = 254;
const BLOCK_ID_ORIGIN: u8 = 253;
const BLOCK_ID_TOPLEVEL_XID: u8 = 252;

const BKPBLOCK_FORK_MASK: u8 = 0x0F;
const BKPBLOCK_HAS_IMAGE: u8 = 0x10;
const BKPBLOCK_HAS_DATA: u8 = 0x20;
const BKPBLOCK_WILL_INIT: u8 = 0x40;
const BKPBLOCK_SAME_REL: u8 = 0x80;

/// A relation's physical identity (`RelFileLocator`, `RelFileNode` before 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RelFileLocator {
    /// Tablespace OID.
    pub spc_oid: u32,
    /// Database OID.
    pub db_oid: u32,
    /// Relation file number.
    pub rel_number: u32,
}

/// How a full-page image is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageCompression {
    /// Stored as is.
    None,
    /// PostgreSQL's pglz.
    Pglz,
    /// LZ4 block format (15+).
    Lz4,
    /// Zstandard (15+).
    Zstd,
}

/// Decoded per-block information, independent of the record's buffer.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BlockInfo {
    id: u8,
    fork_flags: u8,
    locator: RelFileLocator,
    block: u32,
    data_start: u32,
    data_len: u16,
    image_start: u32,
    image_len: u16,
    hole_offset: u16,
    hole_length: u16,
    image_info: u8,
}

/// The record-level fields found while decoding the block headers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Anatomy {
    pub(crate) main_start: u32,
    pub(crate) main_len: u32,
    pub(crate) origin: Option<u16>,
    pub(crate) toplevel_xid: Option<u32>,
    pub(crate) fpi_len: u32,
}

/// One decoded WAL record, borrowed from the decoder until the next call.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub(crate) lsn: Lsn,
    pub(crate) end: Lsn,
    pub(crate) bytes: &'a [u8],
    pub(crate) version: WalVersion,
    pub(crate) page_size: u32,
    pub(crate) blocks: &'a [BlockInfo],
    pub(crate) anatomy: Anatomy,
}

impl<'a> Record<'a> {
    /// The record's start LSN (`ReadRecPtr`).
    #[inline]
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// Where the next record starts (`EndRecPtr`): past the alignment padding, and for an
    /// `XLOG_SWITCH` record the start of the next segment — as pg_walinspect's `end_lsn`.
    #[inline]
    pub fn end_lsn(&self) -> Lsn {
        self.end
    }

    /// The WAL format version of the page the record started on.
    #[inline]
    pub fn version(&self) -> WalVersion {
        self.version
    }

    /// The whole record as stored (header included), reassembled if it spanned pages.
    #[inline]
    pub fn raw(&self) -> &'a [u8] {
        self.bytes
    }

    /// `xl_tot_len`: the record's length including its header and any full-page images.
    #[inline]
    pub fn total_len(&self) -> u32 {
        le_u32(self.bytes, 0)
    }

    /// `xl_xid`: the transaction id (0 if none).
    #[inline]
    pub fn xid(&self) -> u32 {
        le_u32(self.bytes, 4)
    }

    /// `xl_prev`: the previous record's LSN.
    #[inline]
    pub fn prev(&self) -> Lsn {
        Lsn::new(le_u64(self.bytes, 8))
    }

    /// `xl_info`: the high 4 bits are the rmgr's record type, the low ones flags.
    #[inline]
    pub fn info(&self) -> u8 {
        self.bytes[16]
    }

    /// `xl_rmid`: the resource manager.
    #[inline]
    pub fn rmgr(&self) -> RmgrId {
        RmgrId(self.bytes[17])
    }

    /// `xl_crc`: the stored CRC-32C.
    #[inline]
    pub fn crc(&self) -> u32 {
        le_u32(self.bytes, 20)
    }

    /// The record type's name as pg_waldump and pg_walinspect print it (`INSERT+INIT`,
    /// `COMMIT`, …), or `None` where they print `UNKNOWN (xx)`.
    pub fn type_name(&self) -> Option<&'static str> {
        self.rmgr().record_type_name(self.version, self.info())
    }

    /// The main data (`XLogRecGetData`).
    #[inline]
    pub fn main_data(&self) -> &'a [u8] {
        let a = self.anatomy;
        &self.bytes[a.main_start as usize..(a.main_start + a.main_len) as usize]
    }

    /// The replication origin (`XLR_BLOCK_ID_ORIGIN`), if the record has one.
    #[inline]
    pub fn origin(&self) -> Option<u16> {
        self.anatomy.origin
    }

    /// The top-level transaction id of a subtransaction (`XLR_BLOCK_ID_TOPLEVEL_XID`).
    #[inline]
    pub fn toplevel_xid(&self) -> Option<u32> {
        self.anatomy.toplevel_xid
    }

    /// Bytes of full-page images (sum of `bimg_len`), as pg_walinspect's `fpi_length`.
    #[inline]
    pub fn fpi_len(&self) -> u32 {
        self.anatomy.fpi_len
    }

    /// The record's length without its full-page images, as pg_waldump's "Record size" and
    /// pg_walinspect's `pg_get_wal_stats` `record_size` count it (its per-record
    /// `record_length` is [`total_len`](Self::total_len)).
    #[inline]
    pub fn record_len_without_fpi(&self) -> u32 {
        self.total_len() - self.anatomy.fpi_len
    }

    /// The block references in id order.
    pub fn blocks(&self) -> impl ExactSizeIterator<Item = BlockRef<'a>> + 'a {
        let (bytes, version, page_size) = (self.bytes, self.version, self.page_size);
        self.blocks.iter().map(move |b| BlockRef {
            info: *b,
            bytes,
            version,
            page_size,
        })
    }

    /// The block reference with id `id`.
    pub fn block(&self, id: u8) -> Option<BlockRef<'a>> {
        self.blocks().find(|b| b.id() == id)
    }

    /// How many block references the record has.
    #[inline]
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }
}

/// One block reference of a record.
#[derive(Debug, Clone, Copy)]
pub struct BlockRef<'a> {
    info: BlockInfo,
    bytes: &'a [u8],
    version: WalVersion,
    page_size: u32,
}

impl<'a> BlockRef<'a> {
    /// The block id (0–32).
    #[inline]
    pub fn id(&self) -> u8 {
        self.info.id
    }

    /// The fork number (0 main, 1 fsm, 2 vm, 3 init).
    #[inline]
    pub fn fork(&self) -> u8 {
        self.info.fork_flags & BKPBLOCK_FORK_MASK
    }

    /// The fork's name as PostgreSQL prints it (`main`, `fsm`, `vm`, `init`).
    pub fn fork_name(&self) -> &'static str {
        match self.fork() {
            0 => "main",
            1 => "fsm",
            2 => "vm",
            3 => "init",
            _ => "?",
        }
    }

    /// The raw `fork_flags` byte.
    #[inline]
    pub fn fork_flags(&self) -> u8 {
        self.info.fork_flags
    }

    /// Whether replay initialises the page from scratch (`BKPBLOCK_WILL_INIT`).
    #[inline]
    pub fn will_init(&self) -> bool {
        self.info.fork_flags & BKPBLOCK_WILL_INIT != 0
    }

    /// The relation, inherited from the previous block under `BKPBLOCK_SAME_REL`.
    #[inline]
    pub fn locator(&self) -> RelFileLocator {
        self.info.locator
    }

    /// The block number.
    #[inline]
    pub fn block_number(&self) -> u32 {
        self.info.block
    }

    /// The block's data (`XLogRecGetBlockData`), empty if none.
    #[inline]
    pub fn data(&self) -> &'a [u8] {
        let start = self.info.data_start as usize;
        &self.bytes[start..start + usize::from(self.info.data_len)]
    }

    /// The full-page image, if the block has one.
    pub fn image(&self) -> Option<BlockImage<'a>> {
        if self.info.fork_flags & BKPBLOCK_HAS_IMAGE == 0 {
            return None;
        }
        let start = self.info.image_start as usize;
        Some(BlockImage {
            bytes: &self.bytes[start..start + usize::from(self.info.image_len)],
            hole_offset: self.info.hole_offset,
            hole_length: self.info.hole_length,
            info: self.info.image_info,
            version: self.version,
            page_size: self.page_size,
        })
    }
}

/// A full-page image as stored: possibly compressed, with the page's hole removed.
#[derive(Debug, Clone, Copy)]
pub struct BlockImage<'a> {
    bytes: &'a [u8],
    hole_offset: u16,
    hole_length: u16,
    info: u8,
    version: WalVersion,
    page_size: u32,
}

impl<'a> BlockImage<'a> {
    /// The stored bytes (`bimg_len` of them).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Where the hole (the unused middle of the page) starts.
    pub fn hole_offset(&self) -> u16 {
        self.hole_offset
    }

    /// The hole's length.
    pub fn hole_length(&self) -> u16 {
        self.hole_length
    }

    /// The raw `bimg_info` byte (bit layout differs between 14 and 15+).
    #[inline]
    pub fn info(&self) -> u8 {
        self.info
    }

    /// The page size the image restores to.
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// Whether replay applies the image (`BKPIMAGE_APPLY`), as opposed to an image kept only
    /// for `wal_consistency_checking`.
    pub fn apply(&self) -> bool {
        let bit = if self.version == WalVersion::V14 {
            0x04
        } else {
            0x02
        };
        self.info & bit != 0
    }

    /// Whether the image has a hole (`BKPIMAGE_HAS_HOLE`).
    pub fn has_hole(&self) -> bool {
        self.info & 0x01 != 0
    }

    /// How the image is compressed.
    pub fn compression(&self) -> ImageCompression {
        compression_of(self.version, self.info).unwrap_or(ImageCompression::None)
    }
}

fn compression_of(version: WalVersion, info: u8) -> Result<ImageCompression, u8> {
    if version == WalVersion::V14 {
        return Ok(if info & 0x02 != 0 {
            ImageCompression::Pglz
        } else {
            ImageCompression::None
        });
    }
    match info & 0x1C {
        0 => Ok(ImageCompression::None),
        0x04 => Ok(ImageCompression::Pglz),
        0x08 => Ok(ImageCompression::Lz4),
        0x10 => Ok(ImageCompression::Zstd),
        _ => Err(info),
    }
}

/// A bounds-checked little-endian cursor over a record's header area.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], RecordDefect> {
        let end = self.at + N;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or(RecordDefect::Truncated)?;
        self.at = end;
        let mut out = [0; N];
        out.copy_from_slice(slice);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, RecordDefect> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, RecordDefect> {
        Ok(u16::from_le_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, RecordDefect> {
        Ok(u32::from_le_bytes(self.take()?))
    }
}

/// Decodes the block headers of `bytes` (a whole record whose header was validated) into
/// `blocks` (cleared first), as `DecodeXLogRecord` does.
pub(crate) fn decode_anatomy(
    bytes: &[u8],
    version: WalVersion,
    page_size: u32,
    blocks: &mut Vec<BlockInfo>,
    lsn: Lsn,
) -> Result<Anatomy, WalError> {
    decode_inner(bytes, version, page_size, blocks)
        .map_err(|defect| WalError::InvalidRecord { lsn, defect })
}

fn decode_inner(
    bytes: &[u8],
    version: WalVersion,
    page_size: u32,
    blocks: &mut Vec<BlockInfo>,
) -> Result<Anatomy, RecordDefect> {
    blocks.clear();
    let mut anatomy = Anatomy::default();
    let mut cur = Cursor {
        bytes,
        at: RECORD_HEADER_LEN as usize,
    };
    let total = bytes.len() as u64;
    let mut data_total: u64 = 0;
    let mut last_locator: Option<RelFileLocator> = None;
    let mut max_id: Option<u8> = None;
    while total - (cur.at as u64) > data_total {
        let id = cur.u8()?;
        match id {
            BLOCK_ID_DATA_SHORT => {
                anatomy.main_len = u32::from(cur.u8()?);
                data_total += u64::from(anatomy.main_len);
                break;
            }
            BLOCK_ID_DATA_LONG => {
                anatomy.main_len = cur.u32()?;
                data_total += u64::from(anatomy.main_len);
                break;
            }
            BLOCK_ID_ORIGIN => anatomy.origin = Some(cur.u16()?),
            BLOCK_ID_TOPLEVEL_XID => anatomy.toplevel_xid = Some(cur.u32()?),
            0..=MAX_BLOCK_ID => {
                if max_id.is_some_and(|m| id <= m) {
                    return Err(RecordDefect::OutOfOrderBlockId(id));
                }
                max_id = Some(id);
                let fork_flags = cur.u8()?;
                let data_len = cur.u16()?;
                let has_data = fork_flags & BKPBLOCK_HAS_DATA != 0;
                if has_data && data_len == 0 {
                    return Err(RecordDefect::HasDataWithoutData);
                }
                if !has_data && data_len != 0 {
                    return Err(RecordDefect::DataWithoutHasData(data_len));
                }
                data_total += u64::from(data_len);
                let mut info = BlockInfo {
                    id,
                    fork_flags,
                    data_len,
                    ..BlockInfo::default()
                };
                if fork_flags & BKPBLOCK_HAS_IMAGE != 0 {
                    decode_image_header(&mut cur, &mut info, version, page_size)?;
                    data_total += u64::from(info.image_len);
                    anatomy.fpi_len += u32::from(info.image_len);
                }
                if fork_flags & BKPBLOCK_SAME_REL == 0 {
                    let locator = RelFileLocator {
                        spc_oid: cur.u32()?,
                        db_oid: cur.u32()?,
                        rel_number: cur.u32()?,
                    };
                    last_locator = Some(locator);
                }
                info.locator = last_locator.ok_or(RecordDefect::SameRelWithoutPrevious)?;
                info.block = cur.u32()?;
                blocks.push(info);
            }
            _ => return Err(RecordDefect::InvalidBlockId(id)),
        }
    }
    let actual = total - cur.at as u64;
    if actual != data_total {
        return Err(RecordDefect::LengthMismatch {
            declared: data_total,
            actual,
        });
    }
    // The payloads follow the headers: per block its image, then its data; then main data.
    let mut at = cur.at as u32;
    for b in blocks.iter_mut() {
        if b.fork_flags & BKPBLOCK_HAS_IMAGE != 0 {
            b.image_start = at;
            at += u32::from(b.image_len);
        }
        b.data_start = at;
        at += u32::from(b.data_len);
    }
    anatomy.main_start = at;
    Ok(anatomy)
}

fn decode_image_header(
    cur: &mut Cursor<'_>,
    info: &mut BlockInfo,
    version: WalVersion,
    page_size: u32,
) -> Result<(), RecordDefect> {
    let image_len = cur.u16()?;
    let hole_offset = cur.u16()?;
    let image_info = cur.u8()?;
    let compression =
        compression_of(version, image_info).map_err(RecordDefect::InvalidImageFlags)?;
    let has_hole = image_info & 0x01 != 0;
    let compressed = compression != ImageCompression::None;
    let hole_length = if compressed {
        if has_hole { cur.u16()? } else { 0 }
    } else {
        // Uncompressed: the hole is what the image lacks of a page.
        page_size.wrapping_sub(u32::from(image_len)) as u16
    };
    let bad_hole = InvalidHole {
        hole_offset,
        hole_length,
        image_length: image_len,
    };
    if has_hole && (hole_offset == 0 || hole_length == 0 || u32::from(image_len) == page_size) {
        return Err(bad_hole.into());
    }
    if !has_hole && (hole_offset != 0 || hole_length != 0) {
        return Err(bad_hole.into());
    }
    if compressed && u32::from(image_len) == page_size {
        return Err(RecordDefect::InvalidImageLength(image_len));
    }
    if !has_hole && !compressed && u32::from(image_len) != page_size {
        return Err(RecordDefect::InvalidImageLength(image_len));
    }
    if u32::from(hole_offset) + u32::from(hole_length) > page_size {
        return Err(bad_hole.into());
    }
    info.image_len = image_len;
    info.hole_offset = hole_offset;
    info.hole_length = hole_length;
    info.image_info = image_info;
    Ok(())
}

struct InvalidHole {
    hole_offset: u16,
    hole_length: u16,
    image_length: u16,
}

impl From<InvalidHole> for RecordDefect {
    fn from(h: InvalidHole) -> Self {
        RecordDefect::InvalidHole {
            hole_offset: h.hole_offset,
            hole_length: h.hole_length,
            image_length: h.image_length,
        }
    }
}
