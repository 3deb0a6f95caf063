//! Masking of secret values in a job's output as it streams, before anything cuts, splits or stores it.
//!
//! The runner worker builds one [`SecretMask`] per job from every value it injects under a sensitive name
//! (`runner.secret_env` values and `runner.env` / job `env` entries that
//! [`is_sensitive_env`](homeboy_config::secrets::is_sensitive_env) flags: a sensitive name, or a value that
//! is a URL with user info), and runs each output pipe's raw
//! bytes through a [`MaskStream`] straight off the read — before lines are split, before a line is cut at its
//! size limit, before the result tail keeps its last KiB and before events are batched. Whatever is cut
//! later is cut out of text that no longer holds a secret.
//!
//! **What is masked.** Each value (of at least [`MIN_VALUE`] bytes) as a whole, including across lines; for a
//! multi-line value (a PEM key in a `secret_env` file) also each of its lines on its own, so a job that
//! prints the key reordered or a line at a time is masked too; and the encodings a shell prints without
//! trying hard: base64 of the value (standard and URL-safe alphabets; at each of the three byte
//! alignments, so `echo "token=$T" | base64` is covered as well as `printf %s "$T" | base64`; and
//! wrapped at 76 and 64 columns, as coreutils `base64` and `openssl base64` print it), lower- and
//! upper-case hex (`xxd -p`, `od -tx1 | tr -d ' \n'`) and percent-encoding (`jq @uri`, `urllib.quote`).
//! A derived form shorter than [`MIN_DERIVED`] characters is not masked (it would shred ordinary output).
//! Every occurrence, overlapping ones merged, becomes one `[redacted]`.
//!
//! **Not masked** (masking is a safety net for honest jobs, not a sandbox against a job that wants to
//! leak): other transformations (compression, double encodings, a value printed with separators between
//! its characters, a wrapped encoding of a value that does not start a line), and a value split between
//! stdout and stderr (each pipe is masked on its own).
//!
//! **How it streams.** The needles go into one Aho-Corasick automaton (the `aho-corasick` crate). A stream
//! keeps back only the bytes that could still begin a needle: the longest suffix of what it has read that is
//! a proper prefix of some needle (a KMP pass of each needle over at most its length minus one of the
//! newest bytes). Everything before that point is final: any occurrence that starts there is complete, so it
//! is found and replaced before the bytes leave. A quiet job's last line therefore goes out at once unless
//! it ends in what could be the start of a secret — and then it waits only for the next bytes or the end of
//! the stream. Output is the same however the input was chunked (one-byte reads included); the unit tests
//! compare every split with a one-shot pass.

use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use homeboy_config::secrets::REDACTED;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// Values shorter than this are not secrets worth the name; masking them would shred ordinary output.
pub const MIN_VALUE: usize = 4;
/// Derived forms (a line of a multi-line value, an encoding) shorter than this are not masked.
pub const MIN_DERIVED: usize = 8;
/// Columns at which tools wrap base64: coreutils `base64` (76), `openssl base64` and PEM (64).
const BASE64_WRAPS: [usize; 2] = [76, 64];
/// RFC 3986 unreserved characters stay as they are; everything else is percent-encoded.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The secret values of one job and their derived forms, ready to mask streams.
#[derive(Clone, Default)]
pub struct SecretMask {
    inner: Option<Arc<Needles>>,
}

struct Needles {
    automaton: AhoCorasick,
    /// Each needle with its KMP prefix function (longest proper border of each prefix).
    kmp: Vec<(Vec<u8>, Vec<u32>)>,
    longest: usize,
}

impl SecretMask {
    /// A mask for `values` and their derived forms. Values shorter than [`MIN_VALUE`] are ignored. Fails
    /// (with a message that quotes no value) only if the automaton cannot be built — far beyond any real
    /// set of secrets — and then nothing may run unmasked.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<SecretMask, String> {
        let mut needles: Vec<Vec<u8>> = Vec::new();
        for value in values {
            if value.len() >= MIN_VALUE {
                derive(value, &mut needles);
            }
        }
        needles.sort();
        needles.dedup();
        if needles.is_empty() {
            return Ok(SecretMask::default());
        }
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&needles)
            .map_err(|e| format!("cannot build the mask of this job's secret values: {e}"))?;
        let longest = needles.iter().map(Vec::len).max().unwrap_or(0);
        let kmp = needles
            .into_iter()
            .map(|n| {
                let table = prefix_function(&n);
                (n, table)
            })
            .collect();
        Ok(SecretMask {
            inner: Some(Arc::new(Needles {
                automaton,
                kmp,
                longest,
            })),
        })
    }

    /// A fresh stream (one per output pipe).
    pub fn stream(&self) -> MaskStream {
        MaskStream {
            mask: self.clone(),
            buf: Vec::new(),
            base: 0,
            emitted: 0,
            masked_to: None,
        }
    }

    /// `text` with every occurrence masked (a whole stream in one go).
    pub fn apply(&self, text: &str) -> String {
        let mut stream = self.stream();
        let mut out = Vec::with_capacity(text.len());
        stream.push(text.as_bytes(), &mut out);
        stream.finish(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The needles of one value: the value, its lines when it has several, and its encodings.
fn derive(value: &str, needles: &mut Vec<Vec<u8>>) {
    let bytes = value.as_bytes();
    needles.push(bytes.to_vec());
    let mut derived: Vec<String> = Vec::new();
    if value.contains('\n') {
        derived.extend(
            value
                .lines()
                .map(|line| line.trim_end_matches('\r').to_string()),
        );
    }
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for alignment in 0..3 {
            derived.push(base64_core(engine, bytes, alignment));
        }
    }
    let aligned = base64_core(&STANDARD_NO_PAD, bytes, 0);
    for width in BASE64_WRAPS {
        if aligned.len() > width {
            let chars: Vec<char> = aligned.chars().collect();
            derived.extend(chars.chunks(width).map(|c| c.iter().collect::<String>()));
        }
    }
    derived.push(hex::encode(bytes));
    derived.push(hex::encode_upper(bytes));
    derived.push(percent_encoding::utf8_percent_encode(value, URI_COMPONENT).to_string());
    needles.extend(
        derived
            .into_iter()
            .filter(|d| d.len() >= MIN_DERIVED)
            .map(String::into_bytes),
    );
}

/// The base64 characters of `value` that do not depend on its neighbours when it starts `alignment` bytes
/// (0..3) into the encoded input: character `j` covers bits `6j..6j+6`, the value bits `8a..8(a+n)`.
fn base64_core(engine: &base64::engine::GeneralPurpose, value: &[u8], alignment: usize) -> String {
    let mut input = vec![0u8; alignment];
    input.extend_from_slice(value);
    let encoded = engine.encode(&input);
    let first = (8 * alignment).div_ceil(6);
    let last = (8 * (alignment + value.len())) / 6;
    encoded.get(first..last).unwrap_or_default().to_string()
}

/// KMP prefix function: `table[i]` is the length of the longest proper border of `needle[..=i]`.
fn prefix_function(needle: &[u8]) -> Vec<u32> {
    let mut table = vec![0u32; needle.len()];
    let mut k = 0usize;
    for i in 1..needle.len() {
        while k > 0 && needle[i] != needle[k] {
            k = table[k - 1] as usize;
        }
        if needle[i] == needle[k] {
            k += 1;
        }
        table[i] = k as u32;
    }
    table
}

impl Needles {
    /// How many of the newest bytes of `buf` could still begin a needle: the longest suffix that is a
    /// proper prefix of one.
    fn hold(&self, buf: &[u8]) -> usize {
        let mut hold = 0;
        for (needle, table) in &self.kmp {
            let window = needle.len() - 1;
            if window <= hold {
                continue;
            }
            let tail = &buf[buf.len().saturating_sub(window)..];
            let mut k = 0usize;
            for &byte in tail {
                while k > 0 && needle[k] != byte {
                    k = table[k - 1] as usize;
                }
                if needle[k] == byte {
                    k += 1;
                }
                if k == needle.len() {
                    k = table[k - 1] as usize;
                }
            }
            hold = hold.max(k);
        }
        hold
    }
}

/// One output pipe being masked. Positions are absolute offsets in the raw stream.
pub struct MaskStream {
    mask: SecretMask,
    /// Raw bytes from `base` on: what is held back, plus context behind a mask that just ended.
    buf: Vec<u8>,
    base: u64,
    /// Output has been produced for everything before this position.
    emitted: u64,
    /// The end of the last `[redacted]` written (an occurrence starting before it extends it).
    masked_to: Option<u64>,
}

impl MaskStream {
    /// Takes the next raw bytes; appends to `out` what can go out now, masked.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.buf.extend_from_slice(chunk);
        self.release(false, out);
    }

    /// The stream ended: appends everything still held back, masked.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.release(true, out);
    }

    fn release(&mut self, at_end: bool, out: &mut Vec<u8>) {
        let end = self.base + self.buf.len() as u64;
        let Some(needles) = self.mask.inner.clone() else {
            out.extend_from_slice(&self.buf);
            self.buf.clear();
            (self.base, self.emitted) = (end, end);
            return;
        };
        let hold = if at_end { 0 } else { needles.hold(&self.buf) };
        let boundary = end - hold as u64;
        let mut spans: Vec<(u64, u64)> = needles
            .automaton
            .find_overlapping_iter(&self.buf[..])
            .map(|m| (self.base + m.start() as u64, self.base + m.end() as u64))
            .filter(|&(_, stop)| stop > self.emitted)
            .collect();
        spans.sort_unstable();
        let mut cursor = self.emitted;
        for (start, stop) in spans {
            if start >= boundary {
                // It may yet grow into a longer needle, or merge with one that is not complete.
                break;
            }
            match self.masked_to {
                // Overlaps (or touches) the mask just written: one `[redacted]` covers both.
                Some(masked_to) if start <= masked_to && cursor == masked_to => {
                    cursor = masked_to.max(stop);
                }
                _ => {
                    let start = start.max(cursor);
                    out.extend_from_slice(self.slice(cursor, start));
                    out.extend_from_slice(REDACTED.as_bytes());
                    cursor = stop;
                }
            }
            self.masked_to = Some(cursor);
        }
        if cursor < boundary {
            out.extend_from_slice(self.slice(cursor, boundary));
            cursor = boundary;
        }
        self.emitted = cursor;
        // Keep what is held back; behind a mask that ends here, keep one needle's length of context so an
        // occurrence that began inside the mask still extends it.
        let keep_from = if self.masked_to == Some(self.emitted) {
            self.emitted
                .saturating_sub(needles.longest as u64 - 1)
                .max(self.base)
        } else {
            self.emitted
        };
        self.buf.drain(..(keep_from - self.base) as usize);
        self.base = keep_from;
    }

    fn slice(&self, from: u64, to: u64) -> &[u8] {
        &self.buf[(from - self.base) as usize..(to - self.base) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(mask: &SecretMask, chunks: &[&[u8]]) -> String {
        let mut stream = mask.stream();
        let mut out = Vec::new();
        for chunk in chunks {
            stream.push(chunk, &mut out);
        }
        stream.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    /// Every split of `input` into two and three pieces, and one byte at a time, masks like one pass.
    fn assert_split_invariant(mask: &SecretMask, input: &[u8]) -> String {
        let whole = streamed(mask, &[input]);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(streamed(mask, &bytes), whole, "one byte at a time");
        for i in 0..=input.len() {
            assert_eq!(
                streamed(mask, &[&input[..i], &input[i..]]),
                whole,
                "split at {i}"
            );
            for j in (i..=input.len()).step_by(7) {
                assert_eq!(
                    streamed(mask, &[&input[..i], &input[i..j], &input[j..]]),
                    whole,
                    "split at {i}, {j}"
                );
            }
        }
        whole
    }

    #[test]
    fn masks_values_and_ignores_short_ones() {
        let mask = SecretMask::new(["sk-live-abcdef", "ab"]).unwrap();
        assert_eq!(
            mask.apply("token=sk-live-abcdef;x=ab"),
            "token=[redacted];x=ab"
        );
        assert_eq!(SecretMask::new(["ab"]).unwrap().apply("ab ab"), "ab ab");
        assert_eq!(SecretMask::default().apply("plain"), "plain");
    }

    #[test]
    fn any_chunking_masks_like_one_pass() {
        let mask = SecretMask::new(["s3cr3t-Value-42", "s3cr3t-V"]).unwrap();
        let input = b"a s3cr3t-Value-42 b s3cr3t-V s3cr3t-Valu s3cr3t-Value-42s3cr3t-Value-42\n";
        let whole = assert_split_invariant(&mask, input);
        assert_eq!(
            whole,
            "a [redacted] b [redacted] [redacted]alu [redacted]\n"
        );
    }

    #[test]
    fn overlapping_values_become_one_mask() {
        let mask = SecretMask::new(["AAAAXXXX", "XXXXBBBB"]).unwrap();
        let whole = assert_split_invariant(&mask, b"<AAAAXXXXBBBB>");
        assert_eq!(whole, "<[redacted]>");
    }

    #[test]
    fn only_what_could_begin_a_secret_is_held_back() {
        let mask = SecretMask::new(["abcdef-secret"]).unwrap();
        let mut stream = mask.stream();
        let mut out = Vec::new();
        stream.push(b"tick-1\n", &mut out);
        assert_eq!(out, b"tick-1\n");
        stream.push(b"x abcd", &mut out);
        assert_eq!(out, b"tick-1\nx ");
        stream.push(b"e", &mut out);
        assert_eq!(out, b"tick-1\nx ");
        stream.push(b"!", &mut out);
        assert_eq!(out, b"tick-1\nx abcde!");
        stream.push(b"abcdef-secret", &mut out);
        stream.finish(&mut out);
        assert_eq!(out, b"tick-1\nx abcde![redacted]");
    }

    #[test]
    fn multi_line_values_are_masked_whole_and_line_by_line() {
        let key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----";
        let mask = SecretMask::new([key]).unwrap();
        let printed = format!("key:\n{key}\ndone\n");
        assert_eq!(
            assert_split_invariant(&mask, printed.as_bytes()),
            "key:\n[redacted]\ndone\n"
        );
        let lines: Vec<&str> = key.lines().rev().collect();
        let reordered = format!("{}\n", lines.join("\n"));
        let masked = mask.apply(&reordered);
        assert_eq!(masked, "[redacted]\n".repeat(4), "{masked}");
    }

    #[test]
    fn shell_encodings_are_masked() {
        let value = "hunter2-very-secret-value/+?&";
        let mask = SecretMask::new([value]).unwrap();
        let base64 = |prefix: &str| {
            base64::engine::general_purpose::STANDARD.encode(format!("{prefix}{value}\n"))
        };
        for prefix in ["", "t=", "tok=", "token="] {
            let encoded = base64(prefix);
            let masked = mask.apply(&format!("{encoded}\n"));
            assert!(masked.contains("[redacted]"), "{prefix:?}: {masked}");
            assert!(masked.len() < encoded.len(), "{prefix:?}: {masked}");
            let core = base64_core(&STANDARD_NO_PAD, value.as_bytes(), prefix.len() % 3);
            assert!(!masked.contains(&core[..MIN_DERIVED]), "{masked}");
        }
        // The last character also holds padding bits, which depend on what follows the value.
        let url_safe = base64::engine::general_purpose::URL_SAFE.encode(value);
        let masked = mask.apply(&url_safe);
        assert!(
            masked.starts_with("[redacted]") && masked.len() <= "[redacted]".len() + 2,
            "{masked}"
        );
        for encoded in [
            hex::encode(value),
            hex::encode_upper(value),
            "hunter2-very-secret-value%2F%2B%3F%26".into(),
        ] {
            assert_eq!(mask.apply(&encoded), "[redacted]", "{encoded}");
        }
    }

    #[test]
    fn wrapped_base64_is_masked_line_by_line() {
        let value = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789";
        let mask = SecretMask::new([value]).unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        for width in BASE64_WRAPS {
            let wrapped: Vec<String> = encoded
                .as_bytes()
                .chunks(width)
                .map(|c| String::from_utf8(c.to_vec()).unwrap())
                .collect();
            let masked = assert_split_invariant(&mask, wrapped.join("\n").as_bytes());
            // The last line keeps only the characters that depend on what follows the value (and padding).
            for line in masked.lines() {
                assert!(line.starts_with("[redacted]"), "{masked}");
                assert!(line.len() <= "[redacted]".len() + 3, "{masked}");
            }
        }
    }

    #[test]
    fn random_streams_match_one_pass_and_never_leak() {
        let secrets = ["Zq7-secret-Kp2", "Zq7-secret", "ret-Kp2Zq7", "aaaa"];
        let mask = SecretMask::new(secrets).unwrap();
        let mut rng = fastrand::Rng::with_seed(17);
        for _ in 0..300 {
            let mut input = Vec::new();
            while input.len() < 200 {
                match rng.u8(0..4) {
                    0 => input.extend_from_slice(secrets[rng.usize(0..secrets.len())].as_bytes()),
                    1 => input.push(b'\n'),
                    _ => input.extend_from_slice(&b"Zq7-secretKp2a "[..rng.usize(1..15)]),
                }
            }
            let whole = streamed(&mask, &[&input]);
            let mut chunks = Vec::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let n = rng.usize(1..=rest.len().min(9));
                chunks.push(&rest[..n]);
                rest = &rest[n..];
            }
            assert_eq!(streamed(&mask, &chunks), whole);
            for secret in secrets {
                assert!(!whole.contains(secret), "{secret} in {whole}");
            }
        }
    }
}
