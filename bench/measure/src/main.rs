//! `bench-measure PROGRAM ARGS...`: runs one consumer as its only child, waits for it, and
//! prints one JSON line with its wall time, user and system CPU seconds and peak RSS
//! (`getrusage(RUSAGE_CHILDREN)`, which covers exactly that child), plus the child's own
//! standard output (a JSON object or nothing) under `"consumer"`.

use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

/// The resource usage of this process's waited-for children.
fn children_usage() -> libc::rusage {
    // SAFETY: `rusage` is plain old data, so all-zero bytes are a valid value; getrusage
    // writes into the struct we own and has no other effect.
    #[allow(unsafe_code)]
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &raw mut usage);
        usage
    }
}

fn seconds(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("usage: bench-measure PROGRAM [ARGS...]");
        return ExitCode::from(2);
    };
    let started = Instant::now();
    let output = match Command::new(&program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
    {
        Ok(output) => output,
        Err(error) => {
            eprintln!(
                "bench-measure: cannot run {}: {error}",
                program.to_string_lossy()
            );
            return ExitCode::FAILURE;
        }
    };
    let wall = started.elapsed().as_secs_f64();
    let usage = children_usage();
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The consumer's JSON is its last line that opens an object: a profiler in front of it
    // (heaptrack) prints its own lines around it.
    let consumer = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.starts_with('{'))
        .unwrap_or("null");
    println!(
        "{{\"wall_s\":{wall:.6},\"user_s\":{:.6},\"sys_s\":{:.6},\"maxrss_kb\":{},\
         \"nvcsw\":{},\"nivcsw\":{},\"exit_code\":{},\"consumer\":{consumer}}}",
        seconds(usage.ru_utime),
        seconds(usage.ru_stime),
        usage.ru_maxrss,
        usage.ru_nvcsw,
        usage.ru_nivcsw,
        output.status.code().unwrap_or(-1),
    );
    if output.status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
