//! Shared driver for the `*_mock_server` tests: start the loopback mock server
//! (`tests/mock-server`), point one adapter at it over real HTTP, install a JSON script, and
//! collect a call or a stream. The scripts are the same JSON every language's suite uses.
#![allow(dead_code)]

use futures::StreamExt;
use polyroute::provider::mock::MockScript;
use polyroute::provider::{Endpoint, ProviderConfig, ProviderKind};
use polyroute::{ChatRequest, ChatResponse, Error, Message, StreamAccumulator, StreamEvent};
use polyroute_mock_server::MockServerHandle;

pub struct Harness {
    pub server: MockServerHandle,
    pub endpoint: Endpoint,
}

impl Harness {
    pub async fn new(kind: ProviderKind) -> Harness {
        let server = super::mock_server().await;
        let base = match kind {
            ProviderKind::Openai | ProviderKind::OpenaiCompatible => server.base_url(),
            _ => server.url(),
        };
        let endpoint = super::http_endpoint(ProviderConfig::new(format!("{kind:?}"), kind, base).with_api_key(super::KEY));
        Harness { server, endpoint }
    }

    pub fn script(&self, model: &str, json: &str) {
        self.server.set_script(model, MockScript::from_json(json).unwrap()).unwrap();
    }

    pub async fn chat(&self, model: &str) -> Result<ChatResponse, Error> {
        self.endpoint.chat(model, &request()).await
    }

    /// Events received, and the error that ended the stream (if any).
    pub async fn stream(&self, model: &str) -> (Vec<StreamEvent>, Option<Error>) {
        let mut s = match self.endpoint.stream(model, &request()).await {
            Ok(s) => s,
            Err(e) => return (vec![], Some(e)),
        };
        let mut events = vec![];
        while let Some(ev) = s.next().await {
            match ev {
                Ok(e) => events.push(e),
                Err(e) => return (events, Some(e)),
            }
        }
        (events, None)
    }
}

pub fn request() -> ChatRequest {
    ChatRequest::new(vec![Message::system("Be brief."), Message::user("What is the weather in Paris?")])
}

pub fn fold(events: &[StreamEvent]) -> ChatResponse {
    let mut acc = StreamAccumulator::new();
    events.iter().for_each(|e| acc.push(e));
    acc.into_response()
}
