//! The guard against deliveries aimed inside our own network (SSRF).
//!
//! A webhook URL is chosen by a customer, so without a guard it is a way to make the
//! service send requests to its database, its cloud metadata endpoint or anything else
//! only reachable from inside. Two checks, because either alone has a hole:
//!
//! - [`check_url`] when the URL is saved and before each delivery: scheme, credentials,
//!   and IP-literal hosts (which are never looked up, so the resolver below never sees
//!   them).
//! - [`GuardedResolver`] inside the client from [`http_client`]: every name is resolved
//!   here and forbidden addresses are dropped, so the address checked is the address
//!   connected to. Checking a name once at save time would let its DNS answer change
//!   afterwards (rebinding).
//!
//! The client follows no redirects (a public URL could redirect to a private one) and
//! uses no proxy (a proxy would resolve the name itself, past the guard).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whole-exchange deadline of one delivery, body included. Larger lets slow receivers tie
/// up delivery workers; smaller fails receivers that do real work before answering.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// Deadline for name resolution plus TCP and TLS set-up. An unreachable host fails after
/// this instead of the full timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_USER_AGENT: &str = "Kamiyo-Webhooks/1.0";
/// How much of a receiver's answer is kept for the delivery log: enough for an error
/// message, too little for a hostile receiver to fill memory or the database.
pub const DEFAULT_BODY_LIMIT: usize = 4 * 1024;

/// Why a target was refused. Never carries the URL's query or userinfo: they may hold
/// tokens, and these messages reach logs and API responses.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("not a valid URL")]
    Invalid(#[source] url::ParseError),
    #[error("scheme \"{0}\" is not allowed; use http or https")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL carries a user name or password; send credentials another way")]
    Credentials,
    #[error("{0} is a private, loopback or otherwise non-public address")]
    Forbidden(IpAddr),
    #[error("\"localhost\" names this machine")]
    Localhost,
    #[error("could not build the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Why the resolver produced no address to connect to.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("could not resolve {host}")]
    Lookup {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{host} resolves to no address")]
    NoAddress { host: String },
    #[error("{host} resolves only to private addresses")]
    OnlyForbidden { host: String },
}

/// Whether `ip` is somewhere a delivery must not go: this host, private and shared
/// networks, link-local (cloud metadata lives there), multicast and broadcast, and ranges
/// reserved for documentation, benchmarks or the future. IPv6 forms that embed an IPv4
/// address (mapped, compatible, NAT64, 6to4) are judged by that address, since the
/// packet ends up there.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    const RANGES: &[([u8; 4], u32)] = &[
        ([0, 0, 0, 0], 8),       // "this network", including 0.0.0.0
        ([10, 0, 0, 0], 8),      // RFC 1918
        ([100, 64, 0, 0], 10),   // carrier-grade NAT, shared address space
        ([127, 0, 0, 0], 8),     // loopback
        ([169, 254, 0, 0], 16),  // link-local, cloud metadata (169.254.169.254)
        ([172, 16, 0, 0], 12),   // RFC 1918
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // TEST-NET-1
        ([192, 88, 99, 0], 24),  // former 6to4 relay anycast
        ([192, 168, 0, 0], 16),  // RFC 1918
        ([198, 18, 0, 0], 15),   // benchmarking
        ([198, 51, 100, 0], 24), // TEST-NET-2
        ([203, 0, 113, 0], 24),  // TEST-NET-3
        ([224, 0, 0, 0], 4),     // multicast
        ([240, 0, 0, 0], 4),     // reserved, including 255.255.255.255 broadcast
    ];
    RANGES.iter().any(|&(net, prefix)| in_v4(ip, net, prefix))
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    let low_v4 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    // ::/96 (IPv4-compatible, and :: and ::1 with it) and ::ffff:0:0/96 (IPv4-mapped).
    if in_v6(ip, [0; 8], 96) || in_v6(ip, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96) {
        return is_forbidden_v4(low_v4);
    }
    // NAT64 well-known prefix: the gateway forwards to the embedded address.
    if in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        return is_forbidden_v4(low_v4);
    }
    // 6to4: the IPv4 address sits in bits 16..48.
    if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        return is_forbidden_v4(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    const RANGES: &[([u16; 8], u32)] = &[
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),  // NAT64 for local use
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64),      // discard-only
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 32),     // Teredo: tunnels to any IPv4 address
        ([0x2001, 2, 0, 0, 0, 0, 0, 0], 48),     // benchmarking
        ([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28),  // ORCHID
        ([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28),  // ORCHIDv2
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),     // documentation
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),      // unique local
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),     // link-local
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),     // former site-local
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),      // multicast
    ];
    RANGES.iter().any(|&(net, prefix)| in_v6(ip, net, prefix))
}

/// Checks a delivery URL: `http` or `https`, a host, no userinfo, and unless
/// `allow_private`, neither a forbidden IP literal nor `localhost`. Names are checked
/// again, on the addresses they resolve to, by [`GuardedResolver`].
pub fn check_url(url: &str, allow_private: bool) -> Result<url::Url, TargetError> {
    let parsed = url::Url::parse(url).map_err(TargetError::Invalid)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(TargetError::Scheme(parsed.scheme().to_owned()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(TargetError::Credentials);
    }
    // The WHATWG parser has already turned decimal, hex and short forms such as
    // `http://2130706433/` or `http://0x7f.1/` into `Host::Ipv4`.
    let forbidden = match parsed.host() {
        None => return Err(TargetError::NoHost),
        Some(url::Host::Ipv4(ip)) => is_forbidden_v4(ip).then_some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_forbidden_v6(ip).then_some(IpAddr::V6(ip)),
        Some(url::Host::Domain(domain)) => {
            // RFC 6761 reserves these for the local machine; refusing them here gives a
            // clearer message than the resolver's.
            let domain = domain.trim_end_matches('.');
            if !allow_private && (domain == "localhost" || domain.ends_with(".localhost")) {
                return Err(TargetError::Localhost);
            }
            None
        }
    };
    match forbidden {
        Some(ip) if !allow_private => Err(TargetError::Forbidden(ip)),
        _ => Ok(parsed),
    }
}

/// A resolver that drops forbidden addresses (unless `allow_private`, for tests and
/// self-hosted set-ups that deliver inside their own network) and fails when none remain.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl GuardedResolver {
    /// The addresses of `host` that a delivery may connect to.
    pub async fn resolve_host(&self, host: &str) -> Result<Vec<SocketAddr>, ResolveError> {
        // Port 0: the connector substitutes the URL's port.
        let found = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|source| ResolveError::Lookup {
                host: host.to_owned(),
                source,
            })?
            .collect::<Vec<_>>();
        if found.is_empty() {
            return Err(ResolveError::NoAddress {
                host: host.to_owned(),
            });
        }
        let total = found.len();
        let allowed: Vec<SocketAddr> = found
            .into_iter()
            .filter(|addr| self.allow_private || !is_forbidden(addr.ip()))
            .collect();
        if allowed.is_empty() {
            return Err(ResolveError::OnlyForbidden {
                host: host.to_owned(),
            });
        }
        if allowed.len() < total {
            tracing::debug!(
                host,
                dropped = total - allowed.len(),
                "dropped forbidden addresses of a delivery target"
            );
        }
        Ok(allowed)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = *self;
        Box::pin(async move {
            let addrs = resolver.resolve_host(name.as_str()).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Settings of the delivery client; [`Default`] gives the documented constants above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Deliver to private and loopback addresses too. Off in production: only for tests
    /// and installations whose receivers are on their own network.
    pub allow_private_targets: bool,
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            allow_private_targets: false,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
        }
    }
}

/// The client deliveries go through: the guarded resolver, no redirects, no proxy, and
/// the configured timeouts. IP-literal URLs bypass any resolver, so pass every URL
/// through [`check_url`] before sending.
pub fn http_client(config: &ClientConfig) -> Result<reqwest::Client, TargetError> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver {
            allow_private: config.allow_private_targets,
        }))
        // A redirect is reported as the delivery's outcome; following it would connect to
        // a target that was never checked.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(config.timeout)
        .connect_timeout(config.connect_timeout)
        .user_agent(config.user_agent.as_str())
        .build()
        .map_err(TargetError::Client)
}

/// Reads at most `limit` bytes of `response`'s body (see [`DEFAULT_BODY_LIMIT`]) as lossy
/// UTF-8, and whether anything was left out. Stops reading at the limit, so a huge or
/// endless body costs no more memory than that; a body that broke off midway also counts
/// as truncated. A multi-byte character cut at the limit is dropped, not shown as `�`.
pub async fn read_body_limited(mut response: reqwest::Response, limit: usize) -> (String, bool) {
    let mut body: Vec<u8> = Vec::new();
    let mut truncated = false;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => {
                truncated = true;
                break;
            }
        }
    }
    if truncated {
        if let Err(error) = std::str::from_utf8(&body) {
            if error.error_len().is_none() {
                body.truncate(error.valid_up_to());
            }
        }
    }
    (String::from_utf8_lossy(&body).into_owned(), truncated)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
