//! A plain MQTT client for tests: it stands in for the other side (a collector listening to
//! an agent, an agent publishing to a collector) and hands over what it receives.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

/// A connected client: every publish it receives comes out of `rx` as (topic, payload).
pub struct Raw {
    /// The client, to publish or subscribe more.
    pub client: AsyncClient,
    /// What it received.
    pub rx: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    /// PUBACKs it received (its own QoS 1 publishes the broker took).
    pub pubacks: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects to `127.0.0.1:port` as `user` (client id `id`, clean session), subscribes to
/// `filters` and returns once the broker granted them.
pub async fn raw(port: u16, id: &str, user: &str, pw: &str, filters: &[&str]) -> Raw {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_credentials(user, pw);
    o.set_max_packet_size(8 << 20, 8 << 20);
    let (client, mut el) = AsyncClient::new(o, 100);
    let (tx, rx) = mpsc::unbounded_channel();
    let (sub_tx, mut sub_rx) = mpsc::unbounded_channel();
    let pubacks = Arc::new(AtomicU64::new(0));
    let pa = pubacks.clone();
    let task = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = sub_tx.send(());
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    pa.fetch_add(1, Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    for f in filters {
        client.subscribe(*f, QoS::AtLeastOnce).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), sub_rx.recv())
            .await
            .expect("suback")
            .unwrap();
    }
    Raw {
        client,
        rx,
        pubacks,
        task,
    }
}
