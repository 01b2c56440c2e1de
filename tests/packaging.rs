//! The deployable app and its settings, checked without Azure and without a release build.
//!
//! - `scripts/package.sh` refuses an executable that needs a newer glibc than the oldest current
//!   Functions image has (Debian 11, 2.31), and the portable release build it makes (when it is
//!   there: CI makes it first) passes that check and runs.
//! - `scripts/package.sh --binary <the debug handler> --out <temp>` must assemble the layout the
//!   Functions host expects (see shared/notes/functions-host.md): host.json naming an executable
//!   file inside the app, one folder per function holding only function.json, HTTP functions with
//!   exactly one httpTrigger in and one http out (so forwarding applies), the timer's schedule
//!   from a %SETTING%, and a zip that keeps the executable bit.
//! - Every setting the handler reads (found by scanning handler/**/*.rs for the reading helpers)
//!   must appear in local.settings.sample.json, in docs/settings.md and in the README's copy of
//!   that table; the sample must pass the handler's own settings parser.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

/// Function folders at the repository root: directories holding a function.json.
fn function_folders(root: &Path) -> BTreeSet<String> {
    std::fs::read_dir(root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("function.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

const EXPECTED_FUNCTIONS: [&str; 3] = ["function-signup", "function-approve", "function-cleanup"];

// ---------------------------------------------------------------------------------------------
// function.json rules, shared by the checks of the source tree and of the package

fn check_http_function(dir: &Path, route_prefix: &str) {
    let fj = read_json(&dir.join("function.json"));
    let bindings = fj["bindings"].as_array().expect("bindings is an array");
    assert_eq!(
        bindings.len(),
        2,
        "{}: forwarding needs exactly one httpTrigger in and one http out, got {bindings:?}",
        dir.display()
    );
    let triggers: Vec<&Value> = bindings
        .iter()
        .filter(|b| b["type"] == "httpTrigger" && b["direction"] == "in")
        .collect();
    let outs: Vec<&Value> = bindings
        .iter()
        .filter(|b| b["type"] == "http" && b["direction"] == "out")
        .collect();
    assert_eq!(triggers.len(), 1, "{}: one httpTrigger in", dir.display());
    assert_eq!(outs.len(), 1, "{}: one http out", dir.display());
    let t = triggers[0];
    assert_eq!(t["name"], "req", "{}", dir.display());
    assert_eq!(t["authLevel"], "anonymous", "{}", dir.display());
    let methods: BTreeSet<String> = t["methods"]
        .as_array()
        .expect("methods is an array")
        .iter()
        .map(|m| m.as_str().unwrap().to_ascii_lowercase())
        .collect();
    for m in ["get", "post", "head"] {
        assert!(
            methods.contains(m),
            "{}: method {m} missing from {methods:?}",
            dir.display()
        );
    }
    let route = t["route"].as_str().expect("route");
    assert_eq!(
        route,
        format!("{route_prefix}/{{*rest}}"),
        "{}",
        dir.display()
    );
    assert_eq!(outs[0]["name"], "res", "{}", dir.display());
}

fn check_timer_function(dir: &Path) -> String {
    let fj = read_json(&dir.join("function.json"));
    let bindings = fj["bindings"].as_array().expect("bindings is an array");
    assert_eq!(
        bindings.len(),
        1,
        "{}: the timer has one binding",
        dir.display()
    );
    let b = &bindings[0];
    assert_eq!(b["type"], "timerTrigger");
    assert_eq!(b["direction"], "in");
    assert_eq!(b["name"], "timer", "the handler reads Data.timer");
    assert_eq!(b["useMonitor"], true);
    assert!(
        b.get("runOnStartup").is_none() || b["runOnStartup"] == false,
        "runOnStartup must stay false in production"
    );
    let schedule = b["schedule"].as_str().expect("schedule");
    let setting = schedule
        .strip_prefix('%')
        .and_then(|s| s.strip_suffix('%'))
        .unwrap_or_else(|| {
            panic!("the schedule must come from an app setting (%NAME%), got {schedule:?}")
        });
    assert!(
        is_setting_name(setting),
        "bad setting name in schedule: {setting:?}"
    );
    setting.to_string()
}

fn check_host_json(host: &Value) -> String {
    assert_eq!(host["version"], "2.0");
    assert!(
        host.get("extensionBundle").is_none(),
        "HTTP and timer are built in: no extensionBundle"
    );
    assert_eq!(host["extensions"]["http"]["routePrefix"], "api");
    let handler = &host["customHandler"];
    assert_eq!(handler["enableForwardingHttpRequest"], true);
    let timeout = host["functionTimeout"]
        .as_str()
        .expect("functionTimeout is set");
    let parts: Vec<u32> = timeout
        .split(':')
        .map(|p| p.parse().expect("hh:mm:ss"))
        .collect();
    assert_eq!(parts.len(), 3, "functionTimeout is hh:mm:ss");
    assert!(
        parts[0] * 3600 + parts[1] * 60 + parts[2] <= 600,
        "the cleanup checkpoints; 10 minutes at most"
    );
    let exe = handler["description"]["defaultExecutablePath"]
        .as_str()
        .expect("defaultExecutablePath")
        .to_string();
    assert!(
        !exe.is_empty() && !exe.starts_with('/') && !exe.split('/').any(|p| p == ".."),
        "defaultExecutablePath must be a path inside the app, got {exe:?}"
    );
    exe
}

#[test]
fn source_tree_has_the_host_layout() {
    let root = repo();
    check_host_json(&read_json(&root.join("host.json")));
    let folders = function_folders(&root);
    for f in EXPECTED_FUNCTIONS {
        assert!(
            folders.contains(f),
            "missing function folder {f}; found {folders:?}"
        );
    }
    check_http_function(&root.join("function-signup"), "signup");
    check_http_function(&root.join("function-approve"), "approve");
    assert_eq!(
        check_timer_function(&root.join("function-cleanup")),
        "CLEANUP_SCHEDULE"
    );
}

// ---------------------------------------------------------------------------------------------
// The package

/// Entries of a zip file: name -> Unix mode (from the central directory's external attributes).
fn zip_entries(bytes: &[u8]) -> BTreeMap<String, u32> {
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u32_at =
        |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    let floor = bytes.len().saturating_sub(22 + 65_535);
    let eocd = (floor..=bytes.len().saturating_sub(22))
        .rev()
        .find(|&o| u32_at(o) == 0x0605_4b50)
        .expect("zip end-of-central-directory record");
    let count = u16_at(eocd + 10);
    let mut at = u32_at(eocd + 16) as usize;
    let mut entries = BTreeMap::new();
    for _ in 0..count {
        assert_eq!(u32_at(at), 0x0201_4b50, "central directory entry signature");
        let name_len = u16_at(at + 28);
        let extra_len = u16_at(at + 30);
        let comment_len = u16_at(at + 32);
        let external = u32_at(at + 38);
        let name = String::from_utf8_lossy(&bytes[at + 46..at + 46 + name_len]).into_owned();
        entries.insert(name, external >> 16);
        at += 46 + name_len + extra_len + comment_len;
    }
    entries
}

#[cfg(unix)]
fn run_package(args: &[&str]) -> std::process::Output {
    run_package_with(args, &[])
}

#[cfg(unix)]
fn run_package_with(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new("bash")
        .arg(repo().join("scripts/package.sh"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("bash runs scripts/package.sh")
}

/// The oldest glibc of the current Linux Functions images (Debian 11).
const OLDEST_IMAGE_GLIBC: [u32; 2] = [2, 31];

/// The newest `GLIBC_x.y` symbol version an executable requires, read with objdump (package.sh
/// uses readelf, so the two agree only if both read the file right); `None` for a static binary.
fn newest_glibc_needed(binary: &Path) -> Option<Vec<u32>> {
    let out = Command::new("objdump")
        .arg("-T")
        .arg(binary)
        .output()
        .expect("objdump runs (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.match_indices("GLIBC_")
        .filter_map(|(i, _)| {
            let rest = &text[i + "GLIBC_".len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let version: Vec<u32> = rest[..end]
                .trim_end_matches('.')
                .split('.')
                .map(|n| n.parse().ok())
                .collect::<Option<_>>()?;
            (!version.is_empty()).then_some(version)
        })
        .max()
}

fn dotted(version: &[u32]) -> String {
    version
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(unix)]
#[test]
fn package_script_assembles_a_deployable_app() {
    use std::os::unix::fs::PermissionsExt;

    let tmp = tempfile::tempdir().unwrap();
    let binary = env!("CARGO_BIN_EXE_handler");
    // The debug build is linked against this machine's glibc; the layout is what is checked
    // here, so the glibc limit is raised to what it needs (the check has its own tests below).
    let needs = newest_glibc_needed(Path::new(binary)).map_or("2.17".to_string(), |v| dotted(&v));
    let out = run_package_with(
        &["--binary", binary, "--out", tmp.path().to_str().unwrap()],
        &[("MAX_GLIBC", &needs)],
    );
    assert!(
        out.status.success(),
        "package.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let app = tmp.path().join("app");

    // host.json and the executable it names.
    let exe = check_host_json(&read_json(&app.join("host.json")));
    let exe_path = app.join(&exe);
    let meta =
        std::fs::metadata(&exe_path).unwrap_or_else(|e| panic!("{exe} is not in the app: {e}"));
    assert!(meta.is_file());
    assert_ne!(
        meta.permissions().mode() & 0o111,
        0,
        "{exe} must be executable"
    );
    assert_eq!(
        meta.len(),
        std::fs::metadata(binary).unwrap().len(),
        "{exe} is the given binary"
    );

    // The function folders: the same set as in the source tree, each with only function.json.
    let packaged = function_folders(&app);
    assert_eq!(
        packaged,
        function_folders(&repo()),
        "every function folder is packaged"
    );
    for f in EXPECTED_FUNCTIONS {
        assert!(packaged.contains(f), "missing {f}");
    }
    for f in &packaged {
        let files: Vec<String> = std::fs::read_dir(app.join(f))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, ["function.json"], "{f} holds only function.json");
    }
    check_http_function(&app.join("function-signup"), "signup");
    check_http_function(&app.join("function-approve"), "approve");
    check_timer_function(&app.join("function-cleanup"));

    // Nothing else at the app root.
    let mut top: BTreeSet<String> = std::fs::read_dir(&app)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.remove("host.json");
    top.remove(exe.split('/').next().unwrap());
    assert_eq!(
        top, packaged,
        "the app root holds host.json, the handler and the function folders"
    );

    // The zip: same files, executable bit kept.
    let zip = std::fs::read(tmp.path().join("app.zip")).expect("app.zip is written");
    let entries = zip_entries(&zip);
    assert!(entries.contains_key("host.json"), "{entries:?}");
    for f in &packaged {
        assert!(
            entries.contains_key(&format!("{f}/function.json")),
            "{f}/function.json in the zip"
        );
    }
    let mode = *entries
        .get(&exe)
        .unwrap_or_else(|| panic!("{exe} in the zip: {entries:?}"));
    assert_ne!(
        mode & 0o111,
        0,
        "{exe} keeps its executable bit in the zip (mode {mode:o})"
    );
}

#[cfg(unix)]
#[test]
fn package_script_refuses_what_the_host_cannot_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().to_str().unwrap();
    let missing = tmp.path().join("no-such-handler");
    let out = run_package(&[
        "--binary",
        missing.to_str().unwrap(),
        "--out",
        out_dir,
        "--no-zip",
    ]);
    assert!(!out.status.success(), "a missing binary must fail");

    // Not an executable at all (a JSON file).
    let host_json = repo().join("host.json");
    let out = run_package(&[
        "--binary",
        host_json.to_str().unwrap(),
        "--out",
        out_dir,
        "--no-zip",
    ]);
    assert!(!out.status.success(), "a non-ELF file must fail");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Linux (ELF) executable"));

    let out = run_package(&["--bogus"]);
    assert!(!out.status.success(), "unknown options must fail");
}

/// The check that keeps a non-portable binary out of the package: a binary linked against a
/// newer glibc than Debian 11's is refused, with the version it needs and the limit.
#[cfg(unix)]
#[test]
fn package_script_refuses_a_binary_that_needs_a_newer_glibc_than_debian_11() {
    let tmp = tempfile::tempdir().unwrap();
    let binary = env!("CARGO_BIN_EXE_handler");
    let needs = newest_glibc_needed(Path::new(binary)).expect("the debug build links glibc");
    let out = run_package(&[
        "--binary",
        binary,
        "--out",
        tmp.path().to_str().unwrap(),
        "--no-zip",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if needs.as_slice() > OLDEST_IMAGE_GLIBC.as_slice() {
        assert!(
            !out.status.success(),
            "a glibc {} binary was packaged:\n{stderr}",
            dotted(&needs)
        );
        assert!(
            stderr.contains(&format!("needs glibc {}", dotted(&needs))) && stderr.contains("2.31"),
            "{stderr}"
        );
        assert!(!tmp.path().join("app").exists(), "nothing is assembled");
    } else {
        // A build machine as old as Debian 11 makes a portable debug build too.
        assert!(out.status.success(), "{stderr}");
    }
    // With the limit raised to what the binary needs, the same binary passes: the verdict
    // follows the version, not the file.
    let out = run_package_with(
        &[
            "--binary",
            binary,
            "--out",
            tmp.path().to_str().unwrap(),
            "--no-zip",
        ],
        &[("MAX_GLIBC", &dotted(&needs))],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The release build `scripts/package.sh` makes (with cargo-zigbuild, against glibc 2.17) runs
/// on every current Functions image. That build takes minutes, so this test checks the one
/// that is there: CI makes it before the tests (.ci/run), and there it must exist.
#[cfg(unix)]
#[test]
fn the_packaged_release_build_runs_on_every_functions_image() {
    let built = repo().join("target/x86_64-unknown-linux-gnu/release/handler");
    if !built.is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI builds {} with scripts/package.sh before the tests",
            built.display()
        );
        eprintln!(
            "no portable build at {}: run scripts/package.sh to check it",
            built.display()
        );
        return;
    }
    let needs = newest_glibc_needed(&built);
    if let Some(needs) = &needs {
        assert!(
            needs.as_slice() <= OLDEST_IMAGE_GLIBC.as_slice(),
            "the release build needs glibc {}",
            dotted(needs)
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = run_package(&[
        "--binary",
        built.to_str().unwrap(),
        "--out",
        tmp.path().to_str().unwrap(),
        "--no-zip",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("glibc check passed"), "{stderr}");
    let version = Command::new(tmp.path().join("app/handler"))
        .arg("--version")
        .output()
        .expect("the packaged handler runs here");
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("handler "));
}

// ---------------------------------------------------------------------------------------------
// Settings

fn is_setting_name(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn ends_with_ident(text: &str) -> (&str, &str) {
    let start = text
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map(|i| i + 1)
        .unwrap_or(0);
    (&text[..start], &text[start..])
}

/// The receiver or first argument is the settings environment: `env`, `self.env`, `&env`, `base_env`.
fn is_env_ident(ident: &str) -> bool {
    ident == "env" || ident.ends_with("_env")
}

/// The string literals of a piece of Rust: (byte offset of the opening quote, contents).
/// A small lexer, so comments, char literals like '"', escapes and raw strings do not confuse
/// what is code and what is text.
fn string_literals(code: &str) -> Vec<(usize, String)> {
    let b = code.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i = code[i..].find('\n').map_or(b.len(), |n| i + n);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = code[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
            }
            b'r' if (i == 0
                || !ident(b[i - 1])
                || (b[i - 1] == b'b' && (i < 2 || !ident(b[i - 2]))))
                && matches!(b.get(i + 1), Some(b'"') | Some(b'#')) =>
            {
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let open = i + 1 + hashes;
                let close = format!("\"{}", "#".repeat(hashes));
                let end = code[open + 1..]
                    .find(&close)
                    .map_or(b.len(), |n| open + 1 + n);
                out.push((open, code[open + 1..end.min(b.len())].to_string()));
                i = end + close.len();
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                out.push((i, code[i + 1..j.min(b.len())].to_string()));
                i = j + 1;
            }
            b'\'' => {
                if b.get(i + 1) == Some(&b'\\') {
                    // '\n', '\'', '\u{..}': up to the next quote after the escaped character
                    i = code
                        .get(i + 3..)
                        .and_then(|r| r.find('\''))
                        .map_or(b.len(), |n| i + 3 + n + 1);
                } else {
                    let width = code[i + 1..].chars().next().map_or(1, char::len_utf8);
                    if b.get(i + 1 + width) == Some(&b'\'') {
                        i += width + 2; // a char literal such as '"'
                    } else {
                        i += 1; // a lifetime
                    }
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// Closures that read the setting named by their first parameter, e.g.
/// `let days = |name: &'static str, default: u32| { parse_number(env, name, ..) .. };`, so that
/// `days("CLEANUP_GRACE_DAYS", 14)` counts as a read too.
fn reading_wrappers(code: &str) -> BTreeSet<String> {
    let squeeze = |t: &str| t.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let mut wrappers = BTreeSet::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("let ") {
        let start = from + at + 4;
        from = start;
        let rest = &code[start..];
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..name_len];
        let after = rest[name_len..].trim_start();
        let Some(after) = after.strip_prefix('=') else {
            continue;
        };
        let after = after.trim_start();
        let after = after.strip_prefix("move").unwrap_or(after).trim_start();
        let Some(params) = after.strip_prefix('|') else {
            continue;
        };
        let Some(close) = params.find('|') else {
            continue;
        };
        let first = params[..close]
            .split([',', ':'])
            .next()
            .unwrap_or("")
            .trim();
        if first.is_empty() || name.is_empty() {
            continue;
        }
        // The body: up to the `;` that ends the `let`, at bracket depth 0.
        let body_text = &params[close + 1..];
        let mut depth = 0i32;
        let mut end = body_text.len();
        for (i, c) in body_text.char_indices() {
            match c {
                '(' | '{' | '[' => depth += 1,
                ')' | '}' | ']' => depth -= 1,
                ';' if depth <= 0 => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let body = squeeze(&body_text[..end]);
        if body.contains(&format!("env.get({first})"))
            || body.contains(&format!("(env,{first},"))
            || body.contains(&format!("(&env,{first},"))
            || body.contains(&format!("(env,{first})"))
        {
            wrappers.insert(name.to_string());
        }
    }
    wrappers
}

/// Setting names a piece of Rust reads: the literal in `env.get("NAME")`, the second argument of
/// `required(env, "NAME", ..)`, of every `parse_*(env, "NAME", ..)` and of any other helper
/// called with the environment first, and the first argument of a closure that passes its first
/// parameter to one of those (see `reading_wrappers`).
fn setting_reads(code: &str) -> BTreeSet<String> {
    let wrappers = reading_wrappers(code);
    let mut found = BTreeSet::new();
    for (start, literal) in string_literals(code) {
        if !is_setting_name(&literal) {
            continue;
        }
        let before = code[..start].trim_end();
        if let Some(b) = before.strip_suffix('(') {
            let b = b.trim_end();
            if let Some(b) = b.strip_suffix(".get") {
                // env.get("NAME")
                let (_, receiver) = ends_with_ident(b.trim_end());
                if is_env_ident(receiver) {
                    found.insert(literal);
                }
            } else {
                // days("NAME", ..) where `days` wraps a reading helper
                let (b, function) = ends_with_ident(b);
                if wrappers.contains(function) && !b.ends_with('.') {
                    found.insert(literal);
                }
            }
        } else if let Some(b) = before.strip_suffix(',') {
            // helper(env, "NAME", ...)
            let (b, first_arg) = ends_with_ident(b.trim_end());
            let b = b.trim_end();
            let b = b.strip_suffix('&').unwrap_or(b).trim_end();
            if is_env_ident(first_arg) {
                if let Some(b) = b.strip_suffix('(') {
                    let (_, function) = ends_with_ident(b.trim_end());
                    if !function.is_empty() {
                        found.insert(literal);
                    }
                }
            }
        }
    }
    found
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// Every setting the handler reads, plus the %SETTINGS% the function.json files use.
fn settings_in_use() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&repo().join("handler"), &mut files);
    let mut names = BTreeSet::new();
    for f in files {
        names.extend(setting_reads(&std::fs::read_to_string(&f).unwrap()));
    }
    for folder in function_folders(&repo()) {
        let text = std::fs::read_to_string(repo().join(folder).join("function.json")).unwrap();
        for (i, piece) in text.split('%').enumerate() {
            if i % 2 == 1 && is_setting_name(piece) {
                names.insert(piece.to_string());
            }
        }
    }
    names
}

/// Names in the first column of every markdown table whose header is `| Setting | Default | Meaning |`.
fn documented_settings(markdown: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_table = false;
    for line in markdown.lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() >= 3
            && cells[0] == "Setting"
            && cells[1] == "Default"
            && cells[2] == "Meaning"
        {
            in_table = true;
            continue;
        }
        if in_table {
            let first = cells[0].trim_matches('`');
            if is_setting_name(first) {
                names.insert(first.to_string());
            }
        }
    }
    names
}

/// Set by the Functions host or the platform: documented, but not in local.settings.json.
const HOST_SET: [&str; 3] = [
    "FUNCTIONS_CUSTOMHANDLER_PORT",
    "FUNCTIONS_HTTPWORKER_PORT",
    "WEBSITE_SITE_NAME",
];

#[test]
fn the_settings_scanner_finds_each_reading_helper() {
    let code = r##"
        let a = env.get("ALPHA_ONE").unwrap_or("x");
        let b = required(env, "BRAVO",
            "what");
        let c = parse_number(&env, "CHARLIE_3", 30, "n")?;
        let d = parse_bool( env , "DELTA", false)?;
        let e = self.env.get("ECHO");
        // env.get("COMMENTED_OUT")
        let f = invalid("NOT_A_READ", "x");
        let g = parts.get("accountname");
        let h = other.get("NOT_ENV");
        let i = std::env::var("NOT_OURS");
        let j = parse_url(env, "AzureWebJobsStorage", None);
        let k = match c { '"' => "&quot;", '\'' => "&#39;", _ => "" }; let l = env.get("FOXTROT");
        /* env.get("IN_BLOCK_COMMENT") */
        let m = r#"env.get("IN_RAW_STRING")"#; let n = env.get("GOLF");
        let o = "escaped \" quote"; let p = env.get("HOTEL");
        fn q<'a>(x: &'a str) {} let r = env.get("INDIA");
        let days = |name: &'static str, default: u32| {
            let v: u32 = parse_number(env, name, default, "days")?;
            if v > 9 { return Err(invalid(name, "x")); }
            Ok(v)
        };
        let s = days(
            "JULIET_DAYS",
            3,
        )?;
        let t = read_setting(env, "KILO");
        let not_a_wrapper = |name: &str| invalid(name, "x");
        let u = not_a_wrapper("NOT_A_READ_EITHER");
    "##;
    let found: Vec<String> = setting_reads(code).into_iter().collect();
    assert_eq!(
        found,
        [
            "ALPHA_ONE",
            "AzureWebJobsStorage",
            "BRAVO",
            "CHARLIE_3",
            "DELTA",
            "ECHO",
            "FOXTROT",
            "GOLF",
            "HOTEL",
            "INDIA",
            "JULIET_DAYS",
            "KILO"
        ]
    );

    // And on the real code, names we know are read in each way.
    let all = settings_in_use();
    for known in [
        "PORTAL_TABLE_PREFIX",    // env.get
        "GRAPH_TENANT_ID",        // required(env, ..)
        "PORTAL_SIGNING_KEYS",    // required(env, ..) on its own line
        "GRAPH_SIGN_IN_ACTIVITY", // parse_bool(env, ..)
        "PORTAL_RATE_LIMIT_IP",   // parse_number(env, ..)
        "GRAPH_BASE_URL",         // parse_url(env, ..)
        "AzureWebJobsStorage",
        "CLEANUP_SCHEDULE", // function.json
    ] {
        assert!(all.contains(known), "scanner missed {known}; found {all:?}");
    }
}

#[test]
fn every_setting_the_code_reads_is_in_the_sample_and_the_settings_tables() {
    let names = settings_in_use();

    // local.settings.sample.json
    let sample = read_json(&repo().join("local.settings.sample.json"));
    assert_eq!(sample["IsEncrypted"], false);
    let values = sample["Values"].as_object().expect("Values is an object");
    assert_eq!(values["FUNCTIONS_WORKER_RUNTIME"], "custom");
    assert_eq!(values["AzureWebJobsStorage"], "UseDevelopmentStorage=true");
    for (k, v) in values {
        assert!(v.is_string(), "{k}: local settings values are strings");
    }
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !HOST_SET.contains(&n.as_str()) && !values.contains_key(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "local.settings.sample.json lacks {missing:?}"
    );
    for host_set in HOST_SET {
        assert!(
            !values.contains_key(host_set),
            "{host_set} is set by the host, not in local settings"
        );
    }

    // The settings tables: docs/settings.md always; the README once it has its copy.
    let mut tables = vec![repo().join("docs/settings.md")];
    let readme = repo().join("README.md");
    if readme.is_file() {
        tables.push(readme);
    }
    for table in tables {
        let documented = documented_settings(&std::fs::read_to_string(&table).unwrap());
        let missing: Vec<&String> = names.iter().filter(|n| !documented.contains(*n)).collect();
        assert!(
            missing.is_empty(),
            "{} has no row for {missing:?} in a `| Setting | Default | Meaning |` table",
            table.display()
        );
    }
}

/// The sample is not just complete but usable: the real handler, given exactly its values (and a
/// port, as the host would), starts and answers the host's readiness probe.
#[test]
fn the_sample_settings_start_the_handler() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    let sample = read_json(&repo().join("local.settings.sample.json"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_handler"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in sample["Values"].as_object().unwrap() {
        cmd.env(k, v.as_str().unwrap());
    }
    let mut child = cmd.spawn().expect("the handler starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    let answered = loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("the handler exited ({status}) with the sample settings:\n{err}");
        }
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            let mut head = [0u8; 12];
            if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 ") {
                break true;
            }
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(answered, "the handler did not answer GET / within 30 s");
}

// ---------------------------------------------------------------------------------------------
// The azd preprovision hook

/// Runs scripts/azd/preprovision.sh with stand-ins for `azd` (its environment kept in a file)
/// and `az` (signed in unless told otherwise; `az keyvault show-deleted` finds the vaults named
/// in DELETED_VAULTS). Returns the hook's output and the azd environment afterwards.
#[cfg(unix)]
fn preprovision(
    store: &Path,
    deleted_vaults: &str,
    signed_in: bool,
) -> (std::process::Output, BTreeMap<String, String>) {
    let bin = tempfile::tempdir().unwrap();
    common::stand_in_tool(
        bin.path(),
        "azd",
        r#"#!/bin/sh
case "$1 $2" in
  "env get-value")
    v="$(grep "^$3=" "$AZD_STORE" | head -n1 | cut -d= -f2-)"
    if [ -z "$v" ]; then echo "ERROR: key '$3' not found in the environment values" >&2; exit 1; fi
    printf '%s\n' "$v" ;;
  "env set")
    grep -v "^$3=" "$AZD_STORE" > "$AZD_STORE.new" || true
    mv "$AZD_STORE.new" "$AZD_STORE"
    printf '%s=%s\n' "$3" "$4" >> "$AZD_STORE" ;;
  *) echo "azd: unexpected $*" >&2; exit 1 ;;
esac
"#,
    );
    common::stand_in_tool(
        bin.path(),
        "az",
        r#"#!/bin/sh
case "$*" in
  *'account show'*) [ "$AZ_SIGNED_IN" = yes ] || { echo "Please run 'az login'" >&2; exit 1; }; echo '{}' ;;
  *'keyvault show-deleted'*)
    while [ $# -gt 0 ]; do [ "$1" = --name ] && name="$2"; shift; done
    for d in $DELETED_VAULTS; do [ "$d" = "$name" ] && { echo '{"name":"'"$name"'"}'; exit 0; }; done
    echo "ERROR: (DeletedVaultNotFound) Deleted vault $name was not found" >&2; exit 3 ;;
  *) echo "az: unexpected $*" >&2; exit 1 ;;
esac
"#,
    );
    let out = Command::new("sh")
        .arg(repo().join("scripts/azd/preprovision.sh"))
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.path().display(),
                std::env::var("PATH").unwrap()
            ),
        )
        .env("AZD_STORE", store)
        .env("DELETED_VAULTS", deleted_vaults)
        .env("AZ_SIGNED_IN", if signed_in { "yes" } else { "no" })
        .output()
        .expect("sh runs the hook");
    let values = std::fs::read_to_string(store)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (out, values)
}

/// A new azd environment gets a random signing key and its own Key Vault name; later runs keep
/// both; after `azd down` (the vault deleted, its name kept under purge protection) the next
/// provision gets a new vault name, and the old vault is named for recovery.
#[cfg(unix)]
#[test]
fn preprovision_keeps_the_key_and_moves_off_a_deleted_key_vaults_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("env");
    std::fs::write(&store, "AZURE_SUBSCRIPTION_ID=sub-1\n").unwrap();

    let (out, first) = preprovision(&store, "", true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = first["PORTAL_SIGNING_KEYS"].clone();
    let secret = key.strip_prefix("k1:").expect("kid k1");
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, secret).unwrap();
    assert_eq!(bytes.len(), 32);
    let vault = first["PORTAL_KEY_VAULT_NAME"].clone();
    let suffix = vault
        .strip_prefix("kv-signup-")
        .expect("kv-<prefix>-<random>");
    assert!(
        suffix.len() == 10
            && suffix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        "{vault}"
    );

    let (out, again) = preprovision(&store, "", true);
    assert!(out.status.success());
    assert_eq!(again, first, "nothing changes while the vault stands");

    let (out, after_down) = preprovision(&store, &vault, true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let renamed = &after_down["PORTAL_KEY_VAULT_NAME"];
    assert_ne!(renamed, &vault);
    assert!(renamed.starts_with("kv-signup-"), "{renamed}");
    assert!(
        stdout.contains(&format!("az keyvault recover --name {vault}")),
        "{stdout}"
    );
    assert_eq!(after_down["PORTAL_SIGNING_KEYS"], key, "the key is kept");

    // An environment provisioned before the hook chose names keeps the template's name until
    // that vault is found deleted.
    std::fs::write(
        &store,
        "KEY_VAULT_NAME=kv-signup-abcdefghijklm\nPORTAL_SIGNING_KEYS=k1:x\n",
    )
    .unwrap();
    let (_, older) = preprovision(&store, "", true);
    assert!(!older.contains_key("PORTAL_KEY_VAULT_NAME"), "{older:?}");
    let (out, older) = preprovision(&store, "kv-signup-abcdefghijklm", false);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cannot check"),
        "without az login it says it could not look"
    );
    assert!(!older.contains_key("PORTAL_KEY_VAULT_NAME"));
    let (_, older) = preprovision(&store, "kv-signup-abcdefghijklm", true);
    assert!(older["PORTAL_KEY_VAULT_NAME"].starts_with("kv-signup-"));
}
