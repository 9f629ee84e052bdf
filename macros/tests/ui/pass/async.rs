// Async functions; their futures stay `Send`, so they can be spawned.
#![deny(warnings)]

use std::time::Duration;

use watchpost::monitored_job;

#[monitored_job(interval = "10m")]
async fn refresh() -> Result<usize, std::io::Error> {
    tokio::time::sleep(Duration::from_millis(1)).await;
    let n = "5".parse::<usize>().map_err(std::io::Error::other)?;
    Ok(n)
}

#[monitored_job]
async fn string_error(input: String) -> Result<u8, String> {
    let n = input.parse::<u8>().map_err(|e| e.to_string())?;
    Ok(n)
}

#[monitored_job]
async fn returns_impl_trait(items: Vec<u8>) -> impl Iterator<Item = u8> {
    items.into_iter().rev()
}

#[monitored_job]
async fn borrows<'a>(text: &'a str, _other: &str) -> &'a str {
    tokio::task::yield_now().await;
    text.trim()
}

#[monitored_job]
async fn greet(name: impl AsRef<str> + Send) -> String {
    format!("hello {}", name.as_ref())
}

#[monitored_job]
async fn unit() {}

// Not an `async fn`: monitored as a sync fn; the run covers creating the future only.
#[monitored_job]
fn returns_a_future() -> impl std::future::Future<Output = u8> {
    async { 1 }
}

#[tokio::main]
async fn main() {
    tokio::spawn(refresh()).await.unwrap().unwrap();
    tokio::spawn(string_error("3".to_owned())).await.unwrap().unwrap();
    let _: Vec<u8> = returns_impl_trait(vec![1, 2]).await.collect();
    let _: &str = borrows(" x ", "y").await;
    let _: String = tokio::spawn(greet("you")).await.unwrap();
    unit().await;
    let _: u8 = returns_a_future().await;
}
