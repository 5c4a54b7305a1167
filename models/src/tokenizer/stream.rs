//! Streaming detokenization: one id in, the new text to print out.
//!
//! A token is not a unit of text: with byte-level BPE one character can span several tokens,
//! with byte fallback a character is several `<0xNN>` tokens, and SentencePiece-style decoders
//! strip the leading space of the first token only. So the decoder re-decodes a short window
//! of recent ids: `prefix` = decode(ids[prefix_offset..read_offset]) (already printed) and
//! `text` = decode(ids[prefix_offset..]); when `text` is longer than `prefix` and does not end
//! in U+FFFD (an incomplete UTF-8 sequence), `text[prefix.len()..]` is new, complete text.
//! (The same scheme as text-generation-inference and tokenizers' `DecodeStream`.)
//!
//! Invariant, tested against every fixture: the concatenation of the fragments returned by
//! `step`, followed by `finish()`, equals `decode(all ids)`. `finish` returns what was held
//! back (a trailing incomplete character decodes to U+FFFD, as in `decode`).
//! When a window's text does not extend what was printed (possible only with decoders that
//! rewrite earlier text), the decoder falls back to decoding all ids; with transformers'
//! `clean_up_tokenization_spaces` active (non-BPE models only) it always does, and holds back
//! the text after the last space, which a cleanup may still rewrite.

use std::sync::Arc;

use super::error::Result;
use super::Decoding;

/// Turns ids into printable text incrementally. Made by `TextTokenizer::stream_decoder`.
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    decoding: Arc<Decoding>,
    skip_special_tokens: bool,
    ids: Vec<u32>,
    /// Start of the window that is re-decoded.
    prefix_offset: usize,
    /// End of the ids whose text was printed.
    read_offset: usize,
    /// Bytes of text printed so far (the fallback path compares against decode(all)).
    printed: String,
}

impl StreamDecoder {
    pub(crate) fn new(decoding: Arc<Decoding>, skip_special_tokens: bool) -> Self {
        StreamDecoder {
            decoding,
            skip_special_tokens,
            ids: Vec::new(),
            prefix_offset: 0,
            read_offset: 0,
            printed: String::new(),
        }
    }

    /// Adds one id; returns the text it completes (often empty: e.g. the first bytes of a
    /// multi-byte character, or a skipped special token).
    pub fn step(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        if self.decoding.cleanup {
            return self.step_full(false);
        }
        let prefix = self.decode(self.prefix_offset, self.read_offset)?;
        let text = self.decode(self.prefix_offset, self.ids.len())?;
        if text.len() <= prefix.len() || text.ends_with('\u{FFFD}') {
            return Ok(String::new());
        }
        if !text.starts_with(&prefix) {
            return self.step_full(false);
        }
        let fragment = text[prefix.len()..].to_string();
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        self.printed.push_str(&fragment);
        Ok(fragment)
    }

    /// Ends the stream: returns any text held back (an incomplete character at the end comes
    /// out as U+FFFD, as `decode` gives it).
    pub fn finish(&mut self) -> Result<String> {
        self.step_full(true)
    }

    /// All ids seen so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// The text printed so far (the concatenation of the returned fragments).
    pub fn text(&self) -> &str {
        &self.printed
    }

    fn decode(&self, start: usize, end: usize) -> Result<String> {
        self.decoding
            .decode(&self.ids[start..end], self.skip_special_tokens)
    }

    /// Decodes all ids and returns what extends the printed text.
    fn step_full(&mut self, finish: bool) -> Result<String> {
        let full = self.decode(0, self.ids.len())?;
        let Some(rest) = full.strip_prefix(self.printed.as_str()) else {
            // Earlier text was rewritten after it was printed; nothing consistent to add.
            return Ok(String::new());
        };
        if !finish && rest.ends_with('\u{FFFD}') {
            return Ok(String::new());
        }
        let end = if !finish && self.decoding.cleanup {
            rest.rfind(' ').unwrap_or(0)
        } else {
            rest.len()
        };
        let fragment = rest[..end].to_string();
        self.printed.push_str(&fragment);
        // Everything is printed: the window restarts with the last id as context.
        self.read_offset = self.ids.len();
        self.prefix_offset = self.ids.len().saturating_sub(1);
        Ok(fragment)
    }
}
