//! Who is asking, and what they may do.
//!
//! A request names its caller by `Authorization: Bearer TOKEN` (an API token, see
//! [`tokens`]) or by the session cookie a browser got at login (see [`session`]). Roles,
//! weakest first: a **viewer** reads and browses; an **operator** also downloads, runs
//! backups and restore tests, and restores to new places; an **admin** also restores in
//! place, forgets and holds.

pub mod limits;
pub mod login;
pub mod session;
pub mod tokens;
pub mod users;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::state::AppState;

/// A role, weakest first (so `role >= Role::Operator` reads as it should).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        [Role::Viewer, Role::Operator, Role::Admin]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Token,
    /// A browser session (its CSRF token guards every state-changing request).
    Session {
        csrf: String,
    },
}

/// The caller of a request: a user (by session) or a token (by name), with its role and
/// address. Extracting it fails with 401 when the request names nobody.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub via: Via,
    pub address: SocketAddr,
}

impl Principal {
    /// `Ok` when the caller has at least `role`, else 403 naming what `action` needs.
    pub fn require(&self, role: Role, action: &str) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{action} needs the {} role; {} is {}",
                role.name(),
                self.name,
                self.role.name()
            )))
        }
    }
}

/// The client's address: the socket's peer, or — when that peer is one of `[server]
/// trusted-proxies` — the address its `X-Forwarded-For` names (the rightmost one that is not
/// itself a trusted proxy: entries to its left are whatever the client sent, and a client
/// can write anything there). This is the address audited and rate-limited.
pub fn peer(parts: &Parts, state: &AppState) -> SocketAddr {
    let socket = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let trusted = &state.config().server.trusted_proxies;
    let forwarded = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    SocketAddr::new(client_ip(socket.ip(), forwarded, trusted), socket.port())
}

/// [`peer`]'s rule, given the socket's address, the `X-Forwarded-For` headers in order and
/// the trusted proxies.
fn client_ip<'a>(
    socket: IpAddr,
    forwarded: impl Iterator<Item = &'a str>,
    trusted: &[IpAddr],
) -> IpAddr {
    // A dual-stack listener sees 127.0.0.1 as ::ffff:127.0.0.1.
    let socket = socket.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|t| t.to_canonical() == *ip);
    if !is_trusted(&socket) {
        return socket;
    }
    let hops: Vec<&str> = forwarded.flat_map(|h| h.split(',')).collect();
    let mut client = socket;
    for hop in hops.iter().rev() {
        match hop_address(hop.trim()) {
            Some(ip) if is_trusted(&ip) => client = ip,
            Some(ip) => return ip,
            // Not an address (`unknown`, an obfuscated name): nothing further left can be
            // trusted.
            None => return client,
        }
    }
    client
}

/// The address of one `X-Forwarded-For` hop: `203.0.113.7`, `203.0.113.7:5555`, `2001:db8::1`
/// or `[2001:db8::1]:5555`.
fn hop_address(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    hop.parse::<SocketAddr>()
        .ok()
        .map(|a| a.ip().to_canonical())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let address = peer(parts, state);
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let text = value.to_str().map_err(|_| ApiError::unauthorized())?;
            let Some(token) = text.strip_prefix("Bearer ") else {
                return Err(ApiError::unauthorized());
            };
            let Some((name, role)) = state.tokens().verify(token.trim()) else {
                return Err(ApiError::unauthorized());
            };
            return Ok(Principal {
                name,
                role,
                via: Via::Token,
                address,
            });
        }
        match state.sessions().principal(parts, state)? {
            Some(mut p) => {
                p.address = address;
                Ok(p)
            }
            None => Err(ApiError::unauthorized()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_forwarded_address_counts_only_from_a_trusted_proxy() {
        let proxy = [ip("127.0.0.1")];
        // No trusted proxy: the socket, whatever the header says.
        let got = client_ip(ip("127.0.0.1"), ["203.0.113.7"].into_iter(), &[]);
        assert_eq!(got, ip("127.0.0.1"));
        // A stranger's header is ignored.
        let got = client_ip(ip("198.51.100.1"), ["203.0.113.7"].into_iter(), &proxy);
        assert_eq!(got, ip("198.51.100.1"));
        // Behind the proxy: the rightmost address that is not a proxy; what the client
        // wrote to its left is not believed.
        let got = client_ip(
            ip("127.0.0.1"),
            ["10.9.9.9, 203.0.113.7", "127.0.0.1"].into_iter(),
            &proxy,
        );
        assert_eq!(got, ip("203.0.113.7"));
        // Garbage stops the walk at the last trusted hop.
        let got = client_ip(
            ip("127.0.0.1"),
            ["203.0.113.7, unknown"].into_iter(),
            &proxy,
        );
        assert_eq!(got, ip("127.0.0.1"));
        // Ports, brackets and a dual-stack socket.
        let got = client_ip(
            ip("::ffff:127.0.0.1"),
            ["203.0.113.7:5555"].into_iter(),
            &proxy,
        );
        assert_eq!(got, ip("203.0.113.7"));
        let got = client_ip(ip("127.0.0.1"), ["[2001:db8::1]:443"].into_iter(), &proxy);
        assert_eq!(got, ip("2001:db8::1"));
        // No header: the proxy itself.
        let got = client_ip(ip("127.0.0.1"), std::iter::empty(), &proxy);
        assert_eq!(got, ip("127.0.0.1"));
    }
}
