use watchpost_macros::monitored_job;

#[monitored_job]
fn serve_forever() -> ! {
    loop {}
}

fn main() {
    serve_forever();
}
