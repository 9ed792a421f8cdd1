//! Opening an input file on local disk and decoding it into blocks: the same reading
//! path for `mta attribute` and for the split stage (which works on a local copy).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use mta_core::ingest::{
    Block, Format, InputSpec, is_gzip, open_text, parquet_layout, read_csv, read_ndjson, read_parquet,
};
use mta_core::{AttributionError, ErrorCode};

/// An opened input: what can be planned before decoding.
#[derive(Debug, Clone)]
pub enum Source {
    Parquet { path: PathBuf, row_groups: usize, rows: u64 },
    Text { path: PathBuf, format: Option<Format>, gzip: bool },
}

impl Source {
    /// Looks at the first bytes; Parquet is recognised by its magic, anything else is text.
    pub fn open<E: InputError>(path: &Path, format: Option<Format>) -> Result<Source, E> {
        let mut file = open(path)?;
        let mut head = [0u8; 4];
        let n = file.read(&mut head).with_context(|| format!("Failed to read {}", path.display()))?;
        let parquet = &head[..n] == b"PAR1";
        match format {
            Some(Format::Parquet) | None if parquet => {
                let layout = parquet_layout(open(path)?)?;
                Ok(Source::Parquet {
                    path: path.to_owned(),
                    row_groups: layout.row_groups.len(),
                    rows: layout.total_rows,
                })
            }
            Some(Format::Parquet) => Err(AttributionError::new(
                ErrorCode::UnknownFormat,
                "the input was declared Parquet but does not start with the Parquet magic bytes `PAR1`",
            )
            .into()),
            _ => Ok(Source::Text { path: path.to_owned(), format, gzip: is_gzip(&head[..n]) }),
        }
    }

    /// Rows, exact for Parquet, estimated from the size for text.
    pub fn estimated_rows(&self) -> u64 {
        match self {
            Source::Parquet { rows, .. } => *rows,
            Source::Text { path, gzip, .. } => {
                let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                // About 50 bytes a CSV row; gzip packs text about 6 to 1.
                bytes * if *gzip { 6 } else { 1 } / 50
            }
        }
    }

    /// Pieces that can be decoded independently: Parquet row groups; text is one piece.
    pub fn pieces(&self) -> usize {
        match self {
            Source::Parquet { row_groups, .. } => *row_groups,
            Source::Text { .. } => 1,
        }
    }

    /// Decodes the input (only `row_groups` of a Parquet file, when given) into `sink`.
    pub fn read<E: InputError>(
        &self,
        spec: &InputSpec,
        row_groups: Option<&[usize]>,
        sink: impl FnMut(Block) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            Source::Parquet { path, .. } => {
                read_parquet(open(path)?, spec, row_groups, sink)?;
            }
            Source::Text { path, format, .. } => {
                let (format, reader) = open_text(open(path)?, *format)?;
                match format {
                    Format::Ndjson => read_ndjson(reader, spec, sink)?,
                    _ => read_csv(reader, spec, sink)?,
                };
            }
        }
        Ok(())
    }
}

/// An error type that can say both "the input is wrong" and "something else failed".
pub trait InputError: From<AttributionError> + From<anyhow::Error> {}

impl<E: From<AttributionError> + From<anyhow::Error>> InputError for E {}

fn open(path: &Path) -> anyhow::Result<File> {
    File::open(path).with_context(|| format!("Failed to open {}", path.display()))
}
