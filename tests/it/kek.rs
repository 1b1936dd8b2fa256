//! `customer-registry kek add`: the file of key-encryption keys, as an operator makes it.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn kek_add(args: &[&str], env: &[(&str, &std::path::Path)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_customer-registry"));
    command.arg("kek").arg("add").args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the binary runs")
}

#[test]
fn kek_add_appends_a_kek_to_a_private_file_and_prints_only_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keks.jsonl");
    let first = kek_add(&["--file", file.to_str().unwrap()], &[]);
    assert!(first.status.success(), "{first:?}");
    let first_id = String::from_utf8(first.stdout).unwrap().trim().to_owned();
    assert!(first_id.starts_with("kek-"), "{first_id}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // REGISTRY_KEK_FILE names the file too; a second KEK comes after the first.
    let second = kek_add(&[], &[("REGISTRY_KEK_FILE", &file)]);
    assert!(second.status.success(), "{second:?}");
    let second_id = String::from_utf8(second.stdout).unwrap().trim().to_owned();
    let text = std::fs::read_to_string(&file).unwrap();
    let ids: Vec<String> = text
        .lines()
        .map(|line| {
            let kek: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(kek["key"].as_str().unwrap().len(), 64, "{line}");
            kek["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids, [first_id, second_id]);

    // A file others may read is refused, saying why and what to do.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = kek_add(&["--file", file.to_str().unwrap()], &[]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8(refused.stderr).unwrap();
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        text,
        "nothing appended"
    );
}
