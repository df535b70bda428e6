//! A query-only attack through a real HTTP server: `advclust-serve` serving the embedded CC
//! victim, `KServeOracle` querying it. The run over the network must equal the run in
//! process (same seed), whatever the requests in flight, the tensor encoding, or the faults
//! the server injects; the client's ledger must equal the server's count of answers.

use std::time::Duration;

use advclust::core::{
    ArgmaxLabels, Budgeted, ClusterOracle, LabelOracle, ModelOracle, ParamGuard, QueryBudget,
};
use advclust::gan::{AttackConfig, CheckedAttackConfig, GradientSource, Stopping};
use advclust::pipeline::{self, AttackOutcome, DatasetSpec, VictimSpec};
use advclust::remote::{Encoding, KServeConfig, KServeOracle, RetryPolicy};
use advclust::serve::{FaultPlan, Replica, ServeConfig, ServedModel, ServerHandle};
use advclust::{data::Dataset, device, models::Victim};

struct Setup {
    device: advclust::burn::tensor::Device,
    victim: Victim,
    train: Dataset,
    eval: Dataset,
    config: CheckedAttackConfig,
}

fn setup() -> Setup {
    let device = device(None).unwrap();
    let victim = VictimSpec::pretrained_cc_mnist().load(&device).unwrap();
    let eval = DatasetSpec::MnistEmbedded.load(Some(128), 4).unwrap();
    let train = eval.shuffled(2).take(64);
    let config = AttackConfig::new()
        .with_epsilon(0.1)
        .with_batch_size(32)
        .with_gradient_source(GradientSource::Nes {
            samples: 1,
            sigma: 0.01,
        })
        .with_max_images_per_call(Some(32))
        .with_stopping(Stopping::Epochs { epochs: 1 })
        .with_progress(false)
        .check()
        .unwrap();
    Setup {
        device,
        victim,
        train,
        eval,
        config,
    }
}

fn serve(s: &Setup, replicas: usize, faults: FaultPlan, labels_only: bool) -> ServerHandle {
    let oracles: Vec<Replica> = (0..replicas)
        .map(|_| Box::new(ModelOracle::new(&s.victim, &s.device)) as Replica)
        .collect();
    let model = ServedModel::with_replicas("cc", oracles).labels_only(labels_only);
    let config = ServeConfig::new().faults(faults).check().unwrap();
    ServerHandle::start("127.0.0.1:0", model, config).unwrap()
}

fn client(server: &ServerHandle, in_flight: usize, encoding: Encoding) -> KServeOracle {
    let target = format!("kserve+{}/models/cc", server.url())
        .parse()
        .unwrap();
    let config = KServeConfig::new()
        .in_flight(in_flight)
        .encoding(encoding)
        .read_timeout(Duration::from_millis(400))
        .retry(RetryPolicy {
            max_retries: 10,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(20),
        })
        .check()
        .unwrap();
    KServeOracle::connect(target, config).unwrap()
}

fn attack_through(s: &Setup, oracle: &mut dyn ClusterOracle) -> AttackOutcome {
    pipeline::attack_oracle(&s.config, oracle, &s.train, &s.eval, &s.device, None).unwrap()
}

fn assert_same_run(a: &AttackOutcome, b: &AttackOutcome, what: &str) {
    assert_eq!(a.adversarial, b.adversarial, "{what}: adversarial images");
    assert_eq!(
        a.attack.report().without_timings(),
        b.attack.report().without_timings(),
        "{what}: report"
    );
    assert_eq!(a.evaluation, b.evaluation, "{what}: evaluation");
}

#[test]
fn an_attack_over_http_equals_the_attack_in_process_and_counts_agree() {
    let s = setup();
    let local = attack_through(&s, &mut ModelOracle::new(&s.victim, &s.device));

    for (replicas, in_flight, encoding) in [
        (1, 1, Encoding::Json),
        (2, 4, Encoding::Json),
        (2, 3, Encoding::Binary),
    ] {
        let server = serve(&s, replicas, FaultPlan::none(), false);
        let remote = client(&server, in_flight, encoding);
        assert_eq!(remote.uses_binary(), encoding == Encoding::Binary);
        let mut ledger = Budgeted::new(remote, QueryBudget::UNLIMITED);
        let outcome = attack_through(&s, &mut ledger);
        let what = format!("{replicas} replica(s), {in_flight} in flight, {encoding:?}");
        assert_same_run(&local, &outcome, &what);
        // Every call the attack made (training and evaluation) was answered once by the
        // server, and the server's own count says so.
        let stats = server.stats();
        assert_eq!(
            ledger.counts().batch_calls,
            stats.answered_requests,
            "{what}"
        );
        assert_eq!(ledger.counts().images, stats.answered_images, "{what}");
        assert_eq!(
            ledger.inner().server_query_count(),
            Some(stats.answered_requests)
        );
        assert_eq!(ledger.inner().stats().retries, 0);
        server.shutdown().unwrap();
    }
}

#[test]
fn faults_cost_retries_but_change_nothing_else() {
    let s = setup();
    let clean_server = serve(&s, 1, FaultPlan::none(), false);
    let mut clean = Budgeted::new(
        client(&clean_server, 2, Encoding::Json),
        QueryBudget::UNLIMITED,
    );
    let expected = attack_through(&s, &mut clean);

    let faults = FaultPlan::new(7)
        .internal_error(0.08)
        .unavailable(0.08)
        .too_many_requests(0.08)
        .drop_connection(0.08)
        .delay(0.04, Duration::from_millis(600));
    let server = serve(&s, 2, faults, false);
    let mut faulty = Budgeted::new(client(&server, 2, Encoding::Json), QueryBudget::UNLIMITED);
    let outcome = attack_through(&s, &mut faulty);
    assert_same_run(&expected, &outcome, "with faults");
    assert_eq!(faulty.counts(), clean.counts());
    let (transport, stats) = (faulty.inner().stats(), server.stats());
    assert!(stats.faults_injected > 0 && transport.retries >= stats.faults_injected);
    assert!(transport.connection_failures > 0, "{transport:?}");
    assert_eq!(faulty.counts().batch_calls, stats.answered_requests);
    assert_eq!(
        stats.inference_requests,
        stats.answered_requests + stats.faults_injected
    );
}

#[test]
fn a_labels_only_server_answers_what_the_argmax_of_the_model_would() {
    let s = setup();
    let server = serve(&s, 1, FaultPlan::none(), true);
    let mut remote = client(&server, 1, Encoding::Auto);
    assert!(!remote.has_memberships());
    let images = s.eval.to_image_batch().unwrap();
    let labels = remote.labels(&images).unwrap();
    let mut local = ArgmaxLabels(ModelOracle::new(&s.victim, &s.device));
    assert_eq!(labels, local.labels(&images).unwrap());
    // A memberships call is refused before it is sent.
    assert!(remote.memberships(&images).is_err());
    assert_eq!(server.stats().answered_requests, 1);
}

#[test]
fn a_spent_server_budget_ends_the_attack_like_a_local_budget() {
    let s = setup();
    let model = ServedModel::new("cc", Box::new(ModelOracle::new(&s.victim, &s.device)));
    let config = ServeConfig::new()
        .budget(QueryBudget::batch_calls(3))
        .check()
        .unwrap();
    let server = ServerHandle::start("127.0.0.1:0", model, config).unwrap();
    let mut remote = client(&server, 1, Encoding::Json);
    // Training ends normally on the server's refusal (the step it came in made no update)...
    let train = s.train.to_image_batch().unwrap();
    let attack = advclust::gan::AttackTrainer::new(&s.config, &s.device)
        .fit_oracle(&mut remote, &train)
        .unwrap();
    assert!(
        matches!(
            attack.report().stopped,
            advclust::gan::StopReason::OracleBudget { .. }
        ),
        "{:?}",
        attack.report().stopped
    );
    assert_eq!(attack.report().training_queries.batch_calls, 3);
    assert_eq!(server.stats().answered_requests, 3);
    assert_eq!(server.stats().budget_refusals, 1);
    // ... and evaluating through the same spent server is an error that says why.
    let err = pipeline::attack_oracle(&s.config, &mut remote, &s.train, &s.eval, &s.device, None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("budget"), "{err}");
    assert_eq!(server.stats().answered_requests, 3);
}

#[test]
fn a_server_that_dies_mid_attack_leaves_the_partial_generator_and_exact_counts() {
    use advclust::serve::FaultKind;
    let s = setup();
    // Four answers (the clean memberships and the first step), then every request is
    // dropped: the server is gone for the client in the middle of training.
    let mut script = vec![None; 4];
    script.extend(vec![Some(FaultKind::DropConnection); 100]);
    let server = serve(&s, 1, FaultPlan::scripted(script), false);
    let remote = client(&server, 1, Encoding::Json);
    let mut ledger = Budgeted::new(remote, QueryBudget::UNLIMITED);
    let err = pipeline::attack_oracle(&s.config, &mut ledger, &s.train, &s.eval, &s.device, None)
        .err()
        .unwrap();
    let advclust::Error::Attack(attack_error) = &err else {
        panic!("not an attack error: {err}")
    };
    let partial = attack_error
        .partial()
        .expect("the generator trained so far");
    assert!(!attack_error.is_budget_exhausted());
    assert!(err.to_string().contains("attempt(s)"), "{err}");
    // The partial attack's report counts what was answered before the server died.
    assert_eq!(partial.report().training_queries.batch_calls, 4);
    let counts = ledger.counts();
    assert_eq!((counts.batch_calls, counts.failed_calls), (4, 1));
    assert_eq!(server.stats().answered_requests, 4);
}
