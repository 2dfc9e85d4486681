//! `stats [--follow] LOG`: the numbers of the local stack's metric lines in LOG (`scripts/dev`
//! writes its functions' output to `.dev/watch.log`), once, or again every 2 s while it grows.

use std::io::Read;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let follow = args.iter().any(|a| a == "--follow" || a == "-f");
    let Some(path) = args.iter().find(|a| !a.starts_with('-')) else {
        eprintln!("usage: stats [--follow] LOG");
        std::process::exit(2);
    };
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("stats: {path}: {e}");
            std::process::exit(1);
        }
    };
    let mut stats = local_stats::Stats::default();
    let mut pending = String::new();
    loop {
        let mut chunk = String::new();
        if let Err(e) = file.read_to_string(&mut chunk) {
            eprintln!("stats: {path}: {e}");
            std::process::exit(1);
        }
        pending.push_str(&chunk);
        // Only whole lines: the last one may still be being written.
        if let Some(end) = pending.rfind('\n') {
            stats.read(&pending[..end]);
            pending.drain(..=end);
        }
        if !follow {
            print!("{}", stats.render());
            return;
        }
        print!("\x1b[2J\x1b[H{}", stats.render());
        // The next read goes on from where this one stopped.
        std::thread::sleep(Duration::from_secs(2));
    }
}
