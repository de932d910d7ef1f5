//! The `redis` backend: one hash per caller (`<key_prefix><caller>`, fields `m`, `h`, `d`
//! for the tokens and `t` for the time they were counted at), refilled and taken by one
//! Lua script that Redis runs atomically, on Redis's clock. Each hash expires a day after
//! its last check: by then its buckets are full, so forgetting it changes nothing.

use std::time::Duration;

use kamiyo_db::DatabaseUrl;
use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;

use crate::ratelimit::Capacity;

/// KEYS[1] the caller's hash; ARGV the minute, hour and day capacities, then 1 to take a
/// token (0 only reads). Answers `{allowed, minute, hour, day}`, the tokens as text
/// (Redis would cut Lua numbers to integers).
const SCRIPT: &str = r"
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local cap = {tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])}
local window = {60, 3600, 86400}
local stored = redis.call('HMGET', KEYS[1], 'm', 'h', 'd', 't')
local last = tonumber(stored[4]) or now
if last > now then now = last end
local tokens = {}
local allowed = true
for i = 1, 3 do
  local t = tonumber(stored[i]) or cap[i]
  t = math.min(cap[i], t + (now - last) * cap[i] / window[i])
  tokens[i] = t
  if t < 1 then allowed = false end
end
if ARGV[4] == '1' then
  if allowed then
    for i = 1, 3 do tokens[i] = tokens[i] - 1 end
  end
  redis.call('HSET', KEYS[1], 'm', tostring(tokens[1]), 'h', tostring(tokens[2]),
             'd', tostring(tokens[3]), 't', tostring(now))
  redis.call('PEXPIRE', KEYS[1], 86400000)
end
return {allowed and 1 or 0, tostring(tokens[1]), tostring(tokens[2]), tostring(tokens[3])}
";

pub struct RedisBuckets {
    client: redis::Client,
    script: redis::Script,
    prefix: String,
    /// One multiplexed connection shared by every check, opened on first use and again
    /// after it fails.
    connection: Mutex<Option<MultiplexedConnection>>,
    connect_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RedisLimitError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis answered the rate-limit script with {0}")]
    Answer(String),
}

impl RedisBuckets {
    /// Parses `url` (nothing is connected yet).
    pub fn new(
        url: &DatabaseUrl,
        prefix: &str,
        connect_timeout: Duration,
    ) -> Result<RedisBuckets, String> {
        let client = redis::Client::open(url.expose())
            .map_err(|e| format!("rate_limit.redis_url ({url}): {:?}", e.kind()))?;
        Ok(RedisBuckets {
            client,
            script: redis::Script::new(SCRIPT),
            prefix: prefix.to_owned(),
            connection: Mutex::new(None),
            connect_timeout,
        })
    }

    async fn connection(&self) -> Result<MultiplexedConnection, RedisLimitError> {
        let mut held = self.connection.lock().await;
        if let Some(connection) = held.as_ref() {
            return Ok(connection.clone());
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(self.connect_timeout)
            .set_response_timeout(self.connect_timeout);
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *held = Some(connection.clone());
        Ok(connection)
    }

    /// Forgets the connection: the next check opens a new one.
    pub async fn reset(&self) {
        *self.connection.lock().await = None;
    }

    /// Runs the script for `caller`: takes a token when `take`; `(allowed, tokens)`.
    pub async fn run(
        &self,
        caller: &str,
        capacity: Capacity,
        take: bool,
    ) -> Result<(bool, [f64; 3]), RedisLimitError> {
        let mut connection = self.connection().await?;
        let answer: Result<(i64, String, String, String), redis::RedisError> = self
            .script
            .key(format!("{}{caller}", self.prefix))
            .arg(capacity[0])
            .arg(capacity[1])
            .arg(capacity[2])
            .arg(if take { 1 } else { 0 })
            .invoke_async(&mut connection)
            .await;
        let (allowed, minute, hour, day) = match answer {
            Ok(answer) => answer,
            Err(error) => {
                // The next check opens a new connection.
                *self.connection.lock().await = None;
                return Err(error.into());
            }
        };
        let number = |text: &str| {
            text.parse::<f64>()
                .map_err(|_| RedisLimitError::Answer(format!("{text:?} for a token count")))
        };
        Ok((
            allowed == 1,
            [number(&minute)?, number(&hour)?, number(&day)?],
        ))
    }
}
