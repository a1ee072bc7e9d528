//! OpenAI-compatible servers by base URL: vLLM, Ollama, Groq, Together, Mistral, DeepSeek,
//! OpenRouter, LM Studio...
//!
//! They share OpenAI's wire format closely enough that one adapter serves them all; what
//! differs is handled in `openai.rs` behind the `compat` flag rather than in a fork of it:
//! - requests use `max_tokens` (several servers reject `max_completion_tokens`);
//! - responses may lack `id`, `model` or `usage`; usage may sit under `x_groq`;
//! - streams may omit the usage chunk or `[DONE]` (a finish reason then completes them);
//! - errors may be `{"error": "text"}` (Ollama), top-level `{"message","type","code"}`
//!   (vLLM, Mistral) or carry a numeric `code` (OpenRouter);
//! - tool calls may arrive with `finish_reason: "stop"`, normalised to `tool_calls`;
//! - reasoning arrives as `reasoning_content` (DeepSeek, vLLM) or `reasoning` (OpenRouter);
//! - usage may count reasoning outside `completion_tokens` (xAI), normalised by
//!   `Usage::from_openai`;
//! - tool-call `index` values may be sparse (Anthropic's compatible endpoint numbers the only
//!   call `1` after a text block): the stream decoder renumbers them densely.

pub use super::openai::OpenAiProvider as CompatProvider;
