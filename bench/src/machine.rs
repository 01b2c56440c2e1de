//! What the figures were measured on and from which source, for the report's header.

use std::path::Path;
use std::process::Command;

#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub memory: String,
    pub kernel: String,
    pub rustc: String,
    pub azurite: String,
    pub aiosmtpd: String,
    pub date: String,
    pub commit: String,
    pub load_before: String,
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").trim().to_string()
}

fn output(cmd: &str, args: &[&str], dir: &Path) -> String {
    Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| first_line(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_else(|| "unknown".into())
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

pub fn describe(repo: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into());
    let commit = output("git", &["rev-parse", "--short=12", "HEAD"], repo);
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(repo)
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    let azurite =
        std::fs::read_to_string(repo.join("tests/platform/node_modules/azurite/package.json"))
            .ok()
            .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
            .and_then(|v| v["version"].as_str().map(str::to_string))
            .unwrap_or_else(|| "unknown".into());
    let aiosmtpd = output(
        "python3",
        &["-c", "import aiosmtpd; print(aiosmtpd.__version__)"],
        repo,
    );
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        memory,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
        rustc: output("rustc", &["--version"], repo),
        azurite,
        aiosmtpd,
        date: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        commit: if dirty {
            format!("{commit} with uncommitted changes")
        } else {
            commit
        },
        load_before: load_average(),
    }
}

/// Whether an ELF file still carries a symbol table or debug info (i.e. is not stripped).
pub fn has_symbols(path: &Path) -> Option<bool> {
    let data = std::fs::read(path).ok()?;
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 {
        return None;
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let u32_at =
        |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap_or([0; 4])) as usize;
    let u64_at =
        |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap_or([0; 8])) as usize;
    let shoff = u64_at(0x28);
    let shentsize = u16_at(0x3a);
    let shnum = u16_at(0x3c);
    let shstrndx = u16_at(0x3e);
    let section = |i: usize| shoff + i * shentsize;
    if section(shnum) > data.len() || shstrndx >= shnum {
        return None;
    }
    let strtab = u64_at(section(shstrndx) + 0x18);
    let mut found = false;
    for i in 0..shnum {
        let name_off = strtab + u32_at(section(i));
        let end = data[name_off..].iter().position(|&b| b == 0)? + name_off;
        let name = &data[name_off..end];
        if name == b".symtab" || name.starts_with(b".debug_") {
            found = true;
        }
    }
    Some(found)
}

/// Waits (at most `limit`) until the machine is quiet: less than 10% of its CPU busy over
/// half a second.
pub fn settle(limit: std::time::Duration) {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        let Some((busy0, total0)) = crate::platform::machine_cpu() else {
            return;
        };
        std::thread::sleep(std::time::Duration::from_millis(500));
        let Some((busy1, total1)) = crate::platform::machine_cpu() else {
            return;
        };
        let total = (total1 - total0).as_secs_f64();
        if total > 0.0 && (busy1 - busy0).as_secs_f64() / total < 0.10 {
            return;
        }
    }
}
