//! Mail over SMTP (lettre, rustls): `smtps://` (TLS from the first byte), `smtp://` with
//! `starttls = true` (STARTTLS required, never silently plain), or plain `smtp://` to a
//! loopback host only (a local relay). One attempt, blocking; the caller runs it off the
//! async threads and retries.

use std::net::IpAddr;
use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use super::message::{subject, text_body};
use crate::config::Email;
use crate::ops::Notice;

/// How the connection is secured.
#[derive(Debug, PartialEq, Eq)]
enum Security {
    Plain,
    StartTls,
    Wrapper,
}

/// Where and how to connect, from `smtp` and `starttls`.
#[derive(Debug, PartialEq, Eq)]
struct Server {
    host: String,
    port: u16,
    security: Security,
}

fn server(email: &Email) -> Result<Server, String> {
    // Errors show the URL without a password or query (they reach logs and the catalog).
    let shown = crate::config::show::redact_url(&email.smtp);
    let url = reqwest::Url::parse(&email.smtp).map_err(|e| format!("smtp = {shown:?}: {e}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| format!("smtp = {:?}: no host", shown))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let (security, default_port) = match (url.scheme(), email.starttls) {
        ("smtps", false) => (Security::Wrapper, 465),
        ("smtps", true) => {
            return Err(format!(
                "smtp = {:?}: smtps:// is TLS already; drop starttls = true",
                shown
            ))
        }
        ("smtp", true) => (Security::StartTls, 587),
        ("smtp", false) if is_loopback(&host) => (Security::Plain, 25),
        ("smtp", false) => {
            return Err(format!(
                "smtp = {:?}: a plain connection to a host other than this machine would send \
                 mail (and a password) in clear; set starttls = true or use smtps://",
                shown
            ))
        }
        (s, _) => {
            return Err(format!(
                "smtp = {:?}: a {s}: URL; write smtp://host:port or smtps://host:port",
                shown
            ))
        }
    };
    Ok(Server {
        host,
        port: url.port().unwrap_or(default_port),
        security,
    })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Sends the notice as a plain-text mail to every recipient.
pub fn send(email: &Email, notice: &Notice, timeout: Duration) -> Result<(), String> {
    let server = server(email)?;
    let message = message(email, notice)?;
    let mut builder = SmtpTransport::builder_dangerous(&server.host)
        .port(server.port)
        .timeout(Some(timeout));
    if server.security != Security::Plain {
        let mut params = TlsParameters::builder(server.host.clone());
        if let Some(file) = &email.ca_file {
            let pem = std::fs::read(file)
                .map_err(|e| format!("reading ca-file {}: {e}", file.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("ca-file {}: {e}", file.display()))?;
            params = params.add_root_certificate(cert);
        }
        let params = params
            .build_rustls()
            .map_err(|e| format!("TLS for {}: {e}", server.host))?;
        builder = builder.tls(match server.security {
            Security::StartTls => Tls::Required(params),
            _ => Tls::Wrapper(params),
        });
    }
    if let Some(user) = &email.user {
        let password = match &email.password {
            Some(p) => p.read("SMTP password").map_err(|e| e.to_string())?,
            None => return Err("user is given but no password".into()),
        };
        let password = String::from_utf8(password.into_bytes())
            .map_err(|_| "the SMTP password is not UTF-8".to_string())?;
        builder = builder.credentials(Credentials::new(user.clone(), password));
    }
    builder
        .build()
        .send(&message)
        .map(|_| ())
        .map_err(|e| format!("smtp {}:{}: {e}", server.host, server.port))
}

fn message(email: &Email, notice: &Notice) -> Result<Message, String> {
    let from: Mailbox = email
        .from
        .parse()
        .map_err(|e| format!("from = {:?}: {e}", email.from))?;
    let mut m = Message::builder().from(from).subject(subject(notice));
    if email.to.is_empty() {
        return Err("no recipient (to = [])".into());
    }
    for to in &email.to {
        let to: Mailbox = to.parse().map_err(|e| format!("to {to:?}: {e}"))?;
        m = m.to(to);
    }
    m.header(ContentType::TEXT_PLAIN)
        .body(text_body(notice))
        .map_err(|e| format!("cannot build the mail: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(smtp: &str, starttls: bool) -> Email {
        Email {
            smtp: smtp.into(),
            starttls,
            user: None,
            password: None,
            from: "a@b.c".into(),
            to: vec!["d@e.f".into()],
            ca_file: None,
        }
    }

    #[test]
    fn plain_smtp_is_for_loopback_only() {
        let s = server(&email("smtp://127.0.0.1:2525", false)).unwrap();
        assert_eq!(s.security, Security::Plain);
        assert_eq!(s.port, 2525);
        assert!(server(&email("smtp://localhost", false)).is_ok());
        assert!(server(&email("smtp://[::1]:25", false)).is_ok());
        let e = server(&email("smtp://mail.example.com:587", false)).unwrap_err();
        assert!(e.contains("starttls = true"), "{e}");
    }

    #[test]
    fn ports_default_by_security() {
        let s = server(&email("smtp://mail.example.com", true)).unwrap();
        assert_eq!((s.security, s.port), (Security::StartTls, 587));
        let s = server(&email("smtps://mail.example.com", false)).unwrap();
        assert_eq!((s.security, s.port), (Security::Wrapper, 465));
        assert!(server(&email("smtps://mail.example.com", true)).is_err());
        assert!(server(&email("http://mail.example.com", true)).is_err());
    }
}
