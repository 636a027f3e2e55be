//! What the figures were measured on: the date, the cores, the CPU, the kernel.

/// The date and this machine, e.g. `2025-01-31 14:02 UTC on 2 cores (AMD EPYC 7B13), Linux
/// 6.8.0`.
pub fn describe() -> String {
    format!(
        "{} on {} cores ({}), Linux {}",
        utc_now(),
        multiprocessing::cpu_count(),
        cpu_model().unwrap_or_else(|| "unknown CPU".to_owned()),
        read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "?".to_owned()),
    )
}

/// The first `model name` of `/proc/cpuinfo`.
fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|line| line.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

fn read_trimmed(path: &str) -> Option<String> {
    Some(std::fs::read_to_string(path).ok()?.trim().to_owned())
}

/// The date and time now, in UTC, to the minute.
fn utc_now() -> String {
    // SAFETY: `time` with a null pointer only returns the clock.
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    // SAFETY: all-zero bytes are a valid `struct tm`, which `gmtime_r` overwrites.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: `gmtime_r` reads one `time_t` and writes one `struct tm`, both valid and ours.
    unsafe { libc::gmtime_r(&now, &mut tm) };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min
    )
}
