//! The report: JSON payload and the markdown table and reading.

use crate::*;

#[derive(Debug, Serialize)]
pub(crate) struct Payload {
    /// FP32 values of one call's images.
    pub(crate) values_per_call: usize,
    /// Bytes of those values as a JSON array (as the client sends them: shortest round-trip
    /// decimal of each f32).
    pub(crate) json_data_bytes: usize,
    /// Bytes of those values as binary tensor data (little-endian FP32).
    pub(crate) binary_data_bytes: usize,
    /// Share of those values that are exactly 0 (black pixels, `0.0` in JSON).
    pub(crate) zero_fraction: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) benchmark: &'static str,
    pub(crate) command: String,
    pub(crate) machine: Machine,
    pub(crate) victim: String,
    pub(crate) dataset: &'static str,
    /// Distinct images the calls cover (the calls cycle through the dataset's full batches).
    pub(crate) distinct_images: usize,
    pub(crate) calls: usize,
    pub(crate) batch: usize,
    pub(crate) warmup_calls: usize,
    /// Passes over the whole grid; each configuration is summarised by its median run.
    pub(crate) reps: usize,
    pub(crate) server_worker_threads: usize,
    pub(crate) payload: Payload,
    pub(crate) latency_note: &'static str,
    pub(crate) total_seconds: f64,
    /// One summary per configuration, the in-process baseline first.
    pub(crate) cells: Vec<Cell>,
    /// Every run, in the order they ran.
    pub(crate) runs: Vec<Cell>,
}

/// Largest |a - b| over two lists of memberships, and the number of differing labels.
pub(crate) fn fmt_row(c: &Cell) -> String {
    let replicas = if c.replicas == 0 {
        "-".to_string()
    } else {
        c.replicas.to_string()
    };
    let vs = if c.vs_in_process > 0.0 {
        format!("{:.2}x", c.vs_in_process)
    } else {
        "-".into()
    };
    let check = if c.errors.is_empty() {
        format!("ok ({}/{})", c.server_answered_requests, c.calls)
    } else {
        format!("**FAIL**: {}", c.errors.join("; "))
    };
    format!(
        "| {} | {} | {} | {:.2} | {:.1} | {:.0} | {:.0}-{:.0} | {:.0} | {} | {:.2} | {:.2} | {} |",
        c.encoding,
        replicas,
        c.in_flight,
        c.seconds,
        c.calls_per_s,
        c.images_per_s,
        c.images_per_s_min,
        c.images_per_s_max,
        c.mean_latency_ms_estimate,
        vs,
        c.process_cpu_cores,
        c.other_cpu_cores,
        check
    )
}

pub(crate) fn table(cells: &[Cell]) -> String {
    let mut s = String::from(
        "| encoding | replicas | in flight | seconds | calls/s | images/s | images/s range \
         | mean latency (ms, est.) | vs in-process | our CPU (cores) | other CPU (cores) \
         | server count check |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for c in cells {
        s.push_str(&fmt_row(c));
        s.push('\n');
    }
    s
}

pub(crate) fn find<'a>(
    cells: &'a [Cell],
    enc: &str,
    replicas: usize,
    in_flight: usize,
) -> Option<&'a Cell> {
    cells.iter().find(|c| {
        c.encoding == enc && c.replicas == replicas && c.in_flight == in_flight && c.seconds > 0.0
    })
}

pub(crate) fn best<'a>(cells: impl Iterator<Item = &'a Cell>) -> Option<&'a Cell> {
    cells
        .filter(|c| c.seconds > 0.0)
        .max_by(|a, b| a.images_per_s.total_cmp(&b.images_per_s))
}

/// True when the images/s ranges of two summaries overlap (the difference is not established).
pub(crate) fn overlap(a: &Cell, b: &Cell) -> bool {
    a.images_per_s_min <= b.images_per_s_max && b.images_per_s_min <= a.images_per_s_max
}

/// A caveat for a difference between two summaries whose run ranges overlap.
pub(crate) fn caveat(a: &Cell, b: &Cell) -> &'static str {
    if overlap(a, b) {
        " (but the two rows' run ranges overlap: suggestive, not established)"
    } else {
        ""
    }
}

pub(crate) fn pct(ratio: f64) -> String {
    format!("{:+.0}%", 100.0 * (ratio - 1.0))
}

pub(crate) fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The reading of the numbers, computed from them (so that it stays true when rerun).
pub(crate) fn reading(r: &Report) -> String {
    let cells = &r.cells;
    let nproc = r.machine.nproc;
    let mut s = String::new();
    let served: Vec<&Cell> = cells
        .iter()
        .filter(|c| c.encoding != IN_PROCESS && c.seconds > 0.0)
        .collect();
    let Some(base) = cells
        .iter()
        .find(|c| c.encoding == IN_PROCESS && c.seconds > 0.0)
    else {
        return s;
    };
    let base_ms = 1000.0 * r.batch as f64 / base.images_per_s;
    let _ = writeln!(
        s,
        "- **In process** the victim answers {:.0} images/s (median of {} passes, range {:.0} \
         to {:.0}; {base_ms:.1} ms per call of {} images), keeping {:.2} of the {nproc} cores \
         busy. That is the reference: every served cell runs the same forward passes and adds \
         encoding, HTTP and decoding, on the same cores.",
        base.images_per_s,
        base.reps,
        base.images_per_s_min,
        base.images_per_s_max,
        r.batch,
        base.process_cpu_cores,
    );
    for enc in ["json", "binary"] {
        if let Some(c) = find(cells, enc, 1, 1) {
            let per_call = c.mean_latency_ms_estimate - base_ms;
            let _ = writeln!(
                s,
                "- **Protocol cost, {enc}** (1 replica, 1 in flight, so nothing overlaps): \
                 {:.0} images/s, {} against in-process; a call takes {:.1} ms, {:+.1} ms against \
                 in process.",
                c.images_per_s,
                pct(c.vs_in_process),
                c.mean_latency_ms_estimate,
                per_call
            );
        }
    }
    for enc in ["json", "binary"] {
        if let (Some(one), Some(top)) = (
            find(cells, enc, 1, 1),
            best(
                cells
                    .iter()
                    .filter(|c| c.encoding == enc && c.replicas == 1),
            ),
        ) {
            let gain = top.images_per_s / one.images_per_s;
            let verdict = if gain > 1.0 + NOISE {
                "more requests in flight help: the client encodes and the server decodes one \
                 request while the model runs another"
            } else {
                "within noise: with one replica the model is the bottleneck and requests in \
                 flight only queue for it"
            };
            let _ = writeln!(
                s,
                "- **In flight, {enc}, 1 replica**: best is {} in flight at {:.0} images/s, {} \
                 against 1 in flight ({verdict}). The latency estimate grows with the queue \
                 ({:.0} ms at 1 in flight, {:.0} ms at 8).",
                top.in_flight,
                top.images_per_s,
                pct(gain),
                one.mean_latency_ms_estimate,
                find(cells, enc, 1, 8).map_or(0.0, |c| c.mean_latency_ms_estimate),
            );
        }
    }
    for enc in ["json", "binary"] {
        let per: Vec<(usize, &Cell)> = REPLICAS
            .iter()
            .filter_map(|&n| {
                best(
                    cells
                        .iter()
                        .filter(|c| c.encoding == enc && c.replicas == n),
                )
                .map(|c| (n, c))
            })
            .collect();
        let (Some((_, one)), true) = (per.first(), per.len() > 1) else {
            continue;
        };
        let parts: Vec<String> = per
            .iter()
            .map(|(n, c)| {
                format!(
                    "{n} replica(s) {:.0} images/s (at {} in flight)",
                    c.images_per_s, c.in_flight
                )
            })
            .collect();
        let (top_cell, top) = per
            .iter()
            .map(|(_, c)| (*c, c.images_per_s / one.images_per_s))
            .fold((*one, 0.0), |a, b| if b.1 > a.1 { b } else { a });
        let verdict = if top > 1.0 + NOISE {
            format!(
                "replicas add up to {} over one{}",
                pct(top),
                caveat(top_cell, one)
            )
        } else {
            format!(
                "replicas add nothing beyond noise (at most {} over one)",
                pct(top)
            )
        };
        let _ = writeln!(
            s,
            "- **Replicas, {enc}** (best over in flight): {}; {verdict}.",
            parts.join(", ")
        );
    }
    let mut ratios = Vec::new();
    for n in REPLICAS {
        for f in IN_FLIGHT {
            if let (Some(j), Some(b)) = (find(cells, "json", n, f), find(cells, "binary", n, f)) {
                ratios.push(b.images_per_s / j.images_per_s);
            }
        }
    }
    if !ratios.is_empty() {
        let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let p = &r.payload;
        let _ = writeln!(
            s,
            "- **Binary vs JSON**: binary tensors give {:.2}x the images/s of JSON on average \
             over the {} matching cells ({min:.2}x to {max:.2}x). One call's {} FP32 values are \
             {:.2} MB as JSON text against {:.2} MB binary, only {:.1}x because {:.0}% of MNIST \
             pixels are black and print as `0.0`; JSON also has to print and parse every value, \
             on the cores the model needs.",
            mean(&ratios),
            ratios.len(),
            p.values_per_call,
            p.json_data_bytes as f64 / 1e6,
            p.binary_data_bytes as f64 / 1e6,
            p.json_data_bytes as f64 / p.binary_data_bytes as f64,
            100.0 * p.zero_fraction,
        );
    }
    if let Some(top) = best(served.iter().copied()) {
        let _ = writeln!(
            s,
            "- **Best served cell**: {}, {} replica(s), {} in flight: {:.0} images/s, {} \
             against in-process{}{}.",
            top.encoding,
            top.replicas,
            top.in_flight,
            top.images_per_s,
            pct(top.vs_in_process),
            if top.vs_in_process > 1.0 + NOISE && top.replicas > 1 {
                ": faster than one in-process caller, because concurrent requests run forward \
                 passes side by side where the in-process loop runs them one after another"
            } else {
                ""
            },
            if top.vs_in_process > 1.0 + NOISE {
                caveat(top, base)
            } else {
                ""
            }
        );
    }
    let busiest = r
        .runs
        .iter()
        .map(|c| c.process_cpu_cores)
        .fold(0.0, f64::max);
    let other = mean(&r.runs.iter().map(|c| c.other_cpu_cores).collect::<Vec<_>>());
    let best_of = |n: usize| best(served.iter().copied().filter(|c| c.replicas == n));
    let four_vs_two = if let (Some(two), Some(four)) = (best_of(2), best_of(4)) {
        let ratio = four.images_per_s / two.images_per_s;
        if ratio > 1.0 + NOISE {
            format!(
                "4 replicas still did {} better than 2 here (best over in flight){}; no extra \
                 core can explain that: it is more forward passes overlapping each other and \
                 the protocol work on cores that one pass leaves partly idle, and it must \
                 vanish once the cores are full",
                pct(ratio),
                caveat(four, two)
            )
        } else if ratio < 1.0 - NOISE {
            format!(
                "4 replicas did {} against 2 (best over in flight): past the core count they \
                 only add contention",
                pct(ratio)
            )
        } else {
            format!(
                "4 replicas against 2: {} (best over in flight), within noise: past the core \
                 count they are a longer queue with more memory",
                pct(ratio)
            )
        }
    } else {
        String::from("(no 2- and 4-replica runs to compare)")
    };
    let _ = writeln!(
        s,
        "- **Cores**: the machine has {nproc}. One in-process forward pass keeps {:.2} cores \
         busy; client, server and model together never kept more than {busiest:.2} busy in any \
         run, while other work on this shared machine took {other:.2} cores on average (load \
         average {} at the start, {} at the end). More replicas than cores cannot scale: a \
         replica adds throughput only while there are idle cores for its forward pass. \
         {four_vs_two}.",
        base.process_cpu_cores, r.machine.loadavg_start, r.machine.loadavg_end
    );
    let mut spreads: Vec<f64> = served
        .iter()
        .filter(|c| c.reps > 1 && c.images_per_s > 0.0)
        .map(|c| (c.images_per_s_max - c.images_per_s_min) / c.images_per_s)
        .collect();
    spreads.sort_by(f64::total_cmp);
    if let (Some(median), Some(largest)) = (spreads.get(spreads.len() / 2), spreads.last()) {
        let loaded = r.runs.iter().filter(|c| c.other_cpu_cores > 0.25).count();
        let loaded_rows = served.iter().filter(|c| c.other_cpu_cores > 0.25).count();
        let _ = writeln!(
            s,
            "- **Noise**: a served row's {} runs spread by a median {:.0}% of its median \
             images/s ((max - min) / median; at most {:.0}%), and {loaded} of the {} runs had \
             other work taking more than 0.25 cores, {loaded_rows} of the {} served rows' \
             median runs among them (the \"other CPU\" column). Differences inside that \
             spread are not findings.",
            r.reps,
            100.0 * median,
            100.0 * largest,
            r.runs.len(),
            served.len()
        );
    }
    let failures: usize = cells.iter().map(|c| c.errors.len()).sum();
    if failures == 0 {
        let _ = writeln!(
            s,
            "- **Checks**: in every served run the server answered exactly {} requests ({} \
             images) in the timed round, the client made one attempt per call and no retry, and \
             every answer equals the in-process one (same labels; largest membership \
             difference {:e}, tolerance {TOLERANCE:e}).",
            r.calls,
            r.calls * r.batch,
            served.iter().map(|c| c.max_abs_diff).fold(0f32, f32::max)
        );
    } else {
        let _ = writeln!(
            s,
            "- **Checks failed** in {failures} place(s): see the last column of the table."
        );
    }
    s
}

pub(crate) fn markdown(r: &Report) -> String {
    let m = &r.machine;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Serving throughput: advclust's KServe v2 server and client\n"
    );
    let _ = writeln!(
        s,
        "Queries/s and images/s of advclust's own Open Inference Protocol (KServe v2 REST) server \
         (`advclust-serve`) answering its own client (`advclust-remote`'s `KServeOracle`), with \
         1, 2 and 4 server replicas of the victim and 1, 2, 4 and 8 requests in flight, JSON \
         against binary tensor encoding, next to the same calls answered in process. Generated \
         by [`examples/serve_throughput/main.rs`](../../examples/serve_throughput/main.rs); the raw \
         numbers are in [`serving-throughput.json`](serving-throughput.json).\n"
    );
    let _ = writeln!(s, "## Setup\n");
    let _ = writeln!(
        s,
        "- **Machine**: {} CPU core(s) (`nproc` = {}; {} `processor` entries in /proc/cpuinfo), \
         {}; {}/{}; {}. Computation on the CPU backend ({}). Client, server and model run in \
         one process on these cores, and the machine is shared with other work (the \"other \
         CPU\" column), so treat differences under {:.0}% as noise.",
        m.nproc,
        m.nproc,
        m.cpuinfo_processors,
        m.cpu_model,
        m.os,
        m.arch,
        if m.nvidia_device_present {
            "an NVIDIA device is present but unused"
        } else {
            "no GPU"
        },
        m.backend.join(", "),
        100.0 * NOISE
    );
    let _ = writeln!(
        s,
        "- **Victim**: `{}` (the embedded Contrastive Clustering model, k = 10), one \
         `ModelOracle` per replica. **Images**: {}, calls of {} images (`1 x 28 x 28`, FP32) \
         cycling through {} distinct images.",
        r.victim, r.dataset, r.batch, r.distinct_images
    );
    let _ = writeln!(
        s,
        "- **Per run**: a fresh server on 127.0.0.1 (default `ServeConfig`: {} tokio worker \
         threads; each oracle call runs on a blocking thread with a free replica, requests \
         beyond the replicas wait), a fresh client (`KServeConfig::in_flight(n)`, \
         `Encoding::Json` or `Encoding::Binary`), {} warm-up call(s), then one timed round of \
         {} calls through `memberships_of_calls` (answers in order). **Baseline**: the same \
         calls through an in-process `ModelOracle` after the same warm-up. **Passes**: the \
         whole grid runs {} times (each pass: the baseline, then every replicas x in-flight \
         pair with JSON and binary back to back, so both encodings see the same load); each \
         row below is the run with the median images/s, \"images/s range\" spans all runs of \
         that row, and \"vs in-process\" is against the baseline's median.",
        r.server_worker_threads, r.warmup_calls, r.calls, r.reps
    );
    let _ = writeln!(s, "- **Latency**: {}.", r.latency_note);
    let _ = writeln!(
        s,
        "- **CPU columns**: CPU seconds per second over the median run's timed round, from /proc: \"our\" is \
         this process (client, server and model), \"other\" the rest of the machine."
    );
    let _ = writeln!(
        s,
        "- **Checks per run**: the server's answered-request and answered-image counters over \
         the timed round equal the calls and images sent; the client's transport counters show \
         one attempt per call and no retry; answers equal the in-process ones.\n"
    );
    let _ = writeln!(
        s,
        "Command (the whole run took {:.0} s):\n",
        r.total_seconds
    );
    let _ = writeln!(s, "```text\n{}\n```\n", r.command);
    let _ = writeln!(s, "## Results\n");
    s.push_str(&table(&r.cells));
    let _ = writeln!(s, "\n## Reading\n");
    s.push_str(&reading(r));
    s
}
