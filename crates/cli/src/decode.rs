//! `pg-walstream decode`: captured pgoutput to the same JSON `recv` prints, without a server.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::AsFd as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use clap::Args;
use pg_walstream_codec::pgoutput::{PgOutputDecoder, ProtocolVersion};

use crate::capture::psql::read_rows;
use crate::capture::raw::{MAGIC, RawReader};
use crate::error::CliError;
use crate::output::{Destination, EventWriter, Format};
use crate::render::Renderer;

/// Arguments of `decode`.
#[derive(Debug, Args)]
#[command(after_help = "INPUTS:\n  \
    A raw capture written by `pg-walstream recv --format raw` (recognised by its header; the\n  \
    protocol version is read from it), or the rows of\n    \
    SELECT lsn, xid, data FROM pg_logical_slot_peek_binary_changes('slot', NULL, NULL,\n      \
    'proto_version', '2', 'publication_names', 'pub' [, 'binary', 'true', ...])\n  \
    saved by psql as CSV (\\copy (...) TO 'f' CSV [HEADER]), as COPY text or with\n  \
    psql -At -F $'\\t' (tab-separated), or psql -A ('|'); bytea in hex (\\x...).\n  \
    Those need --proto: the proto_version the rows were produced with.\n\n\
RAW CAPTURE FORMAT (version 1, integers big-endian):\n  \
    header: magic \"PGWSRAW\\0\" (8 bytes), format version u16 = 1, proto_version u8,\n          \
    flags u8 (bit 0: binary mode)\n  \
    frames until end of file: data length u32, wal_start u64, wal_end u64,\n          \
    send_time i64 (microseconds since 2000-01-01 UTC), data (one pgoutput message)\n  \
    A file that ends inside the header or a frame is an error.\n\n\
OUTPUT:\n  \
    The same objects as `pg-walstream recv` (see `pg-walstream recv --help`).")]
pub(crate) struct DecodeArgs {
    /// The capture file (`-` for standard input).
    #[arg(value_name = "FILE")]
    input: PathBuf,
    /// pgoutput protocol version (1-4) the capture was made with; required for psql captures,
    /// and must match the header of a raw capture.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4))]
    proto: Option<u32>,
    /// Output format: json (one object per event), jsonl-tx (one per transaction), text.
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// Write to FILE instead of standard output (`-` is standard output); refused when FILE is
    /// the input.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

/// `-o` naming the input (by any path: same device and inode) would truncate it before it
/// is read: refused.
fn refuse_same_file(input: &File, output: &Path, name: &str) -> Result<(), CliError> {
    let (Ok(input), Ok(output_meta)) = (input.metadata(), std::fs::metadata(output)) else {
        return Ok(());
    };
    if output.as_os_str() != "-"
        && (input.dev(), input.ino()) == (output_meta.dev(), output_meta.ino())
    {
        return Err(CliError::usage(format!(
            "the output {} is the input {name}: writing it would destroy the capture before it \
             is read (write to another file)",
            output.display()
        )));
    }
    Ok(())
}

fn protocol(version: u32) -> Result<ProtocolVersion, CliError> {
    ProtocolVersion::try_from(version).map_err(|e| CliError::usage(format!("--proto: {e}")))
}

/// Runs `decode`.
///
/// # Errors
/// Unreadable or malformed input (with its position), undecodable messages, output errors.
pub(crate) fn run(args: &DecodeArgs) -> Result<(), CliError> {
    if args.format == Format::Raw {
        return Err(CliError::usage(
            "--format raw is for `recv`; decode prints json, jsonl-tx or text",
        ));
    }
    let name = args.input.display().to_string();
    let (reader, input_file): (Box<dyn Read>, Option<File>) = if args.input.as_os_str() == "-" {
        let stdin = io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(File::from);
        (Box::new(io::stdin().lock()), stdin)
    } else {
        let file =
            File::open(&args.input).map_err(|e| CliError::failed(format!("opening {name}"), &e))?;
        let handle = file.try_clone().ok();
        (Box::new(file), handle)
    };
    if let (Some(input), Some(output)) = (&input_file, &args.output) {
        refuse_same_file(input, output, &name)?;
    }
    let mut input = BufReader::with_capacity(256 * 1024, reader);
    let starts_raw = input
        .fill_buf()
        .map_err(|e| CliError::failed(format!("reading {name}"), &e))?
        .starts_with(&MAGIC[..4]);
    let mut out = Destination::create(args.output.as_deref())
        .map_err(|e| CliError::failed("opening the output", &e))?;
    let mut writer = EventWriter::new(args.format);
    let mut renderer = Renderer::new();
    let write_error = |e: io::Error| CliError::writing(&e);
    if starts_raw {
        let mut raw =
            RawReader::new(input).map_err(|e| CliError::failed(format!("reading {name}"), &e))?;
        let proto = raw.header().proto;
        if let Some(requested) = args.proto
            && requested != proto.as_u32()
        {
            return Err(CliError::usage(format!(
                "--proto {requested} contradicts the capture, which was made with protocol \
                 version {}",
                proto.as_u32()
            )));
        }
        let mut decoder = PgOutputDecoder::new(proto);
        let mut index = 0u64;
        while let Some(frame) = raw
            .next_frame()
            .map_err(|e| CliError::failed(format!("reading {name}"), &e))?
        {
            let message = decoder.decode(&frame.data).map_err(|e| {
                CliError::failed(
                    format!("{name}: frame {index} (wal_start {})", frame.wal_start),
                    &e,
                )
            })?;
            let event = renderer
                .render(&message)
                .map_err(|e| CliError::failed(format!("{name}: frame {index}"), &e))?;
            writer.write(out.writer(), &event).map_err(write_error)?;
            index += 1;
        }
    } else {
        let Some(proto) = args.proto else {
            return Err(CliError::usage(format!(
                "{name} is not a raw capture, so it is read as psql output of \
                 pg_logical_slot_peek_binary_changes, which needs --proto N (the proto_version \
                 the rows were produced with)"
            )));
        };
        let rows = read_rows(input).map_err(|e| CliError::failed(name.clone(), &e))?;
        let mut decoder = PgOutputDecoder::new(protocol(proto)?);
        for row in rows {
            let message = decoder.decode(&row.data).map_err(|e| {
                CliError::failed(format!("{name}: line {} (lsn {})", row.line, row.lsn), &e)
            })?;
            let event = renderer.render(&message).map_err(|e| {
                CliError::failed(format!("{name}: line {} (lsn {})", row.line, row.lsn), &e)
            })?;
            writer.write(out.writer(), &event).map_err(write_error)?;
        }
    }
    out.flush_durable().map_err(write_error)
}
