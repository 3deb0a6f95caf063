//! The store test suite (`homeboy_jobs::suite`) on PostgreSQL: each test gets its own database, and the
//! suite's races open several store instances on it, as several brokers would.

use std::sync::Arc;

use homeboy_jobs::suite::{Backend, Storage};
use homeboy_jobs::{Clock, JobError, JobStore, Recovery, StoreOptions};
use homeboy_pg_harness::Cluster;

use crate::Database;

struct Pg;

impl Backend for Pg {
    fn storage(&self, test: &str) -> Box<dyn Storage> {
        Box::new(Database::new(Cluster::shared(), test))
    }
}

impl Storage for Database {
    fn open(
        &self,
        options: StoreOptions,
        clock: Clock,
    ) -> Result<(Arc<dyn JobStore>, Recovery), JobError> {
        Ok(self.open_dyn(options, clock))
    }

    fn shared(&self) -> bool {
        true
    }
}

homeboy_jobs::store_suite!(Pg);
