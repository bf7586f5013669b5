//! What went wrong with a broker connection, said the same way by the agent's publisher and
//! the collector's ingest: one classifier, one stable `error_code` per kind, a message that
//! says what to check.

use std::path::Path;

use rumqttc::{ConnectReturnCode, ConnectionError};

/// What kind of connection failure it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The broker refused the user name / password (CONNACK bad user name or password, or
    /// not authorised).
    AuthRefused,
    /// The broker refused the connection for another reason (CONNACK code).
    Rejected,
    /// TLS handshake or certificate problem (unknown CA, name mismatch, client certificate).
    Tls,
    /// TCP connection refused: nothing listens on that port.
    ConnectionRefused,
    /// No route, DNS failure, timeout.
    Unreachable,
    /// An established connection broke.
    ConnectionLost,
}

impl FailureKind {
    /// The stable `error_code` in logs and in the collector's health API.
    pub fn code(self) -> &'static str {
        match self {
            FailureKind::AuthRefused => "mqtt_auth_refused",
            FailureKind::Rejected => "mqtt_connect_rejected",
            FailureKind::Tls => "mqtt_tls_error",
            FailureKind::ConnectionRefused => "mqtt_connection_refused",
            FailureKind::Unreachable => "mqtt_unreachable",
            FailureKind::ConnectionLost => "mqtt_connection_lost",
        }
    }

    /// A failure that retrying will not fix: someone must change a setting (credentials,
    /// certificates, the broker's ACL). Logged as an error rather than a warning.
    pub fn needs_a_person(self) -> bool {
        matches!(
            self,
            FailureKind::AuthRefused | FailureKind::Rejected | FailureKind::Tls
        )
    }
}

/// The connection a failure is about, for the message.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Broker host as configured.
    pub host: &'a str,
    /// Broker port.
    pub port: u16,
    /// User name, if any.
    pub user: Option<&'a str>,
    /// `mqtt.tls.ca_file`, when TLS is on.
    pub ca_file: Option<&'a Path>,
    /// `mqtt.connect_timeout_sec`.
    pub connect_timeout_sec: u64,
}

/// Says which kind `e` is and what to check, for people. `was_connected`: the connection
/// had been up (a failure then is a lost connection, not an unreachable broker).
pub fn classify(e: &ConnectionError, was_connected: bool, t: &Target<'_>) -> (FailureKind, String) {
    let broker = format!("{}:{}", t.host, t.port);
    let tls = |err: &dyn std::fmt::Display| {
        let ca = t
            .ca_file
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        format!(
            "tls error with mqtt broker {broker}: {err}; check mqtt.tls.ca_file {ca:?} (does it \
             sign the broker's certificate, for host {:?}?) and the client certificate",
            t.host
        )
    };
    match e {
        ConnectionError::ConnectionRefused(
            code @ (ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized),
        ) => (
            FailureKind::AuthRefused,
            format!(
                "mqtt broker {broker}: authentication refused for user {:?} ({code:?}); check \
                 mqtt.username and mqtt.password (and the broker's password file)",
                t.user.unwrap_or("")
            ),
        ),
        ConnectionError::ConnectionRefused(code) => (
            FailureKind::Rejected,
            format!("mqtt broker {broker} refused the connection ({code:?}): check mqtt.client_id"),
        ),
        ConnectionError::Tls(err) => (FailureKind::Tls, tls(err)),
        ConnectionError::Io(io) if is_tls(io) => (FailureKind::Tls, tls(io)),
        ConnectionError::Io(io) if !was_connected => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => (
                FailureKind::ConnectionRefused,
                format!(
                    "mqtt broker {broker} refused the TCP connection (is it running, is \
                     mqtt.port right?): {io}"
                ),
            ),
            _ => (
                FailureKind::Unreachable,
                format!("cannot reach mqtt broker {broker}: {io}; check mqtt.host and the network"),
            ),
        },
        ConnectionError::NetworkTimeout if !was_connected => (
            FailureKind::Unreachable,
            format!(
                "cannot reach mqtt broker {broker}: no connection within {} s; check mqtt.host \
                 and the network",
                t.connect_timeout_sec
            ),
        ),
        other => (
            FailureKind::ConnectionLost,
            format!("connection to mqtt broker {broker} lost: {other}; reconnecting"),
        ),
    }
}

/// Whether an I/O error is rustls refusing the handshake.
fn is_tls(e: &std::io::Error) -> bool {
    let mut inner: Option<&(dyn std::error::Error + 'static)> =
        e.get_ref().map(|i| i as &(dyn std::error::Error + 'static));
    while let Some(i) = inner {
        if i.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        inner = i.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Target<'static> = Target {
        host: "broker.example",
        port: 8883,
        user: Some("site-1"),
        ca_file: None,
        connect_timeout_sec: 10,
    };

    #[test]
    fn each_failure_has_its_kind_code_and_hint() {
        let (k, m) = classify(
            &ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword),
            false,
            &T,
        );
        assert_eq!(
            (k, k.code()),
            (FailureKind::AuthRefused, "mqtt_auth_refused")
        );
        assert!(m.contains("site-1") && m.contains("mqtt.password"), "{m}");
        assert!(k.needs_a_person());

        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let (k, m) = classify(&ConnectionError::Io(refused), false, &T);
        assert_eq!(k, FailureKind::ConnectionRefused);
        assert!(m.contains("broker.example:8883"), "{m}");
        assert!(!k.needs_a_person());

        // The same error on a connection that was up is a lost connection.
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let (k, _) = classify(&ConnectionError::Io(reset), true, &T);
        assert_eq!(k, FailureKind::ConnectionLost);

        let (k, m) = classify(&ConnectionError::NetworkTimeout, false, &T);
        assert_eq!(k, FailureKind::Unreachable);
        assert!(m.contains("10 s"), "{m}");

        let bad_cert = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let (k, m) = classify(&ConnectionError::Io(bad_cert), false, &T);
        assert_eq!(k, FailureKind::Tls);
        assert!(m.contains("mqtt.tls.ca_file"), "{m}");
    }
}
