//! The exposition of one published snapshot, rendered once: the bytes every scrape
//! until the next publication shares, plain and gzip, before the live part it appends.
//!
//! gzip, without compressing the snapshot's part again on every scrape: a gzip member
//! (RFC 1952) is a header, one deflate stream (RFC 1951) and a trailer holding the
//! CRC-32 and the length of the whole content; a deflate stream is a sequence of blocks,
//! and a decoder resolves back-references against what it has produced, whichever
//! block it came from. So the snapshot's part is compressed once and ends with a sync
//! flush (an empty stored block: byte-aligned, not final), and each scrape compresses
//! only its live part as the blocks that follow, the last one final, then writes the
//! trailer of the whole, its CRC-32 combined from the two parts' (what zlib's `gzjoin`
//! and pigz do). The answer is one ordinary gzip member, which every decoder reads.
//!
//! Two members (the cached one, then a small one per scrape) would be a valid gzip file
//! as well (RFC 1952 §2.2: "a gzip file consists of a series of members"), and
//! Prometheus's decoder, Go's `compress/gzip.Reader`, reads all members by default
//! (`Reader.Multistream`: "If enabled (the default) … the concatenation of a sequence of
//! gzipped files is treated as equivalent to the gzip of the concatenation of the
//! sequence"). But single-member decoders exist (flate2's `GzDecoder`, Go's reader after
//! `Multistream(false)`): they would stop after the cached part and silently drop the
//! live one. One member avoids the question.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use flate2::{Compress, CompressError, Compression, Crc, FlushCompress, Status};
use tokio::sync::watch;

use super::{render_live, render_snapshot, ExpositionInfo};
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
    /// When a value in `plain` stops being fresh; it must be rendered again then.
    stale_at: Option<SystemTime>,
    /// The snapshot's part of the body.
    plain: Bytes,
    /// `plain` compressed, up to a sync flush; `None` if compressing failed, which only
    /// a bug can cause: the body is then served uncompressed.
    gzip: Option<GzipPart>,
}

/// The start of a gzip member: header and the deflate blocks of the cached part.
struct GzipPart {
    bytes: Bytes,
    /// CRC-32 of the uncompressed cached part, for the trailer.
    crc: Crc,
}

/// One scrape's body: the shared bytes of the publication, then this scrape's own.
#[derive(Debug)]
pub struct ScrapeBody {
    /// `[cached, live]`, sent as they are, one after the other.
    pub parts: [Bytes; 2],
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
        let gzip = match GzipPart::new(plain.as_bytes()) {
            Ok(part) => Some(part),
            Err(error) => {
                tracing::error!(%error, "cannot gzip the exposition; serving it uncompressed");
                None
            }
        };
        Published {
            stale_at: snapshot.stale_at(now),
            snapshot,
            info,
            plain: Bytes::from(plain),
            gzip,
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

    /// The body of one scrape at `now`: the cached part (shared, not copied), then the
    /// live part, gzip when `gzip` asks for it and it can be.
    pub fn scrape(&self, self_metrics: &SelfMetrics, now: SystemTime, gzip: bool) -> ScrapeBody {
        let live = render_live(&self.info, self_metrics, now);
        if let (true, Some(part)) = (gzip, &self.gzip) {
            match part.finish(self.plain.len(), live.as_bytes()) {
                Ok(end) => {
                    return ScrapeBody {
                        parts: [part.bytes.clone(), Bytes::from(end)],
                        gzip: true,
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "cannot gzip the exposition; serving it uncompressed");
                }
            }
        }
        ScrapeBody {
            parts: [self.plain.clone(), Bytes::from(live)],
            gzip: false,
        }
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

impl GzipPart {
    /// The header, then `plain` as deflate blocks that more blocks may follow. The
    /// default level, as `gzip` uses: this runs once per publication, not per scrape.
    fn new(plain: &[u8]) -> Result<Self, CompressError> {
        let mut bytes = Vec::with_capacity(GZIP_HEADER.len() + plain.len() / 8 + 1024);
        bytes.extend_from_slice(&GZIP_HEADER);
        deflate(plain, Compression::default(), false, &mut bytes)?;
        bytes.shrink_to_fit();
        let mut crc = Crc::new();
        crc.update(plain);
        Ok(GzipPart {
            bytes: Bytes::from(bytes),
            crc,
        })
    }

    /// What completes the member after the cached part of `cached_len` bytes: `live` as
    /// the final deflate blocks, then the trailer of the whole.
    fn finish(&self, cached_len: usize, live: &[u8]) -> Result<Vec<u8>, CompressError> {
        let mut end = Vec::with_capacity(live.len() / 4 + 64);
        // Fast: this runs on every scrape, for a few kilobytes.
        deflate(live, Compression::fast(), true, &mut end)?;
        let mut crc = Crc::new();
        crc.combine(&self.crc);
        let mut live_crc = Crc::new();
        live_crc.update(live);
        crc.combine(&live_crc);
        end.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE is the length modulo 2^32 (RFC 1952 §2.3.1): the truncation is the rule.
        end.extend_from_slice(&((cached_len + live.len()) as u32).to_le_bytes());
        Ok(end)
    }
}

/// Appends `input` to `out` as raw deflate blocks with a fresh compressor (so no
/// back-reference reaches before `input`): the last of them final when `last`, else
/// ended by a sync flush, byte-aligned, so that more blocks can follow.
fn deflate(
    input: &[u8],
    level: Compression,
    last: bool,
    out: &mut Vec<u8>,
) -> Result<(), CompressError> {
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut compress = Compress::new(level, false);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.len().max(1024));
        }
        // `total_in` never exceeds `input.len()`, which fits in usize.
        let read = compress.total_in() as usize;
        let status = compress.compress_vec(&input[read..], out, flush)?;
        let consumed = compress.total_in() as usize == input.len();
        // Finish is done at the stream's end; a sync flush once all input is in and the
        // output had room to spare (zlib's rule: a full output means more may follow).
        let done = if last {
            status == Status::StreamEnd
        } else {
            consumed && out.len() < out.capacity()
        };
        if done {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn gzip_of(cached: &str, live: &str) -> Vec<u8> {
        let part = GzipPart::new(cached.as_bytes()).unwrap();
        let mut body = part.bytes.to_vec();
        body.extend(part.finish(cached.len(), live.as_bytes()).unwrap());
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
    fn the_cached_part_and_the_live_part_make_one_gzip_member() {
        // Long and repetitive, so that back-references span many blocks, and a live
        // part that repeats the cached part's text (its back-references must stay in
        // its own blocks, which a fresh compressor guarantees).
        let cached: String = (0..20_000)
            .map(|i| {
                format!(
                    "pipefy_subscription_used{{organization_id=\"{i}\"}} {}\n",
                    i % 7
                )
            })
            .collect();
        let live = "pipefy_subscription_used{organization_id=\"1\"} 1\nprocess_open_fds 9\n";
        assert_eq!(gunzip(&gzip_of(&cached, live)), format!("{cached}{live}"));
        assert_eq!(gunzip(&gzip_of(&cached, "")), cached);
        assert_eq!(gunzip(&gzip_of("", live)), live);
        assert_eq!(gunzip(&gzip_of("", "")), "");
    }

    #[test]
    fn scrapes_share_the_cached_bytes_and_differ_in_the_live_part() {
        let info = Arc::new(ExpositionInfo {
            collectors: crate::collectors::every_variant(),
            version: "1.2.3",
            revision: "abc",
        });
        let published = Published::new(Arc::default(), info.clone(), SystemTime::now());
        let metrics = SelfMetrics::new(&["limits"], &["PipefyLimits"]);
        let now = SystemTime::now();
        for gzip in [false, true] {
            let first = published.scrape(&metrics, now, gzip);
            metrics.observe_request("PipefyLimits", "200", std::time::Duration::from_secs(1));
            let second = published.scrape(&metrics, now, gzip);
            assert_eq!(first.gzip, gzip);
            // The same bytes, not an equal copy.
            assert_eq!(first.parts[0].as_ptr(), second.parts[0].as_ptr());
            assert_eq!(first.parts[0].len(), second.parts[0].len());
            assert_ne!(first.parts[1], second.parts[1], "the counter moved");

            let mut body = second.parts.concat();
            if gzip {
                body = gunzip(&body).into_bytes();
            }
            let expected = super::super::render(&Snapshot::default(), &metrics, &info, now);
            // The process metrics are read again for the expected body: compare up to them.
            let text = String::from_utf8(body).unwrap();
            let cut = |s: &str| s[..s.find("# HELP process_").unwrap_or(s.len())].to_owned();
            assert_eq!(cut(&text), cut(&expected));
        }
    }
}
