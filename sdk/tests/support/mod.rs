//! Test support: a real loopback HTTP/1.1 server that records what the SDK sends, and a lock
//! that serializes the tests of one binary (the SDK client is global).
//!
//! The server is a plain `std::net::TcpListener` with a thread per connection and keep-alive,
//! so the SDK's real reqwest transport talks to it exactly as to a collector. Every request is
//! recorded with its arrival time, headers and body, gunzipped and parsed with
//! `watchpost_protocol::Envelope`. Answers are scripted (`200` by default; `429` with
//! `Retry-After`, `503`, or no answer at all until released).
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a part of the support"
)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use watchpost_protocol::{CheckIn, ContentEncoding, Envelope, Event, decode_body};

/// The public key in every recorder DSN.
pub const KEY: &str = "0123456789abcdef0123456789abcdef";

/// Serializes the tests of one binary; also resets the SDK when dropped.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How the server answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status with these extra headers.
    Status(u16, Vec<(&'static str, String)>),
    /// No answer until [`Recorder::release`] (then `200`).
    Stall,
}

impl Reply {
    /// `200 OK`.
    pub fn ok() -> Reply {
        Reply::Status(200, Vec::new())
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// When its body had arrived.
    pub at: Instant,
    /// `POST /api/42/envelope/`.
    pub method: String,
    /// The path.
    pub path: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body as sent (still compressed).
    pub raw_body: Vec<u8>,
    /// The body after `Content-Encoding` was undone.
    pub body: Vec<u8>,
    /// The parsed envelope.
    pub envelope: Envelope,
    /// The status it was answered with.
    pub status: u16,
}

impl Request {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The check-ins it carried.
    pub fn check_ins(&self) -> Vec<CheckIn> {
        let items = self.envelope.items.iter().filter(|i| i.ty() == "check_in");
        items.map(|i| i.json().expect("check_in parses")).collect()
    }

    /// The events it carried.
    pub fn events(&self) -> Vec<Event> {
        let items = self.envelope.items.iter().filter(|i| i.ty() == "event");
        items.map(|i| i.json().expect("event parses")).collect()
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Request>,
    script: VecDeque<Reply>,
    released: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The recording server. It lives until the test process ends.
pub struct Recorder {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Recorder {
    /// Starts a server on an ephemeral loopback port.
    pub fn start() -> Recorder {
        Recorder::start_at("127.0.0.1:0".parse().unwrap())
    }

    /// Starts a server on `addr` (a port that was free: the server was "down" until now).
    pub fn start_at(addr: SocketAddr) -> Recorder {
        let listener = TcpListener::bind(addr).expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let accept = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&accept);
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        Recorder { addr, shared }
    }

    /// A DSN pointing at this server, project 42.
    pub fn dsn(&self) -> String {
        format!("http://{KEY}@{}/42", self.addr)
    }

    /// Answers the next requests with `replies`, in order; `200` after them.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.lock().script.extend(replies);
    }

    /// Lets stalled requests (and all later ones) be answered.
    pub fn release(&self) {
        self.shared.lock().released = true;
        self.shared.changed.notify_all();
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    /// Waits until `done` holds for the requests so far, at most `timeout`; returns them either
    /// way.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&[Request]) -> bool) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while !done(&state.requests) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.requests.clone()
    }

    /// Waits until at least `n` check-ins were accepted (answered 2xx); returns those accepted.
    pub fn wait_check_ins(&self, n: usize) -> Vec<CheckIn> {
        let requests = self.wait_for(Duration::from_secs(10), |r| check_ins(r).len() >= n);
        check_ins(&requests)
    }

    /// Waits until at least `n` events were accepted; returns those accepted.
    pub fn wait_events(&self, n: usize) -> Vec<Event> {
        let requests = self.wait_for(Duration::from_secs(10), |r| events(r).len() >= n);
        events(&requests)
    }
}

/// The check-ins of the requests answered 2xx, in arrival order.
pub fn check_ins(requests: &[Request]) -> Vec<CheckIn> {
    accepted(requests).flat_map(Request::check_ins).collect()
}

/// The events of the requests answered 2xx, in arrival order.
pub fn events(requests: &[Request]) -> Vec<Event> {
    accepted(requests).flat_map(Request::events).collect()
}

fn accepted(requests: &[Request]) -> impl Iterator<Item = &Request> {
    requests.iter().filter(|r| (200..300).contains(&r.status))
}

fn serve(stream: TcpStream, shared: &Shared) {
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let Some(mut request) = read_request(&mut reader) else {
            return;
        };
        let reply = shared.lock().script.pop_front().unwrap_or_else(Reply::ok);
        let (status, headers) = match reply {
            Reply::Status(status, headers) => (status, headers),
            Reply::Stall => {
                let mut state = shared.lock();
                while !state.released {
                    state = shared
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                (200, Vec::new())
            }
        };
        request.status = status;
        {
            let mut state = shared.lock();
            state.requests.push(request);
        }
        shared.changed.notify_all();
        let mut head = format!("HTTP/1.1 {status} Scripted\r\nContent-Length: 0\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        if writer.write_all(head.as_bytes()).is_err() {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|&n| n > 0)?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok().filter(|&n| n > 0)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut raw_body = vec![0; length];
    reader.read_exact(&mut raw_body).ok()?;
    let encoding = ContentEncoding::from_header(header("content-encoding").as_deref())
        .expect("a content encoding the collector accepts");
    let body = decode_body(&raw_body, encoding, 10 << 20).expect("body decodes");
    let envelope = Envelope::parse(&body).expect("body is an envelope");
    Some(Request {
        at: Instant::now(),
        method,
        path,
        headers,
        raw_body,
        body,
        envelope,
        status: 0,
    })
}
