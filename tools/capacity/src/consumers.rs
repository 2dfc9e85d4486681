//! The table's stream consumers, as Lambda runs them (one event source mapping each, reading
//! the stream on its own), in this process and through the recorder, so what they do for a
//! request is attributed to it: `cache-sync` and `upkeep`; a consumer is added by
//! implementing [`Function`] for its in-process handler and listing it in [`all`].
//!
//! Each phase's requests run first, then every consumer drains the stream: the batches they
//! get are then as full as they are at a high request rate (up to the mapping's `BatchSize`),
//! which is the rate the model extrapolates to; a consumer that folds a batch into one write
//! (a count applied per batch) is measured at its high-rate cost. [`Consumers::background`]
//! runs them continuously instead, as the delete axis needs (a sweep that "finishes on its own").

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use shared::config::Config;
use stream_poller::{Invoke, Poller, PollerConfig, StreamApi};

/// A boxed future that can cross threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A consumer's function, called in process as Lambda would call it.
pub trait Function: Send + Sync {
    fn invoke(&self, event: Event) -> BoxFuture<'_, Result<DynamoDbEventResponse, String>>;
}

/// `cache-sync`, as the harness runs it.
impl Function for integration_tests::InProcess {
    fn invoke(&self, event: Event) -> BoxFuture<'_, Result<DynamoDbEventResponse, String>> {
        Box::pin(Invoke::invoke(self, event))
    }
}

/// `upkeep` (counts, removals, sweeps), as the harness runs it.
impl Function for integration_tests::sync::UpkeepInProcess {
    fn invoke(&self, event: Event) -> BoxFuture<'_, Result<DynamoDbEventResponse, String>> {
        Box::pin(Invoke::invoke(self, event))
    }
}

/// Every consumer of the table's stream, built for a configuration whose table endpoint is the
/// recorder. Add a new consumer here.
pub fn all(config: &Config) -> Vec<(&'static str, Arc<dyn Function>)> {
    vec![
        (
            "cache-sync",
            Arc::new(integration_tests::InProcess::with_config(config)) as Arc<dyn Function>,
        ),
        (
            "upkeep",
            Arc::new(integration_tests::sync::UpkeepInProcess::with_config(
                config,
            )) as Arc<dyn Function>,
        ),
    ]
}

/// A [`Function`] as the poller calls it.
struct Boxed(Arc<dyn Function>);

impl Invoke for Boxed {
    fn invoke(&self, event: Event) -> impl Future<Output = Result<DynamoDbEventResponse, String>> {
        self.0.invoke(event)
    }
}

/// One consumer: its mapping (a poller of its own) and its function.
struct Consumer {
    name: &'static str,
    poller: tokio::sync::Mutex<Poller>,
    function: Boxed,
}

/// The consumers, each behind its own mapping.
pub struct Consumers {
    consumers: Vec<Arc<Consumer>>,
    background: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The mapping's settings: the template's `BatchSize`, short waits (a local table), and the
/// stream from its start.
fn mapping() -> PollerConfig {
    PollerConfig {
        idle_wait: Duration::from_millis(20),
        retry_wait: Duration::from_millis(50),
        start_at_latest: false,
        ..PollerConfig::default()
    }
}

impl Consumers {
    /// The consumers of [`all`], each reading the stream of the table `config` names through
    /// the endpoint it names (the recorder).
    pub async fn start(config: &Config) -> Result<Self, String> {
        let endpoint = config
            .table
            .dynamodb_endpoint
            .as_deref()
            .ok_or("the configuration names no table endpoint")?;
        let mut consumers = Vec::new();
        for (name, function) in all(config) {
            let poller = Poller::new(
                StreamApi::new(endpoint),
                &config.table.table_name,
                mapping(),
            )
            .await?;
            consumers.push(Arc::new(Consumer {
                name,
                poller: tokio::sync::Mutex::new(poller),
                function: Boxed(function),
            }));
        }
        Ok(Consumers {
            consumers,
            background: std::sync::Mutex::default(),
        })
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.consumers.iter().map(|c| c.name).collect()
    }

    /// Delivers every record in the stream to every consumer until none is left and each has
    /// been idle for a moment.
    pub async fn drain(&self) -> Result<(), String> {
        for consumer in &self.consumers {
            consumer
                .poller
                .lock()
                .await
                .drain(
                    &consumer.function,
                    Duration::from_millis(100),
                    Duration::from_secs(600),
                )
                .await
                .map_err(|e| format!("{}: {e}", consumer.name))?;
        }
        Ok(())
    }

    /// Runs every consumer continuously, as Lambda does, until [`Consumers::stop`].
    pub fn background(&self) {
        let mut background = self.background.lock().unwrap_or_else(|e| e.into_inner());
        for consumer in &self.consumers {
            let consumer = consumer.clone();
            background.push(tokio::spawn(async move {
                loop {
                    let step = consumer.poller.lock().await.step(&consumer.function).await;
                    let idle = match step {
                        Ok(step) => step.delivered == 0 && !step.behind,
                        Err(error) => {
                            eprintln!("{}: reading the stream failed: {error}", consumer.name);
                            true
                        }
                    };
                    if idle {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }));
        }
    }

    pub fn stop(&self) {
        let mut background = self.background.lock().unwrap_or_else(|e| e.into_inner());
        for task in background.drain(..) {
            task.abort();
        }
    }
}

impl Drop for Consumers {
    fn drop(&mut self) {
        self.stop();
    }
}
