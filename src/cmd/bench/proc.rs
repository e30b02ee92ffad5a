//! What a process costs, read from `/proc`: resident memory and CPU time,
//! of this process (`self`) or of a child by its id.

use std::time::Duration;

use anyhow::Context;

/// The resident set size of process `pid` (`self` or a number), in KiB
/// (`VmRSS` of `/proc/PID/status`).
pub(super) fn rss_kib_of(pid: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in {path}"))
}

/// This process's resident set size, in KiB.
pub(super) fn rss_kib() -> anyhow::Result<u64> {
    rss_kib_of("self")
}

/// User plus system CPU time of process `pid` (`self` or a number;
/// `/proc/PID/stat`, clock ticks of 10 ms).
pub(super) fn cpu_time_of(pid: &str) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(index)
            .with_context(|| format!("short {path}"))?
            .parse()?)
    };
    // utime and stime are fields 14 and 15 of the whole line; 11 and 12 after the name.
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(total * 10))
}

/// User plus system CPU time of this process.
pub(super) fn cpu_time() -> anyhow::Result<Duration> {
    cpu_time_of("self")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_its_cpu_time_grows() {
        assert!(rss_kib().unwrap() > 0);
        let before = cpu_time().unwrap();
        let spin = std::time::Instant::now();
        let mut sum = 0u64;
        while spin.elapsed() < Duration::from_millis(50) {
            sum = sum.wrapping_add(std::hint::black_box(1));
        }
        assert!(sum > 0);
        assert!(cpu_time_of(&std::process::id().to_string()).unwrap() > before);
    }
}
