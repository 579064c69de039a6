//! Property tests over HTTP: arbitrary `/authorize` queries and sign-in forms sent to the real
//! server. Each case is one request; a modest number of cases by default, more with
//! `PROPTEST_CASES` (BENCHMARKS.md, "Fuzzing and properties").

use std::future::Future;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

mod authorize;
mod found;
mod sign_in;

/// Run `check` on `cases` values of `strategy` (or `PROPTEST_CASES`), shrinking a failure. The
/// server runs on this runtime's other worker while this one waits on each request.
pub async fn run_cases<S, F, Fut>(cases: u32, strategy: S, check: F)
where
    S: Strategy,
    S::Value: Clone + std::fmt::Debug,
    F: Fn(S::Value) -> Fut,
    Fut: Future<Output = Result<(), TestCaseError>>,
{
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        runner.run(&strategy, |value| handle.block_on(check(value)))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
