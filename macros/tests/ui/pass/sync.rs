// Sync free functions with every kind of return the probe distinguishes.
#![deny(warnings)]

use std::error::Error;
use std::io;

use watchpost::monitored_job;

#[monitored_job]
fn unit() {}

#[monitored_job]
fn value() -> u32 {
    42
}

#[monitored_job(schedule = "0 3 * * *")]
fn io_error(path: &str) -> io::Result<usize> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.len())
}

#[monitored_job]
fn boxed_error(input: &str) -> Result<u8, Box<dyn Error>> {
    let n: u8 = input.parse()?;
    if n == 0 {
        return Err("zero".into());
    }
    Ok(n)
}

#[monitored_job]
fn boxed_send_sync_error() -> Result<(), Box<dyn Error + Send + Sync + 'static>> {
    Err(io::Error::other("offline"))?;
    Ok(())
}

// `?` leaves the error type open inside the body; the return type fixes it.
#[monitored_job]
fn string_error(input: &str) -> Result<u8, String> {
    let n = input.parse::<u8>().map_err(|e| e.to_string())?;
    check(n)?;
    Ok(n)
}

fn check(n: u8) -> Result<(), String> {
    if n > 100 { Err(format!("{n} is too large")) } else { Ok(()) }
}

#[monitored_job]
fn option() -> Option<u8> {
    let n = "7".parse::<u8>().ok()?;
    Some(n)
}

#[monitored_job]
fn panics() {
    panic!("boom");
}

#[monitored_job]
fn mutates_its_arguments(mut total: u32, (a, b): (u32, u32)) -> u32 {
    total += a + b;
    total
}

fn main() {
    unit();
    let _: u32 = value();
    let _: io::Result<usize> = io_error("/nonexistent");
    let _ = boxed_error("3");
    let _ = boxed_send_sync_error();
    let _ = string_error("3");
    let _: Option<u8> = option();
    let _: u32 = mutates_its_arguments(1, (2, 3));
    let _ = std::panic::catch_unwind(panics);
}
