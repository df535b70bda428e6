//! A query-only attack on a third-party model server: MLServer (Seldon) serving a
//! scikit-learn PCA + Gaussian mixture of the MNIST test images, started by
//! `scripts/mlserver.sh` (which `.ci/run` calls). Ignored by default; skipped with a message
//! when `ADVCLUST_MLSERVER` is not set.
//!
//! ```sh
//! mls_dir=$(mktemp -d); eval "$(bash scripts/mlserver.sh start "$mls_dir")"
//! cargo test --test mlserver -- --ignored --nocapture
//! bash scripts/mlserver.sh stop "$mls_dir"
//! ```

use advclust::core::{Budgeted, ParamGuard, QueryBudget};
use advclust::gan::{AdvLoss, AttackConfig, GradientSource, Stopping};
use advclust::pipeline::{self, DatasetSpec};
use advclust::remote::{KServeConfig, KServeOracle};

/// The server's count of answered inference requests, from its Prometheus metrics (0 before
/// the first one: MLServer prints no sample until then).
fn server_answers(metrics_url: &str) -> u64 {
    let body = ureq::get(metrics_url)
        .call()
        .expect("metrics endpoint")
        .body_mut()
        .read_to_string()
        .expect("metrics body");
    body.lines()
        .filter(|l| {
            l.starts_with("model_infer_request_success_total{") && l.contains("model=\"gmm\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[test]
#[ignore = "needs MLServer: scripts/mlserver.sh start, then --ignored"]
fn a_query_only_attack_breaks_a_gaussian_mixture_served_by_mlserver() {
    let (Ok(address), Ok(metrics)) = (
        std::env::var("ADVCLUST_MLSERVER"),
        std::env::var("ADVCLUST_MLSERVER_METRICS"),
    ) else {
        eprintln!("ADVCLUST_MLSERVER is not set: start MLServer with scripts/mlserver.sh; skipped");
        return;
    };
    let device = advclust::device(None).unwrap();
    let eval = DatasetSpec::MnistEmbedded.load(None, 0).unwrap();
    let train = eval.shuffled(0).take(1024);
    let config = AttackConfig::new()
        .with_gradient_source(GradientSource::Nes {
            samples: 1,
            sigma: 0.01,
        })
        .with_loss(AdvLoss::LogMargin)
        .with_stopping(Stopping::Epochs { epochs: 12 })
        .with_budget(QueryBudget::batch_calls(100))
        .with_progress(false)
        .check()
        .unwrap();

    let target = address.parse().unwrap();
    let oracle = KServeOracle::connect(target, KServeConfig::new().in_flight(2).check().unwrap())
        .expect("MLServer answers its metadata");
    assert!(
        !oracle.uses_binary(),
        "MLServer does not offer the binary extension"
    );
    let before = server_answers(&metrics);
    let mut ledger = Budgeted::new(oracle, QueryBudget::UNLIMITED);
    let outcome = match pipeline::attack_oracle(&config, &mut ledger, &train, &eval, &device, None)
    {
        Ok(o) => o,
        Err(e) => panic!("attack through MLServer: {e}"),
    };
    let by_server = server_answers(&metrics) - before;
    let e = &outcome.evaluation;
    let drop = 1.0 - e.adversarial.nmi / e.clean.nmi;
    let training = outcome.attack.report().training_queries;
    println!(
        "MLServer GMM: clean NMI {:.4} -> adversarial {:.4} ({:.1} % drop); calls: ledger {} \
         (training {} / {} images, evaluation {}), server {by_server}",
        e.clean.nmi,
        e.adversarial.nmi,
        100.0 * drop,
        ledger.counts().batch_calls,
        training.batch_calls,
        training.images,
        e.queries.batch_calls,
    );
    // The served model is the one scikit-learn scored.
    if let Ok(sklearn) = std::env::var("ADVCLUST_MLSERVER_CLEAN_NMI") {
        let sklearn: f64 = sklearn.parse().unwrap();
        assert!(
            (e.clean.nmi - sklearn).abs() < 2e-3,
            "{} vs {sklearn}",
            e.clean.nmi
        );
    }
    assert_eq!(
        ledger.counts().batch_calls,
        by_server,
        "client and server counts"
    );
    assert_eq!(ledger.counts().failed_calls, 0);
    assert!(training.batch_calls <= 100);
    assert!(drop > 0.05, "NMI drop {drop}");
}
