//! A TCP proxy on a loopback port that a test can break in the two ways a site's uplink
//! breaks: [`TcpProxy::cut`] drops every open connection at once (the peer sees a reset or
//! an end), and [`TcpProxy::freeze`] lets nothing through and closes nothing (the link died
//! without a FIN or RST, so only keep-alives notice). New connections are refused while it
//! is blocked or frozen.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The proxy; stops and drops its connections when dropped.
pub struct TcpProxy {
    /// The port clients connect to.
    pub port: u16,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    flags: Arc<Flags>,
    /// Connections cut so far.
    pub cuts: Arc<AtomicU64>,
}

#[derive(Default)]
struct Flags {
    blocked: AtomicBool,
    frozen: AtomicBool,
    stop: AtomicBool,
}

impl TcpProxy {
    /// Forwards a free loopback port to `127.0.0.1:target`.
    pub fn start(target: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let flags = Arc::new(Flags::default());
        let (c, f) = (conns.clone(), flags.clone());
        std::thread::Builder::new()
            .name("tcp-proxy".into())
            .spawn(move || {
                while !f.stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            if f.blocked.load(Ordering::Relaxed) || f.frozen.load(Ordering::Relaxed)
                            {
                                drop(client);
                                continue;
                            }
                            let _ = client.set_nonblocking(false);
                            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                                continue;
                            };
                            for (from, to) in [(&client, &server), (&server, &client)] {
                                if let (Ok(r), Ok(w)) = (from.try_clone(), to.try_clone()) {
                                    let f = f.clone();
                                    std::thread::spawn(move || pump(r, w, &f));
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
            flags,
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

    /// While blocked, new connections are closed at once; blocking cuts the open ones.
    pub fn set_blocked(&self, blocked: bool) {
        self.flags.blocked.store(blocked, Ordering::Relaxed);
        if blocked {
            self.cut();
        }
    }

    /// From now on nothing goes through, in either direction, and nothing is closed (bytes
    /// read are dropped); new connections are closed at once.
    pub fn freeze(&self) {
        self.flags.frozen.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.flags.stop.store(true, Ordering::Relaxed);
        self.cut();
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, flags: &Flags) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) if flags.frozen.load(Ordering::SeqCst) => {}
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    // Frozen, one side ending must not tell the other: hold on until the proxy stops.
    while flags.frozen.load(Ordering::SeqCst) && !flags.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
