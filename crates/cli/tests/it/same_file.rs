//! `decode -o F` where F is the input (by any name): refused before anything is written, the
//! capture left intact.

use std::process::{Command, Stdio};

use crate::support::{args, bin, run, stderr};

#[tokio::test]
async fn decode_refuses_to_write_over_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.tsv");
    // A valid Begin and Commit (protocol 1).
    let capture = format!(
        "0/10\t5\t\\x42{}\n0/20\t5\t\\x43{}\n",
        "00".repeat(20),
        "00".repeat(25)
    );
    std::fs::write(&path, &capture).unwrap();
    let link = dir.path().join("hard-link.tsv");
    std::fs::hard_link(&path, &link).unwrap();
    let symlink = dir.path().join("symlink.tsv");
    std::os::unix::fs::symlink(&path, &symlink).unwrap();
    let input = path.to_string_lossy().into_owned();
    for output in [&path, &link, &symlink] {
        let output = output.to_string_lossy().into_owned();
        let refused = run(args(&["decode", "--proto", "1", &input, "-o", &output])).await;
        assert_eq!(
            refused.status.code(),
            Some(2),
            "-o {output}: {}",
            stderr(&refused)
        );
        assert!(
            stderr(&refused).contains("is the input"),
            "-o {output}: {}",
            stderr(&refused)
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            capture,
            "-o {output}: the capture is intact"
        );
    }
    // The same through standard input.
    let stdin = std::fs::File::open(&path).unwrap();
    let refused = tokio::task::spawn_blocking(move || {
        Command::new(bin())
            .args(["decode", "--proto", "1", "-", "-o", &input])
            .stdin(Stdio::from(stdin))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        refused.status.code(),
        Some(2),
        "stdin: {}",
        stderr(&refused)
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), capture, "stdin");
    // Another file is fine.
    let other = dir.path().join("decoded.jsonl");
    let other_arg = other.to_string_lossy().into_owned();
    let input = path.to_string_lossy().into_owned();
    let ok = run(args(&["decode", "--proto", "1", &input, "-o", &other_arg])).await;
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(std::fs::read_to_string(&other).unwrap().lines().count(), 2);
}
