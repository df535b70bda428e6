//! The `advclust` binary's output directories (issue 12): one consistent run per `--out`,
//! refused when occupied unless `--force`, checked before any work, and a failed run that
//! leaves the earlier one intact and its partial generator where the message says.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("advclust-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn advclust(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_advclust"))
        .args(args)
        .output()
        .expect("the advclust binary runs")
}

fn evaluate(out: &Path, extra: &[&str]) -> Output {
    let out = out.to_str().unwrap();
    let mut args = vec!["evaluate", "--limit", "64", "--out", out];
    args.extend_from_slice(extra);
    advclust(&args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `advclust serve` of the embedded CC victim on a free local port, killed on drop.
struct Server {
    child: std::process::Child,
    port: u16,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_advclust"))
            .args(["serve", "--addr", &addr])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("advclust serve starts");
        for _ in 0..600 {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return Server { child, port };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("advclust serve did not listen on {addr}");
    }

    fn target(&self) -> String {
        format!("kserve+http://127.0.0.1:{}/models/victim", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn resume_with_nothing_to_resume_is_a_typed_error_before_any_work() {
    let root = scratch("resume");
    let out = root.join("run");
    let o = advclust(&["attack", "--resume", "--out", out.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("nothing to resume"), "{err}");
    assert!(err.contains(".run.checkpoint"), "{err}");
    assert_eq!(
        std::fs::read_dir(&root).unwrap().count(),
        0,
        "nothing written"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// A spent budget ends an attack normally: the run is committed, its report says why it
/// stopped, and no step that would not fit was started.
#[test]
fn a_spent_budget_is_a_normal_end() {
    let root = scratch("budget");
    let out = root.join("run");
    let o = advclust(&[
        "attack",
        "--mode",
        "nes",
        "--limit",
        "128",
        "--train-limit",
        "64",
        "--budget-calls",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["stopped"]["reason"], "budget", "{report}");
    assert!(report["training_queries"]["batch_calls"].as_u64().unwrap() <= 3);
    assert!(
        !root.join(".run.checkpoint").exists(),
        "the checkpoint is removed once the run is in --out"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn an_occupied_out_is_refused_unless_forced() {
    let root = scratch("occupied");
    let out = root.join("eval");
    let first = evaluate(&out, &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let report = std::fs::read_to_string(out.join("report.json")).unwrap();
    let again = evaluate(&out, &[]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    assert_eq!(
        std::fs::read_to_string(out.join("report.json")).unwrap(),
        report
    );
    let forced = evaluate(&out, &["--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    // Printed paths are the final ones, and nothing but the run is left beside it.
    let stdout = String::from_utf8_lossy(&forced.stdout);
    assert!(
        stdout.contains(out.join("report.json").to_str().unwrap()),
        "{stdout}"
    );
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_bad_out_is_refused_before_any_work() {
    let root = scratch("bad-out");
    let file = root.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let o = advclust(&[
        "attack",
        "--mode",
        "nes",
        "--train-limit",
        "64",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("is a file"), "{err}");
    assert!(!err.contains("attacking"), "refused before training: {err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_failed_attack_keeps_the_earlier_run_and_says_where_its_partial_generator_is() {
    let root = scratch("failed");
    let out = root.join("run");
    assert!(evaluate(&out, &[]).status.success());
    let report = std::fs::read_to_string(out.join("report.json")).unwrap();
    // A served victim whose every inference answers HTTP 500, and no retries: training fails
    // at its first call (a spent budget is not a failure any more: it ends a run normally).
    let server = Server::start(&["--fault-500", "1"]);
    let o = advclust(&[
        "attack",
        "--victim",
        &server.target(),
        "--retries",
        "0",
        "--mode",
        "nes",
        "--limit",
        "128",
        "--train-limit",
        "64",
        "--force",
        "--out",
        out.to_str().unwrap(),
    ]);
    drop(server);
    assert!(!o.status.success());
    let err = stderr(&o);
    let partial = root.join("run.partial").join("attack");
    assert!(err.contains(partial.to_str().unwrap()), "{err}");
    assert!(partial.join("generator.bpk").is_file());
    assert!(partial.join("attack.json").is_file());
    assert_eq!(
        std::fs::read_to_string(out.join("report.json")).unwrap(),
        report
    );
    assert!(
        !out.join("attack").exists(),
        "no file of the failed run in --out"
    );
    // Every line of the error is short: no generator dumped into the message.
    assert!(err.lines().all(|l| l.len() < 400), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn evaluating_into_the_attack_being_evaluated_is_refused() {
    let root = scratch("inside");
    let attack = root.join("run").join("attack");
    std::fs::create_dir_all(&attack).unwrap();
    let o = evaluate(
        &root.join("run"),
        &["--attack", attack.to_str().unwrap(), "--force"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("inside --out"), "{}", stderr(&o));
    assert!(attack.is_dir());
    std::fs::remove_dir_all(&root).unwrap();
}
