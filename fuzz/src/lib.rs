//! Shared harness for the fuzz targets in `fuzz_targets/`.
//!
//! Every target checks the same three things on whatever bytes libFuzzer invents: no panic,
//! no unbounded allocation (libFuzzer's `-malloc_limit_mb` / `-rss_limit_mb`, set by
//! `run.sh`), and, where the input is a byte stream, the same output for any chunking. The
//! chunking is derived from the input itself (a PRNG seeded by a hash of the bytes), so a
//! crash reproduces from the saved input alone, and small inputs are also fed byte by byte.
//!
//! Provider targets go through the real [`Endpoint`] with a [`ChunkTransport`] that serves
//! the fuzz input as the HTTP body: what is fuzzed is exactly what the router consumes (SSE
//! decoding, the adapter's decoder, completion checks, partial output), not a re-wiring of
//! its parts that could drift from the real one.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue};
use polyroute::provider::{build_provider, Endpoint, ProviderConfig, ProviderKind, Transport, WireRequest, WireResponse};
use polyroute::sse::{SseDecoder, SseEvent};
use polyroute::{ChatRequest, ChatResponse, Error, ErrorKind, Message, StreamEvent};

/// splitmix64: tiny, good enough to spread cut points.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hash(data: &[u8]) -> u64 {
    // FNV-1a
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Chunkings to try for `data`: pseudo-random cut points derived from the bytes, and every
/// single byte for short inputs. Each chunking is a sorted list of cut offsets.
pub fn chunkings(data: &[u8]) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    if data.is_empty() {
        return out;
    }
    let mut state = hash(data);
    let mut cuts: Vec<usize> = (0..(data.len().min(64)))
        .map(|_| {
            state = mix(state);
            (state % (data.len() as u64 + 1)) as usize
        })
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    out.push(cuts);
    if data.len() <= 512 {
        out.push((1..data.len()).collect());
    }
    out
}

/// Split at the given offsets (empty pieces included: a transport may deliver them).
pub fn split<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let mut prev = 0;
    for &c in cuts {
        let c = c.min(data.len()).max(prev);
        pieces.push(&data[prev..c]);
        prev = c;
    }
    pieces.push(&data[prev..]);
    pieces
}

/// Our decoder over a sequence of chunks, then `finish`.
pub fn sse_decode(chunks: &[&[u8]], limit: Option<usize>) -> Result<Vec<SseEvent>, Error> {
    let mut d = match limit {
        Some(l) => SseDecoder::with_limit(l),
        None => SseDecoder::new(),
    };
    let mut out = Vec::new();
    for c in chunks {
        d.feed(c, &mut out)?;
    }
    d.finish(&mut out)?;
    Ok(out)
}

/// One event in a form both decoders can be compared in: (type, data, last id, retry ms).
pub type Norm = (String, String, String, Option<u64>);

pub fn normalise_ours(evs: &[SseEvent]) -> Vec<Norm> {
    evs.iter().map(|e| (e.event_type().to_string(), e.data.clone(), e.id.clone().unwrap_or_default(), e.retry)).collect()
}

/// The independent oracle: the `eventsource-stream` crate over the same chunks. `None` when
/// it reports an error (it only accepts valid UTF-8).
pub fn oracle_decode(chunks: &[&[u8]]) -> Option<Vec<Norm>> {
    use eventsource_stream::EventStream;
    let owned: Vec<Result<Bytes, std::convert::Infallible>> = chunks.iter().map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let stream = EventStream::new(futures::stream::iter(owned));
    let collected: Vec<_> = futures::executor::block_on(stream.collect::<Vec<_>>());
    let mut out = Vec::new();
    for item in collected {
        let e = item.ok()?;
        out.push((e.event, e.data, e.id, e.retry.map(|d| d.as_millis() as u64)));
    }
    Some(out)
}

/// A transport that answers every request with a fixed status, headers and body, the body
/// delivered in the given chunks.
#[derive(Debug)]
pub struct ChunkTransport {
    pub status: u16,
    pub headers: HeaderMap,
    pub chunks: Vec<Bytes>,
}

impl Transport for ChunkTransport {
    fn send(&self, _req: WireRequest) -> BoxFuture<'static, polyroute::Result<WireResponse>> {
        let (status, headers) = (self.status, self.headers.clone());
        let chunks: Vec<polyroute::Result<Bytes>> = self.chunks.iter().cloned().map(Ok).collect();
        Box::pin(async move { Ok(WireResponse { status, headers, body: futures::stream::iter(chunks).boxed() }) })
    }
}

const STATUSES: [u16; 20] = [200, 200, 200, 200, 200, 201, 204, 400, 401, 403, 404, 408, 413, 422, 429, 500, 502, 503, 504, 529];

/// The fuzz input's framing for provider targets: `[mode][status][headers] body...`.
/// mode bit 0: stream (1) or one-shot chat (0). Status and headers pick from small tables so
/// most inputs exercise the success path while every error path stays reachable.
pub struct ProviderInput<'a> {
    pub stream: bool,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: &'a [u8],
}

impl<'a> ProviderInput<'a> {
    pub fn parse(data: &'a [u8]) -> Option<ProviderInput<'a>> {
        let (&[mode, status, hsel], body) = data.split_first_chunk::<3>()?;
        let mut headers = HeaderMap::new();
        let ct = if mode & 1 == 1 { "text/event-stream" } else { "application/json" };
        headers.insert("content-type", HeaderValue::from_static(ct));
        if hsel & 1 != 0 {
            headers.insert("retry-after", HeaderValue::from_static("2"));
        }
        if hsel & 2 != 0 {
            headers.insert("retry-after-ms", HeaderValue::from_static("1500.5"));
        }
        if hsel & 4 != 0 {
            headers.insert("x-request-id", HeaderValue::from_static("req_fuzz"));
        }
        if hsel & 8 != 0 {
            headers.insert("retry-after", HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        }
        Some(ProviderInput { stream: mode & 1 == 1, status: STATUSES[status as usize % STATUSES.len()], headers, body })
    }

    /// The framing bytes for a seed file: stream flag, status 200, no extra headers.
    pub fn seed_prefix(stream: bool) -> [u8; 3] {
        [u8::from(stream), 0, 0]
    }
}

fn endpoint(kind: ProviderKind, t: ChunkTransport) -> Endpoint {
    let base = match kind {
        ProviderKind::Openai | ProviderKind::OpenaiCompatible => "http://127.0.0.1:9/v1",
        _ => "http://127.0.0.1:9",
    };
    let mut cfg = ProviderConfig::new("fuzz", kind, base).with_api_key("sk-test-not-a-real-key");
    if kind == ProviderKind::Azure {
        cfg.api_version = Some("2024-10-21".into());
    }
    let provider = build_provider(cfg).expect("fuzz provider config is valid");
    Endpoint::new(provider, Arc::new(t))
}

/// What a stream produced: every item, in order (an error ends it).
pub type StreamOutcome = Vec<Result<StreamEvent, Error>>;

fn run_stream(kind: ProviderKind, input: &ProviderInput, chunks: Vec<Bytes>) -> Result<StreamOutcome, Error> {
    let t = ChunkTransport { status: input.status, headers: input.headers.clone(), chunks };
    let ep = endpoint(kind, t);
    let req = ChatRequest::new(vec![Message::user("fuzz")]);
    futures::executor::block_on(async {
        let mut s = ep.stream("fuzz-model", &req).await?;
        let mut out = Vec::new();
        while let Some(item) = s.next().await {
            let is_err = item.is_err();
            out.push(item);
            if is_err {
                // After an error the stream must end: anything more would be served after a
                // failure the caller has already been told about.
                if let Some(extra) = s.next().await {
                    panic!("stream yielded {extra:?} after an error");
                }
                break;
            }
        }
        Ok(out)
    })
}

fn run_chat(kind: ProviderKind, input: &ProviderInput) -> Result<ChatResponse, Error> {
    let t = ChunkTransport { status: input.status, headers: input.headers.clone(), chunks: vec![Bytes::copy_from_slice(input.body)] };
    let ep = endpoint(kind, t);
    let req = ChatRequest::new(vec![Message::user("fuzz")]);
    futures::executor::block_on(ep.chat("fuzz-model", &req))
}

/// The whole check for one provider kind.
pub fn fuzz_provider(kind: ProviderKind, data: &[u8]) {
    let Some(input) = ProviderInput::parse(data) else { return };
    if !input.stream {
        match run_chat(kind, &input) {
            Ok(r) => {
                // A success always serialises back to an OpenAI-shaped completion.
                let _ = r.to_openai_json();
            }
            Err(e) => check_error(&e, input.body.len()),
        }
        return;
    }
    let whole = run_stream(kind, &input, vec![Bytes::copy_from_slice(input.body)]);
    check_stream(&whole, input.body.len());
    for cuts in chunkings(input.body) {
        let chunks = split(input.body, &cuts).into_iter().map(Bytes::copy_from_slice).collect();
        let chunked = run_stream(kind, &input, chunks);
        assert_eq!(whole, chunked, "stream output depends on chunking (cuts {cuts:?})");
    }
}

/// Fixed text an adapter may add around what the provider sent (kind, status, field names).
const MESSAGE_OVERHEAD: usize = 4096;

fn check_error(e: &Error, body_len: usize) {
    assert!(ErrorKind::ALL.contains(&e.kind));
    // No amplification: an error's text is never larger than the body that produced it plus
    // fixed overhead. (Providers' messages are passed through verbatim, so they are bounded by
    // the endpoint's body caps, not by a length of their own.)
    assert!(e.message.len() <= body_len + MESSAGE_OVERHEAD, "error message of {} bytes from a body of {body_len}", e.message.len());
}

fn check_stream(outcome: &Result<StreamOutcome, Error>, body_len: usize) {
    match outcome {
        Err(e) => check_error(e, body_len),
        Ok(items) => {
            match items.last() {
                Some(Err(e)) => {
                    check_error(e, body_len);
                    // What the caller already saw travels with the error.
                    let saw_content = items.iter().any(|i| matches!(i, Ok(ev) if ev.is_content()));
                    if saw_content {
                        assert!(e.partial.is_some(), "error after content without partial output: {e:?}");
                    }
                }
                // The promise that matters most: a stream that ends without an error was
                // complete, i.e. the provider's finish signal came through.
                _ => assert!(
                    items.iter().any(|i| matches!(i, Ok(StreamEvent::Finish { .. }))),
                    "stream ended cleanly without a finish event: {items:?}"
                ),
            }
        }
    }
}
