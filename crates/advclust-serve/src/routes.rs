//! The HTTP routes of the Open Inference Protocol, the metrics route, and the per-request
//! accounting middleware.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use advclust_remote::protocol::{BINARY_EXTENSION, INFERENCE_HEADER_LENGTH, ServerMetadata};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::{Result, ServeError};
use crate::faults::FaultKind;
use crate::infer::{Encoded, check_answer, decode, encode};
use crate::state::AppState;

/// The `name` reported by `GET /v2`.
pub const SERVER_NAME: &str = "advclust-serve";
/// The route label of requests no route matched, in `advclust_requests_total`.
pub const UNMATCHED_ROUTE: &str = "unmatched";
/// The status label of requests whose connection an injected fault dropped.
pub const DROPPED_STATUS: &str = "dropped";

type Shared = State<Arc<AppState>>;
type Params = std::result::Result<Path<HashMap<String, String>>, PathRejection>;

/// The router of every route, with the body limit and the accounting middleware.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_body_bytes();
    Router::new()
        .route("/v2/health/live", get(|| async { StatusCode::OK }))
        .route("/v2/health/ready", get(|| async { StatusCode::OK }))
        .route("/v2", get(server_metadata))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/versions/{version}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_ready),
        )
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer))
        .route("/metrics", get(metrics))
        .method_not_allowed_fallback(|| async { ServeError::MethodNotAllowed })
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), track))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Counts every routed request by route template and status.
async fn track(State(state): Shared, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED_ROUTE.to_owned(), |m| m.as_str().to_owned());
    let response = next.run(request).await;
    let status = if response.extensions().get::<Dropped>().is_some() {
        DROPPED_STATUS.to_owned()
    } else {
        response.status().as_u16().to_string()
    };
    state.record_request(&route, &status);
    response
}

async fn not_found(State(state): Shared, request: Request) -> Response {
    state.record_request(UNMATCHED_ROUTE, "404");
    ServeError::NotFound(format!(
        "no route {} {}",
        request.method(),
        request.uri().path()
    ))
    .into_response()
}

/// A JSON answer.
fn json(value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => ServeError::Internal(e.to_string()).into_response(),
    }
}

async fn server_metadata() -> Response {
    json(&ServerMetadata {
        name: SERVER_NAME.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        extensions: vec![BINARY_EXTENSION.into()],
    })
}

/// Refuses a path that does not name the served model (and version, if given).
fn lookup(state: &AppState, params: Params) -> Result<()> {
    let Path(p) = params.map_err(|e| ServeError::bad(e.body_text()))?;
    let name = p.get("name").map_or("", String::as_str);
    let version = p.get("version").map(String::as_str);
    if state.spec.is(name, version) {
        return Ok(());
    }
    let asked = match version {
        Some(v) => format!("{name:?} version {v:?}"),
        None => format!("{name:?}"),
    };
    Err(ServeError::NotFound(format!(
        "unknown model {asked}; this server serves {:?} version {:?}",
        state.spec.name, state.spec.version
    )))
}

async fn model_metadata(State(state): Shared, params: Params) -> Response {
    match lookup(&state, params) {
        Ok(()) => json(&state.spec.metadata()),
        Err(e) => e.into_response(),
    }
}

async fn model_ready(State(state): Shared, params: Params) -> Response {
    match lookup(&state, params) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn metrics(State(state): Shared) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.render_metrics(),
    )
        .into_response()
}

async fn infer(
    State(state): Shared,
    params: Params,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    answer(state, params, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Maps a failure to join a blocking task (a panic in it) to an internal error.
fn joined<T>(r: std::result::Result<T, tokio::task::JoinError>, what: &str) -> Result<T> {
    r.map_err(|e| ServeError::Internal(format!("{what} did not finish: {e}")))
}

/// Answers one inference request: fault plan, validation, budget, a free replica, the
/// oracle on a blocking thread, accounting, encoding.
async fn answer(
    state: Arc<AppState>,
    params: Params,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    lookup(&state, params)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ServeError::TooLarge(format!(
                "request body larger than the server's limit of {} bytes",
                state.config.max_body_bytes()
            ))
        } else {
            ServeError::bad(format!("cannot read the request body: {}", e.body_text()))
        }
    })?;
    let sequence = state.next_sequence();
    if let Some(kind) = state.config.faults().decide(sequence) {
        state.record_fault(kind);
        return Ok(inject(&state, kind).await);
    }
    let header_length = header_length(&headers)?;
    let max_images = state.config.max_images_per_request();
    let st = Arc::clone(&state);
    let decoded = joined(
        tokio::task::spawn_blocking(move || decode(&st.spec, &body, header_length, max_images))
            .await,
        "decoding the request",
    )??;
    let images = u64::try_from(decoded.batch.len())
        .map_err(|_| ServeError::Internal("batch size overflow".into()))?;
    let reservation = state.reserve(images)?;
    let lease = state.pool.acquire().await?;
    let batch = decoded.batch;
    let batch_size = batch.len();
    // The lease moves into the blocking task: the replica stays busy until the oracle
    // returns, even if this request is abandoned meanwhile.
    let called =
        tokio::task::spawn_blocking(move || lease.with(|oracle| oracle.memberships(&batch))).await;
    let memberships = match joined(called, "the oracle") {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            state.record_oracle_failure();
            return Err(ServeError::Oracle(e));
        }
        Err(e) => {
            state.record_oracle_failure();
            return Err(e);
        }
    };
    if let Err(e) = check_answer(&state.spec, batch_size, &memberships) {
        state.record_oracle_failure();
        return Err(e);
    }
    let query_count = reservation.commit();
    let encoded = encode(
        &state.spec,
        decoded.id,
        &decoded.outputs,
        batch_size,
        &memberships,
        query_count,
    )?;
    Ok(encoded_response(encoded))
}

/// The value of `Inference-Header-Content-Length`, if sent.
fn header_length(headers: &HeaderMap) -> Result<Option<usize>> {
    headers
        .get(INFERENCE_HEADER_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    ServeError::bad(format!(
                        "{INFERENCE_HEADER_LENGTH} must be a byte count, got {v:?}"
                    ))
                })
        })
        .transpose()
}

fn encoded_response(encoded: Encoded) -> Response {
    match encoded.header_length {
        None => ([(header::CONTENT_TYPE, "application/json")], encoded.body).into_response(),
        Some(n) => {
            let mut response = (
                [(header::CONTENT_TYPE, "application/octet-stream")],
                encoded.body,
            )
                .into_response();
            if let Ok(name) = HeaderName::from_bytes(INFERENCE_HEADER_LENGTH.as_bytes()) {
                response.headers_mut().insert(name, HeaderValue::from(n));
            }
            response
        }
    }
}

/// Marks a response whose connection is dropped (for the request counters).
#[derive(Debug, Clone, Copy)]
struct Dropped;

/// A body that fails on its first poll: hyper closes the connection without an answer.
struct Severed;

impl http_body::Body for Severed {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<http_body::Frame<Bytes>, io::Error>>> {
        Poll::Ready(Some(Err(io::Error::other(
            "injected fault: connection dropped",
        ))))
    }
}

/// The answer of an injected fault.
async fn inject(state: &AppState, kind: FaultKind) -> Response {
    let plan = state.config.faults();
    match kind {
        FaultKind::DropConnection => {
            let mut response = Response::new(Body::new(Severed));
            response.extensions_mut().insert(Dropped);
            response
        }
        other => {
            if other == FaultKind::Delay {
                tokio::time::sleep(plan.delay_for()).await;
            }
            ServeError::Injected {
                kind: other,
                retry_after: other.sends_retry_after().then_some(plan.retry_after()),
            }
            .into_response()
        }
    }
}
