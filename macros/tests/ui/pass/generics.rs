// Generics, where-clauses, const generics, lifetimes and `impl Trait` survive as written.
#![deny(warnings)]

use std::collections::HashMap;
use std::fmt::{Debug, Display};
use std::hash::Hash;

use watchpost::monitored_job;

#[monitored_job]
fn count<K, I>(items: I) -> HashMap<K, usize>
where
    K: Eq + Hash,
    I: IntoIterator<Item = K>,
{
    let mut counts = HashMap::new();
    for item in items {
        *counts.entry(item).or_insert(0) += 1;
    }
    counts
}

#[monitored_job]
fn describe(value: impl Display, extra: &impl Debug) -> impl Display {
    format!("{value} {extra:?}")
}

#[monitored_job]
fn evens(limit: u32) -> Box<dyn Iterator<Item = u32>> {
    Box::new((0..limit).filter(|n| n % 2 == 0))
}

#[monitored_job]
fn nested_impl_trait(limit: u32) -> Result<impl Iterator<Item = u32>, String> {
    if limit == 0 {
        return Err("empty".to_owned());
    }
    Ok(0..limit)
}

#[monitored_job]
fn longest<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.len() >= b.len() { a } else { b }
}

#[monitored_job]
fn elided(text: &str) -> &str {
    text.trim()
}

#[monitored_job]
fn first<const N: usize, T: Copy + Default>(items: [T; N]) -> T {
    items.first().copied().unwrap_or_default()
}

#[monitored_job]
fn parse_all<T>(inputs: &[&str]) -> Result<Vec<T>, T::Err>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + 'static,
{
    inputs.iter().map(|input| input.parse()).collect()
}

fn main() {
    let _ = count(["a", "b", "a"]);
    let _ = describe(1, &"x").to_string();
    let _: u32 = evens(10).sum();
    let _ = nested_impl_trait(3).map(|it| it.count());
    let _: &str = longest("a", "bb");
    let _: &str = elided(" x ");
    let _: u8 = first([1u8, 2]);
    let _ = parse_all::<u32>(&["1", "2"]);
}
