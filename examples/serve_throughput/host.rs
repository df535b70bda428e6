//! The host the numbers were taken on, and CPU time read from /proc.

use std::fs;
use std::path::Path;

use serde::Serialize;

#[derive(Debug, Serialize)]
pub(crate) struct Machine {
    /// `std::thread::available_parallelism` (what `nproc` prints).
    pub(crate) nproc: usize,
    /// `processor` entries of /proc/cpuinfo.
    pub(crate) cpuinfo_processors: usize,
    pub(crate) cpu_model: String,
    /// An NVIDIA device node exists (the benchmark computes on the CPU backend regardless).
    pub(crate) nvidia_device_present: bool,
    pub(crate) backend: Vec<&'static str>,
    pub(crate) os: &'static str,
    pub(crate) arch: &'static str,
    /// /proc/loadavg when the benchmark started and when it ended.
    pub(crate) loadavg_start: String,
    pub(crate) loadavg_end: String,
}

pub(crate) fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

pub(crate) fn machine() -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpuinfo_processors = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpuinfo_processors,
        cpu_model,
        nvidia_device_present: Path::new("/dev/nvidia0").exists(),
        backend: advclust::compiled_backends(),
        os: std::env::consts::OS,
        arch: std::env::consts::ARCH,
        loadavg_start: loadavg(),
        loadavg_end: String::new(),
    }
}

/// CPU ticks used so far: by this process (all threads) and by the whole machine (busy time of
/// all cores). Zero where /proc cannot be read.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuTicks {
    pub(crate) process: u64,
    pub(crate) machine: u64,
}

pub(crate) fn cpu_ticks() -> CpuTicks {
    // /proc/self/stat: fields after the `(comm)`; utime and stime are fields 14 and 15.
    let process = fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    // /proc/stat `cpu` line: user nice system idle iowait irq softirq steal ...; busy is all
    // but idle and iowait (guest time is already inside user).
    let machine = fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("cpu "))?;
            let v: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .take(8)
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() == 8).then(|| v.iter().sum::<u64>() - v[3] - v[4])
        })
        .unwrap_or(0);
    CpuTicks { process, machine }
}
