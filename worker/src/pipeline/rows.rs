//! The value-model seam: rows of the common value model on their way from
//! a source engine's reader to a target engine's writer, in bounded
//! batches. Every engine pair but a same-engine passthrough meets here.

use crate::engine::ConnectorError;
use ferry_common::settings::ErrorAction;

/// A row in the common value model, columns in the target table's order.
/// A row the source could read but whose values have no exact form in the
/// value model (MySQL year 0, PostgreSQL NaN or infinity on the way to MySQL)
/// travels as `Err`: the target records it as an exception with the reason.
pub type Row = Result<Vec<ferry_common::value::Value<'static>>, Rejected>;

#[derive(Debug, Clone)]
pub struct Rejected {
    /// The source row as text, for the exceptions table.
    pub image: String,
    pub reason: String,
}

/// One line of tab-separated fields (the shape of both PostgreSQL's text
/// COPY and MySQL's LOAD DATA), each written by the target's `field`; on a
/// refused value the buffer is left as it was.
pub fn tab_separated_row(
    out: &mut Vec<u8>,
    values: &[ferry_common::value::Value],
    field: fn(&mut Vec<u8>, &ferry_common::value::Value) -> Result<(), ferry_common::value::ValueError>,
) -> Result<(), ferry_common::value::ValueError> {
    let start = out.len();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        if let Err(e) = field(out, v) {
            out.truncate(start);
            return Err(e);
        }
    }
    out.push(b'\n');
    Ok(())
}

/// Encodes a row for a target, or says why it cannot be stored there.
pub fn encode_row(
    out: &mut Vec<u8>,
    row: &Row,
    encode: impl Fn(&mut Vec<u8>, &[ferry_common::value::Value]) -> Result<(), ferry_common::value::ValueError>,
) -> Result<(), Rejected> {
    match row {
        Ok(values) => encode(out, values).map_err(|e| Rejected {
            image: format!("{values:?}"),
            reason: e.to_string(),
        }),
        Err(r) => Err(r.clone()),
    }
}

/// Rows of a segment stored with a LOB value cut to the table's limit, as
/// `(key, reason)`, filled while the rows stream and recorded by the writer
/// in `ferry.apply_exceptions` with the segment (see `pipeline::load`).
/// Bounded by the segment: each note stands for a value above the limit.
pub type Cuts = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// Takes the notes of a segment's cut rows.
pub fn take_cuts(cuts: &Cuts) -> Vec<(String, String)> {
    std::mem::take(&mut *cuts.lock().unwrap_or_else(|p| p.into_inner()))
}

/// A segment's rows on their way from a source to a target of another
/// engine, in batches; the stream ends after the last row.
pub type Rows = std::pin::Pin<Box<dyn futures::Stream<Item = Result<Vec<Row>, ConnectorError>> + Send>>;

/// Most rows one segment records as exceptions before it fails instead: a
/// column that no row can cross is a mapping problem, not a few bad rows.
pub const MAX_EXCEPTIONS: usize = 1000;

/// Refused rows a segment records before it fails: `MAX_EXCEPTIONS`, or
/// none past the first under a DataErrorPolicy that stops.
pub fn exception_limit(policy: ErrorAction) -> usize {
    if policy.stops() {
        0
    } else {
        MAX_EXCEPTIONS
    }
}

/// Why a segment failed for its refused rows, the last one `last`.
pub fn too_many_exceptions(policy: ErrorAction, last: &Rejected) -> String {
    if policy.stops() {
        let mut image = last.image.clone();
        if image.len() > 200 {
            let mut cut = 200;
            while !image.is_char_boundary(cut) {
                cut -= 1;
            }
            image.truncate(cut);
            image.push('…');
        }
        format!(
            "a row cannot be stored on the target ({}): {image}; DataErrorPolicy {} stops at the first",
            last.reason,
            policy.name()
        )
    } else {
        format!(
            "more than {MAX_EXCEPTIONS} rows cannot be stored on the target; last: {}",
            last.reason
        )
    }
}

/// The reading side of [`Rows`]: a source connector's reader task gathers
/// rows into batches (at most 1000 rows or 1 MiB) and hands them over a
/// channel of two batches, so memory stays bounded and the hand-over stays
/// off the per-row path.
pub struct RowSender {
    tx: tokio::sync::mpsc::Sender<Result<Vec<Row>, ConnectorError>>,
    batch: Vec<Row>,
    bytes: usize,
}

const BATCH_ROWS: usize = 1000;
const BATCH_BYTES: usize = 1 << 20;

/// A channel for one segment's rows: the reader task gets the sender, the
/// target writer the stream.
pub fn row_channel() -> (RowSender, Rows) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let sender = RowSender {
        tx,
        batch: Vec::with_capacity(BATCH_ROWS),
        bytes: 0,
    };
    (sender, Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx))))
}

impl RowSender {
    /// Adds a row of about `bytes` bytes; false once the writer has gone
    /// (its error is the one reported).
    pub async fn push(&mut self, row: Row, bytes: usize) -> bool {
        self.batch.push(row);
        self.bytes += bytes;
        if self.batch.len() < BATCH_ROWS && self.bytes < BATCH_BYTES {
            return true;
        }
        self.bytes = 0;
        let full = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_ROWS));
        self.tx.send(Ok(full)).await.is_ok()
    }

    /// Ends the stream: the last rows, or the reader's error.
    pub async fn finish(self, result: Result<(), ConnectorError>) {
        let last = match result {
            Err(e) => Err(e),
            Ok(()) if self.batch.is_empty() => return,
            Ok(()) => Ok(self.batch),
        };
        let _ = self.tx.send(last).await;
    }
}
