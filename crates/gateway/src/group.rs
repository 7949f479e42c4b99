//! Group commit for the gateway's own statements: requests that arrive while one runs wait for
//! the next, which takes them all (up to a cap) in one statement — one round trip and one WAL
//! flush for many claims or settlements instead of one each. A lone request goes at once, and
//! each caller is answered only once its request's statement has committed.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

type Reply<O> = oneshot::Sender<Result<O, String>>;

/// Hands requests of type `I` to a batch statement and each caller its `O`.
pub(crate) struct Group<I, O> {
    sender: mpsc::Sender<(I, Reply<O>)>,
}

impl<I, O> Clone for Group<I, O> {
    fn clone(&self) -> Self {
        Self { sender: self.sender.clone() }
    }
}

impl<I: Send + 'static, O: Send + 'static> Group<I, O> {
    /// Runs `statement` over up to `max` waiting requests at a time, `in_flight` at once; it
    /// answers one `O` per request, in order. Stops when every handle is dropped.
    pub(crate) fn start<F, Fut>(max: usize, in_flight: usize, statement: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = sqlx::Result<Vec<O>>> + Send + 'static,
    {
        let (sender, mut receiver) = mpsc::channel::<(I, Reply<O>)>(max * in_flight * 4);
        let statement = Arc::new(statement);
        tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(in_flight));
            while let Some(first) = receiver.recv().await {
                // Waiting for a free slot lets the next batch fill.
                let Ok(permit) = permits.clone().acquire_owned().await else { break };
                let mut batch = vec![first];
                while batch.len() < max {
                    match receiver.try_recv() {
                        Ok(request) => batch.push(request),
                        Err(_) => break,
                    }
                }
                let statement = statement.clone();
                tokio::spawn(async move {
                    let (inputs, replies): (Vec<I>, Vec<Reply<O>>) = batch.into_iter().unzip();
                    match statement(inputs).await {
                        Ok(outputs) => {
                            for (reply, output) in replies.into_iter().zip(outputs) {
                                let _ = reply.send(Ok(output));
                            }
                        }
                        Err(error) => {
                            let error = error.to_string();
                            for reply in replies {
                                let _ = reply.send(Err(error.clone()));
                            }
                        }
                    }
                    drop(permit);
                });
            }
        });
        Self { sender }
    }

    /// Submits `input` and waits for its statement to commit.
    pub(crate) async fn submit(&self, input: I) -> sqlx::Result<O> {
        let (reply, answer) = oneshot::channel();
        self.sender.send((input, reply)).await.map_err(|_| sqlx::Error::PoolClosed)?;
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?.map_err(sqlx::Error::Protocol)
    }
}
