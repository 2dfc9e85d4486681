//! The table as `template.yaml` declares it, for the places that must create it themselves:
//! the local stack, the tests and the benchmarks. A test checks the template agrees.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use super::keys::{FEED_INDEX, LEGACY_FEED_INDEX};

/// Attribute names of the table's keys and of its indexes' keys: the feed index's, and the
/// legacy feed index's.
pub const KEY_ATTRIBUTES: [&str; 6] = ["pk", "sk", "feedpk", "feedsk", "gsi1pk", "gsi1sk"];

/// The attribute DynamoDB's TTL reads (Unix seconds): items past it are deleted some time
/// later. Idempotency records and emails' tombstones carry it.
pub const TTL_ATTRIBUTE: &str = "expiresAt";

/// Creates the table (on-demand, `pk`/`sk`; the feed index `feed` on `feedpk`/`feedsk`, keys
/// only; the legacy feed index `gsi1` on `gsi1pk`/`gsi1sk`, every attribute, which only items
/// of the legacy layout are in; a stream of keys only (no image, so no password hash) for
/// `cache-sync` and `upkeep`; TTL on [`TTL_ATTRIBUTE`]). An existing table is left as it is.
pub async fn create_table(client: &Client, name: &str) -> Result<(), String> {
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| e.to_string())
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .map_err(|e| e.to_string())
    };
    let index = |name: &str, pk: &str, sk: &str, projection: ProjectionType| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(pk, KeyType::Hash)?)
            .key_schema(key(sk, KeyType::Range)?)
            .projection(Projection::builder().projection_type(projection).build())
            .build()
            .map_err(|e| e.to_string())
    };
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(index(
            FEED_INDEX,
            "feedpk",
            "feedsk",
            ProjectionType::KeysOnly,
        )?)
        .global_secondary_indexes(index(
            LEGACY_FEED_INDEX,
            "gsi1pk",
            "gsi1sk",
            ProjectionType::All,
        )?)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::KeysOnly)
                .build()
                .map_err(|e| e.to_string())?,
        );
    for name in KEY_ATTRIBUTES {
        request = request.attribute_definitions(attr(name)?);
    }
    match request.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            return Ok(())
        }
        Err(e) => return Err(aws_smithy_types::error::display::DisplayErrorContext(&e).to_string()),
    }
    let ttl = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(TTL_ATTRIBUTE)
        .build()
        .map_err(|e| e.to_string())?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| aws_smithy_types::error::display::DisplayErrorContext(&e).to_string())
}
