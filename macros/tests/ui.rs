//! The attribute as a user meets it, compiled by trybuild: `ui/pass` must build against the
//! real `watchpost` crate, `ui/fail` must fail with exactly the errors in its `.stderr`.
//!
//! Regenerate the expected errors after an intended change with
//! `TRYBUILD=overwrite cargo test -p watchpost-macros --test ui`, then read the diff: each
//! error must point at the argument at fault and say how to fix it.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
