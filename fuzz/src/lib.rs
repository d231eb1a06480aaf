//! What the fuzz targets share: reading one fuzz input as a sequence of
//! records, so that a target can feed a stateful receiver (an engine, an
//! association, a handshake) several datagrams from one input.

/// One record: a tag (what to do with it) and its bytes.
pub struct Record<'a> {
    /// Chooses the record's use; each target reads it its own way.
    pub tag: u8,
    /// The record's bytes.
    pub bytes: &'a [u8],
}

/// Splits `input` into records `[tag][len: u16 BE][len bytes]`; a short
/// last record takes what is left.
pub fn records(mut input: &[u8]) -> impl Iterator<Item = Record<'_>> {
    std::iter::from_fn(move || {
        let (&tag, rest) = input.split_first()?;
        let len = match rest {
            [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
            _ => 0,
        };
        let rest = rest.get(2..).unwrap_or_default();
        let (bytes, after) = rest.split_at(len.min(rest.len()));
        input = after;
        Some(Record { tag, bytes })
    })
}

/// Encodes records the way [`records`] reads them (for seed corpora).
pub fn encode(records: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, bytes) in records {
        out.push(*tag);
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    out
}
