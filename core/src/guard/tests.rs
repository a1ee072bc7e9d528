use std::sync::Arc;

use super::*;
use crate::types::{Message, StreamEvent, ToolCall};

fn guards(yaml: &str) -> Guards {
    let specs: Vec<GuardSpec> = serde_yaml_ng::from_str(yaml).unwrap();
    Guards::compile(&specs).unwrap()
}

fn req(msgs: Vec<Message>) -> ChatRequest {
    ChatRequest { messages: msgs, ..Default::default() }
}

fn no_route(_: &ChatRequest) -> Option<String> {
    None
}

#[test]
fn redact_replaces_values_with_tags_everywhere_a_provider_looks() {
    let g = guards("[{name: pii, detect: [email, credit_card], action: redact}]");
    let mut call =
        Message::assistant_tool_calls(vec![ToolCall { id: "c1".into(), name: "pay".into(), arguments: r#"{"card":"4111-1111-1111-1111"}"#.into() }]);
    call.refusal = None;
    let mut r = req(vec![
        Message::system("support for bob@example.com"),
        Message::user_parts(vec![ContentPart::text("mail me at ann@example.org")]),
        call,
        Message::tool_result("c1", "charged 4111 1111 1111 1111"),
    ]);
    let out = g.apply(&mut r, no_route);
    assert!(out.rejected.is_none() && out.masks.is_none());
    let body = serde_json::to_string(&r).unwrap();
    assert!(!body.contains("example.com") && !body.contains("example.org") && !body.contains("4111"), "{body}");
    assert!(body.contains("support for [EMAIL]") && body.contains(r#"{\"card\":\"[CREDIT_CARD]\"}"#), "{body}");
    assert_eq!(out.hits.len(), 1);
    assert_eq!(out.hits[0].findings.get("email"), Some(&2));
    assert_eq!(out.hits[0].findings.get("credit_card"), Some(&2));
    assert_eq!(out.hits[0].note(), "guard `pii` redacted 2 credit_card, 2 email");
}

#[test]
fn mask_gives_each_value_one_placeholder_and_restores_answers() {
    let g = guards("[{name: pii, detect: [email], action: mask}]");
    let mut r = req(vec![Message::user("write to bob@example.com and ann@example.org, then bob@example.com again")]);
    let out = g.apply(&mut r, no_route);
    assert_eq!(r.messages[0].text(), "write to [EMAIL_1] and [EMAIL_2], then [EMAIL_1] again");
    let masks = out.masks.expect("masks");
    assert_eq!(
        masks.restore("sent to [EMAIL_2] and [EMAIL_1]; [EMAIL_3] and [note] stay"),
        "sent to ann@example.org and bob@example.com; [EMAIL_3] and [note] stay"
    );
}

#[test]
fn reject_stops_before_sending_and_names_no_value() {
    let g = guards("[{name: audit-all, detect: [email], action: audit}, {name: no-cards, detect: [credit_card], action: reject}, {name: later, detect: [email], action: redact}]");
    let mut r = req(vec![Message::user("pay 4111 1111 1111 1111 from bob@example.com")]);
    let out = g.apply(&mut r, no_route);
    let e = out.rejected.expect("rejected");
    assert_eq!(e.kind, ErrorKind::GuardRejected);
    assert!(e.message.contains("no-cards") && e.message.contains("1 credit_card"), "{}", e.message);
    assert!(!e.message.contains("4111") && !e.message.contains("bob@"));
    // The audit guard reported and changed nothing; the guard after the rejection never ran.
    assert_eq!(out.hits.iter().map(|h| h.guard.as_str()).collect::<Vec<_>>(), ["audit-all", "no-cards"]);
    assert!(r.messages[0].text().contains("bob@example.com"));
}

#[test]
fn data_class_filters_and_sets() {
    let g = guards("[{name: classify, detect: [us_ssn], action: audit, set_data_class: pii}, {name: pii-only, detect: [email], action: redact, data_class: [pii]}]");
    let mut plain = req(vec![Message::user("reach bob@example.com")]);
    let out = g.apply(&mut plain, no_route);
    assert!(out.hits.is_empty() && plain.routing.data_class.is_none());
    let mut r = req(vec![Message::user("ssn 123-45-6789, reach bob@example.com")]);
    r.routing.data_class = Some("public".into());
    let out = g.apply(&mut r, no_route);
    assert_eq!(r.routing.data_class.as_deref(), Some("pii"));
    assert_eq!(out.class_note.as_deref(), Some("guard `classify` set the data class to `pii` (was `public`)"));
    assert_eq!(r.messages[0].text(), "ssn 123-45-6789, reach [EMAIL]");
}

#[test]
fn route_limited_guards_run_after_routing() {
    let g = guards("[{name: support, detect: [phone], action: redact, routes: [support]}]");
    let mut r = req(vec![Message::user("call +1 415 555 0132")]);
    g.apply(&mut r, |_| Some("chat".into()));
    assert_eq!(r.messages[0].text(), "call +1 415 555 0132");
    g.apply(&mut r, |_| Some("support".into()));
    assert_eq!(r.messages[0].text(), "call [PHONE]");
}

/// Every way of cutting the answer into two or three chunks gives the same restored text.
#[test]
fn stream_restore_survives_any_chunk_boundary() {
    let mut m = Masks::default();
    m.placeholder("EMAIL", "bob@example.com");
    m.placeholder("EMAIL", "ann@example.org");
    let masks = Arc::new(m);
    let answer = "to [EMAIL_1], cc [EMAIL_2]; [x] [EMAIL_9] [EMAIL_";
    let want = "to bob@example.com, cc ann@example.org; [x] [EMAIL_9] [EMAIL_";
    let n = answer.len();
    for i in 0..=n {
        for j in i..=n {
            let mut s = StreamRestorer::new(masks.clone());
            let mut got = String::new();
            for piece in [&answer[..i], &answer[i..j], &answer[j..]] {
                for ev in s.push(StreamEvent::ContentDelta { text: piece.to_string() }) {
                    if let StreamEvent::ContentDelta { text } = ev {
                        got.push_str(&text);
                    }
                }
            }
            for ev in s.push(StreamEvent::Finish { reason: crate::types::FinishReason::Stop, native: None }) {
                if let StreamEvent::ContentDelta { text } = ev {
                    got.push_str(&text);
                }
            }
            assert_eq!(got, want, "cut at {i},{j}");
        }
    }
}

#[test]
fn stream_restore_covers_tool_arguments_and_drops_held_text_on_reset() {
    let mut m = Masks::default();
    m.placeholder("EMAIL", "bob@example.com");
    let mut s = StreamRestorer::new(Arc::new(m));
    let first = s.push(StreamEvent::ToolCallDelta { index: 0, id: Some("c".into()), name: Some("send".into()), arguments: r#"{"to":"[EMA"#.into() });
    assert_eq!(first, vec![StreamEvent::ToolCallDelta { index: 0, id: Some("c".into()), name: Some("send".into()), arguments: r#"{"to":""#.into() }]);
    let rest = s.push(StreamEvent::ToolCallDelta { index: 0, id: None, name: None, arguments: r#"IL_1]"}"#.into() });
    assert_eq!(rest, vec![StreamEvent::ToolCallDelta { index: 0, id: None, name: None, arguments: r#"bob@example.com"}"#.into() }]);
    assert!(s.push(StreamEvent::ContentDelta { text: "[EMA".into() }).is_empty());
    let after = s.push(StreamEvent::Reset { reason: "restart".into() });
    assert_eq!(after.len(), 1);
    assert!(s.flush().is_empty());
}
