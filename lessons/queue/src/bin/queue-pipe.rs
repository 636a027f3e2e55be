//! Two ends of a pipe, one per process: `multiprocessing.Pipe`, which the chapter's Python
//! examples do not use; this one goes beyond the source material.
//!
//! Book: `book/src/queue.md`. Run: `cargo run -p lesson-queue --bin queue-pipe`.
//!
//! Notice: the child's end is moved into its closure, so the parent no longer holds it; when
//! the child ends, the parent's `recv` reports the closed peer instead of waiting forever.

use multiprocessing::{Connection, Error, Process, pipe};

// ANCHOR: f
fn f(mut conn: Connection) -> multiprocessing::Result<()> {
    conn.send(&(42, None::<i32>, "hello"))?;
    let reply: String = conn.recv()?;
    println!("child got: {reply}");
    Ok(())
}
// ANCHOR_END: f

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    let (mut parent_conn, child_conn) = pipe(true)?;
    let p = Process::new(move || f(child_conn));
    p.start()?;

    let message: (i32, Option<i32>, String) = parent_conn.recv()?;
    println!("parent got: {message:?}");
    parent_conn.send("thanks")?;

    p.join()?;
    match parent_conn.recv::<String>() {
        Err(Error::Disconnected) => println!("the child's end is closed"),
        other => println!("unexpected: {other:?}"),
    }
    Ok(())
}
// ANCHOR_END: main
