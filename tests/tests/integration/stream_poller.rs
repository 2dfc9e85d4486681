//! The local event source mapping (`tools/stream-poller`) does what Lambda's does with a
//! function's answers, on real stream records: success moves on, reported failures are retried
//! from the first one, function errors are retried bisected, and a record out of retries goes to
//! the failure destination while the shard moves on.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use integration_tests::sync::test_poller_config;
use integration_tests::TestEnv;
use stream_poller::{Invoke, Poller, PollerConfig, StreamApi};

/// What the scripted function answers, one invocation after another.
enum Answer {
    Done,
    /// Reports the record at this position of the batch (and the later ones) as failed.
    FailFrom(usize),
    Error,
}

/// A function that answers from a script (then "done") and records every batch's sequence
/// numbers.
struct Scripted {
    answers: Mutex<VecDeque<Answer>>,
    batches: Mutex<Vec<Vec<String>>>,
}

impl Scripted {
    fn new(answers: Vec<Answer>) -> Self {
        Scripted {
            answers: Mutex::new(answers.into()),
            batches: Mutex::new(Vec::new()),
        }
    }

    fn batches(&self) -> Vec<Vec<String>> {
        self.batches.lock().expect("lock").clone()
    }
}

impl Invoke for Scripted {
    async fn invoke(&self, event: Event) -> Result<DynamoDbEventResponse, String> {
        let sequence: Vec<String> = event
            .records
            .iter()
            .map(|r| r.change.sequence_number.clone().unwrap_or_default())
            .collect();
        self.batches.lock().expect("lock").push(sequence.clone());
        let mut response = DynamoDbEventResponse::default();
        match self
            .answers
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or(Answer::Done)
        {
            Answer::Done => {}
            Answer::FailFrom(at) => {
                for id in &sequence[at..] {
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = Some(id.clone());
                    response.batch_item_failures.push(failure);
                }
            }
            Answer::Error => return Err("function error".into()),
        }
        Ok(response)
    }
}

/// A table whose stream holds `n` user records (registrations), and their sequence numbers.
async fn stream_of(n: usize) -> (TestEnv, Vec<String>) {
    let env = TestEnv::new().await;
    for i in 0..n {
        let res = env
            .register(&integration_tests::unique_email(&format!("p{i}")), "P")
            .await;
        assert_eq!(res.status, 201);
    }
    let all = Scripted::new(Vec::new());
    let mut poller = poller(&env, test_poller_config()).await;
    poller
        .drain(&all, Duration::from_millis(50), Duration::from_secs(10))
        .await
        .expect("drained");
    let sequence: Vec<String> = all.batches().concat();
    assert_eq!(sequence.len(), n);
    (env, sequence)
}

async fn poller(env: &TestEnv, config: PollerConfig) -> Poller {
    Poller::new(StreamApi::new(&env.dynamo.endpoint), "social", config)
        .await
        .expect("a stream")
}

#[tokio::test]
async fn reported_failures_are_retried_from_the_first_one_and_the_rest_is_done() {
    let (env, all) = stream_of(5).await;
    let function = Scripted::new(vec![Answer::FailFrom(2)]);
    let mut poller = poller(&env, test_poller_config()).await;
    poller
        .drain(
            &function,
            Duration::from_millis(50),
            Duration::from_secs(10),
        )
        .await
        .expect("drained");
    assert_eq!(
        function.batches(),
        [all.clone(), all[2..].to_vec()],
        "the retry starts at the first failed record"
    );
    assert!(poller.failed().is_empty());
}

#[tokio::test]
async fn a_function_error_retries_the_batch_bisected_until_it_goes_through() {
    let (env, all) = stream_of(4).await;
    let function = Scripted::new(vec![Answer::Error, Answer::Error]);
    let mut poller = poller(&env, test_poller_config()).await;
    poller
        .drain(
            &function,
            Duration::from_millis(50),
            Duration::from_secs(10),
        )
        .await
        .expect("drained");
    let batches = function.batches();
    assert_eq!(batches[0], all, "the whole batch first");
    assert_eq!(batches[1], all[..2].to_vec(), "then its first half");
    assert_eq!(
        batches[2],
        all[..1].to_vec(),
        "then a quarter, which goes through"
    );
    assert_eq!(
        batches[3..].concat(),
        all[1..].to_vec(),
        "then the rest, in order"
    );
    assert!(poller.failed().is_empty());
}

/// A function that fails every batch holding one poisoned record and applies every other
/// batch, recording which records it applied.
struct Poisoned {
    record: String,
    batches: Mutex<Vec<Vec<String>>>,
    applied: Mutex<Vec<String>>,
}

impl Poisoned {
    fn new(record: &str) -> Self {
        Poisoned {
            record: record.to_owned(),
            batches: Mutex::new(Vec::new()),
            applied: Mutex::new(Vec::new()),
        }
    }
}

impl Invoke for Poisoned {
    async fn invoke(&self, event: Event) -> Result<DynamoDbEventResponse, String> {
        let sequence: Vec<String> = event
            .records
            .iter()
            .map(|r| r.change.sequence_number.clone().unwrap_or_default())
            .collect();
        self.batches.lock().expect("lock").push(sequence.clone());
        if sequence.contains(&self.record) {
            return Err("function error".into());
        }
        self.applied.lock().expect("lock").extend(sequence);
        Ok(DynamoDbEventResponse::default())
    }
}

#[tokio::test]
async fn a_record_out_of_retries_goes_to_the_failure_destination_and_the_shard_moves_on() {
    let (env, all) = stream_of(10).await;
    let config = PollerConfig {
        max_retries: 2,
        ..test_poller_config()
    };
    // Only the third record fails, every time. Two records before it, seven after: the batch
    // halves on each error (10, 5, 2, ...) and restarts whole after each success, so when the
    // third record's retries run out it still shares its batch ([2, 3]) with a good record.
    // The poller must send that record alone to the failure destination, and deliver every
    // other record on both sides of it.
    let poison = all[2].clone();
    let function = Poisoned::new(&poison);
    let mut poller = poller(&env, config).await;
    poller
        .drain(
            &function,
            Duration::from_millis(50),
            Duration::from_secs(20),
        )
        .await
        .expect("drained");
    let failed: Vec<String> = poller
        .failed()
        .iter()
        .map(|r| r.change.sequence_number.clone().unwrap_or_default())
        .collect();
    assert!(
        !failed.is_empty() && failed.iter().all(|s| all.contains(s)),
        "{failed:?}"
    );
    assert_eq!(
        failed,
        std::slice::from_ref(&poison),
        "the failing record alone goes to the failure destination"
    );
    let applied = function.applied.lock().expect("lock").clone();
    let rest: Vec<String> = all.iter().filter(|s| **s != poison).cloned().collect();
    assert_eq!(
        applied, rest,
        "every other record was delivered and applied, once, in order"
    );
    let batches = function.batches.lock().expect("lock").clone();
    let headed = batches
        .iter()
        .filter(|b| b.first() == Some(&poison))
        .count();
    assert_eq!(
        headed, 3,
        "at the head of its batch, the record was tried once and retried max_retries (2) times: {batches:?}"
    );
    let delivered_last = batches.last().cloned().unwrap_or_default();
    assert_eq!(
        delivered_last.last(),
        all.last(),
        "the shard went on to the end"
    );
}
