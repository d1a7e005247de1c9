//! The exposition of one published snapshot, rendered once: the bytes every scrape
//! until the next publication shares, plain and gzip; then the self-metrics, rendered
//! again only when they change; then the few scrape-time values of each scrape.
//!
//! gzip, without compressing the snapshot's part again on every scrape: a gzip member
//! (RFC 1952) is a header, one deflate stream (RFC 1951) and a trailer holding the
//! CRC-32 and the length of the whole content; a deflate stream is a sequence of blocks,
//! and a decoder resolves back-references against what it has produced, whichever
//! block it came from. So the snapshot's part is compressed once, by its own compressor,
//! and ends with a sync flush (an empty stored block: byte-aligned, not final); so is
//! the self-metrics part; each scrape appends its scrape-time part as a final stored
//! block (a few hundred bytes: not worth setting up a compressor for), then the trailer
//! of the whole, its CRC-32 combined from the parts' (what zlib's `gzjoin` and pigz do).
//! The answer is one ordinary gzip member, which every decoder reads.
//!
//! Several members (the cached one, then one per scrape) would be a valid gzip file
//! as well (RFC 1952 §2.2: "a gzip file consists of a series of members"), and
//! Prometheus's decoder, Go's `compress/gzip.Reader`, reads all members by default
//! (`Reader.Multistream`: "If enabled (the default) … the concatenation of a sequence of
//! gzipped files is treated as equivalent to the gzip of the concatenation of the
//! sequence"). But single-member decoders exist (flate2's `GzDecoder`, Go's reader after
//! `Multistream(false)`): they would stop after the cached part and silently drop the
//! live one. One member avoids the question.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use flate2::{Compress, CompressError, Compression, Crc, FlushCompress};
use tokio::sync::watch;

use super::{render_scrape_time, render_snapshot, Encoder, ExpositionInfo};
use crate::self_metrics::SelfMetrics;
use crate::snapshot::Snapshot;

/// The fixed header of the gzip member: deflate, no flags, no name, no modification
/// time, no extra flags, operating system "unknown" (RFC 1952 §2.3).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// What the refresh loop publishes to the HTTP side: a snapshot, the facts to render
/// it with (the configuration's collectors, the build), and their exposition rendered
/// once. Produced together, so that a scrape never mixes one configuration's body with
/// another's snapshot.
pub struct Published {
    pub snapshot: Arc<Snapshot>,
    pub info: Arc<ExpositionInfo>,
    /// When a value in `body` stops being fresh; it must be rendered again then.
    stale_at: Option<SystemTime>,
    /// The snapshot's part, plain and deflated after the gzip header; no deflated part if
    /// compressing failed, which only a bug can cause: the body is then served plain.
    body: Part,
    /// The self-metrics part as of a [`SelfMetrics::generation`], rendered by the first
    /// scrape that finds it out of date.
    self_metrics: Mutex<Option<Arc<(u64, Part)>>>,
}

/// A part of the body, plain and as raw deflate blocks ended by a sync flush.
struct Part {
    plain: Bytes,
    deflated: Option<Bytes>,
    /// CRC-32 of `plain`, for the trailer.
    crc: Crc,
}

impl Part {
    /// `plain`, compressed at `level` after `prefix`.
    fn new(plain: String, prefix: &[u8], level: Compression) -> Self {
        let mut crc = Crc::new();
        crc.update(plain.as_bytes());
        let mut deflated = Vec::with_capacity(prefix.len() + plain.len() / 8 + 1024);
        deflated.extend_from_slice(prefix);
        let deflated = match deflate(plain.as_bytes(), level, &mut deflated) {
            Ok(()) => {
                deflated.shrink_to_fit();
                Some(Bytes::from(deflated))
            }
            Err(error) => {
                tracing::error!(%error, "cannot gzip the exposition; serving it uncompressed");
                None
            }
        };
        Part {
            plain: Bytes::from(plain),
            deflated,
            crc,
        }
    }
}

/// One scrape's body: the shared bytes of the publication, then the self-metrics', then
/// the scrape's own.
#[derive(Debug)]
pub struct ScrapeBody {
    /// Sent as they are, one after the other.
    pub parts: [Bytes; 3],
    /// Whether the parts are gzip (`Content-Encoding: gzip`).
    pub gzip: bool,
}

impl Published {
    /// Renders `snapshot` with `info` as of `now` (which decides what is still fresh),
    /// plain and gzip. It takes time with many organizations (see BENCHMARKS.md): call
    /// it off the async workers.
    pub fn new(snapshot: Arc<Snapshot>, info: Arc<ExpositionInfo>, now: SystemTime) -> Self {
        let mut plain = render_snapshot(&snapshot, &info, now);
        plain.shrink_to_fit();
        Published {
            stale_at: snapshot.stale_at(now),
            // The default level, as `gzip` uses: once per publication, not per scrape.
            body: Part::new(plain, &GZIP_HEADER, Compression::default()),
            snapshot,
            info,
            self_metrics: Mutex::new(None),
        }
    }

    /// [`Published::new`] as of now, on a blocking thread: with thousands of
    /// organizations rendering takes long enough to hold up the scrapes that share the
    /// async workers. `None` when the runtime is shutting down.
    pub async fn render(snapshot: Arc<Snapshot>, info: Arc<ExpositionInfo>) -> Option<Self> {
        let render = move || Published::new(snapshot, info, SystemTime::now());
        match tokio::task::spawn_blocking(render).await {
            Ok(published) => Some(published),
            // A panic while rendering is a bug: let it end the caller (the refresh loop,
            // and with it the process, see app.rs) rather than serve frozen values.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => None,
        }
    }

    /// When this exposition stops being right because a value in it goes stale: it must
    /// be rendered again just after then, even without a refresh.
    pub fn stale_at(&self) -> Option<SystemTime> {
        self.stale_at
    }

    /// The body of one scrape at `now`: the parts rendered before (shared, not copied),
    /// then the scrape-time values, gzip when `gzip` asks for it and it can be.
    pub fn scrape(&self, self_metrics: &SelfMetrics, now: SystemTime, gzip: bool) -> ScrapeBody {
        let own = self.self_metrics_part(self_metrics);
        let own = &own.1;
        let scrape_time = render_scrape_time(&self.info, now);
        if let (true, Some(body), Some(own_deflated)) = (gzip, &self.body.deflated, &own.deflated) {
            let end = finish(&[&self.body, own], scrape_time.as_bytes());
            return ScrapeBody {
                parts: [body.clone(), own_deflated.clone(), Bytes::from(end)],
                gzip: true,
            };
        }
        ScrapeBody {
            parts: [
                self.body.plain.clone(),
                own.plain.clone(),
                Bytes::from(scrape_time),
            ],
            gzip: false,
        }
    }

    /// The self-metrics part, rendered again if they changed since.
    fn self_metrics_part(&self, self_metrics: &SelfMetrics) -> Arc<(u64, Part)> {
        let lock = || self.self_metrics.lock().unwrap_or_else(|e| e.into_inner());
        // Read before rendering: a change in between makes the next scrape render again.
        let generation = self_metrics.generation();
        if let Some(part) = lock().as_ref().filter(|part| part.0 == generation) {
            return part.clone();
        }
        let mut plain = String::with_capacity(32 * 1024);
        self_metrics.encode(&mut Encoder::new(&mut plain));
        let part = Arc::new((generation, Part::new(plain, &[], Compression::fast())));
        *lock() = Some(part.clone());
        part
    }
}

/// Renders the published exposition again each time a value in it goes stale (its
/// collector's stale_after passed without a new success), until `shutdown`. Beside the
/// refresh loop rather than in it: a refresh in flight, which takes minutes for
/// thousands of organizations, must not keep a stale value on show.
pub async fn keep_fresh(
    publish: watch::Sender<Arc<Published>>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut changes = publish.subscribe();
    loop {
        let current = changes.borrow_and_update().clone();
        let expiry = async {
            match current.stale_at().and_then(instant_after) {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut shutdown => return,
            // Published meanwhile: wait for that publication's own expiry.
            changed = changes.changed() => match changed {
                Ok(()) => continue,
                Err(_) => return,
            },
            () = expiry => {}
        }
        let Some(fresh) = Published::render(current.snapshot.clone(), current.info.clone()).await
        else {
            return;
        };
        // Unless the refresh loop published while this one rendered: that is newer.
        publish.send_if_modified(|latest| {
            let unchanged = Arc::ptr_eq(latest, &current);
            if unchanged {
                *latest = Arc::new(fresh);
            }
            unchanged
        });
    }
}

/// The instant just after the wall-clock time `at` (a value is stale once strictly
/// older than its stale_after), or `None` if that is too far ahead to wait for.
fn instant_after(at: SystemTime) -> Option<Instant> {
    let wait = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now().checked_add(wait + Duration::from_millis(1))
}

/// Appends `input` to `out` as raw deflate blocks from a fresh compressor (so that no
/// back-reference reaches before `input`), ended by a sync flush: byte-aligned and not
/// final, so that more blocks can follow.
fn deflate(input: &[u8], level: Compression, out: &mut Vec<u8>) -> Result<(), CompressError> {
    let mut compress = Compress::new(level, false);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.len().max(1024));
        }
        // `total_in` never exceeds `input.len()`, which fits in usize.
        let read = compress.total_in() as usize;
        compress.compress_vec(&input[read..], out, FlushCompress::Sync)?;
        // Done once all input is in and the output had room to spare (zlib's rule: a
        // full output means more may follow).
        if compress.total_in() as usize == input.len() && out.len() < out.capacity() {
            return Ok(());
        }
    }
}

/// What ends the gzip member after the deflated blocks of `parts`: `last` as final
/// stored blocks, then the trailer: CRC-32 and length of the whole.
fn finish(parts: &[&Part], last: &[u8]) -> Vec<u8> {
    let mut end = Vec::with_capacity(last.len() + 64);
    stored_final(last, &mut end);
    let mut crc = Crc::new();
    let mut len = last.len();
    for part in parts {
        crc.combine(&part.crc);
        len += part.plain.len();
    }
    let mut last_crc = Crc::new();
    last_crc.update(last);
    crc.combine(&last_crc);
    end.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE is the length modulo 2^32 (RFC 1952 §2.3.1): the truncation is the rule.
    end.extend_from_slice(&(len as u32).to_le_bytes());
    end
}

/// Appends `data` as stored deflate blocks (RFC 1951 §3.2.4), the last one final, after
/// byte-aligned blocks.
fn stored_final(data: &[u8], out: &mut Vec<u8>) {
    let mut chunks = data.chunks(usize::from(u16::MAX)).peekable();
    if data.is_empty() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        // BFINAL, then BTYPE 00 (stored), then padding to the byte boundary.
        out.push(u8::from(chunks.peek().is_none()));
        // At most u16::MAX bytes by `chunks`.
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// The member a scrape sends for parts `a` and `b` rendered before, and `c`.
    fn gzip_of(a: &str, b: &str, c: &str) -> Vec<u8> {
        let a = Part::new(a.to_owned(), &GZIP_HEADER, Compression::default());
        let b = Part::new(b.to_owned(), &[], Compression::fast());
        let mut body = a.deflated.as_deref().unwrap().to_vec();
        body.extend_from_slice(b.deflated.as_deref().unwrap());
        body.extend(finish(&[&a, &b], c.as_bytes()));
        body
    }

    /// Decoded by a single-member decoder, which must also have used every byte (so
    /// there is exactly one member), and by a multi-member one.
    fn gunzip(body: &[u8]) -> String {
        let mut single = flate2::bufread::GzDecoder::new(body);
        let mut text = String::new();
        single.read_to_string(&mut text).unwrap();
        assert!(
            single.into_inner().is_empty(),
            "bytes after the first member"
        );
        let mut multi = String::new();
        flate2::read::MultiGzDecoder::new(body)
            .read_to_string(&mut multi)
            .unwrap();
        assert_eq!(multi, text);
        text
    }

    #[test]
    fn parts_compressed_apart_make_one_gzip_member() {
        // Long and repetitive, so that back-references span many blocks; the later
        // parts repeat the first one's text (their back-references must stay within
        // their own blocks, which a fresh compressor guarantees); a last part over the
        // 65,535 bytes of one stored block.
        let line = |i: usize| {
            format!(
                "pipefy_subscription_used{{organization_id=\"{i}\"}} {}\n",
                i % 7
            )
        };
        let a: String = (0..20_000).map(line).collect();
        let b: String = (0..300).map(line).collect();
        let c: String = (0..2_000).map(line).collect();
        assert!(c.len() > usize::from(u16::MAX));
        assert_eq!(gunzip(&gzip_of(&a, &b, &c)), format!("{a}{b}{c}"));
        assert_eq!(gunzip(&gzip_of(&a, &b, "x")), format!("{a}{b}x"));
        assert_eq!(gunzip(&gzip_of(&a, "", "")), a);
        assert_eq!(gunzip(&gzip_of("", "", &c)), c);
        assert_eq!(gunzip(&gzip_of("", "", "")), "");
    }

    #[test]
    fn scrapes_share_what_was_rendered_before() {
        let info = Arc::new(ExpositionInfo {
            collectors: crate::collectors::every_variant(),
            version: "1.2.3",
            revision: "abc",
            shard: crate::shard::Shard::ALL,
        });
        let published = Published::new(Arc::default(), info.clone(), SystemTime::now());
        let now = SystemTime::now();
        for gzip in [false, true] {
            let metrics = SelfMetrics::new(&["limits"], &["PipefyLimits"]);
            let first = published.scrape(&metrics, now, gzip);
            let second = published.scrape(&metrics, now, gzip);
            metrics.observe_request("PipefyLimits", "200", Duration::from_secs(1));
            let third = published.scrape(&metrics, now, gzip);
            assert_eq!((first.gzip, second.gzip, third.gzip), (gzip, gzip, gzip));
            let same = |a: &Bytes, b: &Bytes| a.as_ptr() == b.as_ptr() && a.len() == b.len();
            // The same bytes, not equal copies: the snapshot's part always, the
            // self-metrics part until they change.
            assert!(same(&first.parts[0], &second.parts[0]));
            assert!(same(&first.parts[0], &third.parts[0]));
            assert!(same(&first.parts[1], &second.parts[1]));
            assert!(!same(&first.parts[1], &third.parts[1]), "rendered again");

            let mut body = third.parts.concat();
            if gzip {
                body = gunzip(&body).into_bytes();
            }
            let text = String::from_utf8(body).unwrap();
            let expected = super::super::render(&Snapshot::default(), &metrics, &info, now);
            // The expected body reads the process metrics again: compare up to them.
            let cut = |s: &str| s[..s.find("# HELP process_").unwrap_or(s.len())].to_owned();
            assert_eq!(cut(&text), cut(&expected));
            assert!(text.contains("pipefy_exporter_api_requests_total{operation=\"PipefyLimits\",status=\"200\"} 1\n"), "{text}");
        }
    }
}
