//! The `Storage` contract: what every backend must do, checked on each of them. Every test runs
//! once per backend, as `<test>::sqlite_memory`, `<test>::sqlite_file` and `<test>::postgres`,
//! each on a fresh storage of its own, so a failure names the backend it happened on.
//!
//! The PostgreSQL part is built with `--features postgres` and runs when
//! `ERRAND_TEST_DATABASE_URL` names a database; each test then works in a schema of its own,
//! dropped once it passed (best effort; a failed test's is kept to be looked at). Otherwise it
//! is skipped, and the run says so once on stderr.
//!
//! What only SQLite has (migrations, files, WAL, size limits, raw-SQL salvage) is tested in
//! `storage_sqlite.rs`.

#[path = "support/storage.rs"]
mod common;

/// Opening a backend for a test, and running the test on it.
mod harness {
    use super::common::TempDir;
    use errand_server::storage::{SqliteStorage, Storage};
    use std::future::Future;
    use std::io::Write;
    use std::sync::{Arc, Once};

    /// A backend the contract is checked on.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Backend {
        SqliteMemory,
        SqliteFile,
        #[cfg(feature = "postgres")]
        Postgres,
    }

    /// What a test's storage leaves behind: a file's directory, removed when this drops; a
    /// PostgreSQL schema, dropped by [`Guard::release`].
    #[derive(Debug)]
    pub(crate) enum Guard {
        Nothing,
        Dir {
            _dir: TempDir,
        },
        #[cfg(feature = "postgres")]
        Schema {
            url: String,
            schema: String,
        },
    }

    impl Guard {
        /// Removes what the test left, once it passed: a failed test's schema is kept, to be
        /// looked at (the test database is throwaway).
        async fn release(self) {
            #[cfg(feature = "postgres")]
            if let Self::Schema { url, schema } = &self {
                drop_schema(url, schema).await;
            }
            drop(self);
        }
    }

    /// Drops a test's schema, best effort: a schema left behind harms no other test.
    #[cfg(feature = "postgres")]
    async fn drop_schema(url: &str, schema: &str) {
        let Ok((client, connection)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await
        else {
            return;
        };
        let connection = tokio::spawn(connection);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await;
        drop(client);
        let _ = connection.await;
    }

    /// Says once per test process why the PostgreSQL part does not run, where every test
    /// run shows it (stderr itself, not the captured output of a test).
    fn note_postgres_skipped() {
        static ONCE: Once = Once::new();
        #[cfg(feature = "postgres")]
        let why = std::env::var_os(DATABASE_URL)
            .is_none()
            .then_some("ERRAND_TEST_DATABASE_URL is not set");
        #[cfg(not(feature = "postgres"))]
        let why = Some("built without `--features postgres`");
        if let Some(why) = why {
            ONCE.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "storage_contract: the PostgreSQL backend is skipped: {why}"
                );
            });
        }
    }

    #[cfg(feature = "postgres")]
    const DATABASE_URL: &str = "ERRAND_TEST_DATABASE_URL";

    /// A fresh, empty storage of `backend`; `None` when the backend cannot run here.
    pub(crate) async fn open(backend: Backend) -> Option<(Arc<dyn Storage>, Guard)> {
        note_postgres_skipped();
        match backend {
            Backend::SqliteMemory => {
                let storage = SqliteStorage::in_memory().expect("an in-memory SQLite storage");
                Some((Arc::new(storage), Guard::Nothing))
            }
            Backend::SqliteFile => {
                let dir = TempDir::new();
                let storage = SqliteStorage::open(dir.db()).expect("a SQLite file storage");
                Some((Arc::new(storage), Guard::Dir { _dir: dir }))
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                use errand_server::storage::{PostgresConfig, PostgresStorage};
                let url = std::env::var(DATABASE_URL).ok()?;
                // A schema per test: tests run in parallel and each expects an empty storage.
                let schema = format!("errand_t_{}", uuid::Uuid::new_v4().simple());
                let mut config = PostgresConfig::new(url.clone());
                config.schema = Some(schema.clone());
                let storage = PostgresStorage::connect(config)
                    .await
                    .expect("a PostgreSQL storage at ERRAND_TEST_DATABASE_URL");
                Some((Arc::new(storage), Guard::Schema { url, schema }))
            }
        }
    }

    /// Runs `test` on a fresh storage of `backend`, or nothing when it cannot run here.
    pub(crate) async fn on<F, Fut>(backend: Backend, test: F)
    where
        F: FnOnce(Arc<dyn Storage>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let Some((storage, guard)) = open(backend).await else {
            return;
        };
        // The test owns the storage and drops it as it ends, before what it leaves is removed.
        test(storage).await;
        guard.release().await;
    }

    /// [`on`], from a test that is not async (a property's case): on a runtime of its own.
    pub(crate) fn block_on<F, Fut>(backend: Backend, test: F)
    where
        F: FnOnce(Arc<dyn Storage>) -> Fut,
        Fut: Future<Output = ()>,
    {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(on(backend, test));
    }
}

/// Defines a contract test: `contract_test! { async fn name(storage) { ... } }` makes the
/// module `name` with one test per backend, each running the body with a fresh
/// `storage: &dyn Storage`; `async fn name(storage: Arc)` has it as `Arc<dyn Storage>`, for a
/// test that hands it to tasks. `contract_test! { multi_thread; ... }` runs it on a runtime
/// of four worker threads.
macro_rules! contract_test {
    (multi_thread; $($rest:tt)*) => {
        contract_test!(@emit [tokio::test(flavor = "multi_thread", worker_threads = 4)] $($rest)*);
    };
    (@emit [$($runtime:tt)*] $(#[doc = $doc:expr])* async fn $name:ident($storage:ident) $body:block) => {
        contract_test!(@emit [$($runtime)*] $(#[doc = $doc])* async fn $name(shared: Arc) {
            let $storage: &dyn errand_server::storage::Storage = &*shared;
            $body
        });
    };
    (@emit [$($runtime:tt)*] $(#[doc = $doc:expr])* async fn $name:ident($storage:ident: Arc) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::harness::{Backend, on};

            async fn check($storage: std::sync::Arc<dyn errand_server::storage::Storage>) $body

            #[$($runtime)*]
            async fn sqlite_memory() {
                on(Backend::SqliteMemory, check).await;
            }

            #[$($runtime)*]
            async fn sqlite_file() {
                on(Backend::SqliteFile, check).await;
            }

            #[cfg(feature = "postgres")]
            #[$($runtime)*]
            async fn postgres() {
                on(Backend::Postgres, check).await;
            }
        }
    };
    ($($rest:tt)*) => {
        contract_test!(@emit [tokio::test] $($rest)*);
    };
}

/// Defines a contract property: `contract_proptest! { cases = N; fn name(a in s, ...) => check }`
/// makes the module `name` with one proptest per backend, each case calling
/// `check(storage, a, ...)` (an async fn) on a fresh storage.
macro_rules! contract_proptest {
    (cases = $cases:expr; $(#[doc = $doc:expr])* fn $name:ident($($arg:ident in $strategy:expr),+ $(,)?) => $check:ident) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::harness::{Backend, block_on};

            proptest::proptest! {
                #![proptest_config(proptest::test_runner::Config::with_cases($cases))]

                #[test]
                fn sqlite_memory($($arg in $strategy),+) {
                    block_on(Backend::SqliteMemory, |storage| $check(storage, $($arg),+));
                }

                #[test]
                fn sqlite_file($($arg in $strategy),+) {
                    block_on(Backend::SqliteFile, |storage| $check(storage, $($arg),+));
                }

                #[cfg(feature = "postgres")]
                #[test]
                fn postgres($($arg in $strategy),+) {
                    block_on(Backend::Postgres, |storage| $check(storage, $($arg),+));
                }
            }
        }
    };
}

// `cfg(test)`, as a test's own code is, for the lints that tell test code from the rest
// (clippy's `allow-unwrap-in-tests`).
#[cfg(test)]
#[path = "contract/events.rs"]
mod events;
#[cfg(test)]
#[path = "contract/leases.rs"]
mod leases;
#[cfg(test)]
#[path = "contract/properties.rs"]
mod properties;
#[cfg(test)]
#[path = "contract/runs.rs"]
mod runs;
#[cfg(test)]
#[path = "contract/store.rs"]
mod store;
#[cfg(test)]
#[path = "contract/threads.rs"]
mod threads;
