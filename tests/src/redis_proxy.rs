//! A TCP proxy in front of a real `redis-server` that injects faults on write commands only.
//!
//! Cache-coherence bugs live in the gap between "the write was sent" and "the write landed":
//! a slow link, a primary demoted under the client's feet, a connection that drops with a
//! write queued, a failover that sends new connections elsewhere. A real `redis-server` can't
//! be made to do those on cue, so [`RedisProxy`] sits between the redis-rs client and the
//! server and understands RESP just enough to tell a write from a read, one command at a time,
//! and to keep replies in command order while it answers some commands itself.
//!
//! Per client connection there is exactly one upstream connection, opened at accept time to
//! the upstream port of that moment and never reopened: a command held by the proxy must not
//! cross a server restart, as a real command in flight can't. Either side closing closes both.
//!
//! RESP2 request/reply traffic only (what redis-rs' multiplexed connection and
//! `ConnectionManager` speak by default): pub/sub, whose replies don't pair one-to-one with
//! commands, isn't supported.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinHandle};

/// The commands the proxy treats as writes (compared case-insensitively with the first element
/// of the command array). Scripts and functions count as writes because the app's writes go
/// through them; everything else is a read.
const WRITE_COMMANDS: &[&str] = &[
    "SET",
    "SETEX",
    "PSETEX",
    "SETNX",
    "GETSET",
    "GETDEL",
    "DEL",
    "UNLINK",
    "EXPIRE",
    "PEXPIRE",
    "EXPIREAT",
    "PEXPIREAT",
    "PERSIST",
    "INCR",
    "INCRBY",
    "DECR",
    "DECRBY",
    "APPEND",
    "MSET",
    "HSET",
    "HDEL",
    "EVAL",
    "EVALSHA",
    "FCALL",
    "FLUSHALL",
    "FLUSHDB",
];

/// What a demoted primary (now a replica) answers to a write, byte for byte, so redis-rs maps
/// it to `ServerErrorKind::ReadOnly` as it would a real one.
const READONLY_REPLY: &[u8] = b"-READONLY You can't write against a read only replica.\r\n";

/// How much to read from a socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Sanity bounds on what a peer may announce, so a corrupt stream ends the connection instead
/// of making the proxy wait forever for data that will never come.
const MAX_ARGS: i64 = 1024 * 1024;
const MAX_BULK: i64 = 512 * 1024 * 1024;
const MAX_AGGREGATE: i64 = 1 << 32;
const MAX_DEPTH: usize = 1024;
const MAX_HEADER: usize = 64;

/// The fault applied to write commands; reads always pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteFault {
    /// Writes pass as reads do.
    None,
    /// Every write command is held this long before it is forwarded. Commands behind it on the
    /// same connection wait behind it (one TCP stream keeps order), as on a slow link.
    Delay(Duration),
    /// Every write command is held until [`RedisProxy::release_held`], however long that is, then
    /// forwarded: a write that lands exactly when the test says, after whatever the test did
    /// meanwhile. Commands behind it on the same connection wait behind it.
    Hold,
    /// Write commands are answered `-READONLY You can't write against a read only replica.` by the
    /// proxy itself and never reach the server, as a demoted primary answers.
    Refuse,
    /// A write command closes the client's connection (and its upstream connection) without being
    /// forwarded: the command was queued when the connection dropped.
    Drop,
}

/// A RESP-aware TCP proxy on a free loopback port, in front of a `redis-server`; see the module
/// documentation. Dropping it stops accepting and closes every connection.
pub struct RedisProxy {
    /// The port the proxy listens on (127.0.0.1).
    pub port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

/// The state every connection task reads, so that faults and failovers set by the test apply
/// to live connections at once.
struct Shared {
    /// Where connections accepted from now on go.
    upstream: AtomicU16,
    fault: Mutex<WriteFault>,
    /// Leases pass as reads do, whatever the fault.
    spare_leases: std::sync::atomic::AtomicBool,
    /// While true every command, read or write, is held: the link stalls mid-connection.
    stalled: watch::Sender<bool>,
    /// Bumped by [`RedisProxy::release_held`]: writes held by [`WriteFault::Hold`] before the
    /// bump go on.
    release: watch::Sender<u64>,
    writes_seen: AtomicU64,
    /// Writes being held right now (a `Delay` or a `Hold`).
    held: AtomicU64,
    /// `READONLY` replies the proxy made up and wrote to the client's socket.
    refusals_sent: AtomicU64,
    /// Connections closed by the `Drop` fault.
    drops: AtomicU64,
    next_id: AtomicU64,
    /// Live client connections, by id, with the handle that tears the whole pair down.
    live: Mutex<HashMap<u64, AbortHandle>>,
}

impl Shared {
    fn live(&self) -> MutexGuard<'_, HashMap<u64, AbortHandle>> {
        // A panicking test thread must not turn every later call into a second panic.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fault(&self) -> WriteFault {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RedisProxy {
    /// Listens on 127.0.0.1:<free port> and forwards every connection to `upstream_port`.
    pub async fn start(upstream_port: u16) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("the proxy binds a loopback port");
        let port = listener.local_addr().expect("the proxy's address").port();
        let shared = Arc::new(Shared {
            upstream: AtomicU16::new(upstream_port),
            fault: Mutex::new(WriteFault::None),
            spare_leases: std::sync::atomic::AtomicBool::new(false),
            stalled: watch::channel(false).0,
            release: watch::channel(0).0,
            writes_seen: AtomicU64::new(0),
            held: AtomicU64::new(0),
            refusals_sent: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            live: Mutex::new(HashMap::new()),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        RedisProxy {
            port,
            shared,
            accept,
        }
    }

    /// `redis://127.0.0.1:<port>`, for `redis::Client::open`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Lets a miss's leases pass as reads do (`true`), whatever the fault, for a test about
    /// the writes that follow them (a write-back, a change); faulted as any write by default.
    pub fn spare_leases(&self, spare: bool) {
        self.shared.spare_leases.store(spare, Ordering::SeqCst);
    }

    /// Sets the fault for every command read from now on, on every connection, live ones
    /// included. A write already being held by a `Delay` keeps its delay.
    pub fn set_write_fault(&self, fault: WriteFault) {
        *self
            .shared
            .fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = fault;
    }

    /// Stalls the link (`true`): connections stay open and are read, but no command, read or
    /// write, goes on until it is released (`false`), as with a Redis that stalls
    /// mid-connection (what the per-command timeout exists for; a silent server only tests the
    /// connect timeout, since the handshake never completes).
    pub fn stall(&self, stalled: bool) {
        self.shared.stalled.send_replace(stalled);
    }

    /// Where NEW client connections go (a failover); live ones keep the upstream they have.
    pub fn set_upstream(&self, port: u16) {
        self.shared.upstream.store(port, Ordering::SeqCst);
    }

    /// Closes every live client connection and its upstream connection, both directions, now:
    /// their tasks are aborted, which drops (closes) all four socket halves. Commands held or
    /// in flight are lost, as when a network link dies.
    pub fn kill_connections(&self) {
        // Abort outside the lock: a task being torn down unregisters itself under the same lock.
        let handles: Vec<AbortHandle> = self
            .shared
            .live()
            .drain()
            .map(|(_, handle)| handle)
            .collect();
        for handle in handles {
            handle.abort();
        }
    }

    /// Live client connections, for tests that wait for a client to reconnect.
    pub fn connections(&self) -> usize {
        self.shared.live().len()
    }

    /// Write commands received from clients, whether forwarded, held, refused or dropped.
    pub fn writes_seen(&self) -> u64 {
        self.shared.writes_seen.load(Ordering::SeqCst)
    }

    /// Lets every write held by [`WriteFault::Hold`] go on to the server, in order. Set another
    /// fault first, or the writes that come next are held again.
    pub fn release_held(&self) {
        self.shared
            .release
            .send_modify(|generation| *generation += 1);
    }

    /// Writes held right now (by a `Delay` or a `Hold`), not yet forwarded.
    pub fn held(&self) -> u64 {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// `READONLY` replies made up by the proxy ([`WriteFault::Refuse`]) that were written to
    /// the client's socket: the client got a reply, not a dropped connection.
    pub fn refusals_sent(&self) -> u64 {
        self.shared.refusals_sent.load(Ordering::SeqCst)
    }

    /// Connections the `Drop` fault closed.
    pub fn drops(&self) -> u64 {
        self.shared.drops.load(Ordering::SeqCst)
    }
}

/// Counts a write as held while it lives, however its hold ends (forwarded, or the connection
/// torn down).
struct Held<'a>(&'a Shared);

impl<'a> Held<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.held.fetch_add(1, Ordering::SeqCst);
        Held(shared)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for RedisProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.kill_connections();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(_) => {
                // Accept errors are about one connection (or a momentary fd shortage): keep
                // listening, without spinning.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        // The upstream is fixed here, at accept time: a later failover doesn't move this one.
        let upstream = shared.upstream.load(Ordering::SeqCst);
        let task_shared = shared.clone();
        // Held across spawn and insert, so a connection that ends at once unregisters after it
        // was registered, never before (which would leave a dead entry counted as live).
        let mut live = shared.live();
        let task = tokio::spawn(async move {
            // Created inside the task: a future dropped before its first poll holds no lock.
            let _registration = Registration {
                id,
                shared: task_shared.clone(),
            };
            serve(client, upstream, &task_shared).await;
        });
        live.insert(id, task.abort_handle());
    }
}

/// Unregisters a connection when its task ends, however it ends (finished or aborted).
struct Registration {
    id: u64,
    shared: Arc<Shared>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.live().remove(&self.id);
    }
}

/// One client connection and its upstream connection, until either side closes, errors, the
/// `Drop` fault fires, or the task is aborted. Returning drops all four halves, so both peers see
/// the connection close.
async fn serve(client: TcpStream, upstream_port: u16, shared: &Shared) {
    let Ok(upstream) = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream_port)).await else {
        return; // the server is down: the client sees its connection close
    };
    // Small commands and replies must not sit in Nagle's buffer: the tests measure latency.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let (expected_tx, expected_rx) = mpsc::unbounded_channel();
    tokio::select! {
        () = forward_commands(client_read, upstream_write, expected_tx, shared) => {}
        () = forward_replies(upstream_read, client_write, expected_rx, shared) => {}
    }
}

/// What the client gets next, in command order.
enum Expected {
    /// The next complete reply from the upstream server.
    Upstream,
    /// A reply made up by the proxy for a command that never reached the server.
    Injected(&'static [u8]),
}

/// Reads whole commands from the client and forwards, holds, answers or drops each. Returns
/// when the connection must close.
async fn forward_commands(
    mut client: OwnedReadHalf,
    mut upstream: OwnedWriteHalf,
    expected: mpsc::UnboundedSender<Expected>,
    shared: &Shared,
) {
    let mut buf = Vec::with_capacity(READ_CHUNK);
    loop {
        let command = match parse_command(&buf) {
            Ok(Some(command)) => command,
            Ok(None) => {
                if read_more(&mut client, &mut buf).await.is_none() {
                    // Client closed: like redis-server, drop it with whatever is pending.
                    return;
                }
                continue;
            }
            Err(ProtocolError) => return,
        };
        if *shared.stalled.borrow() && !hold_while_stalled(&mut client, &mut buf, shared).await {
            return; // the client left while the link stalled
        }
        if command.is_write && !(command.is_lease && shared.spare_leases.load(Ordering::SeqCst)) {
            shared.writes_seen.fetch_add(1, Ordering::SeqCst);
            // Read before the fault: a release that comes after a write was found held is never
            // missed (the test sets another fault before it releases).
            let generation = *shared.release.borrow();
            match shared.fault() {
                WriteFault::None => {}
                WriteFault::Delay(delay) => {
                    let _held = Held::new(shared);
                    if !hold(&mut client, &mut buf, delay).await {
                        return; // the client left while the command was held: it is discarded
                    }
                }
                WriteFault::Hold => {
                    let _held = Held::new(shared);
                    if !hold_until_released(&mut client, &mut buf, shared, generation).await {
                        return; // the client left while the command was held: it is discarded
                    }
                }
                WriteFault::Refuse => {
                    buf.drain(..command.len);
                    // Queued behind the replies still due from upstream, so it reaches the
                    // client in command order.
                    if expected.send(Expected::Injected(READONLY_REPLY)).is_err() {
                        return;
                    }
                    continue;
                }
                WriteFault::Drop => {
                    shared.drops.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
        }
        if upstream.write_all(&buf[..command.len]).await.is_err() {
            return;
        }
        buf.drain(..command.len);
        if command.expects_reply && expected.send(Expected::Upstream).is_err() {
            return;
        }
    }
}

/// Holds a write for `delay` while still reading (and buffering) what the client sends behind
/// it, so that a client that leaves is noticed and the held write discarded. `false` if the
/// client left. The upstream side dying is noticed by [`forward_replies`], which ends the
/// connection and with it this hold.
async fn hold(client: &mut OwnedReadHalf, buf: &mut Vec<u8>, delay: Duration) -> bool {
    let release = tokio::time::sleep(delay);
    tokio::pin!(release);
    loop {
        tokio::select! {
            () = &mut release => return true,
            more = read_more(client, buf) => {
                if more.is_none() {
                    return false;
                }
            }
        }
    }
}

/// Holds a write until [`RedisProxy::release_held`] is called after `generation`, still reading
/// what the client sends. `false` if the client left.
async fn hold_until_released(
    client: &mut OwnedReadHalf,
    buf: &mut Vec<u8>,
    shared: &Shared,
    generation: u64,
) -> bool {
    let mut release = shared.release.subscribe();
    loop {
        tokio::select! {
            released = release.wait_for(|g| *g > generation) => return released.is_ok(),
            more = read_more(client, buf) => {
                if more.is_none() {
                    return false;
                }
            }
        }
    }
}

/// Holds the commands read so far while the link is stalled, still reading what the client
/// sends. `false` if the client left.
async fn hold_while_stalled(
    client: &mut OwnedReadHalf,
    buf: &mut Vec<u8>,
    shared: &Shared,
) -> bool {
    let mut stalled = shared.stalled.subscribe();
    loop {
        tokio::select! {
            released = stalled.wait_for(|stalled| !*stalled) => return released.is_ok(),
            more = read_more(client, buf) => {
                if more.is_none() {
                    return false;
                }
            }
        }
    }
}

/// Sends the client its replies in command order: upstream replies copied whole, injected ones
/// in their place. Returns when the connection must close, in particular as soon as the upstream
/// connection closes, even with nothing pending (the server was killed or restarted).
async fn forward_replies(
    mut upstream: OwnedReadHalf,
    mut client: OwnedWriteHalf,
    mut expected: mpsc::UnboundedReceiver<Expected>,
    shared: &Shared,
) {
    let mut buf = Vec::with_capacity(READ_CHUNK);
    loop {
        let next = tokio::select! {
            next = expected.recv() => next,
            // Reads while idle too, to see the upstream close; bytes read early stay buffered
            // for the replies they belong to.
            more = read_more(&mut upstream, &mut buf) => {
                if more.is_none() {
                    return;
                }
                continue;
            }
        };
        let Some(next) = next else { return };
        match next {
            Expected::Injected(reply) => {
                if client.write_all(reply).await.is_err() {
                    return;
                }
                shared.refusals_sent.fetch_add(1, Ordering::SeqCst);
            }
            Expected::Upstream => {
                let mut scanner = ReplyScanner::default();
                let len = loop {
                    match scanner.scan(&buf) {
                        Ok(Some(len)) => break len,
                        Ok(None) => {
                            if read_more(&mut upstream, &mut buf).await.is_none() {
                                return;
                            }
                        }
                        Err(ProtocolError) => return,
                    }
                };
                if client.write_all(&buf[..len]).await.is_err() {
                    return;
                }
                buf.drain(..len);
            }
        }
    }
}

/// Appends what the socket has to `buf`: `None` on EOF or error (either ends the connection).
/// Cancel-safe: if the future is dropped, nothing was read.
async fn read_more(socket: &mut OwnedReadHalf, buf: &mut Vec<u8>) -> Option<usize> {
    buf.reserve(READ_CHUNK);
    match socket.read_buf(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

/// The peer sent something that is not RESP: the connection is closed.
#[derive(Debug, PartialEq, Eq)]
struct ProtocolError;

/// One whole command at the start of the client's buffer.
#[derive(Debug, PartialEq, Eq)]
struct Command {
    /// Its length in bytes.
    len: usize,
    is_write: bool,
    /// A miss's lease (the script called with a `lease:` operation): a write, which a test may
    /// let pass while it faults the others ([`RedisProxy::spare_leases`]).
    is_lease: bool,
    /// `false` for what redis-server ignores without replying (empty inline lines, `*0`).
    expects_reply: bool,
}

/// Parses the command at the start of `buf`: `Ok(None)` until it is complete.
///
/// Clients send arrays of bulk strings. A line not starting with `*` is an inline command,
/// forwarded as it is and taken as a read.
fn parse_command(buf: &[u8]) -> Result<Option<Command>, ProtocolError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first != b'*' {
        let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let expects_reply = !buf[..newline].trim_ascii().is_empty();
        return Ok(Some(Command {
            len: newline + 1,
            is_write: false,
            is_lease: false,
            expects_reply,
        }));
    }
    let Some((count, mut pos)) = header(buf, 0)? else {
        return Ok(None);
    };
    if count <= 0 {
        return Ok(Some(Command {
            len: pos,
            is_write: false,
            is_lease: false,
            expects_reply: false,
        }));
    }
    if count > MAX_ARGS {
        return Err(ProtocolError);
    }
    let (mut is_write, mut is_lease) = (false, false);
    for index in 0..count {
        match buf.get(pos) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(_) => return Err(ProtocolError),
        }
        let Some((len, start)) = header(buf, pos)? else {
            return Ok(None);
        };
        if !(0..=MAX_BULK).contains(&len) {
            return Err(ProtocolError);
        }
        let end = start + len as usize;
        let Some(terminator) = buf.get(end..end + 2) else {
            return Ok(None);
        };
        if terminator != b"\r\n" {
            return Err(ProtocolError);
        }
        if index == 0 {
            is_write = is_write_command(&buf[start..end]);
        } else if is_write && buf[start..end].starts_with(b"lease:") {
            is_lease = true;
        }
        pos = end + 2;
    }
    Ok(Some(Command {
        len: pos,
        is_write,
        is_lease,
        expects_reply: true,
    }))
}

fn is_write_command(name: &[u8]) -> bool {
    WRITE_COMMANDS
        .iter()
        .any(|write| write.as_bytes().eq_ignore_ascii_case(name))
}

/// The integer of the header line at `buf[pos]` (`*3\r\n`, `$-1\r\n`, ...) and where its body
/// starts; `Ok(None)` until the line is complete.
fn header(buf: &[u8], pos: usize) -> Result<Option<(i64, usize)>, ProtocolError> {
    let digits_start = pos + 1;
    let Some(end) = find_crlf(buf, digits_start) else {
        return if buf.len() - pos > MAX_HEADER {
            Err(ProtocolError)
        } else {
            Ok(None)
        };
    };
    let value = std::str::from_utf8(&buf[digits_start..end])
        .ok()
        .and_then(|digits| digits.parse::<i64>().ok())
        .ok_or(ProtocolError)?;
    Ok(Some((value, end + 2)))
}

/// The index of the first `\r\n` at or after `from`.
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    rest.windows(2)
        .position(|pair| pair == b"\r\n")
        .map(|offset| from + offset)
}

/// Finds the end of one complete reply at the start of a buffer that grows as bytes arrive,
/// resuming where it stopped instead of rescanning (a large array comes in many reads).
///
/// RESP2 (`+ - : $ *`, nulls `$-1` and `*-1`) and, for robustness, RESP3 (`_ , # ( = ! ~ > % |`).
/// An attribute (`|`) is not a reply by itself: it is scanned together with the value after it.
#[derive(Default)]
struct ReplyScanner {
    /// Where the next element starts.
    pos: usize,
    /// Per open aggregate, innermost last: how many elements it still needs.
    open: Vec<u64>,
}

impl ReplyScanner {
    /// `Ok(Some(len))` once `buf[..len]` holds the whole reply, `Ok(None)` while it doesn't yet.
    fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        loop {
            let Some(&kind) = buf.get(self.pos) else {
                return Ok(None);
            };
            match kind {
                b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {
                    let Some(end) = find_crlf(buf, self.pos + 1) else {
                        return Ok(None);
                    };
                    self.pos = end + 2;
                }
                b'$' | b'=' | b'!' => {
                    let Some((len, body)) = header(buf, self.pos)? else {
                        return Ok(None);
                    };
                    if len == -1 {
                        self.pos = body;
                    } else if (0..=MAX_BULK).contains(&len) {
                        let end = body + len as usize;
                        let Some(terminator) = buf.get(end..end + 2) else {
                            return Ok(None);
                        };
                        if terminator != b"\r\n" {
                            return Err(ProtocolError);
                        }
                        self.pos = end + 2;
                    } else {
                        return Err(ProtocolError);
                    }
                }
                b'*' | b'~' | b'>' | b'%' | b'|' => {
                    let Some((count, body)) = header(buf, self.pos)? else {
                        return Ok(None);
                    };
                    if !(-1..=MAX_AGGREGATE).contains(&count) || (count == -1 && kind == b'|') {
                        return Err(ProtocolError);
                    }
                    self.pos = body;
                    let elements = match (kind, count) {
                        (_, -1) => 0,
                        (b'%', n) => 2 * n as u64,
                        (b'|', n) => 2 * n as u64 + 1,
                        (_, n) => n as u64,
                    };
                    if elements > 0 {
                        if self.open.len() >= MAX_DEPTH {
                            return Err(ProtocolError);
                        }
                        self.open.push(elements);
                        continue;
                    }
                }
                _ => return Err(ProtocolError),
            }
            // An element is complete: close every aggregate it completes.
            loop {
                let Some(remaining) = self.open.last_mut() else {
                    return Ok(Some(self.pos));
                };
                *remaining -= 1;
                if *remaining > 0 {
                    break;
                }
                self.open.pop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use redis::aio::{ConnectionManager, ConnectionManagerConfig};
    use redis::{AsyncCommands, ErrorKind, RedisResult, ServerErrorKind};

    use super::*;
    use crate::RedisServer;

    /// The whole reply length, feeding `bytes` one byte at a time (the scanner must resume).
    fn scan_bytewise(bytes: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let mut scanner = ReplyScanner::default();
        for end in 0..bytes.len() {
            if let Some(len) = scanner.scan(&bytes[..end])? {
                return Ok(Some(len));
            }
        }
        scanner.scan(bytes)
    }

    #[test]
    fn scanner_finds_exactly_one_whole_reply() {
        let cases: &[&[u8]] = &[
            b"+OK\r\n",
            b"-READONLY You can't write against a read only replica.\r\n",
            b":42\r\n",
            b"$5\r\nhe\r\no\r\n",
            b"$0\r\n\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*3\r\n$1\r\na\r\n*2\r\n:1\r\n*0\r\n$-1\r\n",
            b"*2\r\n*1\r\n*1\r\n+x\r\n:2\r\n",
            b"_\r\n",
            b",3.14\r\n",
            b"#t\r\n",
            b"(123456789012345678901234567890\r\n",
            b"=7\r\ntxt:abc\r\n",
            b"!3\r\nERR\r\n",
            b"~2\r\n+a\r\n+b\r\n",
            b">2\r\n+message\r\n+x\r\n",
            b"%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n:2\r\n",
            b"|1\r\n+ttl\r\n:3\r\n*2\r\n:1\r\n:2\r\n",
        ];
        for case in cases {
            let mut with_next = case.to_vec();
            with_next.extend_from_slice(b"+NEXT\r\n");
            assert_eq!(
                scan_bytewise(&with_next),
                Ok(Some(case.len())),
                "{}",
                String::from_utf8_lossy(case)
            );
            assert_eq!(
                ReplyScanner::default().scan(&case[..case.len() - 1]),
                Ok(None)
            );
        }
    }

    #[test]
    fn scanner_rejects_what_is_not_resp() {
        for bad in [
            &b"hello\r\n"[..],
            b"$3\r\nabcd\r\n",
            b"*x\r\n",
            b"$-2\r\n",
            b"|-1\r\n",
        ] {
            assert_eq!(
                ReplyScanner::default().scan(bad),
                Err(ProtocolError),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn commands_are_parsed_whole_and_classified() {
        let set = b"*3\r\n$3\r\nsEt\r\n$1\r\nk\r\n$1\r\nv\r\n";
        let mut buf = set.to_vec();
        buf.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            parse_command(&buf),
            Ok(Some(Command {
                len: set.len(),
                is_write: true,
                is_lease: false,
                expects_reply: true
            }))
        );
        for end in 0..set.len() {
            assert_eq!(parse_command(&set[..end]), Ok(None));
        }
        let get = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        assert_eq!(
            parse_command(get),
            Ok(Some(Command {
                len: get.len(),
                is_write: false,
                is_lease: false,
                expects_reply: true
            }))
        );
        let script = b"*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n$1\r\nx\r\n";
        assert_eq!(
            parse_command(script).map(|c| c.map(|c| c.is_write)),
            Ok(Some(false))
        );
        let evalsha = b"*3\r\n$7\r\nevalsha\r\n$1\r\nx\r\n$1\r\n0\r\n";
        assert_eq!(
            parse_command(evalsha).map(|c| c.map(|c| (c.is_write, c.is_lease))),
            Ok(Some((true, false)))
        );
        let lease = b"*4\r\n$7\r\nEVALSHA\r\n$1\r\nx\r\n$1\r\n1\r\n$8\r\nlease:ab\r\n";
        assert_eq!(
            parse_command(lease).map(|c| c.map(|c| (c.is_write, c.is_lease))),
            Ok(Some((true, true)))
        );
        assert_eq!(
            parse_command(b"SET k v\r\n"),
            Ok(Some(Command {
                len: 9,
                is_write: false,
                is_lease: false,
                expects_reply: true
            }))
        );
        assert_eq!(
            parse_command(b"\r\n"),
            Ok(Some(Command {
                len: 2,
                is_write: false,
                is_lease: false,
                expects_reply: false
            }))
        );
        assert_eq!(
            parse_command(b"*0\r\n"),
            Ok(Some(Command {
                len: 4,
                is_write: false,
                is_lease: false,
                expects_reply: false
            }))
        );
        assert_eq!(parse_command(b"*1\r\n:1\r\n"), Err(ProtocolError));
        assert_eq!(parse_command(b"*1\r\n$3\r\nGETX\r\n"), Err(ProtocolError));
    }

    /// A `ConnectionManager` through `url` with a response timeout longer than the delays the
    /// tests inject (redis-rs' default is 500 ms) and quick reconnects.
    async fn manager(url: &str) -> ConnectionManager {
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_min_delay(Duration::from_millis(10))
            .set_number_of_retries(3);
        redis::Client::open(url)
            .expect("a valid url")
            .get_connection_manager_with_config(config)
            .await
            .expect("connects through the proxy")
    }

    async fn wait_for_connections(proxy: &RedisProxy, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while proxy.connections() != count {
            assert!(
                Instant::now() < deadline,
                "{} live connections, expected {count}",
                proxy.connections()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn is_read_only(err: &redis::RedisError) -> bool {
        err.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
    }

    async fn client_id(conn: &mut ConnectionManager) -> i64 {
        redis::cmd("CLIENT")
            .arg("ID")
            .query_async(conn)
            .await
            .expect("CLIENT ID")
    }

    #[tokio::test]
    async fn reads_and_writes_pass_without_a_fault() {
        let server = RedisServer::start().await;
        let proxy = RedisProxy::start(server.port).await;
        let mut conn = manager(&proxy.url()).await;
        let () = conn.set("k", "v").await.expect("SET through the proxy");
        let got: Option<String> = conn.get("k").await.expect("GET through the proxy");
        assert_eq!(got.as_deref(), Some("v"));
        let mut direct = server.connection().await.expect("direct connection");
        let on_server: Option<String> = direct.get("k").await.expect("direct GET");
        assert_eq!(on_server.as_deref(), Some("v"));
        // The handshake (CLIENT SETINFO ...), GET and PING are reads: only the SET counts.
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .expect("PING");
        assert_eq!(proxy.writes_seen(), 1);
        assert_eq!(proxy.connections(), 1);
    }

    #[tokio::test]
    async fn delay_holds_writes_and_what_is_behind_them_only() {
        let server = RedisServer::start().await;
        let proxy = RedisProxy::start(server.port).await;
        let mut direct = server.connection().await.expect("direct connection");
        let slow = manager(&proxy.url()).await;
        let mut other = manager(&proxy.url()).await;
        let delay = Duration::from_millis(300);
        proxy.set_write_fault(WriteFault::Delay(delay));

        let start = Instant::now();
        let set = tokio::spawn({
            let mut slow = slow.clone();
            async move {
                let result: RedisResult<()> = slow.set("slow", "v").await;
                (result, start.elapsed())
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let read_start = Instant::now();
        let _: Option<String> = other.get("slow").await.expect("GET on another connection");
        assert!(
            read_start.elapsed() < Duration::from_millis(150),
            "a read waited {:?}",
            read_start.elapsed()
        );
        tokio::time::sleep_until((start + Duration::from_millis(200)).into()).await;
        let early: bool = direct.exists("slow").await.expect("EXISTS");
        assert!(
            !early,
            "the delayed SET reached the server before its delay"
        );
        let (result, elapsed) = set.await.expect("the SET task");
        result.expect("the delayed SET succeeds");
        assert!(elapsed >= delay, "the SET took {elapsed:?}");
        let landed: Option<String> = direct.get("slow").await.expect("direct GET");
        assert_eq!(landed.as_deref(), Some("v"));

        // A read behind a held write on the same connection waits for it, and sees it.
        let start = Instant::now();
        let set = tokio::spawn({
            let mut slow = slow.clone();
            async move {
                let result: RedisResult<()> = slow.set("behind", "1").await;
                result
            }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        let mut same = slow.clone();
        let got: Option<String> = same.get("behind").await.expect("GET behind the held SET");
        assert_eq!(got.as_deref(), Some("1"));
        assert!(
            start.elapsed() >= delay,
            "the GET behind the SET took {:?}",
            start.elapsed()
        );
        set.await.expect("the SET task").expect("the SET");

        // A pipeline keeps its order.
        let start = Instant::now();
        let (got,): (String,) = redis::pipe()
            .set("k", "1")
            .ignore()
            .get("k")
            .query_async(&mut same)
            .await
            .expect("the pipeline");
        assert_eq!(got, "1");
        assert!(start.elapsed() >= delay);
        assert_eq!(proxy.writes_seen(), 3);
    }

    #[tokio::test]
    async fn hold_keeps_writes_until_released_and_what_is_behind_them() {
        let server = RedisServer::start().await;
        let proxy = RedisProxy::start(server.port).await;
        let mut direct = server.connection().await.expect("direct connection");
        let conn = manager(&proxy.url()).await;
        proxy.set_write_fault(WriteFault::Hold);
        let set = tokio::spawn({
            let mut conn = conn.clone();
            async move { conn.set::<_, _, ()>("held", "v").await }
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while proxy.held() != 1 {
            assert!(Instant::now() < deadline, "the SET was never held");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A read on another connection passes; the write has not reached the server.
        let other = manager(&proxy.url()).await;
        let _: Option<String> = other.clone().get("held").await.expect("GET");
        let early: bool = direct.exists("held").await.expect("EXISTS");
        assert!(!early, "a held write reached the server");
        // A read behind it on the same connection waits behind it.
        let behind = tokio::spawn({
            let mut conn = conn.clone();
            async move { conn.get::<_, Option<String>>("held").await }
        });
        proxy.set_write_fault(WriteFault::None);
        proxy.release_held();
        set.await.expect("the SET task").expect("the SET lands");
        let seen = behind.await.expect("the GET task").expect("the GET");
        assert_eq!(seen.as_deref(), Some("v"), "the read behind it saw it");
        assert_eq!(proxy.held(), 0);
        let () = conn
            .clone()
            .set("after", "1")
            .await
            .expect("writes pass again");
        assert_eq!(proxy.writes_seen(), 2);
    }

    #[tokio::test]
    async fn refuse_answers_readonly_in_order_and_writes_nothing() {
        let server = RedisServer::start().await;
        let proxy = RedisProxy::start(server.port).await;
        let mut direct = server.connection().await.expect("direct connection");
        let () = direct.set("g1", "one").await.expect("seed");
        let () = direct.set("g2", "two").await.expect("seed");
        let mut conn = manager(&proxy.url()).await;
        let id = client_id(&mut conn).await;
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg("return redis.call('SET', KEYS[1], 'x')")
            .query_async(&mut conn)
            .await
            .expect("SCRIPT LOAD is a read");
        proxy.set_write_fault(WriteFault::Refuse);

        let err = conn
            .set::<_, _, ()>("k", "v")
            .await
            .expect_err("SET is refused");
        assert!(is_read_only(&err), "{err:?}: {:?}", err.kind());

        // Replies from upstream and injected ones, pipelined on one connection, in command order.
        let (mut a, mut b, mut c) = (conn.clone(), conn.clone(), conn.clone());
        let (first, refused, second) = tokio::join!(
            a.get::<_, Option<String>>("g1"),
            b.set::<_, _, ()>("k", "v"),
            c.get::<_, Option<String>>("g2"),
        );
        assert_eq!(
            first.expect("GET before the refused SET").as_deref(),
            Some("one")
        );
        assert!(refused.as_ref().is_err_and(is_read_only), "{refused:?}");
        assert_eq!(
            second.expect("GET after the refused SET").as_deref(),
            Some("two")
        );

        let eval = redis::cmd("EVAL")
            .arg("return redis.call('SET', KEYS[1], 'x')")
            .arg(1)
            .arg("k")
            .query_async::<()>(&mut conn)
            .await;
        assert!(eval.as_ref().is_err_and(is_read_only), "{eval:?}");
        let evalsha = redis::cmd("evalsha")
            .arg(&sha)
            .arg(1)
            .arg("k")
            .query_async::<()>(&mut conn)
            .await;
        assert!(evalsha.as_ref().is_err_and(is_read_only), "{evalsha:?}");

        let written: bool = direct.exists("k").await.expect("EXISTS");
        assert!(!written, "a refused write reached the server");
        assert_eq!(proxy.writes_seen(), 4);
        assert_eq!(
            proxy.refusals_sent(),
            4,
            "each refusal was written to the client"
        );
        // READONLY is not a dropped connection: the manager keeps the same one.
        assert_eq!(
            client_id(&mut conn).await,
            id,
            "the ConnectionManager reconnected after READONLY"
        );
        proxy.set_write_fault(WriteFault::None);
        let () = conn.set("k", "v").await.expect("SET passes again");
        assert_eq!(client_id(&mut conn).await, id);
    }

    #[tokio::test]
    async fn drop_closes_the_connection_and_the_manager_reconnects() {
        let server = RedisServer::start().await;
        let proxy = RedisProxy::start(server.port).await;
        let mut direct = server.connection().await.expect("direct connection");
        let mut conn = manager(&proxy.url()).await;
        let id = client_id(&mut conn).await;
        proxy.set_write_fault(WriteFault::Drop);
        let _: Option<String> = conn.get("k").await.expect("reads still pass");

        let err = conn
            .set::<_, _, ()>("k", "v")
            .await
            .expect_err("the SET's connection drops");
        eprintln!(
            "Drop: {err:?} kind={:?} dropped={} io={}",
            err.kind(),
            err.is_connection_dropped(),
            err.is_io_error()
        );
        assert!(err.is_connection_dropped() || err.is_io_error(), "{err:?}");
        let written: bool = direct.exists("k").await.expect("EXISTS");
        assert!(!written, "a dropped write reached the server");
        assert_eq!(proxy.writes_seen(), 1);
        assert_eq!(proxy.drops(), 1);
        assert_eq!(proxy.refusals_sent(), 0);

        proxy.set_write_fault(WriteFault::None);
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match conn.set::<_, _, ()>("k", "v").await {
                Ok(()) => break,
                Err(err) => assert!(Instant::now() < deadline, "no reconnect: {err:?}"),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let landed: Option<String> = direct.get("k").await.expect("direct GET");
        assert_eq!(landed.as_deref(), Some("v"));
        assert_ne!(
            client_id(&mut conn).await,
            id,
            "the manager works on a new connection"
        );
        assert_eq!(proxy.connections(), 1);
    }

    #[tokio::test]
    async fn set_upstream_moves_new_connections_only() {
        let first = RedisServer::start().await;
        let second = RedisServer::start().await;
        let () = first
            .connection()
            .await
            .expect("first")
            .set("who", "first")
            .await
            .expect("seed");
        let () = second
            .connection()
            .await
            .expect("second")
            .set("who", "second")
            .await
            .expect("seed");
        let proxy = RedisProxy::start(first.port).await;
        let mut old = manager(&proxy.url()).await;
        let who: String = old.get("who").await.expect("GET");
        assert_eq!(who, "first");

        proxy.set_upstream(second.port);
        let mut new = manager(&proxy.url()).await;
        let who: String = new.get("who").await.expect("GET on the new connection");
        assert_eq!(who, "second");
        let who: String = old.get("who").await.expect("GET on the live connection");
        assert_eq!(who, "first");
        assert_eq!(proxy.connections(), 2);
    }

    #[tokio::test]
    async fn kill_connections_closes_live_ones_and_clients_reconnect() {
        let server = RedisServer::start().await;
        let proxy = RedisProxy::start(server.port).await;
        let mut one = manager(&proxy.url()).await;
        let mut two = manager(&proxy.url()).await;
        let _: String = redis::cmd("PING")
            .query_async(&mut one)
            .await
            .expect("PING");
        let _: String = redis::cmd("PING")
            .query_async(&mut two)
            .await
            .expect("PING");
        assert_eq!(proxy.connections(), 2);

        proxy.kill_connections();
        assert_eq!(proxy.connections(), 0);
        for conn in [&mut one, &mut two] {
            let err = conn
                .get::<_, Option<String>>("k")
                .await
                .expect_err("the killed connection errors");
            eprintln!(
                "kill: {err:?} kind={:?} dropped={}",
                err.kind(),
                err.is_connection_dropped()
            );
            assert!(err.is_connection_dropped() || err.is_io_error(), "{err:?}");
        }

        let deadline = Instant::now() + Duration::from_secs(2);
        for conn in [&mut one, &mut two] {
            while redis::cmd("PING")
                .query_async::<String>(conn)
                .await
                .is_err()
            {
                assert!(Instant::now() < deadline, "no reconnect");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        wait_for_connections(&proxy, 2).await;
    }

    #[tokio::test]
    async fn a_held_write_dies_with_its_upstream() {
        let mut server = RedisServer::start().await;
        let proxy = RedisProxy::start(server.port).await;
        let conn = manager(&proxy.url()).await;
        let delay = Duration::from_millis(1000);
        proxy.set_write_fault(WriteFault::Delay(delay));
        let start = Instant::now();
        let set = tokio::spawn({
            let mut conn = conn.clone();
            async move {
                let result: RedisResult<()> = conn.set("held", "v").await;
                (result, start.elapsed())
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(proxy.writes_seen(), 1, "the SET is held");
        server.stop();

        let (result, elapsed) = set.await.expect("the SET task");
        let err = result.expect_err("the held SET fails with its connection");
        eprintln!(
            "upstream killed: {err:?} kind={:?} dropped={}",
            err.kind(),
            err.is_connection_dropped()
        );
        assert!(
            elapsed < delay,
            "the client connection closed only after {elapsed:?}"
        );
        assert!(err.is_connection_dropped() || err.is_io_error(), "{err:?}");

        // Back before the hold would have ended: the held write must not reach the new server.
        server.restart().await;
        assert!(
            start.elapsed() < delay,
            "restart too slow for this test to mean anything"
        );
        tokio::time::sleep_until((start + delay + Duration::from_millis(150)).into()).await;
        let mut direct = server.connection().await.expect("direct connection");
        let written: bool = direct.exists("held").await.expect("EXISTS");
        assert!(!written, "the held write crossed the restart");
    }
}
