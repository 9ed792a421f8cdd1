//! Connecting to Redis: one connection manager per process, with the response timeout of
//! the config, and the URL's password kept out of every message.

use std::time::Duration;

use anyhow::Context;
use redis::aio::ConnectionManager;

/// Connects with the response timeout of the config: long enough to ride out a stalled
/// Redis (the 500 ms default turns a 2 s stall into a fatal error, research note E26).
pub async fn connect(url: &str, response_timeout: Duration) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url).with_context(|| format!("REDIS_URL `{}` is invalid", redact(url)))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(6)
        .set_max_delay(Duration::from_secs(2));
    client
        .get_connection_manager_with_config(config)
        .await
        .with_context(|| format!("Failed to connect to Redis at {}", redact(url)))
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}
