// FIXME: both functions should compile, as they do without the attribute. The probe picks
// `ViaError` (`E: Error + 'static`) for every `E: Error`, because method resolution ignores
// lifetimes, and the `'static` bound then fails. The fix belongs in `watchpost::__private`:
// accept `E: Error` without `'static`, with `Outcome::Error(&'a (dyn Error + 'a))`. Then move
// this file to `ui/pass/`.
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
