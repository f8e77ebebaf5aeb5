//! Webhook requests as stored: JSON text compressed into LZ4 blocks.
//!
//! Why: on SQLite every byte of an event is written three times (its commit's WAL frames, the
//! WAL frames again when the mapper records the result in the same row, and the checkpoint
//! into the database file), and those bytes are what a commit's WAL sync waits for. Webhook
//! bodies are JSON full of repeated keys and URLs: GitHub's own examples
//! (`@octokit/webhooks-examples`, ~17 KB on average) shrink 6× with LZ4. PostgreSQL gets the
//! same bytes (its TOAST compression leaves them alone), so both stores read and write one
//! format.
//!
//! Format: one codec byte, then the payload. `1`: an LZ4 block with its decompressed length
//! in front (`lz4_flex`'s size-prepended block); `0`: the text as is, for the few requests
//! that LZ4 would not shrink.

use std::cell::RefCell;

use lz4_flex::block::{CompressTable, compress_into_with_table, get_maximum_output_size};

use crate::{Error, Result};

const RAW: u8 = 0;
pub(crate) const LZ4: u8 = 1;

/// JSON text, compressed for storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressedJson(Vec<u8>);

impl CompressedJson {
    /// Compresses `text` (a few µs for a typical webhook; done before the commit, on the
    /// request's own task).
    pub fn new(text: &str) -> Self {
        // Compressed straight into the stored bytes, with a hash table kept per thread: the
        // size-prepending helper allocated both for each request, then copied the block
        // behind the codec byte.
        thread_local! {
            static TABLE: RefCell<CompressTable> = RefCell::new(CompressTable::small());
        }
        let input = text.as_bytes();
        let mut bytes = vec![0; 1 + 4 + get_maximum_output_size(input.len())];
        bytes[0] = LZ4;
        // The input's length fits `u32` where a block can hold it; a larger one is kept raw.
        let compressed = u32::try_from(input.len()).ok().and_then(|len| {
            bytes[1..5].copy_from_slice(&len.to_le_bytes());
            TABLE.with_borrow_mut(|table| compress_into_with_table(input, &mut bytes[5..], table).ok())
        });
        match compressed {
            Some(size) if 4 + size < input.len() => bytes.truncate(5 + size),
            _ => {
                bytes.clear();
                bytes.push(RAW);
                bytes.extend_from_slice(input);
            }
        }
        Self(bytes)
    }

    /// The stored bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text back from stored bytes.
    pub fn decompress(bytes: &[u8]) -> Result<String> {
        let corrupt = |detail: String| Error::Corrupt { what: "compressed webhook request", detail };
        let text = match bytes.split_first() {
            Some((&RAW, text)) => text.to_vec(),
            Some((&LZ4, block)) => {
                // LZ4 expands at most 255× (a literal run of one byte), so a length in front
                // past that is damage: refuse it before allocating it.
                let claimed = block.get(..4).map(|n| u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize);
                if claimed.is_none_or(|n| n > block.len().saturating_mul(255)) {
                    return Err(corrupt(format!("a decompressed length of {claimed:?} for {} bytes", block.len())));
                }
                lz4_flex::decompress_size_prepended(block).map_err(|err| corrupt(err.to_string()))?
            }
            Some((codec, _)) => return Err(corrupt(format!("unknown codec {codec}"))),
            None => return Err(corrupt("no bytes".into())),
        };
        String::from_utf8(text).map_err(|err| corrupt(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_comes_back_as_it_was_compressed_or_not() {
        let json =
            format!("{{\"body\":{{\"text\":\"{}\"}},\"headers\":{{}},\"queryParams\":{{}}}}", "retry with jitter ".repeat(40));
        for text in [json.as_str(), "{}", "", "\"é ✓\""] {
            let stored = CompressedJson::new(text);
            assert_eq!(CompressedJson::decompress(stored.as_bytes()).unwrap(), text);
        }
        assert!(CompressedJson::new(&json).as_bytes().len() < json.len() / 4, "repetitive JSON shrinks");
        assert_eq!(CompressedJson::new("{}").as_bytes(), b"\0{}", "a text LZ4 cannot shrink is kept raw");
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        let stored = CompressedJson::new(&"{\"a\":[1,2,3]}".repeat(50));
        let bytes = stored.as_bytes();
        let huge = [&[1, 255, 255, 255, 127][..], &bytes[5..]].concat(); // claims 2 GiB
        for damaged in [&bytes[..bytes.len() / 2], &[], &[7, 1, 2][..], &[1, 2][..], &huge[..]] {
            assert!(matches!(CompressedJson::decompress(damaged), Err(Error::Corrupt { .. })), "{damaged:?}");
        }
        // Refused before LZ4 would allocate what it claims.
        let refused = CompressedJson::decompress(&huge).unwrap_err().to_string();
        assert!(refused.contains("a decompressed length of Some(2147483647)"), "{refused}");
    }
}
