// Other attributes, doc comments and inner attributes stay where they were.
#![deny(warnings)]

use watchpost::monitored_job;

/// Documented.
#[monitored_job(schedule = "@daily")]
#[inline]
#[must_use = "the count says how much was cleaned"]
pub fn clean_up() -> usize {
    #![allow(clippy::let_and_return)]
    let count = 3;
    count
}

#[cfg(any())]
#[monitored_job]
fn compiled_out() -> DoesNotExist {}

#[monitored_job]
#[allow(unused_variables)]
fn allowed(unused: u8) {}

// SAFETY comments and `unsafe` blocks work as in any unsafe fn.
#[monitored_job]
unsafe fn read(ptr: *const u8) -> u8 {
    // SAFETY: the caller passes a valid pointer.
    unsafe { *ptr }
}

mod nested {
    #[watchpost::monitored_job]
    pub(crate) fn job() {
        #[watchpost::monitored_job]
        fn inner() {}
        inner();
    }
}

fn main() {
    let _ = clean_up();
    allowed(1);
    let byte = 7u8;
    // SAFETY: `byte` is alive and aligned.
    let _ = unsafe { read(&byte) };
    nested::job();
}
