//! The shared store: Redis or Valkey (same protocol), standalone or Cluster, through the
//! `redis` crate (redis-rs, the maintained Rust client: a `ConnectionManager` that reconnects
//! by itself after a restart or failover, and a Cluster client that follows slot moves).
//!
//! Every budget operation is one server-side Lua script (EVALSHA; redis-rs reloads it after
//! NOSCRIPT, e.g. after a restart or `SCRIPT FLUSH`), so a reservation across several
//! ceilings is atomic. In a Cluster, a script may only touch one slot: every key of one
//! budget instance (its counters, holds and leases) shares a hash tag, and a reservation
//! spanning several budgets runs one script per slot concurrently, releasing what the others
//! took if one refuses. That is still never an overshoot (each ceiling is checked atomically
//! against everything held); it only means a refused request briefly held the others.
//!
//! Key layout (prefix `polyroute:`; `{..}` only in Cluster mode):
//! `polyroute:{budget|daily|tenant:acme}|c20791` a calendar counter (hash: `s` spent, `r`
//! reserved), `..|r` a rolling window (hash: `s<i>`/`r<i>` per bucket i),
//! `..|holds` reservation id → JSON of what it holds, `..|leases` id → lease end,
//! `..|settled` ids already settled; `polyroute:{fleet|gpt}|open` etc. for health (fleet.rs).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{FromRedisValue, Script};
use tokio::sync::OnceCell;

use super::fleet::{ms, view, DeploymentView, FleetStore, LatencyReport, CLOSED_MARK_MS, REPORT_TTL_MS};
use super::{Actual, Charge, Counter, Refusal, StateStore, StoreError, StoreFuture};

const SWEEP: &str = include_str!("lua/sweep.lua");

/// Where the store is and how to reach it.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://[user:password@]host:port[/db]`; for a Cluster, any node (or several).
    pub urls: Vec<String>,
    pub cluster: bool,
    pub key_prefix: String,
    /// Connect and response timeout of the client (the router also bounds each call).
    pub timeout: Duration,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URLs may carry a password.
        f.debug_struct("RedisOptions")
            .field("nodes", &self.urls.iter().map(|u| redacted(u)).collect::<Vec<_>>())
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// `redis://host:port` without credentials, for messages.
pub fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest)),
        None => "redis".into(),
    }
}

#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    pub(crate) async fn script<T: FromRedisValue>(&self, inv: &redis::ScriptInvocation<'_>) -> redis::RedisResult<T> {
        match self.clone() {
            Conn::Single(mut c) => inv.invoke_async(&mut c).await,
            Conn::Cluster(mut c) => inv.invoke_async(&mut c).await,
        }
    }

    pub(crate) async fn pipe<T: FromRedisValue>(&self, p: &redis::Pipeline) -> redis::RedisResult<T> {
        match self.clone() {
            Conn::Single(mut c) => p.query_async(&mut c).await,
            Conn::Cluster(mut c) => p.query_async(&mut c).await,
        }
    }
}

pub struct RedisStore {
    opts: RedisOptions,
    conn: OnceCell<Conn>,
    reserve: Script,
    settle: Script,
    get: Script,
    /// Open a deployment fleet-wide without shortening a longer open (fleet.rs).
    pub(crate) open_script: Script,
    probe_script: Script,
    /// This store's (process's) name as a probe holder.
    me: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("opts", &self.opts).finish_non_exhaustive()
    }
}

pub(crate) fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("redis: {e}"))
}

impl RedisStore {
    /// No connection is made here (a router may be built outside any runtime): the first
    /// call connects, and a failed connect is retried by the next call.
    pub fn new(opts: RedisOptions) -> Result<RedisStore, StoreError> {
        if opts.urls.is_empty() {
            return Err(StoreError("redis: no URL given".into()));
        }
        for u in &opts.urls {
            redis::Client::open(u.as_str()).map_err(|e| StoreError(format!("redis: invalid URL {}: {e}", redacted(u))))?;
        }
        let with = |body: &str| Script::new(&format!("{SWEEP}\n{body}"));
        Ok(RedisStore {
            opts,
            conn: OnceCell::new(),
            reserve: with(include_str!("lua/reserve.lua")),
            settle: with(include_str!("lua/settle.lua")),
            get: with(include_str!("lua/get.lua")),
            probe_script: Script::new(
                "local v = redis.call('GET', KEYS[1])\n\
                 if v and v ~= ARGV[1] then return 0 end\n\
                 redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\nreturn 1",
            ),
            me: format!("{}-{:016x}", std::process::id(), rand::random::<u64>()),
            open_script: Script::new(
                "local ttl = redis.call('PTTL', KEYS[1])\n\
                 if ttl < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1]) end\n\
                 redis.call('DEL', KEYS[2], KEYS[3])\nreturn 1",
            ),
        })
    }

    pub(crate) async fn conn(&self) -> Result<&Conn, StoreError> {
        self.conn
            .get_or_try_init(|| async {
                let t = self.opts.timeout;
                if self.opts.cluster {
                    let c = redis::cluster::ClusterClient::builder(self.opts.urls.clone())
                        .connection_timeout(t)
                        .response_timeout(t)
                        .retries(1)
                        .build()
                        .map_err(err)?;
                    Ok(Conn::Cluster(c.get_async_connection().await.map_err(err)?))
                } else {
                    let client = redis::Client::open(self.opts.urls[0].as_str()).map_err(err)?;
                    // Reconnects after a restart on its own; a couple of quick tries only, so a
                    // store that is down fails fast into `on_error`.
                    let cfg = redis::aio::ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(t))
                        .set_response_timeout(Some(t))
                        .set_number_of_retries(1)
                        .set_max_delay(Duration::from_millis(100));
                    Ok(Conn::Single(ConnectionManager::new_with_config(client, cfg).await.map_err(err)?))
                }
            })
            .await
    }

    /// The Redis key of counter `name`; in a Cluster its hash tag is the budget instance.
    pub(crate) fn key(&self, name: &str) -> String {
        if self.opts.cluster {
            let (tag, rest) = name.rsplit_once('|').unwrap_or((name, ""));
            format!("{}{{{tag}}}|{rest}", self.opts.key_prefix)
        } else {
            format!("{}{name}", self.opts.key_prefix)
        }
    }

    /// The slot group of counter `name` (`""`: the single group of a standalone server).
    fn group<'n>(&self, name: &'n str) -> &'n str {
        if self.opts.cluster {
            name.rsplit_once('|').map(|(t, _)| t).unwrap_or(name)
        } else {
            ""
        }
    }

    /// The bookkeeping keys (holds, leases, settled) of a slot group.
    fn books(&self, group: &str) -> [String; 3] {
        let base = if self.opts.cluster { format!("{}{{{group}}}|", self.opts.key_prefix) } else { self.opts.key_prefix.clone() };
        [format!("{base}holds"), format!("{base}leases"), format!("{base}settled")]
    }

    pub(crate) fn fleet_key(&self, dep: &str, what: &str) -> String {
        if self.opts.cluster {
            format!("{}{{fleet|{dep}}}|{what}", self.opts.key_prefix)
        } else {
            format!("{}fleet|{dep}|{what}", self.opts.key_prefix)
        }
    }

    /// Where counter `name` lives: (hash key, field suffix, rolling bucket). A rolling
    /// window's buckets `base|r<i>` are the field pairs `s<i>`/`r<i>` of one hash `base|r`, so
    /// a script reads a minute of 60 buckets with one HGETALL instead of 60 reads; any other
    /// counter is the `s`/`r` pair of its own hash.
    fn cref(&self, name: &str) -> (String, String, Option<i64>) {
        if let Some((base, last)) = name.rsplit_once('|') {
            if let Some(i) = last.strip_prefix('r').and_then(|d| d.parse::<i64>().ok()) {
                return (self.key(&format!("{base}|r")), i.to_string(), Some(i));
            }
        }
        (self.key(name), String::new(), None)
    }

    /// One group's reservation: `Ok(Ok(used))` or the refused charge (group-local index).
    async fn reserve_group(&self, id: &str, charges: &[&Charge], lease: Duration) -> Result<Result<Vec<f64>, Refusal>, StoreError> {
        let conn = self.conn().await?;
        let [holds, leases, _] = self.books(self.group(&charges[0].add_to));
        let mut keys: Vec<String> = vec![holds, leases];
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut slot = |key: String, keys: &mut Vec<String>| -> String {
            index
                .entry(key.clone())
                .or_insert_with(|| {
                    keys.push(key);
                    keys.len()
                })
                .to_string()
        };
        let mut args: Vec<String> = vec![id.to_string(), lease.as_millis().to_string(), charges.len().to_string()];
        for c in charges {
            let (ak, asfx, _) = self.cref(&c.add_to);
            let limit = if c.limit.is_finite() { c.limit } else { 1e300 };
            args.extend([slot(ak, &mut keys), asfx, fmt(limit), fmt(c.amount), ((c.expires_at * 1000.0) as i64).to_string()]);
            let window: Vec<_> = c.window.iter().map(|w| self.cref(w)).collect();
            let first = window.iter().map(|w| w.2).collect::<Option<Vec<i64>>>().and_then(|b| b.into_iter().min());
            match first {
                Some(first) if window.iter().all(|w| w.0 == window[0].0) => {
                    args.extend(["w".into(), slot(window[0].0.clone(), &mut keys), first.to_string()]);
                }
                _ => {
                    args.extend(["l".into(), window.len().to_string()]);
                    for (k, sfx, _) in window {
                        args.extend([slot(k, &mut keys), sfx]);
                    }
                }
            }
        }
        let mut inv = self.reserve.prepare_invoke();
        for k in &keys {
            inv.key(k);
        }
        for a in &args {
            inv.arg(a);
        }
        let reply: Vec<redis::Value> = conn.script(&inv).await.map_err(err)?;
        let num = |v: &redis::Value| -> f64 {
            match v {
                redis::Value::Int(i) => *i as f64,
                redis::Value::BulkString(b) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN),
                _ => f64::NAN,
            }
        };
        let tag = reply.first().map(num).unwrap_or(f64::NAN);
        if tag == 1.0 {
            Ok(Ok(reply[1..].iter().map(num).collect()))
        } else if tag == 0.0 && reply.len() == 3 {
            Ok(Err(Refusal { index: num(&reply[1]) as usize - 1, remaining: num(&reply[2]) }))
        } else {
            Err(StoreError(format!("redis: unexpected reply to reserve: {reply:?}")))
        }
    }

    async fn settle_group(&self, id: &str, group: &str, actual: &[&Actual]) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        let [holds, leases, settled] = self.books(group);
        let mut inv = self.settle.prepare_invoke();
        inv.key(holds).key(leases).key(settled).arg(id).arg(actual.len());
        for (k, a) in actual {
            let (key, sfx, _) = self.cref(k);
            inv.key(key).arg(sfx).arg(fmt(*a));
        }
        let _: i64 = conn.script(&inv).await.map_err(err)?;
        Ok(())
    }

    async fn get_group(&self, group: &str, names: &[&String]) -> Result<Vec<Counter>, StoreError> {
        let conn = self.conn().await?;
        let [holds, leases, _] = self.books(group);
        let mut inv = self.get.prepare_invoke();
        inv.key(holds).key(leases);
        for n in names {
            let (key, sfx, _) = self.cref(n);
            inv.key(key).arg(sfx);
        }
        let v: Vec<String> = conn.script(&inv).await.map_err(err)?;
        let f = |s: &String| s.parse::<f64>().unwrap_or(0.0);
        Ok(v.chunks(2).map(|c| Counter { spent: f(&c[0]), reserved: f(&c[1]).max(0.0) }).collect())
    }
}

/// Round-trip exact: Rust prints the shortest string that parses back to the same f64.
fn fmt(x: f64) -> String {
    format!("{x}")
}

impl StateStore for RedisStore {
    fn reserve<'a>(&'a self, id: &'a str, charges: &'a [Charge], lease: Duration) -> StoreFuture<'a, Result<Vec<f64>, Refusal>> {
        Box::pin(async move {
            let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for (i, c) in charges.iter().enumerate() {
                groups.entry(self.group(&c.add_to)).or_default().push(i);
            }
            if groups.len() == 1 {
                let all: Vec<&Charge> = charges.iter().collect();
                return self.reserve_group(id, &all, lease).await;
            }
            let runs = groups.values().map(|idx| {
                let cs: Vec<&Charge> = idx.iter().map(|i| &charges[*i]).collect();
                async move { self.reserve_group(id, &cs, lease).await }
            });
            let results = futures::future::join_all(runs).await;
            let mut used = vec![0.0; charges.len()];
            let mut refused = None;
            let mut failed = None;
            for (idx, r) in groups.values().zip(results) {
                match r {
                    Ok(Ok(u)) => idx.iter().zip(u).for_each(|(i, u)| used[*i] = u),
                    Ok(Err(rf)) => refused = refused.or(Some(Refusal { index: idx[rf.index], remaining: rf.remaining })),
                    Err(e) => failed = failed.or(Some(e)),
                }
            }
            if refused.is_some() || failed.is_some() {
                // Give back what the other slots granted (a settle of nothing).
                let zeros: Vec<Actual> = charges.iter().map(|c| (c.add_to.clone(), 0.0)).collect();
                let _ = self.settle(id, &zeros).await;
            }
            match (failed, refused) {
                (Some(e), _) => Err(e),
                (None, Some(r)) => Ok(Err(r)),
                (None, None) => Ok(Ok(used)),
            }
        })
    }

    fn settle<'a>(&'a self, id: &'a str, actual: &'a [Actual]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut groups: BTreeMap<&str, Vec<&Actual>> = BTreeMap::new();
            for a in actual {
                groups.entry(self.group(&a.0)).or_default().push(a);
            }
            let runs = groups.iter().map(|(g, items)| self.settle_group(id, g, items));
            futures::future::join_all(runs).await.into_iter().collect::<Result<Vec<()>, _>>().map(|_| ())
        })
    }

    fn get<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Counter>> {
        Box::pin(async move {
            let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for (i, k) in keys.iter().enumerate() {
                groups.entry(self.group(k)).or_default().push(i);
            }
            let mut out = vec![Counter::default(); keys.len()];
            for (g, idx) in groups {
                let names: Vec<&String> = idx.iter().map(|i| &keys[*i]).collect();
                for (i, c) in idx.iter().zip(self.get_group(g, &names).await?) {
                    out[*i] = c;
                }
            }
            Ok(out)
        })
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn fleet(&self) -> Option<&dyn super::fleet::FleetStore> {
        Some(self)
    }
}

// The fleet's health view (what it means: fleet.rs), on the same connection.
impl FleetStore for RedisStore {
    fn publish_open<'a>(&'a self, dep: &'a str, open_for: Duration, reason: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let mut inv = self.open_script.prepare_invoke();
            inv.key(self.fleet_key(dep, "open")).key(self.fleet_key(dep, "closed")).key(self.fleet_key(dep, "probe"));
            inv.arg(ms(open_for)).arg(reason);
            let _: i64 = conn.script(&inv).await.map_err(err)?;
            Ok(())
        })
    }

    fn publish_closed<'a>(&'a self, dep: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let mut p = redis::pipe();
            p.del(self.fleet_key(dep, "open")).ignore().del(self.fleet_key(dep, "probe")).ignore();
            p.cmd("SET").arg(self.fleet_key(dep, "closed")).arg(1).arg("PX").arg(CLOSED_MARK_MS).ignore();
            let () = conn.pipe(&p).await.map_err(err)?;
            Ok(())
        })
    }

    fn claim_probe<'a>(&'a self, dep: &'a str, ttl: Duration) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let conn = self.conn().await?;
            // Free, or already this process's (its probe was cancelled before it could report:
            // the slot must not stay taken until the TTL).
            let mut inv = self.probe_script.prepare_invoke();
            inv.key(self.fleet_key(dep, "probe")).arg(&self.me).arg(ms(ttl));
            let got: i64 = conn.script(&inv).await.map_err(err)?;
            Ok(got == 1)
        })
    }

    fn publish_exhausted<'a>(&'a self, dep: &'a str, for_: Duration, why: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let mut p = redis::pipe();
            p.cmd("SET").arg(self.fleet_key(dep, "exhausted")).arg(why).arg("PX").arg(ms(for_)).ignore();
            let () = conn.pipe(&p).await.map_err(err)?;
            Ok(())
        })
    }

    fn sync<'a>(&'a self, me: &'a str, reports: &'a [(String, LatencyReport)], deps: &'a [String]) -> StoreFuture<'a, Vec<DeploymentView>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
            let mut p = redis::pipe();
            for (dep, r) in reports {
                let k = self.fleet_key(dep, "latency");
                p.hset(&k, me, format!("{}:{}:{now_ms}:{}", r.ewma_ms, r.calls, r.p95_ms.unwrap_or(f64::NAN))).ignore();
                p.pexpire(&k, REPORT_TTL_MS as i64).ignore();
            }
            for dep in deps {
                p.pttl(self.fleet_key(dep, "open")).get(self.fleet_key(dep, "open")).exists(self.fleet_key(dep, "closed"));
                p.pttl(self.fleet_key(dep, "exhausted")).get(self.fleet_key(dep, "exhausted"));
                p.hgetall(self.fleet_key(dep, "latency"));
            }
            type Row = (i64, Option<String>, bool, i64, Option<String>, HashMap<String, String>);
            let rows: Vec<redis::Value> = conn.pipe(&p).await.map_err(err)?;
            let mut out = Vec::with_capacity(deps.len());
            for chunk in rows.chunks(6) {
                let row: Row = redis::FromRedisValue::from_redis_value(redis::Value::Array(chunk.to_vec())).map_err(err)?;
                out.push(view(row, now_ms));
            }
            if out.len() != deps.len() {
                return Err(StoreError(format!("redis: sync got {} rows for {} deployments", out.len(), deps.len())));
            }
            Ok(out)
        })
    }
}
