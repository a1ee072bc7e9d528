//! Reservation, periods, wildcard scopes and rate limits against the memory store.

use super::*;
use crate::policy::BudgetScope;
use std::future::Future;

const NOV_21_2026: f64 = 1_795_219_200.0; // 2026-11-21T00:00:00Z

fn spec(name: &str, usd: Option<f64>, tokens: Option<u64>, period: Period, rolling: bool, scope: BudgetScope) -> BudgetSpec {
    BudgetSpec { name: name.into(), scope, limit_usd: usd, limit_tokens: tokens, period, rolling, enforce: true }
}
fn rsv(b: &Budgets, s: &Scope, usd: Option<f64>, tokens: u64, rl: Option<&RateLimitSpec>, now: f64) -> Result<Reservation, BudgetInfo> {
    // The memory store answers on the first poll.
    let mut f = std::pin::pin!(b.reserve(s, usd, tokens, rl, now, Duration::from_secs(60)));
    let waker = futures::task::noop_waker();
    let std::task::Poll::Ready(r) = f.as_mut().poll(&mut std::task::Context::from_waker(&waker)) else { panic!("memory store waited") };
    r.map_err(|d| match d {
        Denied::Budget(i) => i,
        Denied::Store(e) => panic!("{e}"),
    })
}
fn sc<'a>(tenant: Option<&'a str>) -> Scope<'a> {
    Scope { tenant, feature: None, route: "main", deployment: "d" }
}

#[test]
fn calendar_periods_align_to_utc() {
    let (m, end) = calendar_period(Period::Month, NOV_21_2026 + 3600.0);
    assert_eq!(m, 2026 * 12 + 11);
    assert_eq!(end, 1_796_083_200.0); // 2026-12-01T00:00:00Z
    let (_, end) = calendar_period(Period::Month, 1_796_083_199.0);
    assert_eq!(end, 1_796_083_200.0);
    let (_, dec_end) = calendar_period(Period::Month, 1_796_083_200.0);
    assert_eq!(dec_end, 1_798_761_600.0); // 2027-01-01
    let (_, day_end) = calendar_period(Period::Day, NOV_21_2026 + 10.0);
    assert_eq!(day_end, NOV_21_2026 + 86_400.0);
}

#[test]
fn all_applicable_budgets_must_hold_and_refusals_change_nothing() {
    let store = Arc::new(State::memory());
    let b = Budgets::new(
        vec![
            spec("global", Some(10.0), None, Period::Day, false, BudgetScope::default()),
            spec("acme", Some(1.0), None, Period::Month, false, BudgetScope { tenant: Some("acme".into()), ..Default::default() }),
        ],
        store,
    );
    let r1 = rsv(&b, &sc(Some("acme")), Some(0.6), 0, None, NOV_21_2026).unwrap();
    let e = rsv(&b, &sc(Some("acme")), Some(0.6), 0, None, NOV_21_2026).unwrap_err();
    assert_eq!((e.budget.as_str(), e.remaining), ("acme", 0.4));
    assert_eq!(e.resets_at, 1_796_083_200.0);
    // the refused reservation did not touch `global`
    let st = b.status(NOV_21_2026);
    assert!((st[0].reserved - 0.6).abs() < 1e-12, "{st:?}");
    // another tenant is only under `global`
    rsv(&b, &sc(Some("other")), Some(5.0), 0, None, NOV_21_2026).unwrap().settle(4.0, 0);
    // settle to less than reserved releases the rest
    r1.settle(0.25, 0);
    let st = b.status(NOV_21_2026);
    assert!((st[1].spent - 0.25).abs() < 1e-12 && st[1].reserved.abs() < 1e-12);
    assert!((st[0].spent - 4.25).abs() < 1e-12);
    // a dropped (cancelled) reservation is released and not billed
    drop(rsv(&b, &sc(Some("acme")), Some(0.7), 0, None, NOV_21_2026).unwrap());
    assert!((b.status(NOV_21_2026)[1].remaining - 0.75).abs() < 1e-12);
}

#[test]
fn free_deployments_pass_spend_budgets_unknown_prices_do_not() {
    let store = Arc::new(State::memory());
    let b = Budgets::new(vec![spec("g", Some(0.0), None, Period::Day, false, BudgetScope::default())], store);
    assert!(rsv(&b, &sc(None), Some(0.0), 1000, None, NOV_21_2026).is_ok());
    assert!(rsv(&b, &sc(None), None, 1000, None, NOV_21_2026).unwrap_err().remaining.is_nan());
}

#[test]
fn wildcard_scopes_give_each_tenant_its_own_ceiling() {
    let store = Arc::new(State::memory());
    let b = Budgets::new(
        vec![spec("per-tenant", None, Some(100), Period::Hour, false, BudgetScope { tenant: Some("*".into()), ..Default::default() })],
        store,
    );
    rsv(&b, &sc(Some("a")), None, 80, None, NOV_21_2026).unwrap().settle(0.0, 80);
    assert!(rsv(&b, &sc(Some("a")), None, 30, None, NOV_21_2026).is_err());
    assert!(rsv(&b, &sc(Some("b")), None, 30, None, NOV_21_2026).is_ok());
    let st = b.status(NOV_21_2026);
    assert_eq!(st.iter().map(|s| s.scope.as_str()).collect::<Vec<_>>(), ["tenant:a", "tenant:b"]);
}

#[test]
fn rolling_windows_slide() {
    let store = Arc::new(State::memory());
    let b = Budgets::new(vec![spec("r", None, Some(100), Period::Minute, true, BudgetScope::default())], store);
    rsv(&b, &sc(None), None, 100, None, NOV_21_2026).unwrap().settle(0.0, 100);
    assert!(rsv(&b, &sc(None), None, 1, None, NOV_21_2026 + 30.0).is_err());
    assert!(rsv(&b, &sc(None), None, 1, None, NOV_21_2026 + 61.0).is_ok());
}

#[test]
fn rate_limits_reserve_with_budgets() {
    let store = Arc::new(State::memory());
    let b = Budgets::new(vec![], store);
    let rl = RateLimitSpec { requests_per_minute: Some(2), ..Default::default() };
    let a = rsv(&b, &sc(None), Some(0.1), 10, Some(&rl), NOV_21_2026).unwrap();
    let c = rsv(&b, &sc(None), Some(0.1), 10, Some(&rl), NOV_21_2026).unwrap();
    let e = rsv(&b, &sc(None), Some(0.1), 10, Some(&rl), NOV_21_2026).unwrap_err();
    assert_eq!((e.budget.as_str(), e.unit.as_str()), ("rate_limit:d:requests", "requests"));
    a.settle(0.1, 10);
    drop(c); // never sent: frees its request slot
    assert!(rsv(&b, &sc(None), Some(0.1), 10, Some(&rl), NOV_21_2026).is_ok());
}

#[test]
fn keys_cached_for_a_period_move_on_with_the_next() {
    let store = Arc::new(State::memory());
    let b =
        Budgets::new(vec![spec("daily", None, Some(100), Period::Day, false, BudgetScope { tenant: Some("*".into()), ..Default::default() })], store);
    let last_second = NOV_21_2026 + 86_399.0;
    rsv(&b, &sc(Some("a")), None, 100, None, last_second).unwrap().settle(0.0, 100);
    assert!(rsv(&b, &sc(Some("a")), None, 1, None, last_second).is_err());
    assert_eq!(b.crossed(last_second).len(), 1, "the full day is reported once");
    // The next day reads its own counter, with keys built afresh, and reports its own.
    let next_day = NOV_21_2026 + 86_400.0;
    rsv(&b, &sc(Some("a")), None, 90, None, next_day).unwrap().settle(0.0, 90);
    let st = b.status(next_day);
    assert_eq!((st[0].spent, st[0].resets_at), (90.0, NOV_21_2026 + 2.0 * 86_400.0));
    let crossed = b.crossed(next_day);
    assert_eq!(crossed.iter().map(|(s, t)| (s.resets_at, *t)).collect::<Vec<_>>(), [(NOV_21_2026 + 2.0 * 86_400.0, 0.9)]);
    // Another instance of the same budget has its own keys.
    assert!(rsv(&b, &sc(Some("b")), None, 100, None, next_day).is_ok());
}
