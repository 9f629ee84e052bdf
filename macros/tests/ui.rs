//! The attribute as a user meets it, compiled by trybuild: `ui/pass` must build (and run)
//! against the real `watchpost` crate, `ui/fail` must fail with exactly the errors in its
//! `.stderr`. Fail cases about arguments import `watchpost_macros` directly, so their expected
//! errors do not change with the SDK.
//!
//! After an intended change, regenerate the expected errors with
//! `TRYBUILD=overwrite cargo test -p watchpost-macros --test ui` and read the diff: each error
//! must point at the argument at fault and say how to fix it.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
