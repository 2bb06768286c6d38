//! The process's own numbers, read from `/proc` at each scrape on Linux, under the names every Prometheus
//! client uses (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`, ...).
//! Elsewhere, or when `/proc` cannot be read, they are left out of the exposition.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Registers the process collector in `registry`.
pub(crate) fn register(registry: &mut Registry) {
    registry.register_collector(Box::new(ProcessCollector));
}

#[derive(Debug)]
struct ProcessCollector;

/// One reading of the process's numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Reading {
    pub(crate) cpu_seconds: f64,
    pub(crate) resident_bytes: i64,
    pub(crate) virtual_bytes: i64,
    pub(crate) start_time_seconds: f64,
    pub(crate) open_fds: i64,
    pub(crate) max_fds: Option<i64>,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(reading) = read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(reading.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent, in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size, in bytes",
                Some(reading.resident_bytes),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size, in bytes",
                Some(reading.virtual_bytes),
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                Some(reading.open_fds),
            ),
            (
                "process_max_fds",
                "The soft limit on open file descriptors",
                reading.max_fds,
            ),
        ];
        for (name, help, value) in gauges {
            let Some(value) = value else { continue };
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let start = ConstGauge::new(reading.start_time_seconds);
        start.encode(encoder.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds",
            None,
            start.metric_type(),
        )?)?;
        Ok(())
    }
}

/// Reads `/proc/self/stat`, `/proc/stat` and `/proc/self/fd`; `None` if any cannot be read.
pub(crate) fn read() -> Option<Reading> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
    let ticks = f64::from(u32::try_from(rustix::param::clock_ticks_per_second()).ok()?);
    let page = i64::try_from(rustix::param::page_size()).ok()?;
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    parse(&stat, &boot, ticks, page).map(|mut reading| {
        reading.open_fds = i64::try_from(open_fds).unwrap_or(i64::MAX);
        reading.max_fds = limit.and_then(|limit| i64::try_from(limit).ok());
        reading
    })
}

/// The numbers in `/proc/self/stat` (`stat`) and the boot time in `/proc/stat` (`boot`), with `ticks`
/// clock ticks a second and pages of `page` bytes.
fn parse(stat: &str, boot: &str, ticks: f64, page: i64) -> Option<Reading> {
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `fields[0]` is field 3 (the state): field N is `fields[N - 3]`.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let (utime, stime, starttime) = (field(14)?, field(15)?, field(22)?);
    let (vsize, rss) = (field(23)?, field(24)?);
    let btime: u64 = boot
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    #[allow(
        clippy::cast_precision_loss,
        reason = "tick counts and seconds since 1970 fit a double's 52 bits for millions of years"
    )]
    let (cpu_seconds, start_time_seconds) = (
        (utime + stime) as f64 / ticks,
        btime as f64 + starttime as f64 / ticks,
    );
    Some(Reading {
        cpu_seconds,
        resident_bytes: i64::try_from(rss).ok()?.saturating_mul(page),
        virtual_bytes: i64::try_from(vsize).ok()?,
        start_time_seconds,
        open_fds: 0,
        max_fds: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_is_read_field_by_field() {
        // A real line's shape, with a command name holding a space and a parenthesis.
        let stat = "4242 (booty (x) y) S 1 4242 4242 0 -1 4194560 1500 0 0 0 250 50 0 0 20 0 7 0 \
                    123400 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let boot = "cpu  1 2 3\nbtime 1700000000\nprocesses 5\n";
        let reading = parse(stat, boot, 100.0, 4096).unwrap();
        assert!((reading.cpu_seconds - 3.0).abs() < 1e-9);
        assert!((reading.start_time_seconds - 1_700_001_234.0).abs() < 1e-6);
        assert_eq!(reading.resident_bytes, 2560 * 4096);
        assert_eq!(reading.virtual_bytes, 104_857_600);
        assert_eq!(parse("garbage", boot, 100.0, 4096), None);
        assert_eq!(parse(stat, "no boot time", 100.0, 4096), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_can_be_read() {
        let reading = read().unwrap();
        assert!(reading.resident_bytes > 0);
        assert!(reading.open_fds > 0);
        assert!(reading.start_time_seconds > 1_600_000_000.0);
    }
}
