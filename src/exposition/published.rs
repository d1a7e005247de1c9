//! The exposition of one published snapshot, rendered once per format: the bytes every
//! scrape until the next publication shares, gzip and (below a size) plain; then the
//! self-metrics, rendered again only when they change; then the few scrape-time values
//! of each scrape (and OpenMetrics' `# EOF`).
//!
//! Which formats are rendered when: each at most once per publication; at publication,
//! those the scrapes of the previous one asked for (Prometheus asks for OpenMetrics, so
//! a fleet scraped by Prometheus renders one body per refresh, as before OpenMetrics was
//! offered); another on the first scrape that asks for it, as of the publication's
//! time. Rendering both at every publication would double the CPU of a refresh's
//! publication for a format nobody may ask for (BENCHMARKS.md).
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
//!
//! Memory: the snapshot's part is compressed as it is rendered, through a buffer of a
//! few tens of kilobytes, and its plain text is kept only up to [`PLAIN_KEPT_UP_TO`] (per
//! format: a publication that scrapers ask for in both formats holds both, up to twice
//! that). A
//! larger body (about 3,500 organizations with every collector on) is held only
//! deflated, some twenty times smaller, and a plain scrape inflates it as it sends it:
//! Prometheus always asks for gzip, so plain scrapes of such a body are people with
//! `curl`, and keeping 45 MB of text for them (twice while a new publication replaces
//! the old one) is what would set the exporter's peak memory.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use flate2::{
    Compress, CompressError, Compression, Crc, Decompress, DecompressError, FlushCompress,
    FlushDecompress,
};
use tokio::sync::{watch, OnceCell};

use super::{render_scrape_time, render_self_metrics, write_snapshot, ExpositionInfo};
use crate::encoding::{Buffer, Format, FORMATS};
use crate::self_metrics::SelfMetrics;
use crate::snapshot::Snapshot;

/// The fixed header of the gzip member: deflate, no flags, no name, no modification
/// time, no extra flags, operating system "unknown" (RFC 1952 §2.3).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// Up to this size the snapshot's part is kept plain as well as deflated, so that plain
/// scrapes copy it instead of inflating it: 16 MiB is about 3,500 organizations with
/// every collector on, and keeps plain scrapes of 1,000 organizations as fast as a
/// static file (BENCHMARKS.md).
pub(crate) const PLAIN_KEPT_UP_TO: usize = 16 << 20;

/// How much a plain scrape inflates at a time, when the plain text is not kept.
const INFLATE_CHUNK: usize = 64 * 1024;

/// What the refresh loop publishes to the HTTP side: a snapshot, the facts to render
/// it with (the configuration's collectors, the build), and their exposition rendered
/// once per format. Produced together, so that a scrape never mixes one configuration's
/// body with another's snapshot.
///
/// Each format is rendered at most once per publication: at once for the formats the
/// scrapes of the previous publication asked for (Prometheus asks for OpenMetrics, so
/// usually that one alone), on the first scrape that asks for another (`curl`, an older
/// scraper), as of the same time, so with the same values.
pub struct Published {
    pub snapshot: Arc<Snapshot>,
    pub info: Arc<ExpositionInfo>,
    /// The time every format is rendered as of (what is fresh then is shown).
    rendered_at: SystemTime,
    /// When a value in the body stops being fresh; it must be rendered again then.
    stale_at: Option<SystemTime>,
    /// The snapshot's part per format ([`Format::index`]), deflated after the gzip
    /// header; empty until rendered.
    bodies: [Arc<OnceCell<BodyPart>>; FORMATS],
    /// Up to this size a part is kept plain as well.
    keep_plain: usize,
    /// The formats rendered at publication.
    rendered: Vec<Format>,
    /// Per format: whether a scrape asked for it.
    asked: [AtomicBool; FORMATS],
}

/// The exporter's own metrics as a part of the body, per format, as of a
/// [`SelfMetrics::generation`]: rendered by the first scrape that finds it out of date,
/// shared by the others. Apart from [`Published`], so that a scrape reads them before it
/// takes the publication: a refresh publishes before it counts itself, so a scrape never
/// shows a refresh counted whose values it does not show.
#[derive(Default)]
pub struct SelfMetricsParts {
    parts: Mutex<[Option<Arc<SelfMetricsPart>>; FORMATS]>,
}

/// The self-metrics part of one format, and the generation it was rendered at.
pub struct SelfMetricsPart {
    generation: u64,
    part: BodyPart,
}

impl SelfMetricsParts {
    /// The part in `format`, rendered again if the metrics changed since.
    pub fn get(&self, self_metrics: &SelfMetrics, format: Format) -> Arc<SelfMetricsPart> {
        let lock = || self.parts.lock().unwrap_or_else(|e| e.into_inner());
        // Read before rendering: a change in between makes the next scrape render again.
        let generation = self_metrics.generation();
        if let Some(part) = lock()[format.index()]
            .as_ref()
            .filter(|part| part.generation == generation)
        {
            return part.clone();
        }
        let plain = render_self_metrics(self_metrics, format);
        let part = Arc::new(SelfMetricsPart {
            generation,
            part: BodyPart::new(&plain, &[], Compression::fast()),
        });
        lock()[format.index()] = Some(part.clone());
        part
    }
}

/// A part of the body: its text, plain or as raw deflate blocks ended by a sync flush
/// (after a prefix), or both.
struct BodyPart {
    text: Text,
    /// CRC-32 and length of the text, for the gzip trailer.
    crc: Crc,
    len: u64,
}

enum Text {
    /// Small enough to keep both ways.
    Both { plain: Bytes, deflated: Deflated },
    /// Too large to keep plain: plain scrapes inflate it.
    Deflated(Deflated),
    /// Compressing failed, which only a bug can cause: served plain.
    Plain(Bytes),
}

/// Deflate blocks after `prefix` bytes that are not part of them (the gzip header).
#[derive(Clone)]
struct Deflated {
    bytes: Bytes,
    prefix: usize,
}

impl BodyPart {
    /// `text` in full, compressed at `level` after `prefix`, kept plain too.
    fn new(text: &str, prefix: &[u8], level: Compression) -> Self {
        let mut writer = PartWriter::new(prefix, level, usize::MAX);
        writer.write(text);
        // Nothing is let go of while the plain text is kept whatever its size.
        writer
            .finish()
            .unwrap_or_else(|| BodyPart::uncompressed(text))
    }

    /// `text`, plain only.
    fn uncompressed(text: &str) -> Self {
        let mut crc = Crc::new();
        crc.update(text.as_bytes());
        BodyPart {
            text: Text::Plain(Bytes::copy_from_slice(text.as_bytes())),
            crc,
            len: text.len() as u64,
        }
    }

    /// The plain text as a scrape sends it: shared, or inflated as it goes.
    fn plain_piece(&self) -> Piece {
        match &self.text {
            Text::Both { plain, .. } | Text::Plain(plain) => Piece::Shared(plain.clone()),
            Text::Deflated(deflated) => Piece::Inflating(Inflate::new(deflated)),
        }
    }

    fn deflated(&self) -> Option<&Deflated> {
        match &self.text {
            Text::Both { deflated, .. } | Text::Deflated(deflated) => Some(deflated),
            Text::Plain(_) => None,
        }
    }
}

/// Builds a [`BodyPart`] from text written in pieces: compressed as it comes, and kept plain
/// as long as it stays under `keep_plain` bytes.
struct PartWriter {
    /// `None` once compressing failed: everything is then kept plain.
    compress: Option<Compress>,
    deflated: Vec<u8>,
    prefix: usize,
    /// `None` once the text outgrew `keep_plain` (and compressing still works).
    plain: Option<String>,
    keep_plain: usize,
    crc: Crc,
    len: u64,
}

impl PartWriter {
    fn new(prefix: &[u8], level: Compression, keep_plain: usize) -> Self {
        let mut deflated = Vec::with_capacity(prefix.len() + 1024);
        deflated.extend_from_slice(prefix);
        PartWriter {
            compress: Some(Compress::new(level, false)),
            deflated,
            prefix: prefix.len(),
            plain: Some(String::new()),
            keep_plain,
            crc: Crc::new(),
            len: 0,
        }
    }

    fn write(&mut self, text: &str) {
        self.crc.update(text.as_bytes());
        self.len += text.len() as u64;
        if let Some(compress) = &mut self.compress {
            let written = deflate(
                compress,
                text.as_bytes(),
                FlushCompress::None,
                &mut self.deflated,
            );
            if let Err(error) = written {
                self.fail(error);
            }
        }
        if let Some(plain) = &mut self.plain {
            if self.compress.is_some() && plain.len() + text.len() > self.keep_plain {
                self.plain = None;
            } else {
                plain.push_str(text);
            }
        }
    }

    fn fail(&mut self, error: CompressError) {
        tracing::error!(%error, "cannot gzip the exposition; serving it uncompressed");
        self.compress = None;
        self.keep_plain = usize::MAX;
    }

    /// The part, or `None` if compressing failed after the plain text was let go.
    fn finish(mut self) -> Option<BodyPart> {
        if let Some(compress) = &mut self.compress {
            if let Err(error) = deflate(compress, &[], FlushCompress::Sync, &mut self.deflated) {
                self.fail(error);
            }
        }
        let plain = self.plain.map(Bytes::from);
        let deflated = self.compress.is_some().then(|| {
            self.deflated.shrink_to_fit();
            Deflated {
                bytes: Bytes::from(self.deflated),
                prefix: self.prefix,
            }
        });
        let text = match (plain, deflated) {
            (Some(plain), Some(deflated)) => Text::Both { plain, deflated },
            (None, Some(deflated)) => Text::Deflated(deflated),
            (Some(plain), None) => Text::Plain(plain),
            (None, None) => return None,
        };
        Some(BodyPart {
            text,
            crc: self.crc,
            len: self.len,
        })
    }
}

/// One scrape's body: the snapshot's part, then the self-metrics', then the scrape's
/// own; each shared with other scrapes, or inflated from a shared gzip as it is sent.
pub struct ScrapeBody {
    /// What is left to send, the next piece last.
    pieces: Vec<Piece>,
    /// Bytes not sent yet.
    remaining: u64,
    /// Whether the body is gzip (`Content-Encoding: gzip`).
    pub gzip: bool,
}

enum Piece {
    Shared(Bytes),
    Inflating(Inflate),
}

impl ScrapeBody {
    /// A body of `pieces` in order, of `len` bytes in all.
    fn new(mut pieces: Vec<Piece>, len: u64, gzip: bool) -> Self {
        pieces.reverse();
        ScrapeBody {
            pieces,
            remaining: len,
            gzip,
        }
    }

    /// The length of what is left to send.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The next chunk, `None` at the end. An error means that a deflate stream this
    /// process wrote does not inflate, a bug: the connection must be cut rather than the
    /// body shortened.
    pub fn next_chunk(&mut self) -> Option<Result<Bytes, DecompressError>> {
        loop {
            let chunk = match self.pieces.last_mut()? {
                Piece::Shared(bytes) => {
                    let bytes = std::mem::take(bytes);
                    self.pieces.pop();
                    bytes
                }
                Piece::Inflating(inflate) => match inflate.next() {
                    Some(Ok(chunk)) => chunk,
                    Some(Err(error)) => {
                        self.pieces.clear();
                        self.remaining = 0;
                        return Some(Err(error));
                    }
                    None => {
                        self.pieces.pop();
                        continue;
                    }
                },
            };
            if !chunk.is_empty() {
                self.remaining = self.remaining.saturating_sub(chunk.len() as u64);
                return Some(Ok(chunk));
            }
        }
    }
}

/// Inflates a shared [`Deflated`] a chunk at a time.
struct Inflate {
    input: Bytes,
    decompress: Decompress,
}

impl Inflate {
    fn new(deflated: &Deflated) -> Self {
        Inflate {
            input: deflated.bytes.slice(deflated.prefix..),
            decompress: Decompress::new(false),
        }
    }

    fn next(&mut self) -> Option<Result<Bytes, DecompressError>> {
        let mut out = Vec::with_capacity(INFLATE_CHUNK);
        // `total_in` never exceeds the input's length, which fits in usize.
        let read = self.decompress.total_in() as usize;
        let status =
            self.decompress
                .decompress_vec(&self.input[read..], &mut out, FlushDecompress::None);
        match status {
            Err(error) => Some(Err(error)),
            // Nothing more comes out: the input is all inflated (it ends with a sync
            // flush, not a final block, so there is no end-of-stream status to wait for).
            Ok(_) if out.is_empty() => None,
            Ok(_) => Some(Ok(Bytes::from(out))),
        }
    }
}

impl Published {
    /// Renders `snapshot` with `info` as of `now` (which decides what is still fresh) in
    /// `formats` (the others on demand): gzip, and plain as well when it is under
    /// [`PLAIN_KEPT_UP_TO`]. It takes time with many organizations (see BENCHMARKS.md):
    /// call it off the async workers.
    pub fn new(
        snapshot: Arc<Snapshot>,
        info: Arc<ExpositionInfo>,
        now: SystemTime,
        formats: &[Format],
    ) -> Self {
        Self::with_plain_limit(snapshot, info, now, formats, PLAIN_KEPT_UP_TO)
    }

    fn with_plain_limit(
        snapshot: Arc<Snapshot>,
        info: Arc<ExpositionInfo>,
        now: SystemTime,
        formats: &[Format],
        keep_plain: usize,
    ) -> Self {
        let bodies = Format::ALL.map(|format| {
            let render = || render_part(&snapshot, &info, now, format, keep_plain);
            Arc::new(OnceCell::new_with(formats.contains(&format).then(render)))
        });
        Published {
            stale_at: snapshot.stale_at(now),
            rendered_at: now,
            bodies,
            keep_plain,
            rendered: formats.to_vec(),
            asked: Default::default(),
            snapshot,
            info,
        }
    }

    /// [`Published::new`] as of now, on a blocking thread: with thousands of
    /// organizations rendering takes long enough to hold up the scrapes that share the
    /// async workers. `None` when the runtime is shutting down.
    pub async fn render(
        snapshot: Arc<Snapshot>,
        info: Arc<ExpositionInfo>,
        formats: Vec<Format>,
    ) -> Option<Self> {
        let render = move || Published::new(snapshot, info, SystemTime::now(), &formats);
        match tokio::task::spawn_blocking(render).await {
            Ok(published) => Some(published),
            // A panic while rendering is a bug: let it end the caller (the refresh loop,
            // and with it the process, see app.rs) rather than serve frozen values.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => None,
        }
    }

    /// The formats the next publication renders at once: those scrapes asked for from
    /// this one; if none did, the ones this one was rendered in; at first, OpenMetrics
    /// (what Prometheus asks for).
    pub fn next_formats(&self) -> Vec<Format> {
        let asked: Vec<Format> = Format::ALL
            .into_iter()
            .filter(|f| self.asked[f.index()].load(Ordering::Relaxed))
            .collect();
        match (asked.is_empty(), self.rendered.is_empty()) {
            (false, _) => asked,
            (true, false) => self.rendered.clone(),
            (true, true) => vec![Format::OpenMetrics],
        }
    }

    /// When this exposition stops being right because a value in it goes stale: it must
    /// be rendered again just after then, even without a refresh.
    pub fn stale_at(&self) -> Option<SystemTime> {
        self.stale_at
    }

    /// The body of one scrape in `format` at `now`: the parts rendered before (shared,
    /// not copied; the snapshot's rendered now if no scrape asked for this format yet),
    /// the exporter's own metrics (`own`, in the same format), then the scrape-time
    /// values, gzip when `gzip` asks for it and it can be.
    pub async fn scrape(
        &self,
        own: &SelfMetricsPart,
        self_metrics: &SelfMetrics,
        now: SystemTime,
        format: Format,
        gzip: bool,
    ) -> ScrapeBody {
        let body = self.body(format).await;
        let own = &own.part;
        let scrape_time = render_scrape_time(&self.info, self_metrics, now, format);
        if let (true, Some(deflated), Some(own_deflated)) = (gzip, body.deflated(), own.deflated())
        {
            let end = finish(&[body, own], scrape_time.as_bytes());
            let len = (deflated.bytes.len() + own_deflated.bytes.len() + end.len()) as u64;
            let pieces = vec![
                Piece::Shared(deflated.bytes.clone()),
                Piece::Shared(own_deflated.bytes.slice(own_deflated.prefix..)),
                Piece::Shared(Bytes::from(end)),
            ];
            return ScrapeBody::new(pieces, len, true);
        }
        let len = body.len + own.len + scrape_time.len() as u64;
        let pieces = vec![
            body.plain_piece(),
            own.plain_piece(),
            Piece::Shared(Bytes::from(scrape_time)),
        ];
        ScrapeBody::new(pieces, len, false)
    }

    /// The snapshot's part in `format`, rendered on a blocking thread if no scrape asked
    /// for it before (concurrent scrapes wait for the one rendering).
    async fn body(&self, format: Format) -> &BodyPart {
        self.asked[format.index()].store(true, Ordering::Relaxed);
        let cell = &self.bodies[format.index()];
        if let Some(part) = cell.get() {
            return part;
        }
        // Filled by a task of its own rather than by this scrape: a scraper that gives up
        // (its timeout) must not cancel a render that the next scrape would start again.
        let fill = {
            let (cell, snapshot, info) = (cell.clone(), self.snapshot.clone(), self.info.clone());
            let (now, keep_plain) = (self.rendered_at, self.keep_plain);
            tokio::spawn(async move {
                let render = move || render_part(&snapshot, &info, now, format, keep_plain);
                let rendered = cell
                    .get_or_try_init(|| tokio::task::spawn_blocking(render))
                    .await;
                if let Err(e) = rendered {
                    if e.is_panic() {
                        std::panic::resume_unwind(e.into_panic());
                    }
                }
            })
        };
        if let Err(e) = fill.await {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        // Only a runtime shutting down leaves it empty: render here then.
        cell.get_or_init(|| async {
            render_part(
                &self.snapshot,
                &self.info,
                self.rendered_at,
                format,
                self.keep_plain,
            )
        })
        .await
    }
}

/// The snapshot's part of the body in `format`, compressed as it is rendered (after the
/// gzip header) and kept plain up to `keep_plain` bytes.
fn render_part(
    snapshot: &Arc<Snapshot>,
    info: &Arc<ExpositionInfo>,
    now: SystemTime,
    format: Format,
    keep_plain: usize,
) -> BodyPart {
    // The default level, as `gzip` uses: once per publication, not per scrape.
    let mut writer = PartWriter::new(&GZIP_HEADER, Compression::default(), keep_plain);
    {
        let mut spill = |text: &str| writer.write(text);
        let mut buffer = Buffer::spilling(&mut spill);
        write_snapshot(format, &mut buffer, snapshot.clone(), info.clone(), now);
        buffer.flush();
    }
    writer.finish().unwrap_or_else(|| {
        // Compressing failed after the plain text was let go: render it again.
        let mut plain = Buffer::new();
        write_snapshot(format, &mut plain, snapshot.clone(), info.clone(), now);
        BodyPart::uncompressed(&plain.into_string())
    })
}

/// Renders the published exposition again each time a value in it goes stale (its
/// collector's stale_after passed without a new success), until `shutdown`. Beside the
/// refresh loop rather than in it: a refresh in flight, which takes minutes for
/// thousands of organizations, must not keep a stale value on show.
pub(crate) async fn keep_fresh(
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
        let (snapshot, info) = (current.snapshot.clone(), current.info.clone());
        let Some(fresh) = Published::render(snapshot, info, current.next_formats()).await else {
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

/// Appends `input` to `out` as raw deflate blocks from `compress`. A part is one
/// compressor's output ended by [`FlushCompress::Sync`]: byte-aligned and not final,
/// so that more blocks can follow, and no back-reference reaches before the part.
fn deflate(
    compress: &mut Compress,
    input: &[u8],
    flush: FlushCompress,
    out: &mut Vec<u8>,
) -> Result<(), CompressError> {
    let start = compress.total_in();
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.len().max(1024));
        }
        // Never more than `input.len()`, which fits in usize.
        let read = (compress.total_in() - start) as usize;
        compress.compress_vec(&input[read..], out, flush)?;
        // Done once all input is in and the output had room to spare (zlib's rule: a
        // full output means more may follow).
        if (compress.total_in() - start) as usize == input.len() && out.len() < out.capacity() {
            return Ok(());
        }
    }
}

/// What ends the gzip member after the deflated blocks of `parts`: `last` as final
/// stored blocks, then the trailer: CRC-32 and length of the whole.
fn finish(parts: &[&BodyPart], last: &[u8]) -> Vec<u8> {
    let mut end = Vec::with_capacity(last.len() + 64);
    stored_final(last, &mut end);
    let mut crc = Crc::new();
    let mut len = last.len() as u64;
    for part in parts {
        crc.combine(&part.crc);
        len += part.len;
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
mod tests;
