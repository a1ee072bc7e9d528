//! The README's demo: routing and failover against the built-in mock providers, no API keys.
//!
//! Run with `cargo run -p polyroute --example demo`. It prints, request by request, who
//! served and why (the route trace's one-sentence explanation), so a reader sees a provider
//! ban become a non-event: the first failure falls over, the breaker opens, and later
//! requests skip the banned deployment without a round trip.

use futures::StreamExt;
use polyroute::{ChatRequest, Message, Router, StreamEvent};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/policies/demo.yaml");
    let router = Router::from_policy_file(policy)?;
    let ask = |q: &str| ChatRequest::new(vec![Message::user(q)]);

    println!("Plan before sending anything:\n  {}\n", router.plan(&ask("hi"))?.explanation);

    for i in 1..=5 {
        let resp = router.chat(ask("What is the capital of France?")).await?;
        let trace = resp.trace.as_ref().expect("router responses carry a trace");
        println!("request {i}: {:?}", resp.content());
        println!("  model {} via {}, cost ${:.6}", resp.model, trace.served_by.as_deref().unwrap_or("-"), resp.cost_usd.unwrap_or(0.0));
        println!("  why: {}", trace.explain());
    }

    println!("\nBreakers:");
    for d in router.deployments() {
        println!("  {:<14} {:?}", d.deployment, d.breaker.state);
    }

    println!("\nA streamed request tagged `pii` (only EU regions may see it):");
    let mut req = ask("Summarise my medical record.");
    req.routing.data_class = Some("pii".into());
    let mut stream = router.stream(req).await?;
    print!("  ");
    while let Some(ev) = stream.next().await {
        if let StreamEvent::ContentDelta { text } = ev? {
            print!("{text}");
        }
    }
    println!();
    if let Some(t) = stream.trace() {
        println!("  why: {}", t.explain());
    }

    println!("\nAn operator resets the banned deployment's breaker; the next request probes it:");
    router.reset_breaker("gpt-4o")?;
    match router.chat(ask("Still banned?")).await {
        Ok(r) => println!("  served: {}", r.trace.as_ref().map(|t| t.explain()).unwrap_or_default()),
        Err(e) => println!("  error: {e}"),
    }
    Ok(())
}
