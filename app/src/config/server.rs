//! The `[server]` table: how `strata serve` listens, where its restores may write, who may
//! log in, and for how long a session lasts.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8080"
//! restore-roots = ["/srv", "/var/restore"]
//! session-ttl = "12h"
//! trusted-proxies = ["127.0.0.1"]   # a reverse proxy here: X-Forwarded-For names the client
//! [server.users.alice]
//! password-hash = "$argon2id$v=19$m=19456,t=2,p=1$..."   # strata serve user add alice
//! role = "admin"                                          # viewer | operator | admin
//! ```

use std::collections::BTreeMap;

use super::context::Cx;
use super::model::{ServerConfig, ServerUser};
use super::reader::Val;

/// The roles a user or token may have, weakest first.
pub const ROLES: [&str; 3] = ["viewer", "operator", "admin"];

pub(crate) fn server(cx: &mut Cx, v: &Val) -> Option<ServerConfig> {
    let mut t = v.table(&mut cx.sink)?;
    let mut out = ServerConfig::default();
    if let Some(v) = t.get("listen") {
        if let Some(s) = v.text(&mut cx.sink) {
            match s.v.parse::<std::net::SocketAddr>() {
                Ok(a) => out.listen = Some(a),
                Err(_) => cx.sink.error(
                    &s.span,
                    &v.key,
                    "expected an address and port (127.0.0.1:8080, [::1]:8080)",
                ),
            }
        }
    }
    if let Some(v) = t.get("restore-roots") {
        if let Some(items) = v.items(&mut cx.sink) {
            for item in items {
                if let Some(p) = cx.path(&item) {
                    out.restore_roots.push(p);
                }
            }
        }
    }
    if let Some(v) = t.get("session-ttl") {
        if let Some(d) = cx.duration(&v) {
            out.session_ttl = d;
        }
    }
    if let Some(v) = t.get("trusted-proxies") {
        if let Some(items) = v.items(&mut cx.sink) {
            for item in items {
                if let Some(s) = item.text(&mut cx.sink) {
                    match s.v.parse::<std::net::IpAddr>() {
                        Ok(a) => out.trusted_proxies.push(a),
                        Err(_) => cx.sink.error(
                            &s.span,
                            &item.key,
                            "expected an IP address (127.0.0.1, ::1): the address a reverse \
                             proxy connects from",
                        ),
                    }
                }
            }
        }
    }
    if let Some(v) = t.get("users") {
        if let Some(mut users) = v.table(&mut cx.sink) {
            let mut found = BTreeMap::new();
            for (name, v) in users.rest() {
                cx.name(&name, "user");
                if let Some(u) = user(cx, &v) {
                    found.insert(name.v, u);
                }
            }
            users.finish(&mut cx.sink);
            out.users = found;
        }
    }
    t.finish(&mut cx.sink);
    Some(out)
}

fn user(cx: &mut Cx, v: &Val) -> Option<ServerUser> {
    let mut t = v.table(&mut cx.sink)?;
    let (span, key) = (t.span.clone(), t.key.clone());
    let (hash, role) = (t.get("password-hash"), t.get("role"));
    if hash.is_none() || role.is_none() {
        cx.sink
            .error(&span, &key, "a user needs password-hash and role");
    }
    let hash = hash.and_then(|v| {
        let s = v.text(&mut cx.sink)?;
        if !s.v.starts_with("$argon2id$") {
            cx.sink.error(
                &s.span,
                &v.key,
                "expected an argon2id hash ($argon2id$...): strata serve user add NAME writes one",
            );
            return None;
        }
        Some(s.v)
    });
    let role = role.and_then(|v| {
        let s = v.text(&mut cx.sink)?;
        if !ROLES.contains(&s.v.as_str()) {
            cx.sink
                .error(&s.span, &v.key, "expected viewer, operator or admin");
            return None;
        }
        Some(s.v)
    });
    t.finish(&mut cx.sink);
    Some(ServerUser {
        password_hash: hash?,
        role: role?,
    })
}
