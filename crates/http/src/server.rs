//! Building and running the HTTP server.

use std::net::TcpListener;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{get, web, App, HttpMessage, HttpResponse, HttpServer};
use tokio::sync::watch;
use uuid::Uuid;

use crate::problem::ApiError;
use crate::routes::{
    api_keys, campaigns, imports, lifecycle, reports, suppressions, webhooks, RequestId,
};
use crate::state::AppState;

/// Mounts every API route.
pub fn configure_api(config: &mut web::ServiceConfig) {
    config
        .service(api_keys::create_api_key)
        .service(api_keys::list_api_keys)
        .service(api_keys::revoke_api_key)
        .service(campaigns::create_campaign)
        .service(campaigns::list_campaigns)
        .service(campaigns::get_campaign)
        .service(campaigns::update_campaign)
        .service(imports::import_contacts)
        .service(imports::get_import)
        .service(imports::list_import_issues)
        .service(imports::rejected_rows_csv)
        .service(imports::attach_wash)
        .service(lifecycle::validate_campaign)
        .service(lifecycle::exclude_contacts)
        .service(lifecycle::launch_campaign)
        .service(lifecycle::pause_campaign)
        .service(lifecycle::resume_campaign)
        .service(lifecycle::cancel_campaign)
        .service(reports::campaign_report)
        .service(reports::list_contacts)
        .service(reports::campaign_audit)
        .service(reports::export_contacts)
        .service(reports::campaign_timeline)
        .service(suppressions::add_suppression)
        .service(suppressions::list_suppressions)
        .service(suppressions::remove_suppression)
        .service(webhooks::receive_event)
        .service(healthz)
        .service(readyz)
        .service(metrics_text)
        .service(docs_redirect)
        .service(utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}").url(
            "/docs/openapi.json",
            <crate::openapi::ApiDoc as utoipa::OpenApi>::openapi(),
        ))
        .service(openapi_json);
}

/// Redirects `/docs` to Swagger UI at `/docs/`, whose relative asset paths
/// need the trailing slash.
#[get("/docs")]
async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((actix_web::http::header::LOCATION, "/docs/"))
        .finish()
}

#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the database responds, its migrations match this build, keys
/// are loaded, and the blind-index key's fingerprint equals the one recorded
/// in the database. The server records it, or fails to start on a mismatch,
/// before it listens.
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(&state.pool)
        .await
        .is_ok();
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&state.pool)
            .await
            .unwrap_or_default();
    let expected: Vec<i64> = outbound_persistence::db::MIGRATOR
        .iter()
        .map(|m| m.version)
        .collect();
    let migrations = database && applied == expected;
    let keys = !state.keyring.active_key_id().is_empty();
    let keys_match = migrations
        && outbound_persistence::key_check::blind_index_matches(&state.pool, &state.keyring)
            .await
            .unwrap_or(false);
    let ready = database && migrations && keys && keys_match;
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {
            "database": database,
            "migrations_current": migrations,
            "keys_loaded": keys,
            "keys_match_database": keys_match,
        },
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        tracing::warn!(
            database,
            migrations,
            keys,
            keys_match,
            "readiness check failed"
        );
        HttpResponse::ServiceUnavailable().json(body)
    }
}

#[get("/metrics")]
async fn metrics_text() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::render())
}

#[get("/openapi.json")]
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::openapi::document_json())
}

/// Turns actix's own plain-text errors (unknown route, wrong method, oversized
/// or unreadable body) into problem documents. JSON bodies that handlers
/// write themselves, such as the checks of a failed `/readyz`, stay.
fn problem_for_framework_errors<B: MessageBody + 'static>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = response.headers().get(CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(b"application/problem+json")
            || v.as_bytes().starts_with(b"application/json")
    });
    if is_json {
        return Ok(ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let status = response.status();
    let (code, detail) = match status.as_u16() {
        404 => ("not_found", "no such route"),
        405 => (
            "method_not_allowed",
            "this route does not accept the method",
        ),
        // Only raw uploads (contact and wash files) reach the payload limit;
        // JSON bodies fail earlier with `invalid_body`.
        413 => (
            "file_too_large",
            "the file is larger than the upload limit; split it into smaller files",
        ),
        415 => (
            "unsupported_media_type",
            "the Content-Type is not accepted here",
        ),
        400 => ("invalid_request", "the request is malformed"),
        _ => ("error", "the request failed"),
    };
    let error = ApiError::new(status, code, detail);
    let (request, _) = response.into_parts();
    let rebuilt = ServiceResponse::new(request, actix_web::ResponseError::error_response(&error))
        .map_into_boxed_body();
    Ok(ErrorHandlerResponse::Response(
        rebuilt.map_into_right_body(),
    ))
}

/// Builds the app with its middleware, extractor limits and routes.
pub fn build_app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = ServiceResponse<EitherBody<BoxBody>>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let max_bytes = state.limits.max_bytes;
    App::new()
        .app_data(state)
        .app_data(web::PayloadConfig::new(max_bytes + 1))
        .app_data(
            web::JsonConfig::default()
                .limit(1024 * 1024)
                .error_handler(|error, _| {
                    if matches!(
                        error,
                        actix_web::error::JsonPayloadError::Overflow { .. }
                            | actix_web::error::JsonPayloadError::OverflowKnownLength { .. }
                    ) {
                        return ApiError::new(
                            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                            "payload_too_large",
                            "the JSON body is larger than the 1 MiB this endpoint accepts",
                        )
                        .into();
                    }
                    if matches!(error, actix_web::error::JsonPayloadError::ContentType) {
                        return ApiError::new(
                            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                            "unsupported_media_type",
                            "this endpoint takes a JSON body; send it with `Content-Type: application/json`",
                        )
                        .into();
                    }
                    ApiError::bad_request(
                        "invalid_body",
                        format!(
                            "the JSON body is invalid: {}",
                            crate::problem::redact_digits(&error.to_string())
                        ),
                    )
                    .into()
                }),
        )
        .app_data(web::QueryConfig::default().error_handler(|error, _| {
            ApiError::bad_request(
                "invalid_query",
                format!(
                    "the query string is invalid: {}",
                    crate::problem::redact_digits(&error.to_string())
                ),
            )
            .into()
        }))
        .configure(configure_api)
        .wrap(
            ErrorHandlers::new()
                .default_handler_client(problem_for_framework_errors)
                .default_handler_server(problem_for_framework_errors),
        )
        .wrap_fn(|request, service| {
            let id = request
                .headers()
                .get("X-Request-Id")
                .and_then(|v| v.to_str().ok())
                .filter(|v| {
                    !v.is_empty()
                        && v.len() <= 64
                        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
                .map_or_else(|| Uuid::new_v4().to_string(), str::to_owned);
            request.extensions_mut().insert(RequestId(id.clone()));
            let method = request.method().clone();
            // Path segments are client input and may hold a number; ids
            // stay readable.
            let path = redact_path(request.path());
            let route = request
                .match_pattern()
                .unwrap_or_else(|| "unmatched".to_owned());
            let started = std::time::Instant::now();
            // Every log line written while handling the request carries its id.
            let span = tracing::info_span!("request", request_id = %id);
            let future = span.in_scope(|| service.call(request));
            let handled = async move {
                let mut response = future.await?;
                let metrics = crate::metrics::metrics();
                metrics
                    .requests
                    .with_label_values(&[method.as_str(), &route, response.status().as_str()])
                    .inc();
                metrics
                    .request_seconds
                    .with_label_values(&[method.as_str(), &route])
                    .observe(started.elapsed().as_secs_f64());
                if let Ok(value) = HeaderValue::from_str(&id) {
                    response
                        .headers_mut()
                        .insert(HeaderName::from_static("x-request-id"), value);
                }
                tracing::info!(%method, %path, status = response.status().as_u16(), "request");
                Ok(response)
            };
            tracing::Instrument::instrument(handled, span)
        })
}

/// A server running in the background.
pub struct RunningServer {
    pub address: std::net::SocketAddr,
    pub handle: actix_web::dev::ServerHandle,
    pub shutdown: watch::Sender<bool>,
    pub dispatcher: Option<tokio::task::JoinHandle<()>>,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Stops the dispatcher and the server gracefully, finishing in-flight
    /// requests, then waits up to 30 seconds for running import jobs.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        if let Some(dispatcher) = self.dispatcher {
            let _ = dispatcher.await;
        }
        self.handle.stop(true).await;
        let _ = self.server.await;
        crate::import_jobs::wait_for_jobs(std::time::Duration::from_secs(30)).await;
    }
}

/// Starts the API on `listener`, with the dispatcher when `dispatch` is set.
///
/// # Errors
/// Fails when the listener cannot be used.
pub fn start(
    state: AppState,
    listener: TcpListener,
    dispatch: bool,
) -> std::io::Result<RunningServer> {
    let address = listener.local_addr()?;
    let state = web::Data::new(state);
    let (shutdown, receiver) = watch::channel(false);
    let dispatcher = dispatch.then(|| tokio::spawn(crate::dispatch::run(state.clone(), receiver)));
    let app_state = state.clone();
    let server = HttpServer::new(move || build_app(app_state.clone()))
        .listen(listener)?
        .shutdown_timeout(30)
        .disable_signals()
        .run();
    let handle = server.handle();
    let server = tokio::spawn(server);
    Ok(RunningServer {
        address,
        handle,
        shutdown,
        dispatcher,
        server,
    })
}

/// Starts the simulated voice platform on `listener`.
///
/// # Errors
/// Fails when the listener cannot be used.
pub fn start_simulator(
    config: crate::simulator::SimulatorConfig,
    listener: TcpListener,
) -> std::io::Result<(std::net::SocketAddr, actix_web::dev::ServerHandle)> {
    let (address, handle, _) =
        start_simulator_with(config, crate::simulator::Faults::default(), listener)?;
    Ok((address, handle))
}

/// Starts the simulated voice platform with `faults` on `listener`, and
/// returns its state for reading the ledger.
///
/// # Errors
/// Fails when the listener cannot be used.
pub fn start_simulator_with(
    config: crate::simulator::SimulatorConfig,
    faults: crate::simulator::Faults,
    listener: TcpListener,
) -> std::io::Result<(
    std::net::SocketAddr,
    actix_web::dev::ServerHandle,
    web::Data<crate::simulator::SimulatorState>,
)> {
    let address = listener.local_addr()?;
    let state = web::Data::new(crate::simulator::SimulatorState::with_faults(
        config, faults,
    ));
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .configure(crate::simulator::configure)
    })
    .listen(listener)?
    .disable_signals()
    .workers(2)
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok((address, handle, state))
}

/// Returns `path` with every segment that is not a UUID passed through
/// [`crate::problem::redact_digits`], for the request log.
fn redact_path(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if uuid::Uuid::parse_str(segment).is_ok() {
                segment.to_owned()
            } else {
                crate::problem::redact_digits(segment)
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}
