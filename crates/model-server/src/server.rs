//! The HTTP server: routes of the V2 REST API, metrics, and the process's
//! life: bind, load the model, serve, and drain on SIGTERM/SIGINT.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use futures::FutureExt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use crate::auth::{Auth, require_token};
use crate::binary;
use crate::budget::{self, Charge, InputCost, MemoryBudget, Reservation};
use crate::config::{Config, check_path_segment};
use crate::error::{ApiError, one_line};
use crate::metrics::{self, EndpointLabels, Metrics, RequestLabels};
use crate::model::{self, LoadError, LoadedModel};
use crate::protocol::{InferenceRequest, InferenceResponse, ModelMetadata, ServerMetadata};

pub mod grpc;

/// The server's name in `GET /v2`.
pub const SERVER_NAME: &str = "berth-model-server";

/// The binary tensor data extension's name in `GET /v2`'s `extensions` (see [`crate::binary`]).
pub const BINARY_TENSOR_DATA: &str = "binary_tensor_data";

/// The platform reported in model metadata: the protocol's name for an ONNX
/// model ("<project>_<format>", see "Platforms" in the V2 spec).
pub const PLATFORM: &str = "onnx_onnxv1";

/// Shared state of every request handler.
pub struct AppState {
    model_name: String,
    model_version: Option<String>,
    model: OnceLock<Arc<LoadedModel>>,
    metrics: Metrics,
    inference_permits: Arc<Semaphore>,
    /// Requests waiting for an inference permit now, and how many may.
    queued: AtomicUsize,
    max_queued: usize,
    /// How long a request holding a permit may take to send its body.
    body_timeout: Duration,
    /// The largest request body, in bytes.
    max_request_bytes: usize,
    /// What request bodies and their decoded tensors may hold at once.
    budget: MemoryBudget,
    /// The check of every request to the public port (`None`: `--auth none`).
    auth: Option<Arc<Auth>>,
    /// A smoothed average of the model's recent run times, in microseconds (0 before the first):
    /// whether a small request may run on its connection's worker ([`run_inference`]).
    recent_run_micros: AtomicU64,
}

/// Leaves the queue of waiting requests when dropped, even if the request is cancelled.
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl AppState {
    /// State for a server of `model_name` (and `model_version`, if any) that
    /// runs at most `inference_concurrency` inferences at once. The model is
    /// not ready until [`AppState::set_model`].
    pub fn new(
        model_name: String,
        model_version: Option<String>,
        inference_concurrency: usize,
    ) -> Self {
        Self {
            model_name,
            model_version,
            model: OnceLock::new(),
            metrics: Metrics::new(),
            inference_permits: Arc::new(Semaphore::new(inference_concurrency.max(1))),
            queued: AtomicUsize::new(0),
            max_queued: 64,
            body_timeout: Duration::from_secs(30),
            max_request_bytes: 64 << 20,
            budget: MemoryBudget::new(budget::default_budget(
                inference_concurrency,
                64 << 20,
                None,
            )),
            auth: None,
            recent_run_micros: AtomicU64::new(0),
        }
    }

    /// Adds one run time to the smoothed average (weight 1/8 for the newest; a run of a second
    /// or more moves it at once past the inline limit).
    fn note_run_time(&self, run_time: Duration) {
        let sample = u64::try_from(run_time.as_micros()).unwrap_or(u64::MAX);
        let old = self.recent_run_micros.load(Ordering::Relaxed);
        let new = (old - old / 8).saturating_add(sample / 8);
        self.recent_run_micros.store(new, Ordering::Relaxed);
    }

    /// The same state checking every request to the public port with `auth` (see
    /// [`crate::auth`]); `None` lets every request in.
    pub fn with_auth(mut self, auth: Option<Arc<Auth>>) -> Self {
        self.auth = auth;
        self
    }

    /// The same state refusing bodies over `max_request_bytes` (413), and admitting bodies
    /// against a memory budget of `budget_bytes` (see [`crate::budget`]).
    pub fn with_memory(mut self, max_request_bytes: usize, budget_bytes: u64) -> Self {
        self.max_request_bytes = max_request_bytes;
        self.budget = MemoryBudget::new(budget_bytes);
        self
    }

    /// The memory budget.
    pub fn budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// The same state letting at most `max_queued` requests wait for an inference permit, and
    /// a request holding one at most `body_timeout` to send its body.
    pub fn with_queue(mut self, max_queued: usize, body_timeout: Duration) -> Self {
        self.max_queued = max_queued;
        self.body_timeout = body_timeout;
        self
    }

    /// An inference permit: at once if one is free, else after waiting in a queue of at most
    /// `max_queued` requests; a request beyond that is refused (429) without waiting.
    async fn admit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(permit) = self.inference_permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let waiting = self.queued.fetch_add(1, Ordering::SeqCst);
        let _queued = Queued(&self.queued);
        if waiting >= self.max_queued {
            return Err(ApiError::TooManyRequests(format!(
                "the server is busy: every inference slot is taken and {} requests wait; retry later",
                self.max_queued
            )));
        }
        self.inference_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::internal("the server is shutting down"))
    }

    /// Makes the model ready. Only the first call has an effect.
    pub fn set_model(&self, model: Arc<LoadedModel>) {
        if self.model.set(model).is_ok() {
            self.metrics.model_ready.set(1);
        }
    }

    pub fn model(&self) -> Option<&Arc<LoadedModel>> {
        self.model.get()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Checks a model name and optional version from a URL against the
    /// served model: 404 if either is unknown.
    fn check_model(&self, name: &str, version: Option<&str>) -> Result<(), ApiError> {
        if name != self.model_name {
            return Err(ApiError::not_found(format!("unknown model '{name}'")));
        }
        match (version, &self.model_version) {
            (None, _) => Ok(()),
            (Some(v), Some(served)) if v == served => Ok(()),
            (Some(v), _) => Err(ApiError::not_found(format!(
                "unknown version '{v}' of model '{name}'"
            ))),
        }
    }

    fn ready_model(&self) -> Result<Arc<LoadedModel>, ApiError> {
        self.model().cloned().ok_or_else(|| {
            ApiError::NotReady(format!("model '{}' is not ready yet", self.model_name))
        })
    }
}

/// The router of the whole HTTP API: every path, health included, behind the state's auth
/// check when it has one.
pub fn router(state: Arc<AppState>, max_request_bytes: usize) -> Router {
    let api = Router::new()
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(server_ready))
        .route("/v2", get(server_metadata))
        .route("/v2/models/{name}", get(model_metadata))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(model_metadata_versioned),
        )
        .route("/v2/models/{name}/ready", get(model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_ready_versioned),
        )
        .route("/v2/models/{name}/infer", post(infer))
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(infer_versioned),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_request_bytes));
    // The check runs inside `track`, so refused requests are counted by endpoint too, and
    // before any handler, so a refused request's body is never read.
    let api = match &state.auth {
        Some(auth) => api.layer(middleware::from_fn_with_state(auth.clone(), require_token)),
        None => api,
    };
    api.layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// The router of the metrics address: `/metrics`, and `/v2/health/live` and
/// `/v2/health/ready` unauthenticated for the kubelet's probes. It is served on a port of its
/// own so that the Service and route in front of the API do not publish it.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(server_ready))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// The metrics label of a route.
fn endpoint_of(path: Option<&MatchedPath>) -> &'static str {
    match path.map(MatchedPath::as_str) {
        Some("/v2/health/live") => "live",
        Some("/v2/health/ready") => "ready",
        Some("/v2") => "server_metadata",
        Some("/v2/models/{name}" | "/v2/models/{name}/versions/{version}") => "model_metadata",
        Some("/v2/models/{name}/ready" | "/v2/models/{name}/versions/{version}/ready") => {
            "model_ready"
        }
        Some("/v2/models/{name}/infer" | "/v2/models/{name}/versions/{version}/infer") => "infer",
        Some("/metrics") => "metrics",
        _ => "unmatched",
    }
}

/// Decrements the in-flight gauge when dropped, even if the request's future
/// is cancelled.
struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts every request by endpoint and status code, and times it.
async fn track(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let endpoint = endpoint_of(req.extensions().get::<MatchedPath>());
    let metrics = state.metrics();
    metrics.in_flight.inc();
    let _in_flight = InFlight(metrics.in_flight.clone());
    let started = Instant::now();
    let response = next.run(req).await;
    metrics
        .request_duration
        .get_or_create(&EndpointLabels { endpoint })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            endpoint,
            code: response.status().as_u16(),
        })
        .inc();
    response
}

async fn live() -> StatusCode {
    StatusCode::OK
}

async fn server_ready(State(state): State<Arc<AppState>>) -> StatusCode {
    if state.model().is_some() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn server_metadata() -> axum::Json<ServerMetadata> {
    axum::Json(ServerMetadata {
        name: SERVER_NAME.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        extensions: vec![BINARY_TENSOR_DATA.to_owned()],
    })
}

fn path_error(rejection: PathRejection) -> ApiError {
    ApiError::bad_request(format!("invalid path: {}", rejection.body_text()))
}

async fn model_metadata(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<axum::Json<ModelMetadata>, ApiError> {
    let Path(name) = path.map_err(path_error)?;
    metadata_of(&state, &name, None)
}

async fn model_metadata_versioned(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<axum::Json<ModelMetadata>, ApiError> {
    let Path((name, version)) = path.map_err(path_error)?;
    metadata_of(&state, &name, Some(&version))
}

fn metadata_of(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<axum::Json<ModelMetadata>, ApiError> {
    state.check_model(name, version)?;
    let model = state.ready_model()?;
    Ok(axum::Json(ModelMetadata {
        name: state.model_name.clone(),
        versions: state.model_version.clone().map(|v| vec![v]),
        platform: PLATFORM.to_owned(),
        inputs: model.inputs.iter().map(|s| s.metadata()).collect(),
        outputs: model.outputs.iter().map(|s| s.metadata()).collect(),
    }))
}

async fn model_ready(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> StatusCode {
    match path {
        Ok(Path(name)) => ready_of(&state, &name, None),
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

async fn model_ready_versioned(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> StatusCode {
    match path {
        Ok(Path((name, version))) => ready_of(&state, &name, Some(&version)),
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

/// Health answers carry their result in the status code alone.
fn ready_of(state: &AppState, name: &str, version: Option<&str>) -> StatusCode {
    match state.check_model(name, version) {
        Err(e) => e.status(),
        Ok(()) if state.model().is_some() => StatusCode::OK,
        Ok(()) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn infer(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    match path {
        Ok(Path(name)) => infer_with(state, &name, None, request).await,
        Err(e) => path_error(e).into_response(),
    }
}

async fn infer_versioned(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    request: Request,
) -> Response {
    match path {
        Ok(Path((name, version))) => infer_with(state, &name, Some(&version), request).await,
        Err(e) => path_error(e).into_response(),
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "request body too large: the server accepts at most {limit} bytes (--max-request-bytes)"
    ))
}

/// Reads a request body into one buffer of its announced length (so it is never copied or
/// regrown), refusing it (413) as soon as it passes `limit`.
async fn read_body(
    request: Request,
    content_length: Option<usize>,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    use http_body_util::BodyExt;
    let mut body = request.into_body();
    let mut buf = Vec::with_capacity(content_length.unwrap_or(0).min(limit));
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("cannot read request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len().saturating_add(data.len()) > limit {
                return Err(too_large(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

async fn infer_with(
    state: Arc<AppState>,
    name: &str,
    version: Option<&str>,
    request: Request,
) -> Response {
    match run_inference(state, name, version, request).await {
        Ok((json, None)) => (
            [(header::CONTENT_TYPE, "application/json")],
            axum::body::Body::new(json),
        )
            .into_response(),
        // Binary outputs follow the JSON header, whose length the response announces.
        Ok((body, Some(json_len))) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                ),
                (binary::HEADER_LENGTH, HeaderValue::from(json_len)),
            ],
            axum::body::Body::new(body),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Parses, runs and encodes one inference, at most as many at once as the server has
/// inference permits: on the connection's worker when it is small and the model fast, else on
/// a blocking thread.
///
/// The permit is taken before the body is read, so the bodies held in memory are at most one
/// per permit (each at most the body limit); requests waiting for a permit hold only their
/// headers, and at most `max_queued` of them wait (429 beyond). Holding a permit, a request
/// then reserves what its body and decoded tensors can take from the memory budget, waiting
/// for others to give theirs back (413 if it exceeds the whole budget), and gives back the
/// surplus once its shapes are known (see [`crate::budget`]). It must send its body within
/// the body timeout (408 otherwise), so a slow client cannot keep a permit.
///
/// A body with the binary data extension ([`crate::binary`]) is charged its JSON header as a
/// JSON body and its binary data for what it decodes to, and answered with the JSON header's
/// length when an output is sent as binary data.
async fn run_inference(
    state: Arc<AppState>,
    name: &str,
    version: Option<&str>,
    request: Request,
) -> Result<(HeldBody, Option<usize>), ApiError> {
    state.check_model(name, version)?;
    let model = state.ready_model()?;
    let limit = state.max_request_bytes;
    let content_length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if content_length.is_some_and(|len| len > limit as u64) {
        return Err(too_large(limit));
    }
    let json_len = binary::header_length(request.headers())?;
    let permit = state.admit().await?;
    // A body of unknown length (chunked) is charged as the largest one.
    let cost = InputCost::of(model.inputs.iter().map(|s| s.datatype));
    let body_len = content_length.unwrap_or(limit as u64);
    let charge = match json_len {
        Some(json_len) => Charge::for_binary_body(body_len, json_len, cost),
        None => Charge::for_body(body_len, cost),
    };
    let reservation = state.budget.reserve(charge).await?;
    let announced = content_length.and_then(|len| usize::try_from(len).ok());
    let body = tokio::time::timeout(state.body_timeout, read_body(request, announced, limit))
        .await
        .map_err(|_| {
            ApiError::RequestTimeout(format!(
                "the request body did not arrive within {} s",
                state.body_timeout.as_secs()
            ))
        })??;
    // A small body of a model whose recent runs were short is parsed, run and encoded on this
    // worker: handing it to the blocking pool and back costs more than the work (two thread
    // wake-ups; profiled with perf at 8 clients: most of the time in the scheduler, under 1 %
    // in the model). Anything larger, or a model that runs long, goes to the blocking pool so
    // that it never holds up other connections, health probes included.
    let inline = body.len() <= INLINE_MAX_BODY_BYTES
        && state.recent_run_micros.load(Ordering::Relaxed) <= INLINE_MAX_RUN_MICROS;
    let work = process(state.clone(), model, body, json_len, reservation, permit);
    let result = if inline {
        std::panic::AssertUnwindSafe(work).catch_unwind().await
    } else {
        match tokio::task::spawn_blocking(move || tokio::runtime::Handle::current().block_on(work))
            .await
        {
            Ok(result) => Ok(result),
            Err(e) if e.is_panic() => Err(e.into_panic()),
            Err(_) => return Err(ApiError::internal("inference was cancelled")),
        }
    };
    result.unwrap_or_else(|panic| {
        Err(ApiError::internal(format!(
            "inference failed unexpectedly: {}",
            panic_message(panic.as_ref())
        )))
    })
}

/// Bodies up to this size may run on the connection's worker (see [`run_inference`]).
const INLINE_MAX_BODY_BYTES: usize = 16 * 1024;
/// ... if the model's recent inferences took at most this long, in microseconds (a smoothed
/// average of [`model::Inference::run_time`]).
const INLINE_MAX_RUN_MICROS: u64 = 200;

/// Parses, runs and encodes one inference whose body has been read (see [`run_inference`]),
/// holding `permit` and the memory `reservation` throughout.
async fn process(
    task_state: Arc<AppState>,
    model: Arc<LoadedModel>,
    body: Vec<u8>,
    json_len: Option<u64>,
    mut reservation: Reservation,
    permit: OwnedSemaphorePermit,
) -> Result<(HeldBody, Option<usize>), ApiError> {
    let _permit = permit;
    let (json, binary_data) = binary::split_body(&body, json_len)?;
    let mut req = InferenceRequest::from_json(json)?;
    binary::bind_binary_inputs(&mut req, binary_data)?;
    // Now that the shapes are known: the body, its decoded inputs and the model's run.
    let decoded = req.decoded_bytes();
    let charge = Charge::for_run(
        body.len() as u64,
        decoded,
        model.working.for_inputs(decoded),
    );
    reservation.shrink_to(charge);
    reservation
        .grow_to(charge, &task_state.budget, task_state.body_timeout)
        .await?;
    let mut inference = model.infer(&req)?;
    task_state
        .metrics
        .inference_duration
        .observe(inference.run_time.as_secs_f64());
    task_state.note_run_time(inference.run_time);
    for output in &mut inference.outputs {
        output.binary = req.wants_binary(&output.name);
    }
    let InferenceRequest { id, .. } = req;
    drop(body);
    let response = InferenceResponse {
        model_name: task_state.model_name.clone(),
        model_version: task_state.model_version.clone(),
        id,
        parameters: None,
        outputs: inference.outputs,
    };
    // The response is charged too, before it is written: its decoded outputs and its
    // JSON text. A small response is charged its text's upper bound; a large one its
    // exact length, measured by encoding it once without keeping it.
    let encode_error =
        |e: serde_json::Error| ApiError::internal(format!("cannot encode the response: {e}"));
    let bound = response.json_bound();
    let text = if bound <= EXACT_RESPONSE_SIZE_FROM {
        bound
    } else {
        let mut counter = ByteCounter(0);
        serde_json::to_writer(&mut counter, &response).map_err(encode_error)?;
        counter.0
    };
    let text = text.saturating_add(response.binary_len());
    let outputs: u64 = response.outputs.iter().map(|o| o.data.heap_bytes()).sum();
    reservation
        .grow_to(
            Charge(outputs.saturating_add(text)),
            &task_state.budget,
            task_state.body_timeout,
        )
        .await?;
    let mut json = Vec::with_capacity(usize::try_from(text).unwrap_or(0));
    serde_json::to_writer(&mut json, &response).map_err(encode_error)?;
    let header_len = response.has_binary().then_some(json.len());
    for output in response.outputs.iter().filter(|o| o.binary) {
        binary::write_binary(&output.name, &output.data, &mut json)?;
    }
    drop(response);
    reservation.shrink_to(Charge(json.len() as u64));
    let body = HeldBody {
        data: Some(Bytes::from(json)),
        _reservation: reservation,
    };
    Ok((body, header_len))
}

/// Responses whose JSON text may be longer than this are measured exactly before they are
/// charged; shorter ones are charged their upper bound, which saves encoding them twice.
const EXACT_RESPONSE_SIZE_FROM: u64 = 64 * 1024;

/// Counts the bytes written to it.
struct ByteCounter(u64);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len() as u64);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A response body that keeps its share of the memory budget until it is sent (or the
/// client goes away), so that slow readers cannot hold unbudgeted responses.
struct HeldBody {
    data: Option<Bytes>,
    _reservation: Reservation,
}

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.data.take().map(|d| Ok(http_body::Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let budget = state.budget();
    let reserved = budget.bytes().saturating_sub(budget.available());
    let metrics = state.metrics();
    metrics
        .memory_budget_bytes
        .set(i64::try_from(budget.bytes()).unwrap_or(i64::MAX));
    metrics
        .memory_reserved_bytes
        .set(i64::try_from(reserved).unwrap_or(i64::MAX));
    match metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => ApiError::internal("cannot encode metrics").into_response(),
    }
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", req.uri().path()))
}

async fn method_not_allowed(req: Request) -> Response {
    let err = ApiError::bad_request(format!(
        "method {} is not allowed on {}",
        req.method(),
        req.uri().path()
    ));
    let mut response = err.into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// Why the server stopped with an error. Each message is one line.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("cannot install signal handlers: {0}")]
    Signals(String),
    #[error("HTTP server failed: {0}")]
    Serve(String),
    #[error("in-flight requests did not finish within {0:?} of the shutdown signal")]
    ShutdownTimeout(Duration),
}

/// Why serving stopped.
enum Stop {
    Signal(&'static str),
    LoadFailed(LoadError),
}

/// SIGTERM and SIGINT, installed before the server says it is listening so
/// that no signal is missed.
pub(crate) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub(crate) fn install() -> Result<Self, RunError> {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind| signal(kind).map_err(|e| RunError::Signals(one_line(&e)));
        Ok(Self {
            term: install(SignalKind::terminate())?,
            int: install(SignalKind::interrupt())?,
        })
    }

    pub(crate) async fn recv(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Runs the server until SIGTERM/SIGINT (then `Ok` once in-flight requests
/// are done) or until the model fails to load (then `Err`).
///
/// The server listens before the model is loaded: liveness answers 200 at
/// once, readiness 503 until the model is ready.
pub async fn run(config: Config) -> Result<(), RunError> {
    let model_path = config
        .model_path
        .clone()
        .ok_or_else(|| RunError::Config("--model-path is required".to_owned()))?;
    let file = model::resolve_model_file(&model_path)?;
    let model_name = match &config.model_name {
        Some(name) => name.clone(),
        None => model::default_model_name(&model_path).ok_or_else(|| {
            RunError::Config(format!(
                "cannot derive a model name from {}; pass --model-name",
                model_path.display()
            ))
        })?,
    };
    check_path_segment("model name", &model_name).map_err(RunError::Config)?;
    if let Some(version) = &config.model_version {
        check_path_segment("model version", version).map_err(RunError::Config)?;
    }

    let auth_settings = config.auth.settings().map_err(RunError::Config)?;

    let signals = Signals::install()?;
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .map_err(|e| RunError::Bind {
            addr: config.http_addr,
            reason: one_line(&e),
        })?;
    let local_addr = listener.local_addr().map_err(|e| RunError::Bind {
        addr: config.http_addr,
        reason: one_line(&e),
    })?;

    let metrics_listener = tokio::net::TcpListener::bind(config.metrics_addr)
        .await
        .map_err(|e| RunError::Bind {
            addr: config.metrics_addr,
            reason: one_line(&e),
        })?;
    let metrics_addr = metrics_listener.local_addr().map_err(|e| RunError::Bind {
        addr: config.metrics_addr,
        reason: one_line(&e),
    })?;

    let grpc_listener = match config.grpc_addr {
        Some(addr) => {
            Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| RunError::Bind {
                        addr,
                        reason: one_line(&e),
                    })?,
            )
        }
        None => None,
    };

    let state = AppState::new(
        model_name.clone(),
        config.model_version.clone(),
        config.inference_concurrency(),
    )
    .with_queue(
        config.max_queued_requests,
        Duration::from_secs(config.request_body_timeout_secs),
    )
    .with_memory(config.max_request_bytes, config.memory_budget_bytes());
    let auth = Auth::from_settings(auth_settings, state.metrics().auth_requests.clone())
        .map_err(RunError::Config)?;
    tracing::info!(
        auth = config.auth.auth.as_str(),
        "checking callers of the public ports"
    );
    let state = Arc::new(state.with_auth(auth));
    tracing::info!(
        budget_bytes = state.budget().bytes(),
        max_request_bytes = config.max_request_bytes,
        "memory budget for request bodies and decoded tensors"
    );
    let app = router(state.clone(), config.max_request_bytes);
    let metrics_app = metrics_router(state.clone());
    tracing::info!("serving metrics on http://{metrics_addr}/metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(metrics_listener, metrics_app).await {
            tracing::warn!(error = %one_line(&e), "the metrics listener stopped");
        }
    });
    tracing::info!(
        model = %model_name,
        file = %file.display(),
        "listening on http://{local_addr}"
    );

    let (stop_tx, mut stop_rx) = mpsc::channel::<Stop>(2);
    let signal_tx = stop_tx.clone();
    tokio::spawn(async move {
        let name = signals.recv().await;
        let _ = signal_tx.send(Stop::Signal(name)).await;
    });
    tokio::spawn(load_model(state.clone(), file, stop_tx));

    let stop_reason: Arc<Mutex<Option<Stop>>> = Arc::new(Mutex::new(None));
    let (draining_tx, mut draining_rx) = watch::channel(false);
    if let Some(listener) = grpc_listener {
        let grpc_addr = listener.local_addr().map_err(|e| RunError::Bind {
            addr: config.http_addr,
            reason: one_line(&e),
        })?;
        tracing::info!("serving the gRPC API on {grpc_addr}");
        let mut draining = draining_tx.subscribe();
        let grpc =
            axum::serve(listener, grpc::router(state.clone())).with_graceful_shutdown(async move {
                let _ = draining.wait_for(|draining| *draining).await;
            });
        tokio::spawn(async move {
            if let Err(e) = grpc.await {
                tracing::warn!(error = %one_line(&e), "the gRPC listener stopped");
            }
        });
    }
    let reason_slot = stop_reason.clone();
    let graceful = async move {
        let reason = stop_rx.recv().await;
        match &reason {
            Some(Stop::Signal(name)) => {
                tracing::info!("{name} received: finishing in-flight requests, then exiting");
            }
            Some(Stop::LoadFailed(_)) | None => {}
        }
        if let Ok(mut slot) = reason_slot.lock() {
            *slot = reason;
        }
        let _ = draining_tx.send(true);
    };
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(graceful)
        .into_future();
    let timeout = Duration::from_secs(config.shutdown_timeout_secs);
    let deadline = async move {
        let _ = draining_rx.wait_for(|draining| *draining).await;
        tokio::time::sleep(timeout).await;
    };
    tokio::select! {
        served = server => served.map_err(|e| RunError::Serve(one_line(&e)))?,
        () = deadline => return Err(RunError::ShutdownTimeout(timeout)),
    }

    let reason = stop_reason.lock().ok().and_then(|mut slot| slot.take());
    match reason {
        Some(Stop::LoadFailed(e)) => Err(RunError::Load(e)),
        Some(Stop::Signal(_)) | None => {
            tracing::info!("shut down cleanly");
            Ok(())
        }
    }
}

/// `name DATATYPE[dims], ...` for a log line.
fn describe(specs: &[model::TensorSpec]) -> String {
    let parts: Vec<String> = specs
        .iter()
        .map(|s| {
            let m = s.metadata();
            format!("{} {}{:?}", m.name, m.datatype, m.shape)
        })
        .collect();
    parts.join(", ")
}

/// Loads the model on a blocking thread; makes it ready, or asks the server
/// to stop if it cannot be loaded.
async fn load_model(state: Arc<AppState>, file: std::path::PathBuf, stop: mpsc::Sender<Stop>) {
    let started = Instant::now();
    let path = file.clone();
    let loaded = tokio::task::spawn_blocking(move || model::load(&path)).await;
    let result = match loaded {
        Ok(result) => result,
        Err(e) => Err(LoadError {
            path: file.clone(),
            reason: if e.is_panic() {
                format!(
                    "the ONNX loader failed unexpectedly: {}",
                    panic_message(e.into_panic().as_ref())
                )
            } else {
                "loading was cancelled".to_owned()
            },
        }),
    };
    match result {
        Ok(model) => {
            let seconds = started.elapsed().as_secs_f64();
            state.metrics().model_load_seconds.set(seconds);
            let working = model.working;
            state
                .metrics()
                .working_fixed_bytes
                .set(i64::try_from(working.fixed).unwrap_or(i64::MAX));
            state
                .metrics()
                .working_per_input_byte
                .set(working.per_input_byte);
            tracing::info!(
                seconds,
                inputs = %describe(&model.inputs),
                outputs = %describe(&model.outputs),
                working_memory_fixed_bytes = working.fixed,
                working_memory_per_input_byte = working.per_input_byte,
                working_memory_measured = working.measured,
                "model ready"
            );
            state.set_model(Arc::new(model));
        }
        Err(e) => {
            let _ = stop.send(Stop::LoadFailed(e)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request as HttpRequest;
    use tower::ServiceExt;

    fn app(version: Option<&str>) -> (Arc<AppState>, Router) {
        let state = Arc::new(AppState::new("m".into(), version.map(str::to_owned), 1));
        let router = router(state.clone(), 1024);
        (state, router)
    }

    async fn call(router: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
        let req = HttpRequest::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body.to_owned()))
            .unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn before_the_model_is_loaded() {
        let (state, router) = app(None);
        assert_eq!(
            call(&router, "GET", "/v2/health/live", "").await.0,
            StatusCode::OK
        );
        let (status, body) = call(&router, "GET", "/v2/health/ready", "").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "");
        assert_eq!(
            call(&router, "GET", "/v2/models/m/ready", "").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let (status, body) = call(&router, "GET", "/v2/models/m", "").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, r#"{"error":"model 'm' is not ready yet"}"#);
        let (status, body) = call(&router, "POST", "/v2/models/m/infer", "{}").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("not ready"));
        // Unknown models are 404 whether or not the model is loaded.
        let (status, body) = call(&router, "POST", "/v2/models/other/infer", "{}").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, r#"{"error":"unknown model 'other'"}"#);
        // /metrics is not served on the API's address, only on the metrics address.
        assert_eq!(
            call(&router, "GET", "/metrics", "").await.0,
            StatusCode::NOT_FOUND
        );
        let (_, metrics) = call(&metrics_router(state), "GET", "/metrics", "").await;
        assert!(
            metrics.contains("berth_model_server_model_ready 0"),
            "{metrics}"
        );
        assert!(
            metrics.contains(r#"berth_model_server_requests_total{endpoint="ready",code="503"} 1"#),
            "{metrics}"
        );
    }

    #[tokio::test]
    async fn versions_and_unknown_paths() {
        let (_, router) = app(Some("3"));
        let (status, _) = call(&router, "GET", "/v2/models/m/versions/3/ready", "").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let (status, body) = call(&router, "GET", "/v2/models/m/versions/4", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, r#"{"error":"unknown version '4' of model 'm'"}"#);
        let (status, body) = call(&router, "GET", "/v2/models/m/versions/4/ready", "").await;
        assert_eq!((status, body.as_str()), (StatusCode::NOT_FOUND, ""));
        let (status, body) = call(&router, "GET", "/v2/nope", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, r#"{"error":"no such endpoint: /v2/nope"}"#);
        let (status, body) = call(&router, "GET", "/v2/models/m/infer", "").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(body.contains("method GET is not allowed"), "{body}");
    }

    #[tokio::test]
    async fn server_metadata_names_the_server() {
        let (_, router) = app(None);
        let (status, body) = call(&router, "GET", "/v2", "").await;
        assert_eq!(status, StatusCode::OK);
        let meta: ServerMetadata = serde_json::from_str(&body).unwrap();
        assert_eq!(meta.name, SERVER_NAME);
        assert_eq!(meta.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(meta.extensions, [BINARY_TENSOR_DATA]);
    }

    #[tokio::test]
    async fn waiting_requests_are_bounded() {
        let state =
            Arc::new(AppState::new("m".into(), None, 1).with_queue(1, Duration::from_secs(30)));
        let held = state.admit().await.unwrap();
        // One request may wait for the permit...
        let waiter = tokio::spawn({
            let state = state.clone();
            async move { state.admit().await.map(drop) }
        });
        while state.queued.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // ...the next one is refused at once.
        let refused = state.admit().await.unwrap_err();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.message().contains("busy"), "{}", refused.message());
        // The refusal left the queue as it was; freeing the permit lets the waiter in.
        assert_eq!(state.queued.load(Ordering::SeqCst), 1);
        drop(held);
        waiter.await.unwrap().unwrap();
        assert_eq!(state.queued.load(Ordering::SeqCst), 0);
        assert!(state.admit().await.is_ok());
    }

    #[test]
    fn panic_messages() {
        assert_eq!(panic_message(&"boom"), "boom");
        assert_eq!(panic_message(&String::from("bang")), "bang");
        assert_eq!(panic_message(&3u8), "unknown panic");
    }
}
