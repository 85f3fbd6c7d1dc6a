//! Per-caller rate limiting with GCRA (the generic cell rate algorithm): a caller may burst up
//! to `per_minute` requests, then one every `60 / per_minute` seconds.
//!
//! One replica keeps the state in memory (`governor`). Several replicas behind a load balancer
//! share it in Redis (`REDIS_URL`): one Lua script per check, using Redis' own clock so replicas
//! with skewed clocks still agree. If Redis stops answering, each replica falls back to its
//! local limiter (logged and counted) rather than refusing or waving through all traffic.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::{Clock, QuantaClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter as Governor};
use redis::aio::ConnectionManager;

/// Outcome of one check, carrying what the `X-RateLimit-*` headers report.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Allowed { remaining: u32, reset: Duration },
    Limited { retry_after: Duration },
}

type Keyed = Governor<String, DefaultKeyedStateStore<String>, QuantaClock, StateInformationMiddleware>;

pub struct LocalLimiter {
    limiter: Keyed,
    per_minute: u32,
    clock: QuantaClock,
}

impl LocalLimiter {
    pub fn new(per_minute: u32) -> Option<Self> {
        let n = NonZeroU32::new(per_minute)?;
        let limiter = Governor::keyed(Quota::per_minute(n)).with_middleware::<StateInformationMiddleware>();
        Some(Self { limiter, per_minute, clock: QuantaClock::default() })
    }

    pub fn check(&self, key: &str) -> Verdict {
        let period = Duration::from_secs_f64(60.0 / f64::from(self.per_minute));
        match self.limiter.check_key(&key.to_string()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                // Time until the bucket is full again: one period per used slot.
                Verdict::Allowed { remaining, reset: period * (self.per_minute - remaining) }
            }
            Err(not_until) => Verdict::Limited { retry_after: not_until.wait_time_from(self.clock.now()) },
        }
    }

    /// Forget callers whose buckets are full again, so the keyed map stays bounded.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// GCRA over a "theoretical arrival time" per key, in milliseconds of Redis' clock.
/// Returns {allowed, remaining_or_retry_ms, reset_ms}.
const GCRA_LUA: &str = r"
local period = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + period
local horizon = burst * period
if new_tat - now > horizon then
  return {0, new_tat - now - horizon, tat - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now) + 1000)
return {1, math.floor((horizon - (new_tat - now)) / period), new_tat - now}
";

pub struct RedisLimiter {
    conn: ConnectionManager,
    script: redis::Script,
    per_minute: u32,
    prefix: String,
    fallback: LocalLimiter,
    last_warning: std::sync::Mutex<Option<Instant>>,
}

impl RedisLimiter {
    /// Connect (with a timeout) and prove the script runs; the caller falls back to a local
    /// limiter when this fails.
    pub async fn connect(url: &str, per_minute: u32) -> Result<Self, String> {
        let fallback = LocalLimiter::new(per_minute).ok_or("rate limit is disabled (0)")?;
        let client = redis::Client::open(url).map_err(|e| format!("invalid REDIS_URL: {e}"))?;
        let conn = tokio::time::timeout(Duration::from_secs(5), ConnectionManager::new(client))
            .await
            .map_err(|_| "Redis did not answer within 5 s".to_string())?
            .map_err(|e| format!("cannot connect to Redis: {e}"))?;
        let limiter = Self {
            conn,
            script: redis::Script::new(GCRA_LUA),
            per_minute,
            prefix: "timbre:ratelimit:".into(),
            fallback,
            last_warning: std::sync::Mutex::new(None),
        };
        Ok(limiter)
    }

    /// Use another key namespace (tests isolate themselves this way).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    async fn check(&self, key: &str) -> Verdict {
        let period_ms = 60_000.0 / f64::from(self.per_minute);
        let mut conn = self.conn.clone();
        let mut invocation = self.script.key(format!("{}{key}", self.prefix));
        invocation.arg(period_ms).arg(self.per_minute);
        let call = invocation.invoke_async::<(i64, i64, i64)>(&mut conn);
        match tokio::time::timeout(Duration::from_millis(500), call).await {
            Ok(Ok((1, remaining, reset_ms))) => Verdict::Allowed {
                remaining: u32::try_from(remaining.max(0)).unwrap_or(0),
                reset: Duration::from_millis(u64::try_from(reset_ms.max(0)).unwrap_or(0)),
            },
            Ok(Ok((_, retry_ms, _))) => {
                Verdict::Limited { retry_after: Duration::from_millis(u64::try_from(retry_ms.max(1)).unwrap_or(1)) }
            }
            Ok(Err(e)) => self.degrade(key, &e.to_string()),
            Err(_) => self.degrade(key, "timed out after 500 ms"),
        }
    }

    fn degrade(&self, key: &str, why: &str) -> Verdict {
        metrics::counter!("timbre_rate_limit_fallbacks_total").increment(1);
        let mut last = self.last_warning.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
            tracing::warn!(error = why, "Redis rate-limit store unavailable; limiting per replica until it is back");
            *last = Some(Instant::now());
        }
        self.fallback.check(key)
    }
}

pub enum RateLimiter {
    Local(LocalLimiter),
    Redis(RedisLimiter),
}

impl RateLimiter {
    pub async fn check(&self, key: &str) -> Verdict {
        match self {
            RateLimiter::Local(l) => l.check(key),
            RateLimiter::Redis(r) => r.check(key).await,
        }
    }

    pub fn per_minute(&self) -> u32 {
        match self {
            RateLimiter::Local(l) => l.per_minute,
            RateLimiter::Redis(r) => r.per_minute,
        }
    }

    pub fn prune(&self) {
        match self {
            RateLimiter::Local(l) => l.prune(),
            RateLimiter::Redis(r) => r.fallback.prune(),
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            RateLimiter::Local(_) => "memory",
            RateLimiter::Redis(_) => "redis",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_limits_per_key() {
        let rl = LocalLimiter::new(3).unwrap();
        assert!(matches!(rl.check("a"), Verdict::Allowed { remaining: 2, .. }));
        assert!(matches!(rl.check("a"), Verdict::Allowed { remaining: 1, .. }));
        assert!(matches!(rl.check("a"), Verdict::Allowed { remaining: 0, .. }));
        match rl.check("a") {
            Verdict::Limited { retry_after } => {
                assert!(
                    retry_after > Duration::from_secs(15) && retry_after <= Duration::from_secs(20),
                    "{retry_after:?}"
                )
            }
            v => panic!("expected limited, got {v:?}"),
        }
        assert!(matches!(rl.check("b"), Verdict::Allowed { remaining: 2, .. }), "keys are independent");
        assert!(LocalLimiter::new(0).is_none(), "0 disables");
    }
}
