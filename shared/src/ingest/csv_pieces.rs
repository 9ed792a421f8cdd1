//! CSV read from one stream by several threads: a gzip file (one stream, which only one thread
//! can inflate) or a file too small to cut into byte ranges. The calling thread reads the
//! stream and cuts it into pieces at record ends ([`RecordScan`], the grammar the range planner
//! follows), threads parse the pieces, each behind the header's bytes and numbered from its
//! first row, and the calling thread hands their blocks to the sink in the input's order: the
//! sink sees the rows, row numbers and problems a read on one thread would give.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Mutex, mpsc};

use super::text::{CsvLines, read_csv_lines};
use super::{Block, InputSpec, InputSummary, Limits, detect_delimiter, io_error};
use crate::error::{AttributionError, ErrorCode, MAX_DETAILS, Problems};
use crate::options::InputKind;

/// The bytes of records a piece holds (it ends at the last record end within them): enough
/// rows that a thread's hand-over costs nothing next to parsing them (about 150,000 rows of a
/// typical export), few enough that the pieces in flight (two per thread) stay small.
pub const PIECE_BYTES: usize = 8 << 20;

/// Reads CSV rows from `reader` like [`super::read_csv`], parsed by `threads` threads (one: on
/// the calling thread alone). Blocks reach `sink` on the calling thread, in the input's order.
pub fn read_csv_in_pieces<E: From<AttributionError>>(
    reader: impl BufRead,
    spec: &InputSpec,
    threads: usize,
    sink: impl FnMut(Block) -> Result<(), E>,
) -> Result<InputSummary, E> {
    read_in_pieces(reader, spec, threads, PIECE_BYTES, sink)
}

fn read_in_pieces<E: From<AttributionError>>(
    mut reader: impl BufRead,
    spec: &InputSpec,
    threads: usize,
    piece_bytes: usize,
    mut sink: impl FnMut(Block) -> Result<(), E>,
) -> Result<InputSummary, E> {
    let delimiter = match spec.delimiter {
        Some(delimiter) => delimiter,
        None => detect_delimiter(reader.fill_buf().map_err(io_error)?),
    };
    let lines =
        CsvLines { delimiter: Some(delimiter), max_line_bytes: spec.limits.max_line_bytes, first_row: spec.first_row };
    let mut cutter = Cutter::new(reader, delimiter, piece_bytes, spec.first_row);
    let mut merged = Merged::default();
    let first = match threads {
        0 | 1 => None,
        _ => match cutter.next()? {
            Next::Piece(piece) => Some(piece),
            Next::Rest | Next::End => None,
        },
    };
    let ending = match first {
        // A single piece, or one thread: nothing to share.
        None => Ending::Rest,
        Some(first) => {
            let (to_parse, queue) = mpsc::sync_channel::<Piece>(threads);
            let queue = Mutex::new(queue);
            std::thread::scope(|scope| {
                // Owned here: returning closes the queue, so the threads end before the scope joins them.
                let to_parse = to_parse;
                let (to_merge, parsed) = mpsc::channel::<(usize, std::thread::Result<Parsed>)>();
                for _ in 0..threads {
                    let (queue, to_merge) = (&queue, to_merge.clone());
                    scope.spawn(move || {
                        loop {
                            // One thread waits for the next piece at a time; the lock is released before parsing.
                            let next = queue.lock().expect("no panics while locked").recv();
                            let Ok(piece) = next else { return };
                            let index = piece.index;
                            let outcome = catch_unwind(AssertUnwindSafe(|| parse(piece, spec, lines)));
                            if to_merge.send((index, outcome)).is_err() {
                                return;
                            }
                        }
                    });
                }
                drop(to_merge);
                let send = |piece: Piece| to_parse.send(piece).expect("the threads take pieces until the queue closes");
                send(first);
                let (mut sent, mut taken) = (1, 0);
                let mut waiting: BTreeMap<usize, Parsed> = BTreeMap::new();
                let (mut open, mut ending) = (true, Ending::End);
                loop {
                    while open && sent - taken < 2 * threads && !merged.is_full() {
                        match cutter.next() {
                            Ok(Next::Piece(piece)) => {
                                send(piece);
                                sent += 1;
                            }
                            Ok(Next::End) => open = false,
                            Ok(Next::Rest) => (open, ending) = (false, Ending::Rest),
                            Err(error) => (open, ending) = (false, Ending::Failed(error)),
                        }
                    }
                    if taken == sent {
                        break;
                    }
                    let (index, outcome) = parsed.recv().expect("a thread answers every piece it takes");
                    waiting.insert(index, outcome.unwrap_or_else(|panic| resume_unwind(panic)));
                    while let Some(outcome) = waiting.remove(&taken) {
                        merged.take(taken, outcome, &spec.limits, &mut sink)?;
                        taken += 1;
                    }
                }
                Ok::<Ending, E>(ending)
            })?
        }
    };
    match ending {
        // Enough problems are known: a read on one thread stops there too.
        _ if merged.is_full() => {}
        Ending::End => {}
        Ending::Failed(error) => return Err(error.into()),
        Ending::Rest => {
            // The rest as one piece, read as it streams; the sink's own failure is kept apart
            // so that the rest's problems combine with the pieces' like any piece's.
            let index = cutter.pieces;
            let (header, pending, reader, first_row) = cutter.into_rest();
            let (base, limits) = (merged.rows, &spec.limits);
            let keep_blocks = merged.problems.is_empty();
            let mut counted = 0u64;
            let mut failed: Option<E> = None;
            let body = (&header[..]).chain(&pending[..]).chain(reader);
            let outcome = read_csv_lines(body, spec, CsvLines { first_row, ..lines }, |block: Block| {
                counted += rows_of(&block);
                limits.check_rows(base + counted)?;
                if keep_blocks && let Err(error) = sink(block) {
                    failed = Some(error);
                    return Err(AttributionError::new(ErrorCode::Internal, "the sink failed"));
                }
                Ok(())
            });
            if let Some(error) = failed {
                return Err(error);
            }
            merged.take(index, outcome.map(|summary| (Vec::new(), summary)), limits, &mut sink)?;
        }
    }
    Ok(merged.finish()?)
}

/// How the pieces ended: with the input, with a rest to read as one, or with a read failure
/// (which comes after every piece sent: it is reported once they are merged).
enum Ending {
    End,
    Rest,
    Failed(AttributionError),
}

/// Records of the input that parse on their own behind the header's bytes.
struct Piece {
    index: usize,
    /// Empty for the first piece, which holds the header itself.
    header: Arc<[u8]>,
    bytes: Vec<u8>,
    first_row: u64,
}

type Parsed = Result<(Vec<Block>, InputSummary), AttributionError>;

fn parse(piece: Piece, spec: &InputSpec, lines: CsvLines) -> Parsed {
    let mut blocks = Vec::new();
    let body = (&piece.header[..]).chain(&piece.bytes[..]);
    let lines = CsvLines { first_row: piece.first_row, ..lines };
    let summary = read_csv_lines(body, spec, lines, |block| {
        blocks.push(block);
        Ok::<(), AttributionError>(())
    })?;
    Ok((blocks, summary))
}

fn rows_of(block: &Block) -> u64 {
    match block {
        Block::Events(chunk) => chunk.len() as u64,
        Block::Paths(chunk) => chunk.len() as u64,
    }
}

/// The pieces' outcomes, taken in the input's order.
#[derive(Default)]
struct Merged {
    kind: Option<InputKind>,
    rows: u64,
    /// Row problems (`invalid_value` with located details), combined at the end.
    problems: Vec<AttributionError>,
    details: usize,
}

impl Merged {
    /// Takes the outcome of piece `index`: its blocks go to the sink unless a problem is known
    /// (a failing input produces no output); any other failure ends the read, as it would on one
    /// thread.
    fn take<E: From<AttributionError>>(
        &mut self,
        index: usize,
        parsed: Parsed,
        limits: &Limits,
        sink: &mut impl FnMut(Block) -> Result<(), E>,
    ) -> Result<(), E> {
        match parsed {
            Ok((blocks, summary)) => {
                self.kind.get_or_insert(summary.kind);
                self.rows += summary.rows;
                limits.check_rows(self.rows)?;
                if self.problems.is_empty() {
                    for block in blocks {
                        sink(block)?;
                    }
                }
            }
            Err(error) if is_row_problems(&error) => {
                self.details += error.details.len();
                self.problems.push(error);
            }
            // A later piece of lines that hold no row (`""`): the scan counts rows as the reader does,
            // this only keeps a disagreement from failing the input.
            Err(error) if error.code == ErrorCode::EmptyInput && index > 0 => {}
            Err(error) => return Err(error.into()),
        }
        Ok(())
    }

    /// True once a read on one thread would have stopped for the problems known.
    fn is_full(&self) -> bool {
        self.details >= MAX_DETAILS
    }

    fn finish(self) -> Result<InputSummary, AttributionError> {
        if let Some(error) = Problems::combine(self.problems) {
            return Err(error);
        }
        match self.kind {
            Some(kind) => Ok(InputSummary { kind, rows: self.rows }),
            None => Err(AttributionError::new(ErrorCode::EmptyInput, "the input has a header but no data rows")),
        }
    }
}

/// Problems of rows, which a read goes on past (a header's problem has no row).
fn is_row_problems(error: &AttributionError) -> bool {
    error.code == ErrorCode::InvalidValue
        && !error.details.is_empty()
        && error.details.iter().all(|problem| problem.row.is_some())
}

/// What the stream gives next.
enum Next {
    Piece(Piece),
    /// The rest cannot be cut (a lone carriage return, a record longer than a piece) or the
    /// whole input fits one piece: it is read as one.
    Rest,
    End,
}

/// Reads the stream and cuts it into pieces at record ends.
struct Cutter<R> {
    reader: R,
    scan: RecordScan,
    piece_bytes: usize,
    /// Number of the input's first data row.
    first_row: u64,
    /// Bytes read and not yet handed over: from the last cut (or the input's start) on.
    pending: Vec<u8>,
    /// Where `pending` starts in the stream, and the data rows before it.
    pending_at: u64,
    rows_before: u64,
    /// The last record end in `pending` with a data row before it: (offset, data rows before it).
    cut: Option<(u64, u64)>,
    /// The header's bytes (and any blank lines before it), once the first piece is cut.
    header: Arc<[u8]>,
    pieces: usize,
}

impl<R: BufRead> Cutter<R> {
    fn new(reader: R, delimiter: u8, piece_bytes: usize, first_row: u64) -> Cutter<R> {
        Cutter {
            reader,
            scan: RecordScan::new(delimiter),
            piece_bytes,
            first_row,
            pending: Vec::new(),
            pending_at: 0,
            rows_before: 0,
            cut: None,
            header: Arc::from(&[][..]),
            pieces: 0,
        }
    }

    fn next(&mut self) -> Result<Next, AttributionError> {
        loop {
            let data = self.reader.fill_buf().map_err(io_error)?;
            if data.is_empty() {
                return Ok(self.last());
            }
            let n = data.len();
            let (rows_before, mut cut) = (self.rows_before, self.cut);
            let safe = self.scan.buffer(data, |end, rows, header_seen| {
                if header_seen && rows > rows_before {
                    cut = Some((end, rows));
                }
            });
            self.pending.extend_from_slice(data);
            self.reader.consume(n);
            self.cut = cut;
            if !safe {
                return Ok(Next::Rest);
            }
            if self.pending.len() >= self.piece_bytes {
                return Ok(match self.cut.take() {
                    Some((end, rows)) => Next::Piece(self.cut_at(end, rows)),
                    None => Next::Rest,
                });
            }
        }
    }

    /// The piece of `pending` up to `end`, where `rows` data rows of the input end.
    fn cut_at(&mut self, end: u64, rows: u64) -> Piece {
        let at = (end - self.pending_at) as usize;
        let mut rest = Vec::with_capacity(self.piece_bytes + self.pending.len() - at);
        rest.extend_from_slice(&self.pending[at..]);
        self.pending.truncate(at);
        let bytes = std::mem::replace(&mut self.pending, rest);
        let header = Arc::clone(&self.header);
        if self.pieces == 0 {
            let header_end = self.scan.header_end().expect("a data row comes after the header");
            self.header = Arc::from(&bytes[..header_end as usize]);
        }
        let piece = Piece { index: self.pieces, header, bytes, first_row: self.first_row + self.rows_before };
        (self.pieces, self.pending_at, self.rows_before) = (self.pieces + 1, end, rows);
        piece
    }

    /// At the end of the stream: the last piece, unless it holds line ends alone.
    fn last(&mut self) -> Next {
        if self.pieces == 0 {
            return Next::Rest;
        }
        if self.pending.iter().all(|&b| b == b'\n' || b == b'\r') {
            return Next::End;
        }
        let bytes = std::mem::take(&mut self.pending);
        let piece = Piece {
            index: self.pieces,
            header: Arc::clone(&self.header),
            bytes,
            first_row: self.first_row + self.rows_before,
        };
        self.pieces += 1;
        Next::Piece(piece)
    }

    /// What is left to read as one: the header's bytes, the bytes read, the reader, and the
    /// number of the first data row among them.
    fn into_rest(self) -> (Arc<[u8]>, Vec<u8>, R, u64) {
        (self.header, self.pending, self.reader, self.first_row + self.rows_before)
    }
}

/// The CSV grammar as far as where records end: it follows quoting as the CSV reader does (a
/// quote opens a quoted field only at the start of a field; `""` inside one is a literal
/// quote; a newline inside quotes does not end a record) and counts data rows as the reader
/// does (blank lines and lines holding only `""` are not rows). It jumps between quotes,
/// newlines and carriage returns (memchr), so a stream is scanned several times faster than
/// parsed. Used to cut CSV into pieces that parse on their own: byte ranges of a file
/// (`mta_platform::input::plan_csv_ranges`) and the pieces of a stream ([`read_csv_in_pieces`]).
pub struct RecordScan {
    delimiter: u8,
    /// End of the header record (the first record that is not blank).
    header_end: Option<u64>,
    /// Data rows seen (records after the header that are not blank).
    rows: u64,
    /// Offset of the start of the current buffer in the file.
    offset: u64,
    in_quotes: bool,
    /// Offset of the quote that last closed a quoted field: a quote right after it is an escaped `""`.
    closed_at: Option<u64>,
    /// The byte before the next one to look at (`\n` at the start of the file).
    previous: u8,
    after_cr: bool,
    /// Bytes of a UTF-8 byte order mark matched at the stream's start (the reader drops it, so
    /// it is not content), or `BOM.len()` once past it.
    bom: usize,
    /// Bytes of the current record other than quotes and line ends, and its quotes.
    content: u64,
    quotes: u64,
}

/// The UTF-8 byte order mark, which the CSV reader drops at the start of its input.
const BOM: [u8; 3] = [0xef, 0xbb, 0xbf];

impl RecordScan {
    pub fn new(delimiter: u8) -> RecordScan {
        RecordScan {
            delimiter,
            header_end: None,
            rows: 0,
            offset: 0,
            in_quotes: false,
            closed_at: None,
            previous: b'\n',
            after_cr: false,
            bom: 0,
            content: 0,
            quotes: 0,
        }
    }

    /// Data rows seen so far (records after the header that are not blank).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Where the header record ends (after the first record that is not blank), once seen.
    pub fn header_end(&self) -> Option<u64> {
        self.header_end
    }

    /// Scans the next buffer, calling `record_end(end offset, rows so far, header seen)`
    /// after every record; `false` when the stream cannot be cut safely (a lone carriage return, which ends
    /// records for the reader and not here).
    pub fn buffer(&mut self, bytes: &[u8], mut record_end: impl FnMut(u64, u64, bool)) -> bool {
        let mut at = 0;
        while self.bom < BOM.len() && at < bytes.len() {
            if self.offset + at as u64 == self.bom as u64 && bytes[at] == BOM[self.bom] {
                (self.bom, at) = (self.bom + 1, at + 1);
            } else {
                // Not a byte order mark: what matched of one is content (the reader finds it is not UTF-8).
                self.content += self.bom as u64;
                self.bom = BOM.len();
            }
        }
        while at < bytes.len() {
            if self.in_quotes {
                let Some(j) = memchr::memchr(b'"', &bytes[at..]) else {
                    self.content += (bytes.len() - at) as u64;
                    self.previous = bytes[bytes.len() - 1];
                    break;
                };
                let i = at + j;
                self.content += j as u64;
                self.in_quotes = false;
                self.closed_at = Some(self.offset + i as u64);
                self.quotes += 1;
                self.previous = b'"';
                at = i + 1;
                continue;
            }
            let found = memchr::memchr3(b'"', b'\n', b'\r', &bytes[at..]);
            let skipped = found.unwrap_or(bytes.len() - at);
            if skipped > 0 {
                if self.after_cr {
                    return false; // A lone carriage return ends records for the reader, not for us.
                }
                self.content += skipped as u64;
                self.previous = bytes[at + skipped - 1];
            }
            let Some(j) = found else { break };
            let i = at + j;
            let position = self.offset + i as u64;
            match bytes[i] {
                b'"' => {
                    if self.after_cr {
                        return false;
                    }
                    let escaped = self.closed_at.is_some_and(|closed| closed + 1 == position);
                    if escaped || self.previous == self.delimiter || self.previous == b'\n' {
                        self.in_quotes = true;
                        self.quotes += 1;
                    } else {
                        self.content += 1; // A quote inside an unquoted field is literal.
                    }
                    self.previous = b'"';
                }
                b'\r' => {
                    if self.after_cr {
                        return false;
                    }
                    self.after_cr = true;
                    self.previous = b'\r';
                }
                _ => {
                    self.after_cr = false;
                    self.previous = b'\n';
                    if !self.record_is_blank() {
                        match self.header_end {
                            None => self.header_end = Some(position + 1),
                            Some(_) => self.rows += 1,
                        }
                    }
                    (self.content, self.quotes) = (0, 0);
                    record_end(position + 1, self.rows, self.header_end.is_some());
                }
            }
            at = i + 1;
        }
        self.offset += bytes.len() as u64;
        true
    }

    /// A record the reader skips: empty, or holding only `""` (one empty field).
    fn record_is_blank(&self) -> bool {
        self.content == 0 && (self.quotes == 0 || self.quotes == 2)
    }

    /// The header's end, once the last record (which may lack a newline) is counted;
    /// `None` when the file ends inside quotes or has no header.
    pub fn finish(&mut self) -> Option<u64> {
        if self.in_quotes {
            return None;
        }
        if !self.record_is_blank() && self.header_end.is_some() {
            self.rows += 1;
        }
        self.header_end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::read_csv;

    /// Every row a read gave, as plain values: (row, user key, time, channel, conversion, value)
    /// of event rows; (row, path, conversions, value, nulls) of path rows in the channel field.
    type Row = (u64, u128, i64, String, bool, u64);

    fn plain_rows(blocks: Vec<Block>) -> Vec<Row> {
        let mut rows = Vec::new();
        for block in blocks {
            match block {
                Block::Events(chunk) => {
                    for i in 0..chunk.len() {
                        let channel = match chunk.channel_ids[i] {
                            u32::MAX => String::new(),
                            id => chunk.channels.name(id).to_owned(),
                        };
                        rows.push((
                            chunk.row_numbers[i],
                            chunk.user_keys[i],
                            chunk.timestamps[i],
                            channel,
                            chunk.is_conversion[i],
                            chunk.values[i].to_bits(),
                        ));
                    }
                }
                Block::Paths(chunk) => {
                    for i in 0..chunk.len() {
                        let path: Vec<&str> = chunk.path(i).iter().map(|&c| chunk.channels.name(c)).collect();
                        let counts = format!("{} {} {}", chunk.conversions[i], chunk.values[i], chunk.nulls[i]);
                        rows.push((chunk.row_numbers[i], 0, 0, format!("{} | {counts}", path.join(">")), false, 0));
                    }
                }
            }
        }
        rows
    }

    /// What a read on one thread gives: its rows and row count, or its error.
    fn one_thread(text: &[u8], spec: &InputSpec) -> Result<(Vec<Row>, u64), AttributionError> {
        let mut blocks = Vec::new();
        let summary = read_csv(text, spec, |block| {
            blocks.push(block);
            Ok::<(), AttributionError>(())
        })?;
        Ok((plain_rows(blocks), summary.rows))
    }

    fn in_pieces(
        text: &[u8],
        spec: &InputSpec,
        threads: usize,
        piece_bytes: usize,
    ) -> Result<(Vec<Row>, u64), AttributionError> {
        let mut blocks = Vec::new();
        let summary = read_in_pieces(text, spec, threads, piece_bytes, |block| {
            blocks.push(block);
            Ok::<(), AttributionError>(())
        })?;
        Ok((plain_rows(blocks), summary.rows))
    }

    /// Reads `text` in pieces of many sizes, on 2 and 3 threads, and checks every read against
    /// the read on one thread; returns that read.
    fn reads_like_one_thread(text: &[u8], spec: &InputSpec) -> Result<(Vec<Row>, u64), AttributionError> {
        let expected = one_thread(text, spec);
        for piece_bytes in [1, 7, 64, 333, 4_096, 1 << 20] {
            for threads in [2, 3] {
                let got = in_pieces(text, spec, threads, piece_bytes);
                assert_eq!(got, expected, "pieces of {piece_bytes} bytes, {threads} threads");
            }
        }
        expected
    }

    /// Events of 40 users with quoted channels holding delimiters, newlines and escaped quotes,
    /// stray quotes inside unquoted fields, blank and `""` lines, CRLF line ends, a byte order
    /// mark and a blank line before the header; `bad(i)` rows get an unreadable time.
    fn events(rows: usize, bad: impl Fn(usize) -> bool) -> String {
        format!("\u{feff}\r\nuser_id,timestamp,channel,conversion,value\r\n{}", records(0..rows, bad))
    }

    fn records(rows: std::ops::Range<usize>, bad: impl Fn(usize) -> bool) -> String {
        let mut text = String::new();
        for i in rows {
            let channel = match i % 7 {
                0 => format!("\"paid\nsearch, \"\"{i}\"\"\""),
                3 => format!("tv 5\" spot {i}"),
                _ => format!("c{}", i % 5),
            };
            let time =
                if bad(i) { "soon".to_owned() } else { format!("2026-01-{:02}T00:00:{:02}Z", i % 28 + 1, i % 60) };
            let conversion = i % 11 / 10;
            let value = if conversion == 1 { format!("{}.5", i % 13) } else { String::new() };
            text.push_str(&format!("u{},{time},{channel},{conversion},{value}\r\n", i % 40));
            if i % 50 == 0 {
                text.push_str("\r\n\"\"\r\n");
            }
        }
        text
    }

    #[test]
    fn pieces_read_like_one_thread() {
        let text = events(500, |_| false);
        let (rows, count) = reads_like_one_thread(text.as_bytes(), &InputSpec::default()).unwrap();
        assert_eq!((rows.len(), count), (500, 500));
        assert_eq!(rows.last().unwrap().0, 500);
        // Numbered from a later first row (a byte range of a larger file); a given delimiter.
        let spec = InputSpec { first_row: 1_001, ..Default::default() };
        assert_eq!(reads_like_one_thread(text.as_bytes(), &spec).unwrap().0[0].0, 1_001);
        let semicolons = text.replace(',', ";");
        let spec = InputSpec { delimiter: Some(b';'), ..Default::default() };
        assert_eq!(reads_like_one_thread(semicolons.as_bytes(), &spec).unwrap().0.len(), 500);
        // Without a last line end, and with line ends alone after the last row.
        reads_like_one_thread(text.trim_end().as_bytes(), &InputSpec::default()).unwrap();
        reads_like_one_thread(format!("{text}\n\r\n\n").as_bytes(), &InputSpec::default()).unwrap();
    }

    #[test]
    fn path_rows_read_like_one_thread() {
        let mut text = String::from("path,total_conversions,total_conversion_value,total_null\n");
        for i in 0..300 {
            let conversions = i % 4 + 1;
            text.push_str(&format!("\"a>b{}>c,{}\",{conversions},{}.25,{}\n", i % 3, i % 5, i % 7, i % 2));
        }
        let (rows, count) = reads_like_one_thread(text.as_bytes(), &InputSpec::default()).unwrap();
        assert_eq!((rows.len(), count), (300, 300));
    }

    #[test]
    fn problems_are_those_a_read_on_one_thread_reports() {
        // A few: the same error, message and details.
        let text = events(500, |i| [6, 299, 451].contains(&i));
        let error = reads_like_one_thread(text.as_bytes(), &InputSpec::default()).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidValue);
        let rows: Vec<Option<u64>> = error.details.iter().map(|problem| problem.row).collect();
        assert_eq!(rows, [Some(7), Some(300), Some(452)]);
        // More than a read reports: the first ones by row, as on one thread (each piece stops at
        // as many, so the count of "at least ..." may be larger).
        let text = events(3_000, |i| i % 20 == 3);
        let expected = one_thread(text.as_bytes(), &InputSpec::default()).unwrap_err();
        assert_eq!(expected.details.len(), MAX_DETAILS);
        for piece_bytes in [64, 4_096] {
            let error = in_pieces(text.as_bytes(), &InputSpec::default(), 2, piece_bytes).unwrap_err();
            assert_eq!((error.code, &error.details), (expected.code, &expected.details));
            assert!(error.message.starts_with("at least "), "{}", error.message);
        }
    }

    #[test]
    fn limits_and_failures_end_the_read_as_on_one_thread() {
        let text = events(500, |_| false);
        let spec = InputSpec { limits: Limits { max_rows: Some(250), ..Default::default() }, ..Default::default() };
        let error = reads_like_one_thread(text.as_bytes(), &spec).unwrap_err();
        assert_eq!(error.code, ErrorCode::LimitExceeded);
        // A row longer than the line limit, past other rows' problems.
        let mut long = events(400, |i| i == 20);
        long.push_str(&format!("u1,2026-01-01T00:00:00Z,{},0,\n", "x".repeat(300)));
        long.push_str(&records(400..500, |_| false));
        let spec = InputSpec { limits: Limits { max_line_bytes: 200, ..Default::default() }, ..Default::default() };
        let error = reads_like_one_thread(long.as_bytes(), &spec).unwrap_err();
        assert_eq!(error.code, ErrorCode::LimitExceeded);
        assert_eq!(error.details[0].row, Some(401));
        // A stream that fails part way (a cut-off gzip file, say).
        let reader = std::io::BufReader::with_capacity(256, Failing { bytes: text.as_bytes(), left: 9_000 });
        let error = read_in_pieces(reader, &InputSpec::default(), 2, 500, |_| Ok::<(), AttributionError>(()));
        let expected = read_csv(
            std::io::BufReader::with_capacity(256, Failing { bytes: text.as_bytes(), left: 9_000 }),
            &InputSpec::default(),
            |_| Ok::<(), AttributionError>(()),
        );
        assert_eq!(error.unwrap_err(), expected.unwrap_err());
        // The sink's own failure ends the read with it.
        let mut blocks = 0;
        let spec = InputSpec { block_rows: 10, ..Default::default() };
        let error = read_in_pieces(text.as_bytes(), &spec, 2, 64, |_| {
            blocks += 1;
            if blocks == 3 { Err(AttributionError::new(ErrorCode::Internal, "full")) } else { Ok(()) }
        });
        assert_eq!(error.unwrap_err().message, "full");
    }

    /// Hands out `left` bytes of `bytes`, then fails.
    struct Failing<'a> {
        bytes: &'a [u8],
        left: usize,
    }

    impl std::io::Read for Failing<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.left == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "cut off"));
            }
            let n = buf.len().min(self.left).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            (self.bytes, self.left) = (&self.bytes[n..], self.left - n);
            Ok(n)
        }
    }

    #[test]
    fn what_cannot_be_cut_is_read_as_one_like_one_thread() {
        let text = events(300, |_| false);
        // A lone carriage return ends records for the reader: the rest from there is one piece.
        let lone_cr = text.replacen("\r\n", "\r", 250);
        reads_like_one_thread(lone_cr.as_bytes(), &InputSpec::default()).unwrap();
        let more = records(300..600, |_| false);
        let late_cr = format!("{text}u7,2026-02-01T00:00:00Z,c1,1,2\ru8,2026-02-01T00:00:00Z,c2,0,\n{more}");
        reads_like_one_thread(late_cr.as_bytes(), &InputSpec::default()).unwrap();
        // A record longer than a piece (a quoted channel of 2,000 bytes, too long a name), and a
        // quote left open.
        let long = format!("{text}u9,2026-02-01T00:00:00Z,\"{}\",0,\n{more}", "y\n".repeat(1_000));
        let error = reads_like_one_thread(long.as_bytes(), &InputSpec::default()).unwrap_err();
        assert_eq!(error.details[0].row, Some(301));
        reads_like_one_thread(
            format!("{text}u9,2026-02-01T00:00:00Z,\"open,0,\n{more}").as_bytes(),
            &InputSpec::default(),
        )
        .unwrap_err();
        // Lines that hold no row after the last one, a lone quote last, a header alone, nothing.
        reads_like_one_thread(format!("{text}\"\"\n\"\"\n").as_bytes(), &InputSpec::default()).unwrap();
        reads_like_one_thread(format!("{text}\"").as_bytes(), &InputSpec::default()).unwrap();
        let header = reads_like_one_thread(b"user_id,timestamp,channel,conversion\n\n", &InputSpec::default());
        assert_eq!(header.unwrap_err().code, ErrorCode::EmptyInput);
        assert_eq!(reads_like_one_thread(b"", &InputSpec::default()).unwrap_err().code, ErrorCode::EmptyInput);
    }
}
