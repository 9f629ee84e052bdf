//! Envelopes: a JSON header line followed by items, each a JSON header line and a payload.
//!
//! ```text
//! Envelope = Headers { "\n" Item } [ "\n" ]
//! Item     = Headers "\n" Payload
//! ```
//! An item's `length` says how many payload bytes follow; without it the payload runs to the next
//! newline or the end. Payloads are kept as raw bytes so an envelope can be relayed unchanged.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A parsed envelope.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Envelope {
    /// The envelope headers (`event_id`, `sent_at`, `dsn`, `sdk`, `trace`, ...), kept whole.
    pub headers: Map<String, Value>,
    /// The items in order, including types this crate does not interpret.
    pub items: Vec<Item>,
}

/// One item: its headers and raw payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The item headers.
    pub headers: ItemHeaders,
    /// The payload bytes, exactly as received or to be sent.
    pub payload: Vec<u8>,
}

/// The header line of an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemHeaders {
    /// The item type: `check_in`, `event`, or anything else (ignored by consumers).
    #[serde(rename = "type")]
    pub ty: String,
    /// Payload content type, e.g. `application/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Attachment file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Payload length in bytes; absent means "up to the next newline".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Any other header fields, kept so relaying loses nothing.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Why bytes are not a valid envelope. Each message says where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The body is empty.
    #[error("empty envelope: expected a JSON header line")]
    Empty,
    /// The first line is not a JSON object.
    #[error("envelope header is not a JSON object: {0}")]
    Header(String),
    /// An item header line is not a JSON object with a string `type`.
    #[error("item {index}: header is not a JSON object with a string `type`: {reason}")]
    ItemHeader {
        /// Zero-based item position.
        index: usize,
        /// What the JSON parser said.
        reason: String,
    },
    /// `length` points past the end of the body.
    #[error(
        "item {index}: `length` {length} runs past the end of the envelope ({available} bytes left)"
    )]
    Length {
        /// Zero-based item position.
        index: usize,
        /// The declared length.
        length: u64,
        /// Bytes actually left.
        available: usize,
    },
    /// Something other than a newline follows a payload of declared length.
    #[error("item {index}: expected a newline after its {length}-byte payload")]
    Trailing {
        /// Zero-based item position.
        index: usize,
        /// The declared length.
        length: u64,
    },
}

impl Envelope {
    /// An envelope with empty headers (`{}`), as sentry-cli and our SDK send.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an item whose payload is `value` serialized as JSON.
    pub fn add_json_item<T: Serialize + ?Sized>(&mut self, ty: &str, value: &T) {
        let payload = serde_json::to_vec(value).expect("protocol types always serialize");
        self.items.push(Item::new(ty, payload));
    }

    /// Parses an envelope; lenient about a missing final newline and missing `length`.
    pub fn parse(body: &[u8]) -> Result<Envelope, EnvelopeError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(EnvelopeError::Empty);
        }
        let (line, mut rest) = split_line(body);
        let headers = serde_json::from_slice::<Map<String, Value>>(line)
            .map_err(|e| EnvelopeError::Header(e.to_string()))?;
        let mut items = Vec::new();
        while !rest.is_empty() {
            let (line, after) = split_line(rest);
            if line.iter().all(u8::is_ascii_whitespace) {
                // Blank lines between or after items carry nothing.
                rest = after;
                continue;
            }
            let index = items.len();
            let headers: ItemHeaders =
                serde_json::from_slice(line).map_err(|e| EnvelopeError::ItemHeader {
                    index,
                    reason: e.to_string(),
                })?;
            let (payload, after) = match headers.length {
                Some(length) => {
                    let len = usize::try_from(length).unwrap_or(usize::MAX);
                    if len > after.len() {
                        return Err(EnvelopeError::Length {
                            index,
                            length,
                            available: after.len(),
                        });
                    }
                    let (payload, tail) = after.split_at(len);
                    match tail.first() {
                        None => (payload, tail),
                        Some(b'\n') => (payload, &tail[1..]),
                        Some(_) => return Err(EnvelopeError::Trailing { index, length }),
                    }
                }
                None => split_line(after),
            };
            items.push(Item {
                headers,
                payload: payload.to_vec(),
            });
            rest = after;
        }
        Ok(Envelope { headers, items })
    }

    /// Writes the envelope, every item with an explicit `length`.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            64 + self
                .items
                .iter()
                .map(|i| i.payload.len() + 64)
                .sum::<usize>(),
        );
        self.write_to(&mut out)
            .expect("writing to a Vec never fails");
        out
    }

    /// Writes the envelope to `w`.
    pub fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut *w, &self.headers)?;
        w.write_all(b"\n")?;
        for item in &self.items {
            let mut headers = item.headers.clone();
            headers.length = Some(item.payload.len() as u64);
            serde_json::to_writer(&mut *w, &headers)?;
            w.write_all(b"\n")?;
            w.write_all(&item.payload)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }
}

impl Item {
    /// An item of type `ty` with `payload`.
    pub fn new(ty: &str, payload: Vec<u8>) -> Self {
        Item {
            headers: ItemHeaders {
                ty: ty.to_owned(),
                length: None,
                content_type: None,
                filename: None,
                other: Map::new(),
            },
            payload,
        }
    }

    /// The item type.
    pub fn ty(&self) -> &str {
        &self.headers.ty
    }

    /// Deserializes the payload as JSON.
    pub fn json<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }
}

fn split_line(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(at) => (&bytes[..at], &bytes[at + 1..]),
        None => (bytes, &[]),
    }
}

/// A `Content-Encoding` the collector accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    /// No encoding.
    Identity,
    /// gzip (RFC 1952).
    Gzip,
    /// zlib-wrapped deflate (RFC 1950), or raw deflate as some clients send.
    Deflate,
}

impl ContentEncoding {
    /// Reads a `Content-Encoding` header value; `None` for encodings we do not accept.
    pub fn from_header(value: Option<&str>) -> Option<ContentEncoding> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Some(ContentEncoding::Identity),
            Some("gzip") | Some("x-gzip") => Some(ContentEncoding::Gzip),
            Some("deflate") => Some(ContentEncoding::Deflate),
            Some(_) => None,
        }
    }
}

/// Why a request body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The compressed stream is corrupt or truncated.
    #[error("body is not valid {encoding}: {reason}")]
    Corrupt {
        /// `gzip` or `deflate`.
        encoding: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// The decoded body would exceed the limit (a decompression bomb, or just too big).
    #[error("decompressed body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

/// Decodes a request body, never producing more than `limit` bytes: [`decoded_len`], then
/// [`decode_body_exact`].
pub fn decode_body(
    body: &[u8],
    encoding: ContentEncoding,
    limit: usize,
) -> Result<Vec<u8>, DecodeError> {
    let len = decoded_len(body, encoding, limit)?;
    decode_body_exact(body, encoding, len)
}

/// How many bytes `body` decodes to, found by decoding into `io::sink` and stopping one byte
/// past `limit`: a bomb costs CPU for at most `limit + 1` bytes and no memory. A server learns
/// so what a body will cost before it allocates any of it (and can reserve that much first).
pub fn decoded_len(
    body: &[u8],
    encoding: ContentEncoding,
    limit: usize,
) -> Result<usize, DecodeError> {
    let len = match encoding {
        ContentEncoding::Identity => body.len() as u64,
        _ => std::io::copy(
            &mut decoder(body, encoding).take(limit as u64 + 1),
            &mut std::io::sink(),
        )
        .map_err(|e| corrupt(encoding, &e))?,
    };
    if len > limit as u64 {
        return Err(DecodeError::TooLarge { limit });
    }
    Ok(len as usize)
}

/// Decodes at most `len` bytes of `body` (its [`decoded_len`]) into one exact allocation,
/// instead of a doubling `Vec` whose discarded halves the allocator may keep resident.
pub fn decode_body_exact(
    body: &[u8],
    encoding: ContentEncoding,
    len: usize,
) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(len);
    decoder(body, encoding)
        .take(len as u64)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(encoding, &e))?;
    Ok(out)
}

/// A reader of `body` decoded.
fn decoder(body: &[u8], encoding: ContentEncoding) -> Box<dyn Read + '_> {
    match encoding {
        ContentEncoding::Identity => Box::new(body),
        ContentEncoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(body)),
        ContentEncoding::Deflate => {
            // RFC 9110 says zlib-wrapped; some clients send raw deflate. A zlib stream starts
            // with a header whose first byte has 8 in its low nibble and passes a checksum.
            let zlib = body.len() >= 2
                && body[0] & 0x0f == 8
                && (u16::from(body[0]) << 8 | u16::from(body[1])) % 31 == 0;
            if zlib {
                Box::new(flate2::read::ZlibDecoder::new(body))
            } else {
                Box::new(flate2::read::DeflateDecoder::new(body))
            }
        }
    }
}

fn corrupt(encoding: ContentEncoding, error: &std::io::Error) -> DecodeError {
    DecodeError::Corrupt {
        encoding: match encoding {
            ContentEncoding::Identity => "identity",
            ContentEncoding::Gzip => "gzip",
            ContentEncoding::Deflate => "deflate",
        },
        reason: error.to_string(),
    }
}

/// gzip-compresses `data` (fast level: the SDK and relays trade ratio for CPU).
pub fn gzip_encode(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 2 + 32),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(data)
        .expect("writing to a Vec never fails");
    encoder.finish().expect("writing to a Vec never fails")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_without_length() {
        let with = b"{}\n{\"type\":\"check_in\",\"length\":9}\n{\"a\":\"\n\"}\n{\"type\":\"event\"}\n{\"b\":2}\n";
        let env = Envelope::parse(with).unwrap();
        assert_eq!(env.items.len(), 2);
        assert_eq!(env.items[0].payload, b"{\"a\":\"\n\"}");
        assert_eq!(env.items[1].ty(), "event");
        assert_eq!(env.items[1].payload, b"{\"b\":2}");

        let no_final_newline =
            b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n{\"type\":\"event\"}\n{}";
        let env = Envelope::parse(no_final_newline).unwrap();
        assert_eq!(env.items[0].payload, b"{}");
        assert!(env.headers.contains_key("event_id"));

        let headers_only = b"{}";
        assert!(Envelope::parse(headers_only).unwrap().items.is_empty());
    }

    #[test]
    fn rejects_with_a_reason() {
        let cases: [(&[u8], &str); 5] = [
            (b"", "empty envelope"),
            (b"not json\n", "envelope header is not a JSON object"),
            (b"{}\n{\"length\":2}\nab\n", "item 0: header"),
            (
                b"{}\n{\"type\":\"event\",\"length\":50}\nab\n",
                "runs past the end",
            ),
            (
                b"{}\n{\"type\":\"event\",\"length\":1}\nab\n",
                "expected a newline",
            ),
        ];
        for (body, expected) in cases {
            let err = Envelope::parse(body).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn writes_what_it_parses() {
        let mut env = Envelope::new();
        env.add_json_item("check_in", &serde_json::json!({"monitor_slug": "x"}));
        env.items
            .push(Item::new("attachment", b"line1\nline2".to_vec()));
        let bytes = env.to_vec();
        let parsed = Envelope::parse(&bytes).unwrap();
        assert_eq!(parsed.items.len(), 2);
        assert_eq!(parsed.items[1].payload, b"line1\nline2");
        assert_eq!(parsed.to_vec(), bytes);
    }

    #[test]
    fn decodes_gzip_and_deflate_within_a_bound() {
        let data = b"{}\n{\"type\":\"event\"}\n{}\n".repeat(10);
        let gz = gzip_encode(&data);
        assert_eq!(
            decode_body(&gz, ContentEncoding::Gzip, 1 << 20).unwrap(),
            data
        );

        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(&data).unwrap();
        let zlib = zlib.finish().unwrap();
        assert_eq!(
            decode_body(&zlib, ContentEncoding::Deflate, 1 << 20).unwrap(),
            data
        );

        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&data).unwrap();
        let raw = raw.finish().unwrap();
        assert_eq!(
            decode_body(&raw, ContentEncoding::Deflate, 1 << 20).unwrap(),
            data
        );

        let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        bomb.write_all(&vec![0u8; 50 << 20]).unwrap();
        let bomb = bomb.finish().unwrap();
        assert!(bomb.len() < 100_000, "{}", bomb.len());
        assert_eq!(
            decode_body(&bomb, ContentEncoding::Gzip, 1 << 20),
            Err(DecodeError::TooLarge { limit: 1 << 20 })
        );
        let truncated = &gz[..gz.len() / 2];
        assert!(matches!(
            decode_body(truncated, ContentEncoding::Gzip, 1 << 20),
            Err(DecodeError::Corrupt { .. })
        ));
        assert_eq!(ContentEncoding::from_header(Some("br")), None);
    }
}
