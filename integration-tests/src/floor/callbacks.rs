//! The floor's status-callback endpoint: each signed report verified, reports that arrive together
//! recorded in one statement (forward only, one NOTIFY per transaction), each answered after the
//! commit; a report for an id not yet recorded is answered 503, so the provider retries it.

use std::collections::HashSet;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::sync::{mpsc, oneshot};

use crate::stack::TWILIO_AUTH_TOKEN;

/// A report: provider id, status, rank, and where to say whether it was recorded.
type Report = (String, String, i32, oneshot::Sender<bool>);

/// The running endpoint.
pub struct Callbacks {
    pub url: String,
    server: tokio::task::JoinHandle<()>,
    committer: tokio::task::JoinHandle<()>,
}

impl Callbacks {
    pub fn stop(self) {
        self.server.abort();
        self.committer.abort();
    }
}

#[derive(Clone)]
struct Endpoint {
    url: String,
    reports: mpsc::UnboundedSender<Report>,
}

/// Serves on a free loopback port; each `delivered` recorded is counted into `delivered`.
pub async fn serve(pool: sqlx::PgPool, delivered: mpsc::UnboundedSender<usize>) -> anyhow::Result<Callbacks> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://127.0.0.1:{}/status", listener.local_addr()?.port());
    let (reports, received) = mpsc::unbounded_channel();
    let committer = tokio::spawn(commit(pool, received, delivered));
    let app = axum::Router::new().route("/status", post(report)).with_state(Endpoint { url: url.clone(), reports });
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Callbacks { url, server, committer })
}

async fn report(
    State(endpoint): State<Endpoint>,
    headers: HeaderMap,
    axum::Form(params): axum::Form<Vec<(String, String)>>,
) -> StatusCode {
    let signature = headers.get("x-twilio-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !messaging_domain::signing::twilio_signature_matches(TWILIO_AUTH_TOKEN, &endpoint.url, &params, signature) {
        return StatusCode::FORBIDDEN;
    }
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let status = param("MessageStatus");
    let rank = match status.as_str() {
        "queued" | "accepted" => 1,
        "sending" => 2,
        "sent" => 3,
        "delivered" | "undelivered" | "failed" => 4,
        _ => return StatusCode::BAD_REQUEST,
    };
    let (answer, recorded) = oneshot::channel();
    if endpoint.reports.send((param("MessageSid"), status, rank, answer)).is_err() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match recorded.await {
        Ok(true) => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Records whatever reports have arrived, up to a batch, in one statement, then answers them.
async fn commit(
    pool: sqlx::PgPool,
    mut received: mpsc::UnboundedReceiver<Report>,
    delivered: mpsc::UnboundedSender<usize>,
) {
    let mut batch = Vec::new();
    while received.recv_many(&mut batch, super::BATCH).await > 0 {
        let sids: Vec<String> = batch.iter().map(|r| r.0.clone()).collect();
        let statuses: Vec<String> = batch.iter().map(|r| r.1.clone()).collect();
        let ranks: Vec<i32> = batch.iter().map(|r| r.2).collect();
        let matched: Result<Vec<String>, _> = sqlx::query_scalar(
            "WITH moved AS (UPDATE floor.messages m SET \
               status = CASE WHEN u.rank > m.rank THEN u.status ELSE m.status END, \
               rank = greatest(m.rank, u.rank), updated_at = now() \
             FROM UNNEST($1::text[], $2::text[], $3::int[]) AS u(sid, status, rank) \
             WHERE m.provider_id = u.sid RETURNING m.provider_id, m.account_id) \
             SELECT provider_id FROM moved, LATERAL (SELECT pg_notify('floor', '')) AS n",
        )
        .bind(&sids)
        .bind(&statuses)
        .bind(&ranks)
        .fetch_all(&pool)
        .await;
        let matched: HashSet<String> = matched.unwrap_or_default().into_iter().collect();
        let mut done = 0;
        for (sid, status, _, answer) in batch.drain(..) {
            let recorded = matched.contains(&sid);
            done += usize::from(recorded && status == "delivered");
            let _ = answer.send(recorded);
        }
        if done > 0 {
            let _ = delivered.send(done);
        }
    }
}
