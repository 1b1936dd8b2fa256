//! Handlers at the end of each route: negotiate the format, parse at the edge, call the write
//! side or the read model, and answer; every failure goes through [`ApiError`].

use super::body::{self, BodyStream};
use super::headers::{
    etag, header_refused, idempotency_key, if_match, min_log_position, position_header, IfMatch,
    RequestMeta, IDEMPOTENT_REPLAYED, LOG_POSITION, POSITION_SHOWN, PROJECTION_PENDING, REQUEST_ID,
    TOTAL_COUNT,
};
use super::negotiation::{
    answer_format, body_format, plain_body, problem_format, Consumes, Format,
};
use super::server::ClientAddress;
use super::{query_string, xml, ApiError, ApiState};
use crate::auth::{AuthError, Caller};
use crate::domain::{
    erasure_id, open_published, shown, AccountId, Customer, CustomerDetails, CustomerId,
    CustomerPatch,
};
use crate::log::LogPosition;
use crate::metrics::Snapshot;
use crate::read_model::{
    parse_page, CustomerQuery, CustomerRecord, ReadModelError, Work, INLINE_WORK, MAX_WORK,
};
use crate::write::{ChangeKind, Condition, Erasure};
use std::sync::Arc;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

/// `PUT /api/v01/customers`: validate, append `CustomerCreated`, answer 201 once Kafka confirmed it.
pub async fn create_customer(meta: RequestMeta, body: BodyStream, state: ApiState) -> Response {
    let result = create(&meta, body, &state).await;
    respond(&meta, result)
}

/// `POST /api/v01/customers/{id}` (and `PATCH` with a merge patch): change the fields the body
/// names, answer the whole customer.
pub async fn update_customer(
    id: String,
    meta: RequestMeta,
    body: BodyStream,
    state: ApiState,
    consumes: Consumes,
) -> Response {
    let result = update(&id, &meta, body, &state, consumes).await;
    respond(&meta, result)
}

/// `DELETE /api/v01/customers/{id}`: 204 once this replica applied the delete.
pub async fn delete_customer(id: String, meta: RequestMeta, state: ApiState) -> Response {
    let result = delete(&id, &meta, &state).await;
    respond(&meta, result)
}

/// `GET /api/v01/customers`: the page of customers the filters select.
pub async fn find_customers(meta: RequestMeta, state: ApiState) -> Response {
    let result = find(&meta, &state).await;
    respond(&meta, result)
}

/// `GET /api/v01/customers/{id}`: one customer, or 404.
pub async fn get_customer(id: String, meta: RequestMeta, state: ApiState) -> Response {
    let result = get(&id, &meta, &state).await;
    respond(&meta, result)
}

/// `GET /api/v01/customers/{id}/events`: the records that built a customer, read back from Kafka.
pub async fn customer_history(id: String, meta: RequestMeta, state: ApiState) -> Response {
    let result = history(&id, &meta, &state).await;
    respond(&meta, result)
}

/// `POST /api/v01/customers/{id}/erasure`: erase the customer's personal data; 202 with the
/// erasure's status and `Location`.
pub async fn erase_customer(id: String, meta: RequestMeta, state: ApiState) -> Response {
    let result = erase(&id, &meta, &state).await;
    respond(&meta, result)
}

/// `GET /api/v01/erasures/{requestId}`: where an erasure is, place by place.
pub async fn erasure_status(request_id: String, meta: RequestMeta, state: ApiState) -> Response {
    let result = erasure(&request_id, &meta, &state).await;
    respond(&meta, result)
}

/// `GET /healthz`: 200 while the process serves HTTP.
pub fn alive() -> Response {
    json_answer(StatusCode::OK, &serde_json::json!({"status": "alive"}))
}

/// `GET /api/v01/openapi.json`: the API's OpenAPI 3.1 document. Needs no key.
pub fn openapi_document() -> Response {
    let mut response = Response::new(super::openapi::DOCUMENT.as_str().into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `GET /readyz`: 200 when this replica should get traffic (caught up with the log, within the
/// lag bound, brokers reachable), 503 with the reason otherwise.
pub fn readiness(state: ApiState) -> Response {
    let verdict = state.readiness.verdict();
    let status = if verdict.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_answer(status, &verdict)
}

fn json_answer(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let bytes = serde_json::to_vec(body).expect("a probe's answer always serialises");
    let mut response = Response::new(bytes.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `GET /metrics` on the API's address: open to loopback clients (a local Prometheus agent),
/// otherwise for admin keys only.
pub fn metrics(client: Option<ClientAddress>, meta: RequestMeta, state: ApiState) -> Response {
    let allowed = if client.is_some_and(|ClientAddress(address)| address.ip().is_loopback()) {
        Ok(())
    } else {
        authenticate(&meta, &state).and_then(|caller| {
            if caller.is_admin() {
                Ok(())
            } else {
                Err(ApiError::Forbidden(format!(
                    "metrics are for loopback clients and admin keys; the API key {:?} is not one",
                    caller.name()
                )))
            }
        })
    };
    match allowed {
        Ok(()) => metrics_text(state),
        Err(error) => respond(&meta, Err(error)),
    }
}

/// The Prometheus text exposition of every metric.
pub fn metrics_text(state: ApiState) -> Response {
    let verdict = state.readiness.verdict();
    let snapshot = Snapshot {
        lag: verdict.partition_lag,
        ready: verdict.ready,
        producer_queue: state.registrar.producer_queue(),
        customers: state.read_model.len(),
        disk_bytes: state.read_model.size_on_disk().unwrap_or(0),
    };
    let mut response = Response::new(state.metrics.render(&snapshot).into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    response
}

/// `GET /api/v01/admin/rejected-events`: records the projector kept out of the read model.
pub async fn list_rejected_events(meta: RequestMeta, state: ApiState) -> Response {
    let result = rejected_events(&meta, &state).await;
    respond(&meta, result)
}

/// `GET /api/v01/admin/snapshot` (admin keys): this replica's read model as a snapshot, streamed
/// while it is written (flushes wait meanwhile; the projector and reads go on).
pub fn read_model_snapshot(meta: RequestMeta, state: ApiState) -> Response {
    let result = snapshot(&meta, &state);
    respond(&meta, result)
}

/// A known path with a method it does not allow: 405 with `Allow`.
pub fn method_not_allowed(meta: RequestMeta, allow: &'static str) -> Response {
    respond(&meta, Err(ApiError::MethodNotAllowed { allow }))
}

/// Any other path: 404.
pub fn no_such_path(meta: RequestMeta) -> Response {
    respond(
        &meta,
        Err(ApiError::NotFound("no resource at this path".into())),
    )
}

/// The answer to a request: the handler's response, or its error as a problem document in the
/// client's format; either way carrying the request's `X-Request-Id`.
fn respond(meta: &RequestMeta, result: Result<Response, ApiError>) -> Response {
    let mut response =
        result.unwrap_or_else(|error| error.into_response(problem_format(meta.accept.as_deref())));
    if let Ok(request_id) = HeaderValue::from_str(&meta.request_id) {
        response.headers_mut().insert(REQUEST_ID, request_id);
    }
    response
}

async fn create(
    meta: &RequestMeta,
    body: BodyStream,
    state: &ApiState,
) -> Result<Response, ApiError> {
    let caller = authenticate(meta, state)?;
    let answer = answer_format(meta.accept.as_deref())?;
    let body_format = body_format(meta.content_type.as_deref(), Consumes::Create)?;
    plain_body(meta.content_encoding.as_deref())?;
    let key = idempotency_key(meta)?;
    let body = body::read_limited(meta.content_length, body).await?;
    let details = CustomerDetails::parse(body::customer_fields(body_format, &body)?)?;
    if !caller.may_reach(details.account_id) {
        return Err(outside_scope(&caller, details.account_id));
    }
    refuse_while_catching_up(state)?;
    let _in_flight = state.metrics.create_in_flight();
    let registered = state
        .registrar
        .create(details, key.as_ref(), meta.audit_trail(&caller))
        .await
        .map_err(|error| ApiError::from_create(error, key.is_some()))?;
    let mut response = customer_response(answer, &registered.customer);
    *response.status_mut() = StatusCode::CREATED;
    let location = format!("/api/v01/customers/{}", registered.customer.id);
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&location).expect("a path of ASCII and a UUID is a valid header"),
    );
    headers.insert(LOG_POSITION, position_header(&registered.position));
    if !registered.projected {
        headers.insert(PROJECTION_PENDING, HeaderValue::from_static("true"));
    }
    if registered.replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

async fn update(
    id: &str,
    meta: &RequestMeta,
    body: BodyStream,
    state: &ApiState,
    consumes: Consumes,
) -> Result<Response, ApiError> {
    let caller = authenticate(meta, state)?;
    no_parameters(meta, "an update")?;
    let answer = answer_format(meta.accept.as_deref())?;
    let body_format = body_format(meta.content_type.as_deref(), consumes)?;
    plain_body(meta.content_encoding.as_deref())?;
    let if_match = if_match(meta)?;
    let key = idempotency_key(meta)?;
    let body = body::read_limited(meta.content_length, body).await?;
    let patch = CustomerPatch::parse(body::customer_fields(body_format, &body)?)?;
    catch_up(meta, state).await?;
    // A deleted customer's id goes on to the registrar: a retried key may replay what its first
    // request answered before the delete; anything else is a 404 there.
    let id = changeable_customer(id, &caller, state).await?;
    let if_match = condition(if_match, id, state, key.is_some()).await?;
    let changed = state
        .registrar
        .change(
            id,
            ChangeKind::Update(patch),
            if_match,
            key.as_ref(),
            meta.audit_trail(&caller),
        )
        .await
        .map_err(ApiError::from_change)?;
    let mut response = customer_response(answer, &changed.customer);
    changed_headers(&mut response, &changed);
    Ok(response)
}

async fn delete(id: &str, meta: &RequestMeta, state: &ApiState) -> Result<Response, ApiError> {
    let caller = authenticate(meta, state)?;
    no_parameters(meta, "a delete")?;
    // Errors are answered in the client's format; a 204 has no body to negotiate.
    let if_match = if_match(meta)?;
    let key = idempotency_key(meta)?;
    catch_up(meta, state).await?;
    let id = changeable_customer(id, &caller, state).await?;
    let if_match = condition(if_match, id, state, key.is_some()).await?;
    let changed = state
        .registrar
        .change(
            id,
            ChangeKind::Delete,
            if_match,
            key.as_ref(),
            meta.audit_trail(&caller),
        )
        .await
        .map_err(ApiError::from_change)?;
    let mut response = Response::new(Vec::new().into());
    *response.status_mut() = StatusCode::NO_CONTENT;
    changed_headers(&mut response, &changed);
    Ok(response)
}

/// The version the registrar's change is conditional on, of what `if_match` asks; a condition that can never hold
/// is a 412 naming the version customer `id` is at. Of a list, the version the customer is
/// at names the condition (which the registrar checks again when the log reaches the
/// change), once this replica has applied the customer's partition up to its end if the list
/// names a version ahead of the one held. With an `Idempotency-Key` (`keyed`), a list that
/// does not match is left to the registrar, whose replay of a retry's first answer comes
/// before any condition: it refuses a request the key has not made, as for one version.
async fn condition(
    if_match: IfMatch,
    id: CustomerId,
    state: &ApiState,
    keyed: bool,
) -> Result<Condition, ApiError> {
    let exactly = |version| Condition {
        version: Some(version),
        listed: Vec::new(),
    };
    let held = || -> Result<(u64, bool), ApiError> {
        let record = state
            .read_model
            .record(id)?
            .ok_or_else(|| no_customer(&id.to_string()))?;
        Ok((record.customer.version, record.deleted))
    };
    match if_match {
        IfMatch::Any => Ok(Condition::default()),
        IfMatch::Version(version) => Ok(exactly(version)),
        IfMatch::OneOf(versions) => {
            let (mut current, mut deleted) = held()?;
            if versions.iter().any(|&listed| listed > current) {
                state.registrar.catch_up_with(id).await;
                (current, deleted) = held()?;
            }
            if versions.contains(&current) && !deleted {
                return Ok(Condition {
                    version: Some(current),
                    listed: versions,
                });
            }
            if keyed {
                let other = versions.iter().copied().find(|&listed| listed != current);
                return Ok(Condition {
                    version: other.or(Some(current)),
                    listed: versions,
                });
            }
            if deleted {
                return Err(no_customer(&id.to_string()));
            }
            Err(ApiError::PreconditionFailed {
                detail: format!(
                    "customer {id} is at version {current}, none of those If-Match lists: \
                     read it again (its ETag) and decide whether the change still holds"
                ),
                current_version: current,
            })
        }
        IfMatch::Never => match held()? {
            (_, true) => Err(no_customer(&id.to_string())),
            (current, false) => Err(ApiError::PreconditionFailed {
                detail: "If-Match holds only weak entity tags, which never match (If-Match \
                         compares strongly)"
                    .into(),
                current_version: current,
            }),
        },
    }
}

/// Refuses a query string on an operation that takes no parameters: a parameter it would
/// ignore (`?fields=id`, a typo of a find) is a 400 naming it, as in a find.
fn no_parameters(meta: &RequestMeta, operation: &str) -> Result<(), ApiError> {
    if meta.query.is_empty() {
        return Ok(());
    }
    let pairs = query_string::decode(&meta.query)?;
    Ok(crate::read_model::no_parameters(&pairs, operation)?)
}

/// The headers of a change's answer: the position it reflects, and whether it replays a retried
/// key's first answer.
fn changed_headers(response: &mut Response, changed: &crate::write::Changed) {
    let headers = response.headers_mut();
    headers.insert(LOG_POSITION, position_header(&changed.position));
    if changed.replayed {
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
}

/// Waits (bounded) until this replica reflects the client's `X-Min-Log-Position`, and returns
/// the position the answer will reflect. Refuses to answer (503) until the projection has caught
/// up with the log end it saw at start: before that, a replica restarted after a crash may not
/// yet hold what it showed before.
async fn catch_up(meta: &RequestMeta, state: &ApiState) -> Result<LogPosition, ApiError> {
    // A header that can never be satisfied is a 400 whatever the replica's state: a 503 would
    // have the client retry it.
    let wanted = meta
        .min_log_position
        .as_ref()
        .map(min_log_position)
        .transpose()?;
    if let Some(wanted) = &wanted {
        refuse_unknown_partitions(wanted, state).await?;
    }
    refuse_while_catching_up(state)?;
    if let Some(wanted) = wanted {
        refuse_beyond_log_end(&wanted, state).await?;
        if !state
            .progress
            .wait_until_reached(&wanted, state.catch_up_wait)
            .await
        {
            return Err(ApiError::ReplicaBehind {
                wanted: shown(&wanted.to_string(), POSITION_SHOWN),
                reached: shown(&state.progress.position().to_string(), POSITION_SHOWN),
            });
        }
    }
    Ok(state.progress.position())
}

/// 503 until the projection has caught up with the log end it saw at start: before that, a
/// replica restarted after a crash may not yet hold what it showed (or acknowledged) before.
fn refuse_while_catching_up(state: &ApiState) -> Result<(), ApiError> {
    if state.progress.is_caught_up() {
        return Ok(());
    }
    Err(ApiError::CatchingUp {
        wanted: state.progress.log_end_at_start().to_string(),
        reached: state.progress.position().to_string(),
    })
}

/// How long a request naming a partition this replica does not know waits for its projector to
/// look at the topic again.
const PARTITION_LOOK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A position naming a partition the topic does not have can never be reached: 400, not a wait
/// and a 503. A partition this replica does not know yet may have been added to the topic a
/// moment ago (another replica found it first, and its position names it): the projector looks
/// at the topic again before the request is refused.
async fn refuse_unknown_partitions(wanted: &LogPosition, state: &ApiState) -> Result<(), ApiError> {
    let unknown: std::collections::BTreeSet<i32> = {
        let known = state.progress.partitions();
        wanted
            .partitions()
            .filter(|partition| !known.contains(partition))
            .collect()
    };
    if unknown.is_empty() || state.progress.look_for(&unknown, PARTITION_LOOK_WAIT).await {
        return Ok(());
    }
    let known = state.progress.partitions();
    let Some(unknown) = unknown
        .into_iter()
        .find(|partition| !known.contains(partition))
    else {
        return Ok(());
    };
    let message = format!(
        "X-Min-Log-Position names partition {unknown}, which the topic does not have \
         (partitions {}); it takes what X-Log-Position gave",
        shown(&partition_list(&known), POSITION_SHOWN)
    );
    Err(header_refused("X-Min-Log-Position", "unknown_partition", message).into())
}

/// A position past a partition's end now names no record anyone was given: nothing would ever
/// satisfy a wait for it (every write is acknowledged below the end), so it is a 400 at once.
/// Only partitions this replica has not reached yet are looked at; an end that cannot be read
/// now is waited for as before.
async fn refuse_beyond_log_end(wanted: &LogPosition, state: &ApiState) -> Result<(), ApiError> {
    let applied = state.progress.position();
    for partition in wanted.partitions() {
        let next = wanted.next_offset(partition);
        if applied.next_offset(partition) >= next {
            continue;
        }
        let Some(end) = state.event_log.end_of(partition).await else {
            continue;
        };
        if next > end {
            let message = format!(
                "X-Min-Log-Position asks for partition {partition} up to offset {next}, past the \
                 log's end ({end}): no write was acknowledged there; it takes what \
                 X-Log-Position gave"
            );
            return Err(header_refused("X-Min-Log-Position", "beyond_log_end", message).into());
        }
    }
    Ok(())
}

/// `0..2` for partitions 0, 1 and 2; a list when there are gaps.
fn partition_list(partitions: &std::collections::BTreeSet<i32>) -> String {
    match (partitions.first(), partitions.last()) {
        (Some(first), Some(last)) if (last - first) as usize + 1 == partitions.len() => {
            format!("{first}..{last}")
        }
        _ => partitions
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// The caller of a request: its API key's, or the anonymous admin when authentication is off.
fn authenticate(meta: &RequestMeta, state: &ApiState) -> Result<Caller, ApiError> {
    let presented = meta.authorization().map_err(|_| AuthError::Malformed)?;
    Ok(state.auth.authenticate(presented)?)
}

/// A 403 for a request about `account`, which `caller`'s key does not reach.
fn outside_scope(caller: &Caller, account: AccountId) -> ApiError {
    ApiError::Forbidden(format!(
        "the API key {:?} does not reach account {account}",
        caller.name()
    ))
}

async fn find(meta: &RequestMeta, state: &ApiState) -> Result<Response, ApiError> {
    let caller = authenticate(meta, state)?;
    let answer = answer_format(meta.accept.as_deref())?;
    let mut query = CustomerQuery::parse(&query_string::decode(&meta.query)?)?;
    if let Some(account) = query.account_id {
        if !caller.may_reach(account) {
            return Err(outside_scope(&caller, account));
        }
    }
    // A scoped key's find without accountId covers its own accounts only.
    query.within_accounts = caller.visible_accounts().map(<[_]>::to_vec);
    let position = catch_up(meta, state).await?;
    // Most finds take well under a millisecond and run right here: handing each to the blocking
    // pool cost more in thread switches than the find itself. One that needs more than
    // INLINE_WORK moves there, so it stalls none of the requests sharing this worker; one that
    // needs more than MAX_WORK is refused.
    let page = match state
        .read_model
        .find(&query, &Work::limited_to(INLINE_WORK))
    {
        Err(ReadModelError::OverBudget) => {
            let read_model = state.read_model.clone();
            let broad = query.clone();
            tokio::task::spawn_blocking(move || {
                read_model.find(&broad, &Work::limited_to(MAX_WORK))
            })
            .await
            .map_err(|_| ApiError::Internal("the find task was cancelled".into()))?
            .map_err(|error| match error {
                ReadModelError::OverBudget => ApiError::QueryTooBroad(query.parameter_names()),
                other => other.into(),
            })?
        }
        answered => answered?,
    };
    let body = match answer {
        Format::Json => serde_json::to_vec(&page.customers).expect("customers always serialise"),
        Format::Xml => xml::customers_document(&page.customers).into_bytes(),
    };
    let mut response = response_with(answer, body);
    let headers = response.headers_mut();
    headers.insert(TOTAL_COUNT, HeaderValue::from(page.total));
    headers.insert(LOG_POSITION, position_header(&position));
    Ok(response)
}

async fn get(id: &str, meta: &RequestMeta, state: &ApiState) -> Result<Response, ApiError> {
    let caller = authenticate(meta, state)?;
    no_parameters(meta, "reading a customer")?;
    let answer = answer_format(meta.accept.as_deref())?;
    let position = catch_up(meta, state).await?;
    let customer = known_customer(id, &caller, state)?;
    let mut response = customer_response(answer, &customer);
    response
        .headers_mut()
        .insert(LOG_POSITION, position_header(&position));
    Ok(response)
}

async fn erase(id: &str, meta: &RequestMeta, state: &ApiState) -> Result<Response, ApiError> {
    let caller = authenticate(meta, state)?;
    no_parameters(meta, "an erasure")?;
    let answer = answer_format(meta.accept.as_deref())?;
    catch_up(meta, state).await?;
    let id = recorded_customer(id, &caller, state).await?;
    let erasure = state
        .registrar
        .erase(id, meta.audit_trail(&caller))
        .await
        .map_err(ApiError::from_erasure)?;
    let erasure = probe_storage(state, erasure).await;
    let mut response = erasure_response(answer, &erasure);
    *response.status_mut() = StatusCode::ACCEPTED;
    let location = format!("/api/v01/erasures/{}", erasure.request_id);
    response.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&location).expect("a path of a UUID is a header value"),
    );
    Ok(response)
}

async fn erasure(
    request_id: &str,
    meta: &RequestMeta,
    state: &ApiState,
) -> Result<Response, ApiError> {
    let caller = authenticate(meta, state)?;
    no_parameters(meta, "an erasure's status")?;
    let answer = answer_format(meta.accept.as_deref())?;
    let no_erasure = || {
        ApiError::NotFound(format!(
            "no erasure request with id {} on this replica",
            shown(request_id, 40)
        ))
    };
    let wanted: uuid::Uuid = match request_id.len() {
        36 => request_id.parse().map_err(|_| no_erasure())?,
        _ => return Err(no_erasure()),
    };
    let erasure = state
        .registrar
        .erasure(wanted)
        .map_err(ApiError::from_erasure)?
        .filter(|erasure| match erasure.account_id {
            Some(account) => caller.may_reach(account),
            None => caller.is_admin(),
        })
        .ok_or_else(no_erasure)?;
    let erasure = probe_storage(state, erasure).await;
    Ok(erasure_response(answer, &erasure))
}

/// `erasure` with the keys topic's storage looked at (off the runtime's workers: a fetch per
/// key record), when its keys are destroyed.
async fn probe_storage(state: &ApiState, erasure: Erasure) -> Erasure {
    if !erasure.places.key_destroyed {
        return erasure;
    }
    let registrar = Arc::clone(&state.registrar);
    let unprobed = erasure.clone();
    tokio::task::spawn_blocking(move || registrar.probe_storage(erasure))
        .await
        .unwrap_or(unprobed)
}

fn erasure_response(format: Format, erasure: &Erasure) -> Response {
    let body = match format {
        Format::Json => serde_json::to_vec(erasure).expect("an erasure always serialises"),
        Format::Xml => xml::document("erasure", erasure).into_bytes(),
    };
    response_with(format, body)
}

async fn history(id: &str, meta: &RequestMeta, state: &ApiState) -> Result<Response, ApiError> {
    let caller = authenticate(meta, state)?;
    no_parameters(meta, "reading a customer's history")?;
    let answer = answer_format(meta.accept.as_deref())?;
    let position = catch_up(meta, state).await?;
    let record = reachable_record(id, &caller, state)?;
    let positions = record.places();
    let permit = state
        .history
        .try_reserve(record.customer.details.account_id)
        .ok_or(ApiError::HistoryBusy)?;
    let history = Arc::clone(&state.history);
    let opener = Arc::clone(&state.opener);
    let records = tokio::task::spawn_blocking(move || {
        let mut records = history.read_at(&permit, &positions)?;
        for record in &mut records {
            open_published(&mut record.event, opener.as_ref());
        }
        Ok::<_, crate::log::LogReadError>(records)
    })
    .await
    .map_err(|_| ApiError::Internal("the history task was cancelled".into()))?
    .map_err(|error| ApiError::LogUnreadable(error.to_string()))?;
    let body = match answer {
        Format::Json => serde_json::to_vec(&records).expect("records always serialise"),
        Format::Xml => xml::history_document(&records).into_bytes(),
    };
    let mut response = response_with(answer, body);
    response
        .headers_mut()
        .insert(LOG_POSITION, position_header(&position));
    Ok(response)
}

/// Bytes of a snapshot sent as one chunk of the body.
const SNAPSHOT_CHUNK: usize = 1 << 16;

/// Chunks written ahead of the client: the snapshot's writer waits beyond that, so a slow client
/// costs this much memory. It holds flushes back while it reads, up to
/// [`crate::read_model::SNAPSHOT_MAX_HOLD`] in all and [`SNAPSHOT_CHUNK_WAIT`] for each chunk;
/// past either, the snapshot is abandoned and the body ends in an error.
const SNAPSHOT_CHUNKS_AHEAD: usize = 16;

/// How long the snapshot's writer waits for the client to take a chunk.
const SNAPSHOT_CHUNK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

fn snapshot(meta: &RequestMeta, state: &ApiState) -> Result<Response, ApiError> {
    let caller = authenticate(meta, state)?;
    if !caller.is_admin() {
        return Err(ApiError::Forbidden(format!(
            "snapshots are for admin keys; the API key {:?} is not one",
            caller.name()
        )));
    }
    let (chunks, receiver) = tokio::sync::mpsc::channel(SNAPSHOT_CHUNKS_AHEAD);
    let read_model = state.read_model.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let sink = ChunkSink {
            chunks: chunks.clone(),
            buffer: Vec::with_capacity(SNAPSHOT_CHUNK),
            runtime,
        };
        if let Err(error) = read_model.write_snapshot(sink) {
            // The body ends in an error: the client sees a broken transfer, never a short file
            // that looks whole (and a restore would refuse it by its checksum anyway).
            tracing::warn!(%error, "a snapshot over HTTP failed");
            let _ = chunks.blocking_send(Err(std::io::Error::other(error.to_string())));
        }
    });
    let body = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let mut response = warp::reply::stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"customer-registry.snapshot\""),
    );
    Ok(response)
}

/// Hands what a snapshot writes to the response body, a chunk at a time.
struct ChunkSink {
    chunks: tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
    buffer: Vec<u8>,
    /// To wait for the client with a timeout from the blocking thread the snapshot runs on.
    runtime: tokio::runtime::Handle,
}

impl ChunkSink {
    fn send_buffer(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(SNAPSHOT_CHUNK),
        ));
        let sent = self.runtime.block_on(tokio::time::timeout(
            SNAPSHOT_CHUNK_WAIT,
            self.chunks.send(Ok(chunk)),
        ));
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the client went away before the snapshot was whole",
            )),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading the snapshot",
            )),
        }
    }
}

impl std::io::Write for ChunkSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= SNAPSHOT_CHUNK {
            self.send_buffer()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send_buffer()
    }
}

async fn rejected_events(meta: &RequestMeta, state: &ApiState) -> Result<Response, ApiError> {
    let caller = authenticate(meta, state)?;
    if !caller.is_admin() {
        return Err(ApiError::Forbidden(format!(
            "the rejected events are for admin keys; the API key {:?} is not one",
            caller.name()
        )));
    }
    let answer = answer_format(meta.accept.as_deref())?;
    let (offset, limit) = parse_page(&query_string::decode(&meta.query)?)?;
    let read_model = state.read_model.clone();
    let (rejected, total) =
        tokio::task::spawn_blocking(move || read_model.rejected_events_page(offset, limit))
            .await
            .map_err(|_| ApiError::Internal("the listing task was cancelled".into()))??;
    let body = match answer {
        Format::Json => serde_json::to_vec(&rejected).expect("rejections always serialise"),
        Format::Xml => xml::rejected_events_document(&rejected).into_bytes(),
    };
    let mut response = response_with(answer, body);
    response
        .headers_mut()
        .insert(TOTAL_COUNT, HeaderValue::from(total));
    Ok(response)
}

/// The customer `id` names, or 404. Only the canonical hyphenated form of a UUID names one. A
/// customer of an account the caller's key does not reach is a 404 too, worded the same, so
/// that answers never tell whether another merchant's customer exists.
fn known_customer(id: &str, caller: &Caller, state: &ApiState) -> Result<Customer, ApiError> {
    let record = reachable_record(id, caller, state)?;
    if record.erased {
        return Err(erased(&record));
    }
    record
        .live_customer()
        .cloned()
        .ok_or_else(|| no_customer(id))
}

/// The id a path names: only the canonical hyphenated form of a UUID names one.
fn customer_id(id: &str) -> Result<CustomerId, ApiError> {
    if id.len() != 36 {
        return Err(no_customer(id));
    }
    id.parse().map_err(|_| no_customer(id))
}

fn no_customer(id: &str) -> ApiError {
    // A customer id is 36 characters: a longer path segment is quoted in part, never echoed
    // whole.
    ApiError::NotFound(format!("no customer with id {}", shown(id, 40)))
}

/// The id of the customer `id` names, deleted ones included (their history stays readable), or
/// 404 as [`known_customer`] words it. A customer this replica does not hold is looked for again
/// once the replica has applied its partition up to its end: another replica may have just
/// created it. (A held customer costs one lookup, as before.)
async fn recorded_customer(
    id: &str,
    caller: &Caller,
    state: &ApiState,
) -> Result<CustomerId, ApiError> {
    let found = match reachable_record(id, caller, state) {
        Err(ApiError::NotFound(_)) => {
            state
                .registrar
                .settle_if_absent(customer_id(id)?)
                .await
                .map_err(ApiError::from_change)?;
            reachable_record(id, caller, state)
        }
        found => found,
    };
    found.map(|record| record.customer.id)
}

/// [`recorded_customer`], refused 410 when its personal data was erased: nothing may change it.
async fn changeable_customer(
    id: &str,
    caller: &Caller,
    state: &ApiState,
) -> Result<CustomerId, ApiError> {
    let found = recorded_customer(id, caller, state).await?;
    match state.read_model.record(found)? {
        Some(record) if record.erased => Err(erased(&record)),
        _ => Ok(found),
    }
}

/// The 410 answering a request about an erased customer.
fn erased(record: &CustomerRecord) -> ApiError {
    let id = record.customer.id;
    ApiError::Erased(format!(
        "customer {id}'s personal data was erased (erasure request {}): it answers nothing any \
         more, and its code is not given to another customer",
        erasure_id(id)
    ))
}

/// The read model's record of the customer `id` names, deleted or not, when `caller` may reach
/// it; 404 otherwise.
fn reachable_record(
    id: &str,
    caller: &Caller,
    state: &ApiState,
) -> Result<Arc<CustomerRecord>, ApiError> {
    state
        .read_model
        .record(customer_id(id)?)?
        .filter(|record| caller.may_reach(record.customer.details.account_id))
        .ok_or_else(|| no_customer(id))
}

/// A customer, with its version as the `ETag`.
fn customer_response(format: Format, customer: &Customer) -> Response {
    let body = match format {
        Format::Json => serde_json::to_vec(customer).expect("a customer always serialises"),
        Format::Xml => xml::customer_document(customer).into_bytes(),
    };
    let mut response = response_with(format, body);
    response
        .headers_mut()
        .insert(header::ETAG, etag(customer.version));
    response
}

fn response_with(format: Format, body: Vec<u8>) -> Response {
    let mut response = Response::new(body.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response
}
