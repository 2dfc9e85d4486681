//! The requests the code really sends to DynamoDB, recorded as they leave the client
//! ([`Recorder`]) and filed by the function whose code sent them, for the API functions (as
//! the route's function, [`api_call`]) and the stream consumers (called as their mappings
//! would, [`Consumer`]).

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::iam::On;
use super::read::{declared_table, function_id};

/// One request as it left a DynamoDB client: its IAM action (each item of a transaction on its
/// own, as IAM authorises it), where it landed, the partition key values it named (an
/// index's, for a query of an index), and the attributes it read (its `ProjectionExpression`'s,
/// names resolved; `None` for the whole item, or a write).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Sent {
    pub(super) action: String,
    pub(super) on: On,
    pub(super) keys: Vec<String>,
    pub(super) attributes: Option<Vec<String>>,
}

/// The top-level attributes a read names (`dynamodb:Attributes`, as IAM sees them): its
/// `ProjectionExpression`'s paths, placeholders resolved by its `ExpressionAttributeNames`.
fn projected(read: &serde_json::Value, names: &serde_json::Value) -> Option<Vec<String>> {
    let expression = read["ProjectionExpression"].as_str()?;
    Some(
        expression
            .split(',')
            .map(|path| {
                let top = path.trim().split(['.', '[']).next().unwrap_or_default();
                names[top].as_str().unwrap_or(top).to_owned()
            })
            .collect(),
    )
}

/// Records every request a client sends ([`Sent`]), from its body as it goes out.
#[derive(Debug, Clone)]
pub(super) struct Recorder {
    sent: std::sync::Arc<std::sync::Mutex<Vec<Sent>>>,
    /// Each index's partition key attribute, as the template declares it.
    index_keys: BTreeMap<String, String>,
}

impl Recorder {
    pub(super) fn new(t: &Value) -> Self {
        let index_keys = declared_table(t)
            .indexes
            .into_iter()
            .map(|(name, (keys, _))| {
                let hash = keys
                    .into_iter()
                    .find(|(_, kind)| kind == "HASH")
                    .map(|(attr, _)| attr)
                    .expect("a partition key");
                (name, hash)
            })
            .collect();
        Recorder {
            sent: Default::default(),
            index_keys,
        }
    }

    pub(super) fn take(&self) -> Vec<Sent> {
        std::mem::take(&mut *self.sent.lock().expect("lock"))
    }

    /// What one request body asks, as IAM sees it.
    fn sent_of(&self, operation: &str, body: &serde_json::Value) -> Vec<Sent> {
        let s = |v: &serde_json::Value| v["S"].as_str().unwrap_or_default().to_owned();
        let one = |action: &str, pk: &serde_json::Value| Sent {
            action: action.to_owned(),
            on: On::Table,
            keys: vec![s(pk)],
            attributes: None,
        };
        let tables = || {
            body["RequestItems"]
                .as_object()
                .cloned()
                .unwrap_or_default()
                .into_values()
        };
        match operation {
            "GetItem" => vec![Sent {
                attributes: projected(body, &body["ExpressionAttributeNames"]),
                ..one(operation, &body["Key"]["pk"])
            }],
            "UpdateItem" | "DeleteItem" => vec![one(operation, &body["Key"]["pk"])],
            "PutItem" => vec![one(operation, &body["Item"]["pk"])],
            "Query" => {
                let (on, pk_attr) = match body["IndexName"].as_str() {
                    None => (On::Table, "pk".to_owned()),
                    Some(index) => (
                        On::Index(index.to_owned()),
                        self.index_keys
                            .get(index)
                            .unwrap_or_else(|| panic!("a query of {index}, no index of the table"))
                            .clone(),
                    ),
                };
                let expression = body["KeyConditionExpression"].as_str().unwrap_or_default();
                let keys = expression
                    .split(" AND ")
                    .filter_map(|clause| clause.split_once(" = "))
                    .filter(|(name, _)| {
                        let name = name.trim();
                        body["ExpressionAttributeNames"][name]
                            .as_str()
                            .unwrap_or(name)
                            == pk_attr
                    })
                    .map(|(_, value)| s(&body["ExpressionAttributeValues"][value.trim()]))
                    .collect();
                vec![Sent {
                    action: operation.to_owned(),
                    on,
                    keys,
                    attributes: projected(body, &body["ExpressionAttributeNames"]),
                }]
            }
            "BatchGetItem" => tables()
                .map(|request| Sent {
                    action: operation.to_owned(),
                    on: On::Table,
                    keys: request["Keys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|k| s(&k["pk"]))
                        .collect(),
                    attributes: projected(&request, &request["ExpressionAttributeNames"]),
                })
                .collect(),
            "BatchWriteItem" => tables()
                .map(|requests| Sent {
                    action: operation.to_owned(),
                    on: On::Table,
                    keys: requests
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|r| {
                            let key = &r["DeleteRequest"]["Key"]["pk"];
                            s(if key.is_null() {
                                &r["PutRequest"]["Item"]["pk"]
                            } else {
                                key
                            })
                        })
                        .collect(),
                    attributes: None,
                })
                .collect(),
            "TransactWriteItems" | "TransactGetItems" => body["TransactItems"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|item| {
                    [
                        ("Update", "UpdateItem", "Key"),
                        ("Delete", "DeleteItem", "Key"),
                        ("Put", "PutItem", "Item"),
                        ("ConditionCheck", "ConditionCheckItem", "Key"),
                        ("Get", "GetItem", "Key"),
                    ]
                    .into_iter()
                    .filter(|(kind, _, _)| !item[*kind].is_null())
                    .map(|(kind, action, key)| Sent {
                        attributes: projected(&item[kind], &item[kind]["ExpressionAttributeNames"]),
                        ..one(action, &item[kind][key]["pk"])
                    })
                    .collect::<Vec<_>>()
                })
                .collect(),
            other => vec![Sent {
                action: other.to_owned(),
                on: On::Table,
                keys: Vec::new(),
                attributes: None,
            }],
        }
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for Recorder {
    fn name(&self) -> &'static str {
        "Recorder"
    }

    fn read_before_transmit(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let request = context.request();
        let target = request.headers().get("x-amz-target").unwrap_or("unknown");
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        let body: serde_json::Value = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default();
        let sent = self.sent_of(&operation, &body);
        self.sent.lock().expect("lock").extend(sent);
        Ok(())
    }
}

/// A DynamoDB client for `endpoint` that `recorder` watches.
pub(super) fn recorded_client(endpoint: &str, recorder: &Recorder) -> aws_sdk_dynamodb::Client {
    let client = integration_tests::dynamo::client_for(endpoint, None);
    aws_sdk_dynamodb::Client::from_conf(
        client
            .config()
            .to_builder()
            .interceptor(recorder.clone())
            .build(),
    )
}

/// A stream consumer's handler, called as its mapping would (`stream_poller`), on a client
/// that a recorder watches.
pub(super) enum Consumer {
    Sync(cache_sync_fn::CacheSync),
    Upkeep(upkeep_fn::Upkeep),
}

impl stream_poller::Invoke for Consumer {
    async fn invoke(
        &self,
        event: aws_lambda_events::event::dynamodb::Event,
    ) -> Result<aws_lambda_events::event::streams::DynamoDbEventResponse, String> {
        let event = lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default());
        match self {
            Consumer::Sync(sync) => cache_sync_fn::handle(sync, event)
                .await
                .map_err(|e| e.to_string()),
            Consumer::Upkeep(upkeep) => upkeep_fn::handle(upkeep, event)
                .await
                .map_err(|e| e.to_string()),
        }
    }
}

/// Sends `request` (to `path`) through the API, as the function that serves `path`, and files
/// what that request sent to DynamoDB under that function.
pub(super) async fn api_call(
    env: &integration_tests::TestEnv,
    recorder: &Recorder,
    sent: &mut BTreeMap<String, Vec<Sent>>,
    request: integration_tests::ApiRequest,
    path: &str,
) -> integration_tests::ApiResponse {
    recorder.take();
    let response = env.send(request).await;
    let function = function_id(integration_tests::function_for(path));
    sent.entry(function).or_default().extend(recorder.take());
    response
}
