//! A TCP proxy on a loopback port that a test can cut: every open connection
//! is dropped at once, as when a site's uplink goes down, and new ones are
//! refused while it is blocked.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The proxy; stops accepting when dropped.
pub struct TcpProxy {
    /// The port clients connect to.
    pub port: u16,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    blocked: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// Connections cut so far.
    pub cuts: Arc<AtomicU64>,
}

impl TcpProxy {
    /// Forwards a free loopback port to `127.0.0.1:target`.
    pub fn start(target: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let blocked = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, b, s) = (conns.clone(), blocked.clone(), stop.clone());
        std::thread::Builder::new()
            .name("tcp-proxy".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            if b.load(Ordering::Relaxed) {
                                drop(client);
                                continue;
                            }
                            let _ = client.set_nonblocking(false);
                            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                                continue;
                            };
                            for (from, to) in [(&client, &server), (&server, &client)] {
                                if let (Ok(mut r), Ok(mut w)) = (from.try_clone(), to.try_clone()) {
                                    std::thread::spawn(move || {
                                        let mut buf = [0u8; 16 * 1024];
                                        loop {
                                            match r.read(&mut buf) {
                                                Ok(0) | Err(_) => break,
                                                Ok(n) => {
                                                    if w.write_all(&buf[..n]).is_err() {
                                                        break;
                                                    }
                                                }
                                            }
                                        }
                                        let _ = r.shutdown(Shutdown::Both);
                                        let _ = w.shutdown(Shutdown::Both);
                                    });
                                }
                            }
                            let mut g = c.lock().unwrap();
                            g.retain(|s: &TcpStream| s.peer_addr().is_ok());
                            g.push(client);
                            g.push(server);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })?;
        Ok(Self {
            port,
            conns,
            blocked,
            stop,
            cuts: Arc::default(),
        })
    }

    /// Drops every open connection now.
    pub fn cut(&self) {
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.cuts.fetch_add(1, Ordering::Relaxed);
    }

    /// While blocked, new connections are closed at once.
    pub fn set_blocked(&self, blocked: bool) {
        self.blocked.store(blocked, Ordering::Relaxed);
        if blocked {
            self.cut();
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
    }
}
