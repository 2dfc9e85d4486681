//! Every Redis command the app sends, from a `MONITOR` connection to the test's redis-server:
//! its keys (and so their slots), the bytes it writes, and, sampled after each phase, the size
//! of what it reads. Like the DynamoDB recorder it sees the wire, whatever code sends.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One command the app sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Upper case: `GET`, `EVALSHA`, ...
    pub name: String,
    pub keys: Vec<String>,
    /// Bytes of the values it writes (not its keys or options).
    pub written: usize,
    /// Whether it reads a value back (its size sampled afterwards).
    pub reads: bool,
}

/// A `MONITOR` connection and the commands it has seen; stops when dropped.
pub struct Monitor {
    seen: Arc<Mutex<Vec<Command>>>,
    markers: Arc<Mutex<BTreeSet<String>>>,
    sampler: tokio::sync::Mutex<Raw>,
    task: tokio::task::JoinHandle<()>,
    marker: std::sync::atomic::AtomicU64,
}

/// A plain RESP connection, for the tool's own commands (never recorded).
struct Raw {
    reader: BufReader<TcpStream>,
    address: String,
}

impl Raw {
    async fn connect(address: &str) -> Result<Self, String> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| format!("redis {address}: {e}"))?;
        let local = stream
            .local_addr()
            .map_err(|e| format!("redis: {e}"))?
            .to_string();
        Ok(Raw {
            reader: BufReader::new(stream),
            address: local,
        })
    }

    /// Sends a command, returns its reply as text (an integer, a bulk string, a status) or the
    /// error it got.
    async fn command(&mut self, args: &[&str]) -> Result<Result<String, String>, String> {
        let mut frame = format!("*{}\r\n", args.len());
        for arg in args {
            frame.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        self.reader
            .get_mut()
            .write_all(frame.as_bytes())
            .await
            .map_err(|e| format!("redis write: {e}"))?;
        let line = self.line().await?;
        match line.split_at(1.min(line.len())) {
            ("+", rest) | (":", rest) => Ok(Ok(rest.to_owned())),
            ("-", rest) => Ok(Err(rest.to_owned())),
            ("$", len) => {
                let len: i64 = len
                    .parse()
                    .map_err(|_| format!("redis: bad length {len}"))?;
                if len < 0 {
                    return Ok(Ok(String::new()));
                }
                let value = self.line().await?;
                Ok(Ok(value))
            }
            _ => Err(format!("redis: unexpected reply {line:?}")),
        }
    }

    async fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        let read = self
            .reader
            .read_line(&mut line)
            .await
            .map_err(|e| format!("redis read: {e}"))?;
        if read == 0 {
            return Err("redis closed the connection".into());
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

impl Monitor {
    /// Starts monitoring the redis-server at `address` (`host:port`).
    pub async fn start(address: &str) -> Result<Self, String> {
        let mut monitor = Raw::connect(address).await?;
        match monitor.command(&["MONITOR"]).await? {
            Ok(_) => {}
            Err(e) => return Err(format!("MONITOR refused: {e}")),
        }
        let sampler = Raw::connect(address).await?;
        let own = sampler.address.clone();
        let seen: Arc<Mutex<Vec<Command>>> = Arc::default();
        let markers: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let task = tokio::spawn(read_monitor(monitor, own, seen.clone(), markers.clone()));
        Ok(Monitor {
            seen,
            markers,
            sampler: tokio::sync::Mutex::new(sampler),
            task,
            marker: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Every command sent since the last `take`: all that reached the server before this call
    /// (a marker sent now, on the tool's own connection, is waited for in the stream).
    pub async fn take(&self) -> Result<Vec<Command>, String> {
        let n = self
            .marker
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let marker = format!("capacity-marker-{n}");
        self.sampler
            .lock()
            .await
            .command(&["ECHO", &marker])
            .await?
            .map_err(|e| format!("ECHO: {e}"))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if lock(&self.markers).remove(&marker) {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err("the MONITOR stream did not show the marker within 10 s".into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(std::mem::take(&mut *lock(&self.seen)))
    }

    /// The size in bytes of each key's value now (`STRLEN`, or `MEMORY USAGE` for a value that
    /// is not a string); keys that are gone are left out.
    pub async fn sizes(&self, keys: &BTreeSet<String>) -> Result<HashMap<String, usize>, String> {
        let mut sampler = self.sampler.lock().await;
        let mut sizes = HashMap::new();
        for key in keys {
            let size = match sampler.command(&["STRLEN", key]).await? {
                Ok(n) => n.parse::<usize>().unwrap_or(0),
                Err(_) => match sampler.command(&["MEMORY", "USAGE", key]).await? {
                    Ok(n) => n.parse::<usize>().unwrap_or(0),
                    Err(_) => 0,
                },
            };
            if size > 0 {
                sizes.insert(key.clone(), size);
            }
        }
        Ok(sizes)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn read_monitor(
    mut monitor: Raw,
    own: String,
    seen: Arc<Mutex<Vec<Command>>>,
    markers: Arc<Mutex<BTreeSet<String>>>,
) {
    while let Ok(line) = monitor.line().await {
        let Some((client, args)) = parse_line(&line) else {
            continue;
        };
        // Commands a script runs are part of its EVALSHA, already counted.
        if client == "lua" {
            continue;
        }
        if client == own {
            if args.first().is_some_and(|a| a.eq_ignore_ascii_case("ECHO")) {
                if let Some(marker) = args.get(1) {
                    lock(&markers).insert(marker.clone());
                }
            }
            continue;
        }
        if let Some(command) = command_of(&args) {
            lock(&seen).push(command);
        }
    }
}

/// A `MONITOR` line: `+<time> [<db> <client>] "ARG" "ARG" ...` → the client and the arguments.
pub fn parse_line(line: &str) -> Option<(String, Vec<String>)> {
    let rest = line.strip_prefix('+')?;
    let open = rest.find('[')?;
    let close = open + rest[open..].find(']')?;
    let client = rest[open + 1..close]
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let mut args = Vec::new();
    let bytes = &rest.as_bytes()[close + 1..];
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        i += 1;
        let mut arg = Vec::new();
        while i < bytes.len() && bytes[i] != b'"' {
            if bytes[i] == b'\\' && i + 1 < bytes.len() {
                i += 1;
                match bytes[i] {
                    b'n' => arg.push(b'\n'),
                    b'r' => arg.push(b'\r'),
                    b't' => arg.push(b'\t'),
                    b'a' => arg.push(7),
                    b'b' => arg.push(8),
                    b'x' if i + 2 < bytes.len() => {
                        let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                        arg.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                        i += 2;
                    }
                    other => arg.push(other),
                }
            } else {
                arg.push(bytes[i]);
            }
            i += 1;
        }
        i += 1;
        args.push(String::from_utf8_lossy(&arg).into_owned());
    }
    Some((client, args))
}

/// Commands that name no key.
const KEYLESS: &[&str] = &[
    "PING",
    "AUTH",
    "HELLO",
    "CLIENT",
    "SELECT",
    "INFO",
    "SCRIPT",
    "CLUSTER",
    "READONLY",
    "READWRITE",
    "ASKING",
    "COMMAND",
    "CONFIG",
    "MULTI",
    "EXEC",
    "DISCARD",
    "ECHO",
    "QUIT",
    "RESET",
    "DBSIZE",
    "TIME",
    "FUNCTION",
    "MONITOR",
    "PUBLISH",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "UNSUBSCRIBE",
    "FLUSHALL",
    "FLUSHDB",
    "WAIT",
    "LATENCY",
    "SLOWLOG",
];

/// Commands that read a value back to the client.
const READS: &[&str] = &[
    "GET",
    "MGET",
    "GETEX",
    "GETDEL",
    "GETSET",
    "HGET",
    "HMGET",
    "HGETALL",
    "LRANGE",
    "LINDEX",
    "SMEMBERS",
    "ZRANGE",
    "ZREVRANGE",
    "ZRANGEBYSCORE",
    "ZREVRANGEBYSCORE",
    "XRANGE",
    "XREAD",
];

/// The command `args` sends: its keys and the bytes it writes; `None` for keyless commands.
pub fn command_of(args: &[String]) -> Option<Command> {
    let name = args.first()?.to_ascii_uppercase();
    if KEYLESS.contains(&name.as_str()) {
        return None;
    }
    let rest = &args[1..];
    let len = |values: &[String]| values.iter().map(String::len).sum::<usize>();
    let (keys, written): (Vec<String>, usize) = match name.as_str() {
        "EVAL" | "EVALSHA" | "EVAL_RO" | "EVALSHA_RO" | "FCALL" | "FCALL_RO" => {
            let count: usize = rest.get(1).and_then(|n| n.parse().ok()).unwrap_or(0);
            let keys: Vec<String> = rest.iter().skip(2).take(count).cloned().collect();
            let argv = rest.get(2 + count..).unwrap_or(&[]);
            (keys, len(argv))
        }
        "DEL" | "UNLINK" | "EXISTS" | "MGET" | "TOUCH" | "WATCH" => (rest.to_vec(), 0),
        "MSET" | "MSETNX" => {
            let keys = rest.iter().step_by(2).cloned().collect();
            let values: Vec<String> = rest.iter().skip(1).step_by(2).cloned().collect();
            (keys, len(&values))
        }
        "SET" | "SETNX" | "GETSET" | "APPEND" => (
            rest.first().cloned().into_iter().collect(),
            rest.get(1).map_or(0, String::len),
        ),
        "SETEX" | "PSETEX" => (
            rest.first().cloned().into_iter().collect(),
            rest.get(2).map_or(0, String::len),
        ),
        "HSET" | "HMSET" | "HSETNX" | "LPUSH" | "RPUSH" | "SADD" | "ZADD" | "XADD" => (
            rest.first().cloned().into_iter().collect(),
            len(rest.get(1..).unwrap_or(&[])),
        ),
        _ => (rest.first().cloned().into_iter().collect(), 0),
    };
    Some(Command {
        reads: READS.contains(&name.as_str())
            || name.starts_with("EVAL")
            || name.starts_with("FCALL"),
        name,
        keys,
        written,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_lines_are_parsed_with_their_escapes() {
        let (client, args) =
            parse_line(r#"+1700000000.123456 [0 127.0.0.1:54321] "SET" "k\"1" "a\x41b""#)
                .expect("a line");
        assert_eq!(client, "127.0.0.1:54321");
        assert_eq!(args, vec!["SET", "k\"1", "aAb"]);
        let (client, _) = parse_line(r#"+1.0 [0 lua] "GET" "x""#).expect("a line");
        assert_eq!(client, "lua");
    }

    #[test]
    fn keys_and_written_bytes_by_command() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let get = command_of(&args(&["get", "user:v2:a"])).expect("a command");
        assert_eq!(
            (get.name.as_str(), get.keys.clone(), get.written, get.reads),
            ("GET", vec!["user:v2:a".to_owned()], 0, true)
        );
        let script = command_of(&args(&[
            "EVALSHA",
            "abc",
            "1",
            "user:v2:a",
            "payload",
            "60",
        ]))
        .expect("a command");
        assert_eq!(script.keys, vec!["user:v2:a"]);
        assert_eq!(script.written, "payload".len() + 2);
        let set = command_of(&args(&["SET", "k", "value", "EX", "30"])).expect("a command");
        assert_eq!(set.written, 5);
        assert!(command_of(&args(&["PING"])).is_none());
        assert_eq!(
            command_of(&args(&["MGET", "a", "b"]))
                .expect("a command")
                .keys,
            vec!["a", "b"]
        );
    }
}
