//! gzip for envelopes with one deflate state reused for every send.
//!
//! A fresh compressor per envelope (what `watchpost_protocol::gzip_encode` does) allocates and zeroes a few
//! hundred KB each time; the allocator hands such blocks straight back to the kernel, so every
//! send faulted pages in and unmapped them again, and the TLB shootdowns of those unmaps
//! interrupted the application's threads on the other cores. Reusing the state keeps the
//! transport's memory steady. Same output format: RFC 1952, decoded by any gzip reader.

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// A reusable gzip encoder.
pub(crate) struct Gzip {
    deflate: Compress,
}

/// Header: magic, deflate, no flags, no mtime, "fastest" extra flag, unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255];

impl Gzip {
    pub(crate) fn new() -> Gzip {
        Gzip {
            deflate: Compress::new(Compression::fast(), false),
        }
    }

    /// Compresses `data` into `out` (cleared first).
    pub(crate) fn encode(&mut self, data: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&HEADER);
        self.deflate.reset();
        loop {
            out.reserve(data.len() / 2 + 64);
            let consumed = usize::try_from(self.deflate.total_in()).unwrap_or(data.len());
            let input = data.get(consumed..).unwrap_or_default();
            match self.deflate.compress_vec(input, out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => break,
                Ok(Status::Ok | Status::BufError) => continue,
                Err(_) => {
                    // Not expected from an in-memory stream; fall back to a one-off encoder.
                    *out = watchpost_protocol::gzip_encode(data);
                    self.deflate = Compress::new(Compression::fast(), false);
                    return;
                }
            }
        }
        let mut crc = Crc::new();
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use watchpost_protocol::{ContentEncoding, decode_body};

    #[test]
    fn reused_encoder_output_decodes() {
        let mut gzip = Gzip::new();
        let mut out = Vec::new();
        let big: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for data in [&b"{}\n"[..], &big, b"", b"hello hello hello"] {
            gzip.encode(data, &mut out);
            assert_eq!(
                decode_body(&out, ContentEncoding::Gzip, 1 << 24).unwrap(),
                data
            );
        }
    }
}
