use super::*;

fn owned(l: &[(&'static str, &str)]) -> Labels {
    l.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

#[test]
fn a_series_is_found_again_by_borrowed_labels() {
    let mut m = Series::default();
    let obs: [(&[(&'static str, &str)], f64); 6] = [
        (&[("d", "a"), ("o", "x")], 1.0),
        (&[("d", "a"), ("o", "y")], 2.0),
        (&[("d", "a"), ("o", "x")], 4.0),
        (&[("d", "ab"), ("o", "")], 8.0),
        (&[("d", "a")], 32.0),
        (&[("d", "a"), ("o", "x")], 16.0),
    ];
    for (l, by) in obs {
        inc(&mut m, l, by);
    }
    assert_eq!(m.len(), 4, "{m:?}");
    assert_eq!(m[&owned(&[("d", "a"), ("o", "x")])], 21.0);
    assert_eq!(m[&owned(&[("d", "a")])], 32.0);
}

#[test]
fn borrowed_labels_hash_and_compare_like_owned_ones() {
    // HashMap finds a borrowed key only if both hash alike and agree on equality.
    let sets: [&[(&'static str, &str)]; 7] =
        [&[], &[("a", "")], &[("a", "x")], &[("a", "x"), ("b", "")], &[("a", "xy")], &[("b", "a")], &[("ax", "y")]];
    let hash = |v: &dyn LabelView| {
        let mut h = std::hash::DefaultHasher::new();
        v.hash(&mut h);
        h.finish()
    };
    let owned_hash = |l: &Labels| {
        let mut h = std::hash::DefaultHasher::new();
        l.hash(&mut h);
        h.finish()
    };
    for x in sets {
        let bx = Borrowed(x);
        let vx: &dyn LabelView = &bx;
        assert_eq!(hash(vx), owned_hash(&owned(x)), "{x:?}");
        for y in sets {
            let by = Borrowed(y);
            let vy: &dyn LabelView = &by;
            assert_eq!(vx == vy, owned(x) == owned(y), "{x:?} vs {y:?}");
        }
    }
}

#[test]
fn series_render_in_label_order() {
    let m = Metrics::default();
    for route in ["zeta", "alpha", "mid"] {
        m.cache_lookup(route, "miss");
    }
    let text = m.render(&[], &[], CacheGauge::default());
    let at = |r: &str| text.find(&format!("route=\"{r}\"")).unwrap();
    assert!(at("alpha") < at("mid") && at("mid") < at("zeta"), "{text}");
}

fn attempt<'a>(deployment: &'a str, outcome: &'a str, ttft_ms: Option<f64>, cost_usd: Option<f64>) -> AttemptRecord<'a> {
    AttemptRecord { route: "r", deployment, provider: "p", model: "m", outcome, ttft_ms, tokens: [10, 2, 0, 0, 1], cost_usd }
}

fn request<'a>(outcome: &'a str, provider: Option<&'a str>, duration_ms: f64, cost_usd: Option<f64>) -> RequestRecord<'a> {
    RequestRecord { route: "r", outcome, provider, model: provider.map(|_| "m"), duration_ms, cost_usd }
}

fn lines(m: &Metrics, prefix: &str) -> Vec<String> {
    m.render(&[], &[], CacheGauge::default()).lines().filter(|l| l.starts_with(prefix)).map(str::to_string).collect()
}

#[test]
fn attempt_and_request_ends_add_up_across_reads() {
    let m = Metrics::default();
    m.attempt_finished(&attempt("a", "ok", Some(30.0), Some(0.5)));
    m.attempt_finished(&attempt("b", "ok", None, None));
    m.attempt_finished(&attempt("a", "timeout", None, Some(0.0)));
    m.request_finished(&request("ok", Some("p"), 20.0, Some(0.5)));
    m.request_finished(&request("timeout", None, 3000.0, None));
    let first = m.render(&[], &[], CacheGauge::default());
    // A read with nothing new in between changes nothing (the sums were moved, not copied).
    assert_eq!(m.render(&[], &[], CacheGauge::default()), first);
    m.attempt_finished(&attempt("a", "ok", Some(70.0), Some(0.25)));
    m.request_finished(&request("ok", Some("p"), 40.0, Some(0.25)));
    assert_eq!(
        lines(&m, "polyroute_attempts_total{"),
        [
            r#"polyroute_attempts_total{deployment="a",provider="p",model="m",outcome="ok"} 2"#,
            r#"polyroute_attempts_total{deployment="a",provider="p",model="m",outcome="timeout"} 1"#,
            r#"polyroute_attempts_total{deployment="b",provider="p",model="m",outcome="ok"} 1"#,
        ]
    );
    // Cost: a's two priced successes and its free timeout; b's unknown price adds no series.
    assert_eq!(lines(&m, "polyroute_cost_usd_total{"), [r#"polyroute_cost_usd_total{route="r",provider="p",model="m"} 0.75"#]);
    assert_eq!(
        lines(&m, "polyroute_tokens_total{"),
        [
            r#"polyroute_tokens_total{provider="p",model="m",direction="input"} 40"#,
            r#"polyroute_tokens_total{provider="p",model="m",direction="output"} 8"#,
            r#"polyroute_tokens_total{provider="p",model="m",direction="reasoning"} 4"#,
        ]
    );
    assert!(lines(&m, "polyroute_time_to_first_token_seconds_count")
        .contains(&r#"polyroute_time_to_first_token_seconds_count{provider="p",model="m"} 2"#.to_string()));
    assert!(lines(&m, "polyroute_time_to_first_token_seconds_sum")
        .contains(&r#"polyroute_time_to_first_token_seconds_sum{provider="p",model="m"} 0.1"#.to_string()));
    // 30 ms is within the 0.05 s bucket, 70 ms is not.
    assert!(lines(&m, "polyroute_time_to_first_token_seconds_bucket")
        .contains(&r#"polyroute_time_to_first_token_seconds_bucket{provider="p",model="m",le="0.05"} 1"#.to_string()));
    assert_eq!(
        lines(&m, "polyroute_requests_total{"),
        [
            r#"polyroute_requests_total{route="r",provider="",model="",outcome="timeout"} 1"#,
            r#"polyroute_requests_total{route="r",provider="p",model="m",outcome="ok"} 2"#,
        ]
    );
    assert!(lines(&m, "polyroute_request_duration_seconds_count")
        .contains(&r#"polyroute_request_duration_seconds_count{route="r",outcome="ok"} 2"#.to_string()));
    let rc = m.route_costs();
    assert_eq!((rc.len(), rc[0].requests, rc[0].successes, rc[0].total_cost_usd), (1, 3, 2, 0.75));
}
