//! Test helpers: the workspace's test kit (a real mosquitto with the shipped ACL and an
//! optional TLS listener, a plain MQTT client, a TCP proxy that can be frozen), in the names
//! this crate's tests use.

#![allow(dead_code)]

use std::time::{Duration, Instant};

pub use ioc_testkit::free_port;
pub use ioc_testkit::mosquitto::{Mosquitto as Broker, TlsFiles};
pub use ioc_testkit::mqtt::raw;
#[allow(unused_imports)]
pub use ioc_testkit::proxy::TcpProxy as Proxy;

/// A broker with a TLS listener (`tls_port`) as well as the plain one.
pub fn broker_tls(users: &[(&str, &str, bool)], tls: &TlsFiles) -> Broker {
    Broker::options()
        .users(ioc_testkit::mosquitto::users(users))
        .tls(tls)
        .start()
        .expect("mosquitto")
}

/// Waits up to `secs` for `cond`.
pub async fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
