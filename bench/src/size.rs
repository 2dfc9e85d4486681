//! Figure 7: the size of each function binary as `cargo lambda build --release --arm64`
//! leaves it (`target/lambda/<name>/bootstrap`). Recorded, without a goal since the 6 MB one
//! was withdrawn (BENCHMARKS.md, "Release profile").

use std::path::Path;

use crate::lambda::FUNCTIONS;
use crate::report::Report;

/// The ELF machine of a binary: `aarch64`, `x86_64` or `unknown`.
fn machine(path: &Path) -> &'static str {
    let Ok(bytes) = std::fs::read(path) else {
        return "unknown";
    };
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return "unknown";
    }
    match u16::from_le_bytes([bytes[18], bytes[19]]) {
        0xB7 => "aarch64",
        0x3E => "x86_64",
        _ => "unknown",
    }
}

/// Sizes of the arm64 bootstraps under `lambda_dir`; where there are none, of the binaries in
/// `bin_dir`, said so in a note (a smoke run does not cross-compile).
pub fn run(report: &mut Report, lambda_dir: Option<&Path>, bin_dir: &Path) {
    for name in FUNCTIONS {
        let bootstrap = lambda_dir.map(|dir| dir.join(name).join("bootstrap"));
        let (path, note) = match bootstrap {
            Some(path) if machine(&path) == "aarch64" => (path, None),
            _ => {
                let path = bin_dir.join(name);
                let note = format!(
                    "{} build in {}, not the arm64 cargo lambda build",
                    machine(&path),
                    bin_dir.display()
                );
                (path, Some(note))
            }
        };
        let bytes = std::fs::metadata(&path)
            .map(|m| m.len())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        report.add_noted(
            format!("size.{name}.mb"),
            bytes as f64 / 1e6,
            "MB",
            None, // recorded, no longer a goal: init work, not size, decides cold start
            note,
        );
    }
}
