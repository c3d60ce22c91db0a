//! Detokenization while generating: text goes out as soon as it is whole characters.

use tokenizers::Tokenizer;

/// Turns ids into text one id at a time. A byte-level BPE token can end inside a multi-byte
/// character (an emoji often spans two or three tokens), so decoding each id on its own would
/// show U+FFFD; this holds those bytes back until the character is complete.
///
/// The pieces [`push`](Self::push) returns, followed by [`finish`](Self::finish), concatenate to
/// exactly `ChatTokenizer::decode` of all ids: both turn tokens into bytes the way tokenizers'
/// ByteLevel decoder does and replace broken UTF-8 like `String::from_utf8_lossy`.
#[derive(Debug)]
pub struct StreamDecoder<'a> {
    tokenizer: &'a Tokenizer,
    skip_special_tokens: bool,
    /// The start of a character whose other bytes have not arrived yet.
    pending: Vec<u8>,
}

impl<'a> StreamDecoder<'a> {
    pub(super) fn new(tokenizer: &'a Tokenizer, skip_special_tokens: bool) -> Self {
        StreamDecoder {
            tokenizer,
            skip_special_tokens,
            pending: Vec::new(),
        }
    }

    /// Feeds one id; returns the text it completes, possibly empty.
    pub fn push(&mut self, id: u32) -> String {
        // Exactly the tokens `Tokenizer::decode` keeps: unknown ids are dropped, and so are
        // special tokens when asked to.
        let Some(token) = self.tokenizer.id_to_token(id) else {
            return String::new();
        };
        if self.skip_special_tokens
            && self
                .tokenizer
                .get_added_vocabulary()
                .is_special_token(&token)
        {
            return String::new();
        }
        push_token_bytes(&mut self.pending, &token);
        take_complete(&mut self.pending)
    }

    /// Ends the stream: a character still cut short becomes U+FFFD, as in a full decode.
    pub fn finish(self) -> String {
        String::from_utf8_lossy(&self.pending).into_owned()
    }
}

/// Appends the bytes `token` stands for. As in tokenizers' ByteLevel decoder, a token made of
/// byte-level characters stands for their bytes, any other (an added token with characters
/// outside that alphabet) for its own UTF-8.
fn push_token_bytes(bytes: &mut Vec<u8>, token: &str) {
    let start = bytes.len();
    for c in token.chars() {
        match byte_of_char(c) {
            Some(byte) => bytes.push(byte),
            None => {
                bytes.truncate(start);
                bytes.extend_from_slice(token.as_bytes());
                return;
            }
        }
    }
}

/// Removes and returns the longest prefix of `bytes` that no later byte can change: valid
/// characters, and U+FFFD for each invalid sequence (the same maximal subparts
/// `String::from_utf8_lossy` replaces). Leaves an unfinished final character in `bytes`.
fn take_complete(bytes: &mut Vec<u8>) -> String {
    let mut text = String::new();
    let mut start = 0;
    while start < bytes.len() {
        match std::str::from_utf8(&bytes[start..]) {
            Ok(valid) => {
                text.push_str(valid);
                start = bytes.len();
            }
            Err(err) => {
                let valid_end = start + err.valid_up_to();
                text.push_str(std::str::from_utf8(&bytes[start..valid_end]).expect("validated"));
                match err.error_len() {
                    Some(len) => {
                        text.push(char::REPLACEMENT_CHARACTER);
                        start = valid_end + len;
                    }
                    None => {
                        start = valid_end;
                        break;
                    }
                }
            }
        }
    }
    bytes.drain(..start);
    text
}

/// GPT-2's byte-level alphabet: bytes that are printable Latin-1 characters stand for
/// themselves, the other 68 are shifted to U+0100 onwards in byte order.
const fn is_printable(byte: u8) -> bool {
    matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// The inverse of that alphabet, indexed by character.
static BYTE_OF_CHAR: [Option<u8>; 256 + 68] = {
    let mut table = [None; 256 + 68];
    let mut shifted = 256;
    let mut byte = 0;
    while byte < 256 {
        if is_printable(byte as u8) {
            table[byte] = Some(byte as u8);
        } else {
            table[shifted] = Some(byte as u8);
            shifted += 1;
        }
        byte += 1;
    }
    table
};

fn byte_of_char(c: char) -> Option<u8> {
    BYTE_OF_CHAR.get(c as usize).copied().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_covers_every_byte_once() {
        let mut bytes: Vec<u8> = BYTE_OF_CHAR.iter().flatten().copied().collect();
        bytes.sort_unstable();
        assert_eq!(bytes, (0..=255).collect::<Vec<u8>>());
        assert_eq!(byte_of_char('Ġ'), Some(b' '));
        assert_eq!(byte_of_char('Ċ'), Some(b'\n'));
        assert_eq!(byte_of_char('a'), Some(b'a'));
        assert_eq!(byte_of_char('中'), None);
    }

    #[test]
    fn holds_back_only_unfinished_characters() {
        let apple = "🍎".as_bytes();
        let mut pending = apple[..2].to_vec();
        assert_eq!(take_complete(&mut pending), "");
        pending.extend_from_slice(&apple[2..]);
        pending.push(b'!');
        assert_eq!(take_complete(&mut pending), "🍎!");
        assert!(pending.is_empty());
    }

    #[test]
    fn replaces_invalid_bytes_like_from_utf8_lossy() {
        for bytes in [
            &b"a\x80b"[..],
            b"\xE0\x80",
            b"\xF0\x9F\x8Dx",
            b"\xC3",
            b"ok\xF0\x9F",
        ] {
            let mut pending = bytes.to_vec();
            let mut text = take_complete(&mut pending);
            text.push_str(&String::from_utf8_lossy(&pending));
            assert_eq!(text, String::from_utf8_lossy(bytes), "{bytes:?}");
        }
    }
}
