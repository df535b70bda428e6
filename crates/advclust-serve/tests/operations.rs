//! Running a server: budgets, counters and metrics, fault injection, replicas, shutdown.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use advclust_core::{ParamGuard, QueryBudget};
use advclust_serve::{FaultKind, FaultPlan, ServeConfig, ServedModel, ServerHandle, serve};
use common::*;

#[test]
fn request_budget_runs_out_with_403() {
    let config = ServeConfig::new()
        .budget(QueryBudget::batch_calls(3))
        .check()
        .unwrap();
    let server = start(config);
    let infer = format!("{}/v2/models/m/infer", server.url());
    let body = json_request(&images(2));
    for expected in 1..=3 {
        let (_, _, count) = decoded(&post_json(&infer, &body));
        assert_eq!(count, expected);
    }
    for _ in 0..2 {
        let a = post_json(&infer, &body);
        assert_eq!(a.status, 403);
        assert!(
            a.error().starts_with("query budget exhausted"),
            "{}",
            a.error()
        );
    }
    let stats = server.stats();
    assert_eq!(stats.answered_requests, 3);
    assert_eq!(stats.answered_images, 6);
    assert_eq!(stats.budget_refusals, 2);
    assert_eq!(stats.inference_requests, 5);
    let text = get(&format!("{}/metrics", server.url())).text();
    assert_eq!(
        metric(&text, r#"advclust_queries_total{model="m"}"#),
        Some(3)
    );
    assert_eq!(
        metric(&text, r#"advclust_budget_refusals_total{model="m"}"#),
        Some(2)
    );
    assert_eq!(
        metric(
            &text,
            r#"advclust_requests_total{route="/v2/models/{name}/infer",status="403"}"#
        ),
        Some(2)
    );
    server.shutdown().unwrap();
}

#[test]
fn image_budget_refuses_what_does_not_fit() {
    let config = ServeConfig::new()
        .budget(QueryBudget::images(5))
        .check()
        .unwrap();
    let server = start(config);
    let infer = format!("{}/v2/models/m/infer", server.url());
    assert_eq!(post_json(&infer, &json_request(&images(3))).status, 200);
    let a = post_json(&infer, &json_request(&images(3)));
    assert_eq!(a.status, 403);
    assert!(a.error().starts_with("query budget exhausted"));
    let (_, _, count) = decoded(&post_json(&infer, &json_request(&images(2))));
    assert_eq!(count, 2);
    assert_eq!(post_json(&infer, &json_request(&images(1))).status, 403);
    assert_eq!(server.stats().answered_images, 5);
    server.shutdown().unwrap();
}

#[test]
fn query_counts_and_metrics_agree_with_the_requests_sent() {
    let server = start(config());
    let url = server.url();
    let infer = format!("{url}/v2/models/m/infer");
    let sizes = [1usize, 4, 2, 7, 3];
    for (i, &n) in sizes.iter().enumerate() {
        let (_, _, count) = decoded(&post_json(&infer, &json_request(&images(n))));
        assert_eq!(count, i as u64 + 1);
    }
    assert_eq!(post(&infer, b"{", None).status, 400);
    assert_eq!(get(&format!("{url}/v2/health/live")).status, 200);
    assert_eq!(get(&format!("{url}/nowhere")).status, 404);

    let a = get(&format!("{url}/metrics"));
    assert!(a.content_type.as_deref().unwrap().starts_with("text/plain"));
    let text = a.text();
    let total: usize = sizes.iter().sum();
    assert_eq!(
        metric(&text, r#"advclust_queries_total{model="m"}"#),
        Some(5)
    );
    assert_eq!(
        metric(&text, r#"advclust_images_total{model="m"}"#),
        Some(total as u64)
    );
    assert_eq!(
        metric(&text, r#"advclust_inference_requests_total{model="m"}"#),
        Some(6)
    );
    let infer_route = r#"advclust_requests_total{route="/v2/models/{name}/infer","#;
    assert_eq!(
        metric(&text, &format!(r#"{infer_route}status="200"}}"#)),
        Some(5)
    );
    assert_eq!(
        metric(&text, &format!(r#"{infer_route}status="400"}}"#)),
        Some(1)
    );
    assert_eq!(
        metric(
            &text,
            r#"advclust_requests_total{route="/v2/health/live",status="200"}"#
        ),
        Some(1)
    );
    assert_eq!(
        metric(
            &text,
            r#"advclust_requests_total{route="unmatched",status="404"}"#
        ),
        Some(1)
    );
    for kind in FaultKind::ALL {
        let series = format!(
            r#"advclust_faults_injected_total{{kind="{}"}}"#,
            kind.name()
        );
        assert_eq!(metric(&text, &series), Some(0));
    }
    assert!(text.contains("# TYPE advclust_queries_total counter"));
    server.shutdown().unwrap();
}

/// What a client saw of one request.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Answered(u64),
    Status(u16, Option<String>),
    Dropped,
}

fn run_faulty(
    plan: &FaultPlan,
    requests: usize,
) -> (Vec<Seen>, advclust_serve::ServerStats, String) {
    let config = ServeConfig::new().faults(plan.clone()).check().unwrap();
    let server = start(config);
    let infer = format!("{}/v2/models/m/infer", server.url());
    let body = serde_json::to_vec(&json_request(&images(2))).unwrap();
    let agent = agent();
    let seen = (0..requests)
        .map(|_| match try_post(&agent, &infer, &body, None) {
            Ok(a) if a.status == 200 => Seen::Answered(decoded(&a).2),
            Ok(a) => {
                assert!(a.error().starts_with("injected fault"), "{}", a.error());
                Seen::Status(a.status, a.retry_after.clone())
            }
            Err(_) => Seen::Dropped,
        })
        .collect();
    let stats = server.stats();
    let text = get(&format!("{}/metrics", server.url())).text();
    server.shutdown().unwrap();
    (seen, stats, text)
}

#[test]
fn seeded_faults_repeat_exactly_and_are_not_counted() {
    let plan = FaultPlan::new(42)
        .internal_error(0.12)
        .unavailable(0.12)
        .too_many_requests(0.12)
        .drop_connection(0.12)
        .delay(0.08, Duration::from_millis(20))
        .retry_after_secs(2);
    let n = 40;
    let (first, stats, text) = run_faulty(&plan, n);
    let (second, _, _) = run_faulty(&plan, n);
    assert_eq!(first, second);

    let mut answered = 0;
    for (i, seen) in first.iter().enumerate() {
        let expected = match plan.decide(i as u64) {
            None => {
                answered += 1;
                Seen::Answered(answered)
            }
            Some(FaultKind::InternalError) => Seen::Status(500, None),
            Some(FaultKind::Unavailable) | Some(FaultKind::Delay) => {
                Seen::Status(503, Some("2".into()))
            }
            Some(FaultKind::TooManyRequests) => Seen::Status(429, Some("2".into())),
            Some(FaultKind::DropConnection) => Seen::Dropped,
        };
        assert_eq!(*seen, expected, "request {i}");
    }
    let faults = n as u64 - answered;
    assert!(answered > 5 && faults > 5, "{answered} answered");
    for kind in FaultKind::ALL {
        assert!(
            (0..n as u64).any(|i| plan.decide(i) == Some(kind)),
            "{kind} never drawn; pick another seed"
        );
        let count = (0..n as u64)
            .filter(|&i| plan.decide(i) == Some(kind))
            .count() as u64;
        let series = format!(
            r#"advclust_faults_injected_total{{kind="{}"}}"#,
            kind.name()
        );
        assert_eq!(metric(&text, &series), Some(count), "{kind}");
    }
    assert_eq!(stats.answered_requests, answered);
    assert_eq!(stats.faults_injected, faults);
    assert_eq!(stats.inference_requests, n as u64);
    assert_eq!(
        metric(&text, r#"advclust_queries_total{model="m"}"#),
        Some(answered)
    );
    let dropped = first.iter().filter(|s| **s == Seen::Dropped).count() as u64;
    assert_eq!(
        metric(
            &text,
            r#"advclust_requests_total{route="/v2/models/{name}/infer",status="dropped"}"#
        ),
        Some(dropped)
    );
}

#[test]
fn a_delay_outlasts_a_client_timeout_and_is_not_counted() {
    let plan = FaultPlan::scripted(vec![Some(FaultKind::Delay), None])
        .delay(0.0, Duration::from_millis(1500));
    let server = start(ServeConfig::new().faults(plan).check().unwrap());
    let infer = format!("{}/v2/models/m/infer", server.url());
    let body = serde_json::to_vec(&json_request(&images(1))).unwrap();
    let impatient = agent_with_timeout(Duration::from_millis(300));
    assert!(try_post(&impatient, &infer, &body, None).is_err());
    let (_, _, count) = decoded(&post(&infer, &body, None));
    assert_eq!(count, 1);
    assert_eq!(server.stats().faults_injected, 1);
    server.shutdown().unwrap();
}

#[test]
fn two_replicas_answer_two_requests_at_once() {
    let gate = Gate::new(2);
    let model = ServedModel::with_replicas(
        "m",
        vec![Box::new(Gated(gate.clone())), Box::new(Gated(gate.clone()))],
    );
    let server = ServerHandle::start("127.0.0.1:0", model, config()).unwrap();
    let infer = format!("{}/v2/models/m/infer", server.url());
    // Each oracle call waits until the other is inside too: both requests succeed only if
    // the two replicas compute at the same time.
    let answers: Vec<Answer> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let infer = infer.clone();
                s.spawn(move || post_json(&infer, &json_request(&images(i + 1))))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for a in &answers {
        assert_eq!(a.status, 200, "{}", a.text());
    }
    let mut counts: Vec<u64> = answers.iter().map(|a| decoded(a).2).collect();
    counts.sort();
    assert_eq!(counts, vec![1, 2]);
    assert_eq!(gate.max_inside.load(Ordering::SeqCst), 2);
    // The answers are the oracle's, whichever replica computed them.
    assert_eq!(
        decoded(&answers[1]).0.unwrap(),
        direct(&images(2))
            .data()
            .iter()
            .map(|x| x.to_bits())
            .collect::<Vec<_>>()
    );
    server.shutdown().unwrap();
}

#[test]
fn one_replica_answers_one_request_at_a_time() {
    let slow = Slow::new(Duration::from_millis(100));
    let model = ServedModel::new("m", Box::new(slow.clone()));
    let server = ServerHandle::start("127.0.0.1:0", model, config()).unwrap();
    let infer = format!("{}/v2/models/m/infer", server.url());
    std::thread::scope(|s| {
        for _ in 0..3 {
            let infer = infer.clone();
            s.spawn(move || {
                let a = post_json(&infer, &json_request(&images(1)));
                assert_eq!(a.status, 200);
            });
        }
    });
    assert_eq!(slow.started.load(Ordering::SeqCst), 3);
    assert_eq!(slow.max_inside.load(Ordering::SeqCst), 1);
    assert_eq!(server.stats().answered_requests, 3);
    server.shutdown().unwrap();
}

#[test]
fn shutdown_lets_a_request_in_progress_finish() {
    let slow = Slow::new(Duration::from_millis(500));
    let started = Arc::clone(&slow.started);
    let server = ServerHandle::start(
        "127.0.0.1:0",
        ServedModel::new("m", Box::new(slow)),
        config(),
    )
    .unwrap();
    let infer = format!("{}/v2/models/m/infer", server.url());
    let addr = server.addr();
    let client = std::thread::spawn(move || post_json(&infer, &json_request(&images(1))));
    while started.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.shutdown().unwrap();
    let a = client.join().unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(decoded(&a).2, 1);
    // Nothing listens any more.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn serve_on_a_callers_runtime_stops_on_its_shutdown_future() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let model = ServedModel::new("m", Box::new(Brightness));
    let task = runtime.spawn(serve(listener, model, config(), async move {
        let _ = stopped.await;
    }));
    let a = get(&format!("http://{addr}/v2/models/m/ready"));
    assert_eq!(a.status, 200);
    let a = post_json(
        &format!("http://{addr}/v2/models/m/infer"),
        &json_request(&images(2)),
    );
    assert_eq!(a.status, 200);
    stop.send(()).unwrap();
    let result = runtime.block_on(task).unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn a_dropped_connection_answers_nothing() {
    use std::io::{Read, Write};
    let plan = FaultPlan::scripted(vec![Some(FaultKind::DropConnection)]);
    let server = start(ServeConfig::new().faults(plan).check().unwrap());
    let body = serde_json::to_vec(&json_request(&images(1))).unwrap();
    let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body).unwrap();
    let mut answer = Vec::new();
    // The server closes the connection: EOF (or a reset) with no status line.
    let _ = stream.read_to_end(&mut answer);
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    // The next request is answered, as query 1.
    let (_, _, count) = decoded(&post(
        &format!("{}/v2/models/m/infer", server.url()),
        &body,
        None,
    ));
    assert_eq!(count, 1);
    assert_eq!(server.stats().faults_injected, 1);
    server.shutdown().unwrap();
}
