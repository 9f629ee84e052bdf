// Every receiver, in inherent impls, trait impls and trait default bodies.
#![deny(warnings)]

use watchpost::monitored_job;

struct Queue {
    name: String,
    items: Vec<u32>,
}

impl Queue {
    #[monitored_job]
    fn name(&self) -> &str {
        &self.name
    }

    #[monitored_job]
    fn first_mut(&mut self) -> Option<&mut u32> {
        self.items.first_mut()
    }

    #[monitored_job]
    fn push(&mut self, item: u32) {
        self.items.push(item);
    }

    #[monitored_job]
    fn into_items(self) -> Vec<u32> {
        self.items
    }

    #[monitored_job]
    fn boxed(self: Box<Self>) -> usize {
        self.items.len()
    }

    #[monitored_job]
    fn new() -> Self {
        Self { name: "jobs".to_owned(), items: Vec::new() }
    }

    #[monitored_job]
    async fn drain(&mut self) -> Result<Vec<u32>, String> {
        if self.items.is_empty() {
            return Err("nothing to drain".to_owned());
        }
        Ok(std::mem::take(&mut self.items))
    }
}

trait Job {
    fn label(&self) -> String;

    #[monitored_job]
    fn run(&self) -> Result<String, std::fmt::Error> {
        Ok(self.label())
    }
}

impl Job for Queue {
    #[monitored_job(slug = "queue-label")]
    fn label(&self) -> String {
        self.name.clone()
    }
}

#[tokio::main]
async fn main() {
    let mut queue = Queue::new();
    queue.push(1);
    if let Some(first) = queue.first_mut() {
        *first += 1;
    }
    let _: &str = queue.name();
    let _ = queue.run();
    let _ = queue.drain().await;
    let _: Vec<u32> = queue.into_items();
    let _: usize = Box::new(Queue::new()).boxed();
}
