//! One stream's record writer, shared by framing (lines) and multi-line joining (traces): the
//! record heads it reuses, the `"partial":true` pieces of a text written while the text is
//! still growing, and the counts behind /metrics.

use std::sync::Arc;

use super::level::Level;
use super::record::{Buffers, LogFormat, Stream};

#[derive(Debug)]
pub(super) struct Writer {
    format: Arc<LogFormat>,
    stream: Stream,
    buffers: Buffers,
    /// Records written so far that end a text (a line, or a joined trace): the non-partial ones.
    pub(super) records: usize,
    /// Records written so far that are pieces of a text over the record limit.
    pub(super) partial_records: usize,
}

impl Writer {
    pub(super) fn new(format: Arc<LogFormat>, stream: Stream) -> Writer {
        Writer {
            format,
            stream,
            buffers: Buffers::new(stream),
            records: 0,
            partial_records: 0,
        }
    }

    /// The level of a text from this stream that names none.
    pub(super) fn default_level(&self) -> Level {
        self.format.default_level(self.stream)
    }

    /// The longest text that may still become one record (see `LogFormat`).
    pub(super) fn longest(&self) -> usize {
        self.format.longest_whole_line()
    }

    /// The record(s) of one complete text: with `level` None, JSON pass-through or a text
    /// record with the level it names (see `LogFormat::write_line`); with `level` set, a text
    /// record with that level.
    pub(super) fn text(
        &mut self,
        text: &[u8],
        level: Option<Level>,
        time: &[u8; 27],
        out: &mut Vec<u8>,
    ) {
        self.partial_records +=
            self.format
                .write_line(text, self.stream, level, time, &mut self.buffers, out);
        self.records += 1;
    }

    /// Writes `"partial":true` pieces from the start of `text`, a text still growing, while
    /// what is left of it is too long to become one record. Returns how many bytes of `text`
    /// the pieces hold. The pieces are the ones the whole text would get (a piece never
    /// reaches the end of `text`, so a character there is never cut), whenever this is called.
    pub(super) fn pieces(
        &mut self,
        text: &[u8],
        level: Level,
        time: &[u8; 27],
        out: &mut Vec<u8>,
    ) -> usize {
        let format = &*self.format;
        let longest = format.longest_whole_line();
        let head = self.buffers.head(format, time, level);
        let mut rest = text;
        let mut done = 0;
        while rest.len() > longest {
            let taken = format.write_piece(head, format.closing(self.stream), rest, out);
            let Some((_, after)) = rest.split_at_checked(taken).filter(|_| taken > 0) else {
                // Cannot happen (see `write_piece`), but should it, what is left stays with
                // the caller, to be written whole with the end of the text.
                break;
            };
            self.partial_records += 1;
            done += taken;
            rest = after;
        }
        done
    }
}
