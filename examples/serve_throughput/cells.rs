//! One timed round of calls per configuration (a cell), checked against the in-process answers.

use crate::*;

/// One timed round of one configuration (a run), or the summary of a configuration's runs
/// over the passes (the run with the median images/s, with the range and every run's errors).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Cell {
    /// Pass of a run (0-based); for a summary, the pass of its median run.
    pub(crate) pass: usize,
    /// Runs summarised (1 for a run).
    pub(crate) reps: usize,
    /// Lowest and highest images/s over the runs summarised.
    pub(crate) images_per_s_min: f64,
    pub(crate) images_per_s_max: f64,
    /// `"in-process"` for a baseline, else `"json"` or `"binary"`.
    pub(crate) encoding: String,
    /// Server replicas (0 for a baseline).
    pub(crate) replicas: usize,
    /// Requests the client keeps in flight (1 for a baseline).
    pub(crate) in_flight: usize,
    pub(crate) calls: usize,
    pub(crate) images: usize,
    pub(crate) seconds: f64,
    pub(crate) calls_per_s: f64,
    pub(crate) images_per_s: f64,
    /// Mean time a request was outstanding, by Little's law:
    /// `seconds * min(in_flight, calls) / calls`, in milliseconds.
    pub(crate) mean_latency_ms_estimate: f64,
    /// Images/s relative to the mean of the two in-process baselines.
    pub(crate) vs_in_process: f64,
    /// CPU time of this process (client + server + model) over the round, in cores
    /// (CPU seconds per second).
    pub(crate) process_cpu_cores: f64,
    /// Busy CPU time of the rest of the machine over the round, in cores.
    pub(crate) other_cpu_cores: f64,
    /// Requests (images) the server answered during the timed round (the calls, for a
    /// baseline).
    pub(crate) server_answered_requests: u64,
    pub(crate) server_answered_images: u64,
    /// Client transport counters during the timed round.
    pub(crate) client_attempts: u64,
    pub(crate) client_retries: u64,
    /// Largest |served - in-process| membership over the timed round.
    pub(crate) max_abs_diff: f32,
    /// Images whose served label differs from the in-process one.
    pub(crate) label_mismatches: usize,
    /// What went wrong, if anything (count mismatch, retries, different answers, an error).
    pub(crate) errors: Vec<String>,
}

pub(crate) fn compare(served: &[Memberships], local: &[Memberships]) -> (f32, usize) {
    let mut max = 0f32;
    let mut labels = 0;
    for (s, l) in served.iter().zip(local) {
        if s.n() != l.n() || s.k() != l.k() {
            return (f32::INFINITY, s.n().max(l.n()));
        }
        for (a, b) in s.data().iter().zip(l.data()) {
            max = max.max((a - b).abs());
        }
        labels += s
            .labels()
            .iter()
            .zip(l.labels())
            .filter(|(a, b)| **a != *b)
            .count();
    }
    (max, labels)
}

/// Runs a round of calls; an error if any call failed or the round was cut short.
pub(crate) fn round(
    oracle: &mut dyn ClusterOracle,
    calls: &[ImageBatch],
) -> AnyResult<Vec<Memberships>> {
    let answers = oracle.memberships_of_calls(calls);
    let got = answers.len();
    let answers = answers.into_iter().collect::<Result<Vec<_>, _>>()?;
    if got != calls.len() {
        return Err(format!("round cut short: {got} of {} answers", calls.len()).into());
    }
    Ok(answers)
}

pub(crate) fn empty_cell(
    encoding: &str,
    replicas: usize,
    in_flight: usize,
    calls: &[ImageBatch],
) -> Cell {
    Cell {
        pass: 0,
        reps: 1,
        images_per_s_min: 0.0,
        images_per_s_max: 0.0,
        encoding: encoding.into(),
        replicas,
        in_flight,
        calls: calls.len(),
        images: calls.iter().map(ImageBatch::len).sum(),
        seconds: 0.0,
        calls_per_s: 0.0,
        images_per_s: 0.0,
        mean_latency_ms_estimate: 0.0,
        vs_in_process: 0.0,
        process_cpu_cores: 0.0,
        other_cpu_cores: 0.0,
        server_answered_requests: 0,
        server_answered_images: 0,
        client_attempts: 0,
        client_retries: 0,
        max_abs_diff: 0.0,
        label_mismatches: 0,
        errors: Vec::new(),
    }
}

/// Fills the rates of `cell` from a timed round.
pub(crate) fn timed(cell: &mut Cell, elapsed: Duration, before: CpuTicks, after: CpuTicks) {
    let s = elapsed.as_secs_f64();
    cell.seconds = s;
    cell.calls_per_s = cell.calls as f64 / s;
    cell.images_per_s = cell.images as f64 / s;
    cell.images_per_s_min = cell.images_per_s;
    cell.images_per_s_max = cell.images_per_s;
    cell.mean_latency_ms_estimate =
        1000.0 * s * cell.in_flight.min(cell.calls) as f64 / cell.calls as f64;
    let process = after.process.saturating_sub(before.process) as f64 / USER_HZ;
    let machine = after.machine.saturating_sub(before.machine) as f64 / USER_HZ;
    cell.process_cpu_cores = process / s;
    cell.other_cpu_cores = (machine - process).max(0.0) / s;
}

/// The in-process baseline: the same calls through a `ModelOracle`.
pub(crate) fn baseline_cell<F: FnMut() -> Replica>(
    make_replica: &mut F,
    warmup: &[ImageBatch],
    calls: &[ImageBatch],
) -> AnyResult<(Cell, Vec<Memberships>)> {
    let mut oracle = make_replica();
    if !warmup.is_empty() {
        round(&mut *oracle, warmup)?;
    }
    let mut cell = empty_cell(IN_PROCESS, 0, 1, calls);
    let before = cpu_ticks();
    let started = Instant::now();
    let answers = round(&mut *oracle, calls)?;
    timed(&mut cell, started.elapsed(), before, cpu_ticks());
    cell.server_answered_requests = calls.len() as u64;
    cell.server_answered_images = cell.images as u64;
    Ok((cell, answers))
}

/// One served cell: start, connect, warm up, time, check, shut down.
#[allow(clippy::too_many_arguments)]
pub(crate) fn served_cell<F: FnMut() -> Replica>(
    encoding: Encoding,
    name: &str,
    replicas: usize,
    in_flight: usize,
    make_replica: &mut F,
    warmup: &[ImageBatch],
    calls: &[ImageBatch],
    local: &[Memberships],
) -> AnyResult<Cell> {
    let mut cell = empty_cell(name, replicas, in_flight, calls);
    let model =
        ServedModel::with_replicas(MODEL_NAME, (0..replicas).map(|_| make_replica()).collect());
    let server = ServerHandle::start("127.0.0.1:0", model, ServeConfig::new().check()?)?;
    let target: KServeTarget = format!("kserve+{}/models/{MODEL_NAME}", server.url()).parse()?;
    let config = KServeConfig::new()
        .in_flight(in_flight)
        .encoding(encoding)
        .read_timeout(Duration::from_secs(300))
        .check()?;
    let mut oracle = KServeOracle::connect(target, config)?;
    if oracle.uses_binary() != matches!(encoding, Encoding::Binary) {
        cell.errors.push(format!(
            "asked for {name}, got binary = {}",
            oracle.uses_binary()
        ));
    }
    if !warmup.is_empty() {
        round(&mut oracle, warmup)?;
    }
    let (server_before, client_before) = (server.stats(), oracle.stats());
    let ticks = cpu_ticks();
    let started = Instant::now();
    let answers = round(&mut oracle, calls);
    let elapsed = started.elapsed();
    let ticks_after = cpu_ticks();
    let (server_after, client_after) = (server.stats(), oracle.stats());
    drop(oracle);
    server.shutdown()?;
    let answers = answers?;
    timed(&mut cell, elapsed, ticks, ticks_after);
    cell.server_answered_requests =
        server_after.answered_requests - server_before.answered_requests;
    cell.server_answered_images = server_after.answered_images - server_before.answered_images;
    cell.client_attempts = client_after.attempts - client_before.attempts;
    cell.client_retries = client_after.retries - client_before.retries;
    if cell.server_answered_requests != cell.calls as u64 {
        cell.errors.push(format!(
            "server answered {} requests for {} calls",
            cell.server_answered_requests, cell.calls
        ));
    }
    if cell.server_answered_images != cell.images as u64 {
        cell.errors.push(format!(
            "server answered {} images for {}",
            cell.server_answered_images, cell.images
        ));
    }
    if cell.client_retries != 0 || cell.client_attempts != cell.calls as u64 {
        cell.errors.push(format!(
            "client made {} attempts ({} retries) for {} calls",
            cell.client_attempts, cell.client_retries, cell.calls
        ));
    }
    (cell.max_abs_diff, cell.label_mismatches) = compare(&answers, local);
    // A NaN difference is reported too.
    if cell.max_abs_diff.is_nan() || cell.max_abs_diff > TOLERANCE || cell.label_mismatches != 0 {
        cell.errors.push(format!(
            "answers differ from in-process: max |diff| {:e}, {} label(s)",
            cell.max_abs_diff, cell.label_mismatches
        ));
    }
    Ok(cell)
}

/// The run with the median images/s (the lower middle for an even count) of one
/// configuration's runs, with their range and all their errors.
pub(crate) fn summarize(runs: &[&Cell]) -> Cell {
    let mut ok: Vec<&Cell> = runs.iter().copied().filter(|c| c.seconds > 0.0).collect();
    ok.sort_by(|a, b| a.images_per_s.total_cmp(&b.images_per_s));
    let Some(first) = runs.first() else {
        return empty_cell("none", 0, 0, &[]);
    };
    let mut cell = match ok.get(ok.len().saturating_sub(1) / 2) {
        Some(median) => (*median).clone(),
        None => (*first).clone(),
    };
    cell.reps = runs.len();
    cell.images_per_s_min = ok.first().map_or(0.0, |c| c.images_per_s);
    cell.images_per_s_max = ok.last().map_or(0.0, |c| c.images_per_s);
    cell.errors = runs
        .iter()
        .flat_map(|c| {
            c.errors
                .iter()
                .map(move |e| format!("pass {}: {e}", c.pass + 1))
        })
        .collect();
    cell
}
