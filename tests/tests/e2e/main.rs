//! Ferry's end-to-end tests: real PostgreSQL and MariaDB servers, real
//! coordinator and worker processes, driven through the `ferry` CLI.
//!
//! One test binary with a module per capability, not a binary per file:
//! each binary links the whole client stack (tokio, tonic, both database
//! drivers), and sixty links were a large part of a clean build; one binary
//! also lets libtest keep both threads busy across capabilities instead of
//! idling at the end of each file. Tests share this process, so none sets
//! its own environment for children to inherit (`Ferry::start_env` gives
//! a Ferry's processes theirs) and every server, port, directory and
//! cgroup a test makes is its own. The few that want both cores to
//! themselves take `ferry_tests::alone()` and run one at a time.
//!
//! Run one capability with `cargo test -p ferry-tests --test e2e -- MODULE::`.

mod access;
mod autoscale;
mod binlog_cdc;
mod capacity;
mod cdc_backlog;
mod cdc_chaos;
mod cdc_latency;
mod cdc_only;
mod cdc_pgbench;
mod cdc_stop;
mod cdc_values;
mod cluster;
mod cluster_recovery;
mod control_tables;
mod coordinator_failover;
mod coordinator_restart;
mod cutover;
mod cutover_chaos;
mod cutover_mysql;
mod dashboard;
mod ddl_policy;
mod deploy;
mod drain;
mod dropped_tables;
mod endpoint_readiness;
mod endpoints;
mod error_behavior;
mod full_load;
mod fuzz_grpc;
mod hostile_names;
mod hung_endpoint;
mod inheritance;
mod kubernetes;
mod large_transaction;
mod large_transaction_mysql;
mod lob_limits;
mod lob_memory;
mod mysql_to_mysql;
mod mysql_to_pg;
mod no_silent_loss;
mod observability;
mod parallel_apply;
mod parallel_apply_mysql;
mod pg_to_mysql;
mod reload_table;
mod schema_mysql_to_mysql;
mod schema_mysql_to_pg;
mod schema_pg_to_mysql;
mod secrets;
mod session_settings;
mod source_filters;
mod stop_after_load;
mod tls;
mod traces;
mod transformations;
mod type_matrix;
mod up;
mod validation;
mod worker_kill;
mod worker_partition;
