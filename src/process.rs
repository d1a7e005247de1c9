//! Standard `process_*` metrics read from `/proc/self`, with the names and HELP of the
//! Go and Python clients' process collectors. On systems without `/proc` the metrics
//! are simply absent.

use std::sync::OnceLock;

use crate::encoding::{Family, Sink, Unit};

/// Linux reports CPU times in clock ticks; USER_HZ is 100 on every architecture Rust
/// targets with procfs (it is fixed by the kernel ABI, not by CONFIG_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Default, PartialEq)]
pub(crate) struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub start_time_seconds: f64,
    pub open_fds: Option<f64>,
    pub max_fds: Option<f64>,
}

/// Reads the current process's statistics; `None` where `/proc` is not available.
/// Called on every scrape: the boot time, which never changes, is read once (the
/// kernel builds `/proc/stat` from every CPU's counters, a quarter of what the rest
/// costs).
pub(crate) fn read() -> Option<ProcessStats> {
    static BOOT_TIME: OnceLock<f64> = OnceLock::new();
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    // Kept once read; a failed read is tried again at the next scrape.
    let btime = match BOOT_TIME.get() {
        Some(btime) => *btime,
        None => {
            let btime = parse_btime(&std::fs::read_to_string("/proc/stat").ok()?)?;
            *BOOT_TIME.get_or_init(|| btime)
        }
    };
    let mut stats = parse(&stat, &status, btime)?;
    stats.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|dir| dir.count() as f64);
    stats.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| parse_max_fds(&limits));
    Some(stats)
}

/// Pure parsing of `/proc/self/stat` and `/proc/self/status`, with the boot time.
fn parse(stat: &str, status: &str, btime: f64) -> Option<ProcessStats> {
    // The command name (field 2) may contain spaces and parentheses: split after the
    // last ')'. Fields after it start at field 3 (state).
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
    let utime = field(14)?;
    let stime = field(15)?;
    let start_ticks = field(22)?;
    let kib = |key: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        let value: f64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
        Some(value * 1024.0)
    };
    Some(ProcessStats {
        cpu_seconds: (utime + stime) / TICKS_PER_SECOND,
        resident_bytes: kib("VmRSS:").unwrap_or(0.0),
        virtual_bytes: kib("VmSize:").unwrap_or(0.0),
        start_time_seconds: btime + start_ticks / TICKS_PER_SECOND,
        open_fds: None,
        max_fds: None,
    })
}

/// The boot time (Unix seconds) from `/proc/stat`.
fn parse_btime(proc_stat: &str) -> Option<f64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

fn parse_max_fds(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub(crate) fn encode(sink: &mut dyn Sink, stats: &ProcessStats) {
    let families = [
        (
            Family::counter(
                "process_cpu",
                "Total user and system CPU time spent in seconds.",
            )
            .in_unit(Unit::Seconds),
            Some(stats.cpu_seconds),
        ),
        (
            Family::gauge("process_resident_memory", "Resident memory size in bytes.")
                .in_unit(Unit::Bytes),
            Some(stats.resident_bytes),
        ),
        (
            Family::gauge("process_virtual_memory", "Virtual memory size in bytes.")
                .in_unit(Unit::Bytes),
            Some(stats.virtual_bytes),
        ),
        (
            Family::gauge(
                "process_start_time",
                "Start time of the process since unix epoch in seconds.",
            )
            .in_unit(Unit::Seconds),
            Some(stats.start_time_seconds),
        ),
        (
            Family::gauge("process_open_fds", "Number of open file descriptors."),
            stats.open_fds,
        ),
        (
            Family::gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
            ),
            stats.max_fds,
        ),
    ];
    for (family, value) in families {
        if let Some(value) = value {
            sink.family(&family, &mut |s| s.sample(&[], value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "4242 (pipefy (exp) er) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 50 0 0 20 0 9 0 360000 123456789 2000 18446744073709551615";
        let status = "Name:\tpipefy-exporter\nVmSize:\t  120000 kB\nVmRSS:\t    8000 kB\n";
        let proc_stat = "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";
        let btime = parse_btime(proc_stat).unwrap();
        let stats = parse(stat, status, btime).unwrap();
        assert_eq!(stats.cpu_seconds, 2.0);
        assert_eq!(stats.resident_bytes, 8_192_000.0);
        assert_eq!(stats.virtual_bytes, 122_880_000.0);
        assert_eq!(stats.start_time_seconds, 1_700_003_600.0);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024.0));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let stats = read().expect("/proc is readable on Linux");
        assert!(stats.resident_bytes > 0.0);
        assert!(stats.open_fds.expect("fd count") >= 3.0);
    }
}
