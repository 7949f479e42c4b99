//! The stream catalog (design brief 4.2). Every service ensures, idempotently and with the same
//! definitions, the streams it publishes to or consumes from, so start-up order does not matter.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

/// A stream's name, subjects and retention.
#[derive(Debug, Clone, Copy)]
pub struct StreamSpec {
    pub name: &'static str,
    pub subjects: &'static str,
    pub work_queue: bool,
    pub max_age: Duration,
    /// Keep only the newest this many messages per subject (a compacted log); 0 keeps all.
    pub max_per_subject: i64,
}

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Job events from the scheduling system: `jobs.<account>.<type>`.
pub const JOB_EVENTS: StreamSpec = StreamSpec {
    name: "JOB_EVENTS",
    subjects: "jobs.>",
    work_queue: false,
    max_age: DAY.saturating_mul(7),
    max_per_subject: 0,
};
/// Notification requests for dispatch: `notify.<account>`.
pub const NOTIFY: StreamSpec = StreamSpec {
    name: "NOTIFY",
    subjects: "notify.>",
    work_queue: false,
    max_age: DAY.saturating_mul(7),
    max_per_subject: 0,
};
/// SMS send commands, one shared work-queue consumer: `send.sms.<account>`.
pub const SEND_SMS: StreamSpec = StreamSpec {
    name: "SEND_SMS",
    subjects: "send.sms.>",
    work_queue: true,
    max_age: DAY.saturating_mul(7),
    max_per_subject: 0,
};
/// Email send commands: `send.email.<account>`.
pub const SEND_EMAIL: StreamSpec = StreamSpec {
    name: "SEND_EMAIL",
    subjects: "send.email.>",
    work_queue: true,
    max_age: DAY.saturating_mul(7),
    max_per_subject: 0,
};
/// Message lifecycle events: `message.<account>.<kind>`.
pub const MESSAGE_EVENTS: StreamSpec = StreamSpec {
    name: "MESSAGE_EVENTS",
    subjects: "message.>",
    work_queue: false,
    max_age: DAY.saturating_mul(7),
    max_per_subject: 0,
};
/// Input no service could process, with the reason in headers: `dlq.<service>.<original subject>`.
pub const DEAD_LETTER: StreamSpec = StreamSpec {
    name: "DEAD_LETTER",
    subjects: "dlq.>",
    work_queue: false,
    max_age: DAY.saturating_mul(30),
    max_per_subject: 0,
};

/// Who accounts and customers are, newest per subject (`directory.<account>.account`,
/// `directory.<account>.customer.<customer>`): what delivery-status needs to route replies.
pub const DIRECTORY: StreamSpec = StreamSpec {
    name: "DIRECTORY",
    subjects: "directory.>",
    work_queue: false,
    max_age: Duration::ZERO,
    max_per_subject: 1,
};

/// How long JetStream remembers a `Nats-Msg-Id` to drop a duplicate publish.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

impl StreamSpec {
    fn config(&self, replicas: usize) -> stream::Config {
        stream::Config {
            name: self.name.to_owned(),
            subjects: vec![self.subjects.to_owned()],
            retention: if self.work_queue {
                stream::RetentionPolicy::WorkQueue
            } else {
                stream::RetentionPolicy::Limits
            },
            storage: stream::StorageType::File,
            max_age: self.max_age,
            max_messages_per_subject: self.max_per_subject,
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: replicas.max(1),
            ..Default::default()
        }
    }
}

/// Creates each stream or updates it to the catalog's definition, kept on `replicas` servers
/// (3 on the clustered deployment, 1 on a single server). Every service ensures the streams it
/// uses as it starts, so several may do this at once: a missing stream is only ever *created*
/// (a create that loses the race is tried again, and finds the winner's stream), and a stream
/// is updated only once it exists and differs. nats-server 2.9 crashes (nil pointer in
/// `updateWithAdvisory`) when an update meets a stream still being created, which updating
/// first — `create_or_update_stream` — risks.
pub async fn ensure(context: &jetstream::Context, specs: &[StreamSpec], replicas: usize) -> anyhow::Result<()> {
    for spec in specs {
        let mut attempt = 1;
        // A create that lost the race can be refused before the winner's stream is visible.
        while let Err(error) = ensure_one(context, spec.config(replicas)).await {
            if attempt == CREATE_ATTEMPTS {
                anyhow::bail!("ensuring stream {}: {error}", spec.name);
            }
            tokio::time::sleep(Duration::from_millis(50) * attempt).await;
            attempt += 1;
        }
    }
    Ok(())
}

const CREATE_ATTEMPTS: u32 = 5;

async fn ensure_one(context: &jetstream::Context, wanted: stream::Config) -> anyhow::Result<()> {
    match context.get_stream(&wanted.name).await {
        Ok(stream) if same_definition(&stream.cached_info().config, &wanted) => {}
        Ok(_) => {
            context.update_stream(wanted).await?;
        }
        Err(error) if not_found(&error) => {
            context.create_stream(wanted).await?;
        }
        Err(error) => return Err(error.into()),
    }
    Ok(())
}

fn not_found(error: &jetstream::context::GetStreamError) -> bool {
    matches!(error.kind(), jetstream::context::GetStreamErrorKind::JetStream(error)
        if error.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}

/// A per-subject message limit as the server keeps it: anything below 1 is "no limit", stored as -1
/// (comparing 0 with -1 made every start update every stream, the update that crashed the server).
fn per_subject_limit(limit: i64) -> i64 {
    if limit > 0 { limit } else { -1 }
}

/// Whether `current` already has every setting the catalog defines.
fn same_definition(current: &stream::Config, wanted: &stream::Config) -> bool {
    current.subjects == wanted.subjects
        && current.retention == wanted.retention
        && current.storage == wanted.storage
        && current.max_age == wanted.max_age
        && per_subject_limit(current.max_messages_per_subject) == per_subject_limit(wanted.max_messages_per_subject)
        && current.duplicate_window == wanted.duplicate_window
        && current.num_replicas == wanted.num_replicas
}
