//! Fuzz the OpenAI-compatible servers (Groq, Mistral, OpenRouter, vLLM, Ollama...) adapter through the real `Endpoint`: one-shot responses and error
//! bodies for any status, and streams, which must give the same events for any chunking,
//! never end cleanly without a finish event, and carry the partial output when they fail
//! after content. Input framing and checks: `polyroute_fuzz::fuzz_provider`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use polyroute::provider::ProviderKind;

fuzz_target!(|data: &[u8]| {
    polyroute_fuzz::fuzz_provider(ProviderKind::OpenaiCompatible, data);
});
