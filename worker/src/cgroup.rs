//! The worker's default slot count from its cgroup's CPU and memory limits
//! (a Kubernetes pod's `resources.limits`, a systemd unit's CPUQuota /
//! MemoryMax): one Ferry capacity unit per vCPU and per
//! [`MEMORY_PER_UNIT`], whichever allows fewer (docs/capacity.md). Without
//! a limit the worker runs one slot, as it always has: on a shared host
//! the operator says how much it may take.

/// The memory one capacity unit is sized for.
pub const MEMORY_PER_UNIT: u64 = 1 << 30;

/// Limits at or above this are "no limit" (cgroup v1 writes 2^63 rounded
/// down to a page).
const UNLIMITED: u64 = 1 << 60;

/// Slots for this process's cgroup limits: 1 when it has none.
pub fn default_slots() -> u32 {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let read = |path: String| std::fs::read_to_string(path).ok();
    let mut cpu = None;
    let mut memory = None;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let path = path.trim_end_matches('/');
        if controllers.is_empty() {
            // cgroup v2: one hierarchy.
            cpu = cpu.or_else(|| read(format!("/sys/fs/cgroup{path}/cpu.max")).and_then(|s| cpu_v2(&s)));
            memory = memory.or_else(|| read(format!("/sys/fs/cgroup{path}/memory.max")).and_then(|s| bytes(&s)));
        } else {
            for c in controllers.split(',') {
                let dir = format!("/sys/fs/cgroup/{c}{path}");
                match c {
                    "cpu" => {
                        cpu = cpu.or_else(|| {
                            let quota = read(format!("{dir}/cpu.cfs_quota_us"))?;
                            let period = read(format!("{dir}/cpu.cfs_period_us"))?;
                            cpu_v1(&quota, &period)
                        })
                    }
                    "memory" => {
                        memory = memory.or_else(|| read(format!("{dir}/memory.limit_in_bytes")).and_then(|s| bytes(&s)))
                    }
                    _ => {}
                }
            }
        }
    }
    slots(cpu, memory)
}

/// Slots for a CPU limit (vCPUs) and a memory limit (bytes).
fn slots(cpu: Option<f64>, memory: Option<u64>) -> u32 {
    let by_cpu = cpu.map(|c| c.floor().max(1.0) as u32);
    let by_memory = memory.map(|m| ((m / MEMORY_PER_UNIT) as u32).max(1));
    match (by_cpu, by_memory) {
        (None, None) => 1,
        (Some(c), None) => c,
        (None, Some(m)) => m,
        (Some(c), Some(m)) => c.min(m),
    }
}

/// `cpu.max`: "QUOTA PERIOD" or "max PERIOD".
fn cpu_v2(s: &str) -> Option<f64> {
    let mut it = s.split_whitespace();
    let quota: f64 = it.next()?.parse().ok()?;
    let period: f64 = it.next()?.parse().ok()?;
    (period > 0.0).then(|| quota / period)
}

/// `cpu.cfs_quota_us` (-1: none) and `cpu.cfs_period_us`.
fn cpu_v1(quota: &str, period: &str) -> Option<f64> {
    let quota: f64 = quota.trim().parse().ok()?;
    let period: f64 = period.trim().parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// A memory limit in bytes; "max" or a huge value is none.
fn bytes(s: &str) -> Option<u64> {
    s.trim().parse::<u64>().ok().filter(|b| *b < UNLIMITED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_become_slots() {
        assert_eq!(slots(None, None), 1);
        assert_eq!(slots(cpu_v2("400000 100000"), None), 4);
        assert_eq!(slots(cpu_v2("max 100000"), None), 1);
        assert_eq!(slots(cpu_v2("50000 100000"), None), 1, "half a CPU is still one slot");
        assert_eq!(slots(cpu_v1("-1", "100000"), bytes("9223372036854771712")), 1);
        assert_eq!(slots(cpu_v1("300000", "100000"), bytes(&(2u64 << 30).to_string())), 2);
        assert_eq!(slots(None, bytes("max")), 1);
        assert_eq!(slots(None, bytes(&(8u64 << 30).to_string())), 8);
    }
}
