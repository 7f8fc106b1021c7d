//! PostgreSQL change data capture: the replication-protocol client, the
//! pgoutput decoder, source-side slot management and the apply stream.

pub mod apply;
pub mod pgoutput;
pub mod replication;
pub mod slot;
