//! `capacity [--smoke] [--write-doc] [--baseline FILE] [--save FILE] [--from FILE]
//! [--requests N] [--comments N]`: the scale model of BENCHMARKS.md ("Scale: partitions and hot keys"; the
//! crate's docs say how). Prints one JSON line per figure, then the tables.
//!
//! - `--smoke`: a few requests per class and a 300-comment delete; everything it writes goes to
//!   a temporary directory (the doc section into a copy of BENCHMARKS.md), and it fails unless
//!   every figure was produced, every request got its expected answer and the recorder agreed
//!   with the emulator. The CI step.
//! - `--write-doc`: rewrites the section of BENCHMARKS.md and draws bench/charts/capacity.svg.
//! - `--baseline FILE`: a saved run (`--save`), shown as "today", this run as "after".
//! - `--from FILE`: measures nothing; reports the saved run (to rewrite the doc after its
//!   wording changed).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use capacity::profile::CrossCheck;
use capacity::report::{self, Run};
use capacity::world::World;
use capacity::{chart, delete, doc, model, phases};

struct Options {
    smoke: bool,
    write_doc: bool,
    baseline: Option<PathBuf>,
    save: Option<PathBuf>,
    from: Option<PathBuf>,
    requests: usize,
    comments: usize,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Options {
            smoke: false,
            write_doc: false,
            baseline: None,
            save: None,
            from: None,
            requests: 0,
            comments: 0,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--smoke" => options.smoke = true,
                "--write-doc" => options.write_doc = true,
                "--baseline" => options.baseline = Some(PathBuf::from(value("--baseline")?)),
                "--save" => options.save = Some(PathBuf::from(value("--save")?)),
                "--from" => options.from = Some(PathBuf::from(value("--from")?)),
                "--requests" => {
                    options.requests = value("--requests")?
                        .parse()
                        .map_err(|_| "--requests takes a number")?
                }
                "--comments" => {
                    options.comments = value("--comments")?
                        .parse()
                        .map_err(|_| "--comments takes a number")?
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if options.requests == 0 {
            options.requests = if options.smoke { 5 } else { 100 };
        }
        if options.comments == 0 {
            options.comments = if options.smoke { 300 } else { 100_000 };
        }
        Ok(options)
    }
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn schema_text(schema: &capacity::schema::TableSchema) -> String {
    let keys = |hash: &str, range: &Option<String>| match range {
        Some(range) => format!("`{hash}`/`{range}`"),
        None => format!("`{hash}`"),
    };
    let mut text = format!("keys {}", keys(&schema.hash, &schema.range));
    for index in &schema.indexes {
        let projection = match &index.projection {
            capacity::schema::Projection::All => "ALL".to_owned(),
            capacity::schema::Projection::KeysOnly => "KEYS_ONLY".to_owned(),
            capacity::schema::Projection::Include(names) => format!("INCLUDE {}", names.join(", ")),
        };
        text.push_str(&format!(
            "; index `{}` on {}, {projection}",
            index.name,
            keys(&index.hash, &index.range)
        ));
    }
    if !schema.local_indexes.is_empty() {
        text.push_str(&format!(
            "; local indexes (not modelled): {}",
            schema.local_indexes.join(", ")
        ));
    }
    text
}

async fn measure(options: &Options) -> Result<Run, String> {
    let started = Instant::now();
    let world = World::start().await?;
    let fixture = phases::fixture(&world).await?;
    let mut cross_check = CrossCheck::default();
    let mut profiles = Vec::new();
    for class in phases::CLASSES {
        let phase = Instant::now();
        let profile =
            phases::run(&world, &fixture, class, options.requests, &mut cross_check).await?;
        eprintln!(
            "capacity: {} x {} in {:.1} s",
            class.id,
            options.requests,
            phase.elapsed().as_secs_f64()
        );
        profiles.push(profile);
    }
    let axes = model::axes()
        .iter()
        .map(|axis| model::evaluate(axis, &profiles))
        .collect();
    let phase = Instant::now();
    let deadline = Duration::from_secs(if options.smoke { 60 } else { 900 });
    let delete = delete::run(&world, &fixture, options.comments, deadline).await?;
    eprintln!(
        "capacity: delete of a post with {} comments in {:.1} s",
        options.comments,
        phase.elapsed().as_secs_f64()
    );
    Ok(Run {
        date: command_output("date", &["-u", "+%Y-%m-%d"]),
        commit: command_output("git", &["rev-parse", "--short", "HEAD"]),
        schema: schema_text(world.recorder.schema()),
        smoke: options.smoke,
        requests: options.requests,
        consumers: world
            .consumers
            .names()
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        seconds: started.elapsed().as_secs_f64(),
        profiles,
        axes,
        delete: Some(delete),
        cross_check,
    })
}

/// What a smoke run must show: every figure there, every answer as expected, the recorder in
/// agreement with the emulator.
fn smoke_check(run: &Run) -> Result<(), String> {
    let mut problems = Vec::new();
    for profile in &run.profiles {
        if !profile.failures.is_empty() {
            problems.push(format!(
                "{}: unexpected answers {:?}",
                profile.class, profile.failures
            ));
        }
        // A read the cache answers touches Redis alone: its load is its keys'.
        if profile.roles.is_empty() && profile.redis_keys.is_empty() {
            problems.push(format!("{}: nothing recorded", profile.class));
        }
    }
    if run.cross_check.disagreed > 0 {
        problems.push(format!(
            "the recorder disagreed with the emulator: {:?}",
            run.cross_check.examples
        ));
    }
    if run.cross_check.agreed == 0 {
        problems.push("no call was cross-checked".into());
    }
    for result in &run.axes {
        let unplaced = |a: &model::AtRate| a.partitions.is_empty() && a.redis_slot.is_none();
        if !result.max_rate.is_finite() || result.at.iter().any(unplaced) {
            problems.push(format!(
                "axis {}: no limit or no partition found",
                result.axis.id
            ));
        }
    }
    match &run.delete {
        Some(d) if (200..300).contains(&d.status) && d.swept_after_s.is_some() => {}
        other => problems.push(format!("the delete axis: {other:?}")),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn read_run(path: &PathBuf) -> Result<Run, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_json(path: &PathBuf, run: &Run) -> Result<(), String> {
    let text = serde_json::to_string_pretty(run).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

async fn main_inner() -> Result<(), String> {
    let started = Instant::now();
    let options = Options::parse()?;
    let baseline = options.baseline.as_ref().map(read_run).transpose()?;
    let run = match &options.from {
        Some(path) => read_run(path)?,
        None => measure(&options).await?,
    };
    report::print_figures(&run);
    let (today, after) = match &baseline {
        Some(baseline) => (baseline, Some(&run)),
        None => (&run, None),
    };
    println!(
        "\n{}\n{}",
        report::summary_table(today, after),
        report::axis_tables(today, after)
    );
    let out_dir = if options.smoke {
        let dir = std::env::temp_dir().join(format!("capacity-smoke-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Some(dir)
    } else {
        None
    };
    if let Some(path) = &options.save {
        let path = match &out_dir {
            Some(dir) => dir.join(path.file_name().unwrap_or_default()),
            None => path.clone(),
        };
        write_json(&path, &run)?;
    }
    if options.write_doc || options.smoke {
        let (doc_path, chart_path) = match &out_dir {
            Some(dir) => {
                let copy = dir.join("BENCHMARKS.md");
                std::fs::copy("BENCHMARKS.md", &copy).map_err(|e| format!("BENCHMARKS.md: {e}"))?;
                (copy, dir.join("capacity.svg"))
            }
            None => (
                PathBuf::from("BENCHMARKS.md"),
                PathBuf::from("bench/charts/capacity.svg"),
            ),
        };
        chart::draw(&chart_path, &run, baseline.as_ref())?;
        doc::write(
            &doc_path,
            &doc::section(today, after, "bench/charts/capacity.svg"),
        )?;
        eprintln!(
            "capacity: wrote {} and {}",
            doc_path.display(),
            chart_path.display()
        );
    }
    if options.smoke {
        smoke_check(&run)?;
        if let Some(dir) = out_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    eprintln!("capacity: done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Err(e) = main_inner().await {
        eprintln!("capacity: {e}");
        std::process::exit(1);
    }
}
