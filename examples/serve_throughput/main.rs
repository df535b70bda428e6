//! Serving throughput: advclust's own Open Inference Protocol (KServe v2) server against its own
//! client, on the embedded CC victim and MNIST-test images.
//!
//! ```text
//! cargo run --release --example serve_throughput -- [--calls N] [--batch B] [--warmup W] [--reps R] [--out DIR]
//! ```
//!
//! For each tensor encoding (JSON, binary), each number of server replicas (1, 2, 4) and each
//! number of requests the client keeps in flight (1, 2, 4, 8): starts a server on a free local
//! port, connects a `KServeOracle`, warms up with `W` calls, then times one round of `N` calls of
//! `B` images sent through `ClusterOracle::memberships_of_calls`. A baseline answers the same
//! calls in process with a `ModelOracle` (no HTTP), so the protocol's overhead is visible. The
//! whole grid runs `R` times (passes), JSON and binary back to back within each pass so that both
//! see the same load of a shared machine; each configuration is reported by its median run.
//!
//! Every cell checks that the server answered exactly `N` requests (and `N * B` images) in the
//! timed round, that the client made one attempt per call (no retry), and that the answers equal
//! the in-process ones (same labels, memberships within 1e-6). Each cell also records the CPU
//! time of this process (client, server and model all run in it) and of the whole machine, read
//! from /proc, so that contention from other work is visible. Writes
//! `DIR/serving-throughput.json` and `DIR/serving-throughput.md` (default `docs/results`), and
//! fails if any check failed. Set `ADVCLUST_BACKEND` to pick another compiled-in backend.

use std::error::Error;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use advclust::core::{ClusterOracle, ImageBatch, Memberships, ModelOracle, ParamGuard};
use advclust::pipeline::{DatasetSpec, VictimSpec};
use advclust::remote::{Encoding, KServeConfig, KServeOracle, KServeTarget};
use advclust::serve::{Replica, ServeConfig, ServedModel, ServerHandle};
use serde::Serialize;

mod cells;
mod host;
mod report;

use cells::*;
use host::*;
use report::*;

type AnyResult<T> = Result<T, Box<dyn Error>>;

const REPLICAS: [usize; 3] = [1, 2, 4];
const IN_FLIGHT: [usize; 4] = [1, 2, 4, 8];
/// Largest difference allowed between a served membership and the in-process one.
const TOLERANCE: f32 = 1e-6;
const MODEL_NAME: &str = "cc";
const IN_PROCESS: &str = "in-process";
/// Clock ticks per second of /proc's CPU times (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;
/// Relative differences under this are called noise in the reading.
const NOISE: f64 = 0.10;

struct Args {
    calls: usize,
    batch: usize,
    warmup: usize,
    reps: usize,
    out: PathBuf,
}

fn parse_args() -> AnyResult<Args> {
    let mut args = Args {
        calls: 48,
        batch: 256,
        warmup: 2,
        reps: 3,
        out: PathBuf::from("docs/results"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--calls" => args.calls = value()?.parse()?,
            "--batch" => args.batch = value()?.parse()?,
            "--warmup" => args.warmup = value()?.parse()?,
            "--reps" => args.reps = value()?.parse()?,
            "--out" => args.out = PathBuf::from(value()?),
            "-h" | "--help" => {
                println!(
                    "usage: serve_throughput [--calls N (48)] [--batch B (256)] [--warmup W (2)] \
                     [--reps R (3)] [--out DIR (docs/results)]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (see --help)").into()),
        }
    }
    if args.calls == 0 || args.batch == 0 || args.reps == 0 {
        return Err("--calls, --batch and --reps must be at least 1".into());
    }
    Ok(args)
}

fn main() -> AnyResult<()> {
    let args = parse_args()?;
    let started = Instant::now();
    let mut machine = machine();
    let device = advclust::device(None)?;
    let victim_spec = VictimSpec::pretrained_cc_mnist();
    let victim = victim_spec.load(&device)?;
    let images = DatasetSpec::MnistEmbedded
        .load(None, 0)?
        .shuffled(0)
        .to_image_batch()?;
    let chunks: Vec<ImageBatch> = images
        .chunks(args.batch)
        .filter(|c| c.len() == args.batch)
        .collect();
    if chunks.is_empty() {
        return Err(format!("--batch {} is larger than the dataset", args.batch).into());
    }
    let distinct_images = args.calls.min(chunks.len()) * args.batch;
    let calls: Vec<ImageBatch> = chunks.iter().cycle().take(args.calls).cloned().collect();
    let warmup: Vec<ImageBatch> = chunks
        .iter()
        .rev()
        .cycle()
        .take(args.warmup)
        .cloned()
        .collect();
    let payload = Payload {
        values_per_call: calls[0].data().len(),
        json_data_bytes: serde_json::to_string(calls[0].data())?.len(),
        binary_data_bytes: calls[0].data().len() * 4,
        zero_fraction: calls[0].data().iter().filter(|&&v| v == 0.0).count() as f64
            / calls[0].data().len() as f64,
    };
    println!(
        "serve_throughput: {} calls of {} images ({} warm-up), {} core(s) [{}], backend {:?}",
        args.calls, args.batch, args.warmup, machine.nproc, machine.cpu_model, machine.backend
    );
    println!("{}", table(&[]).trim_end());

    let mut make_replica = || Box::new(ModelOracle::new(&victim, &device)) as Replica;
    let mut runs: Vec<Cell> = Vec::new();
    let mut local: Option<Vec<Memberships>> = None;
    for pass in 0..args.reps {
        println!("pass {}/{}", pass + 1, args.reps);
        let (mut base, answers) = baseline_cell(&mut make_replica, &warmup, &calls)?;
        base.pass = pass;
        match &local {
            None => local = Some(answers),
            Some(first) => {
                let (diff, labels) = compare(&answers, first);
                if diff != 0.0 || labels != 0 {
                    base.errors.push(format!(
                        "in-process answers changed between passes: max |diff| {diff:e}, \
                         {labels} label(s)"
                    ));
                }
            }
        }
        println!("{}", fmt_row(&base));
        runs.push(base);
        let local = local.as_deref().unwrap_or_default();
        // Encodings side by side, so that both see the same load of a shared machine.
        for replicas in REPLICAS {
            for in_flight in IN_FLIGHT {
                for (encoding, name) in [(Encoding::Json, "json"), (Encoding::Binary, "binary")] {
                    let mut cell = served_cell(
                        encoding,
                        name,
                        replicas,
                        in_flight,
                        &mut make_replica,
                        &warmup,
                        &calls,
                        local,
                    )
                    .unwrap_or_else(|e| {
                        let mut cell = empty_cell(name, replicas, in_flight, &calls);
                        cell.errors.push(e.to_string());
                        cell
                    });
                    cell.pass = pass;
                    println!("{}", fmt_row(&cell));
                    runs.push(cell);
                }
            }
        }
    }
    // Summaries: the baseline, then JSON and binary, each by replicas and in flight.
    let mut keys = vec![(IN_PROCESS, 0, 1)];
    for name in ["json", "binary"] {
        for replicas in REPLICAS {
            for in_flight in IN_FLIGHT {
                keys.push((name, replicas, in_flight));
            }
        }
    }
    let mut cells: Vec<Cell> = keys
        .iter()
        .map(|&(name, replicas, in_flight)| {
            let of: Vec<&Cell> = runs
                .iter()
                .filter(|c| {
                    c.encoding == name && c.replicas == replicas && c.in_flight == in_flight
                })
                .collect();
            summarize(&of)
        })
        .collect();
    let base_rate = cells[0].images_per_s;
    for c in cells.iter_mut().chain(runs.iter_mut()) {
        if c.seconds > 0.0 && base_rate > 0.0 {
            c.vs_in_process = c.images_per_s / base_rate;
        }
    }
    machine.loadavg_end = loadavg();

    let report = Report {
        benchmark: "serve_throughput",
        command: format!(
            "cargo run --release --example serve_throughput -- --calls {} --batch {} --warmup {} \
             --reps {} --out {}",
            args.calls,
            args.batch,
            args.warmup,
            args.reps,
            args.out.display()
        ),
        machine,
        victim: victim_spec.to_string(),
        dataset: "MNIST-test (embedded, shuffled with seed 0)",
        distinct_images,
        calls: args.calls,
        batch: args.batch,
        warmup_calls: args.warmup,
        server_worker_threads: ServeConfig::new().check()?.worker_threads(),
        payload,
        latency_note: "not measured per request; estimated by Little's law as seconds x \
                       min(in flight, calls) / calls, the mean time a request was outstanding \
                       (including time queued for a busy replica)",
        reps: args.reps,
        total_seconds: started.elapsed().as_secs_f64(),
        cells,
        runs,
    };
    println!("\n{}", table(&report.cells));
    print!("{}", reading(&report));
    fs::create_dir_all(&args.out)?;
    let json_path = args.out.join("serving-throughput.json");
    let md_path = args.out.join("serving-throughput.md");
    advclust::core::write_atomic(
        &json_path,
        (serde_json::to_string_pretty(&report)? + "\n").as_bytes(),
    )?;
    advclust::core::write_atomic(&md_path, markdown(&report).as_bytes())?;
    println!(
        "\nwrote {} and {} ({:.0} s)",
        md_path.display(),
        json_path.display(),
        report.total_seconds
    );
    let failed: Vec<String> = report
        .cells
        .iter()
        .filter(|c| !c.errors.is_empty())
        .map(|c| {
            format!(
                "{} replicas {} in flight {}: {}",
                c.encoding,
                c.replicas,
                c.in_flight,
                c.errors.join("; ")
            )
        })
        .collect();
    if !failed.is_empty() {
        return Err(format!(
            "{} cell(s) failed their checks:\n{}",
            failed.len(),
            failed.join("\n")
        )
        .into());
    }
    Ok(())
}
