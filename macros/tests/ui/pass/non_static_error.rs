//! Errors that are not `'static` compile as they do without the attribute: one that borrows
//! from the input, and a generic `T::Err: Error` (no `'static` bound).
use std::error::Error;
use std::fmt;

use watchpost::monitored_job;

/// An error that borrows from the input.
#[derive(Debug)]
struct BadToken<'a>(&'a str);

impl fmt::Display for BadToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad token `{}`", self.0)
    }
}

impl Error for BadToken<'_> {}

#[monitored_job]
fn borrowed_error(input: &str) -> Result<u8, BadToken<'_>> {
    input.parse().map_err(|_| BadToken(input))
}

#[monitored_job]
fn generic_error<T>(input: &str) -> Result<T, T::Err>
where
    T: std::str::FromStr,
    T::Err: Error,
{
    input.parse()
}

fn main() {
    let _ = borrowed_error("x");
    let _ = generic_error::<u8>("1");
}
