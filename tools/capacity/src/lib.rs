//! `scripts/capacity`: what the app's traffic costs DynamoDB and Redis, partition by partition
//! and key by key, at rates one machine cannot run.
//!
//! The real handlers serve each request class against the local stack ([`world`]); every
//! DynamoDB call is recorded at the wire and turned into capacity by AWS's published rules
//! ([`recorder`], [`account`], [`rules`]), every Redis command by `MONITOR` ([`monitor`]); the
//! stream consumers run through the same recorder ([`consumers`]). Per class, the costs per
//! request are kept per role of the key ([`roles`], [`profile`]), and the model ([`model`])
//! places them on a production-sized table: the mix's rates, Zipf popularity over a million
//! posts, a viral post. [`delete`] times axis (d). [`report`], [`chart`] and [`doc`] write
//! the figures out.

pub mod account;
pub mod chart;
pub mod consumers;
pub mod delete;
pub mod doc;
pub mod emulator;
pub mod model;
pub mod monitor;
pub mod phases;
pub mod profile;
pub mod record;
pub mod recorder;
pub mod report;
pub mod roles;
pub mod rules;
pub mod schema;
pub mod slot;
pub mod wire;
pub mod world;
