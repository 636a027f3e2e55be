//! `Queue` and `JoinableQueue` as a user sees them: order, every message delivered once,
//! bounds, timeouts, errors, large messages, a writer killed in the middle of one, and
//! processes killed while they wait in `get`, `put` or `join`.

mod common;

use common::{PATIENCE, finish, run, started};

use std::collections::HashMap;
use std::thread::sleep;
use std::time::{Duration, Instant};

use multiprocessing::{Bytes, Error, JoinableQueue, Process, Queue, Signal, queue};
use rand::RngExt;
use serde::{Deserialize, Serialize};

#[test]
fn messages_come_out_in_the_order_they_went_in() {
    let q: Queue<String> = Queue::new().unwrap();
    for i in 0..1000 {
        q.put(format!("message {i}")).unwrap();
    }
    assert_eq!(q.qsize().unwrap(), 1000);
    for i in 0..1000 {
        assert_eq!(q.get().unwrap(), format!("message {i}"));
    }
    assert!(q.empty().unwrap());
}

#[test]
fn a_child_sends_to_its_parent() {
    let q: Queue<u64> = Queue::new().unwrap();
    let producer = {
        let q = q.clone();
        started(Process::new(move || -> multiprocessing::Result<()> {
            for i in 0..100_000 {
                q.put(i)?;
            }
            Ok(())
        }))
    };
    // The producer may end before anything is read: put never waits for a reader.
    assert!(finish(&producer).success());
    for i in 0..100_000 {
        assert_eq!(q.get_timeout(PATIENCE).unwrap(), i);
    }
}

#[test]
fn four_producers_and_four_consumers_deliver_every_message_once() {
    const PRODUCERS: u64 = 4;
    const CONSUMERS: usize = 4;
    const EACH: u64 = 25_000;
    // `None` is the poison pill that stops a consumer.
    let work: Queue<Option<(u64, u64)>> = Queue::new().unwrap();
    let received: Queue<Vec<(u64, u64)>> = Queue::new().unwrap();
    let producers: Vec<Process> = (0..PRODUCERS)
        .map(|producer| {
            let work = work.clone();
            started(Process::new(move || -> multiprocessing::Result<()> {
                for i in 0..EACH {
                    work.put(Some((producer, i)))?;
                }
                Ok(())
            }))
        })
        .collect();
    let consumers: Vec<Process> = (0..CONSUMERS)
        .map(|_| {
            let (work, received) = (work.clone(), received.clone());
            started(Process::new(move || -> multiprocessing::Result<()> {
                let mut got = Vec::new();
                while let Some(message) = work.get()? {
                    got.push(message);
                }
                received.put(got)
            }))
        })
        .collect();
    for producer in &producers {
        assert!(finish(producer).success());
    }
    for _ in 0..CONSUMERS {
        work.put(None).unwrap();
    }
    let mut all = Vec::new();
    for _ in 0..CONSUMERS {
        let got = received.get_timeout(PATIENCE).unwrap();
        // What one consumer got from one producer is in the producer's order.
        let mut last: HashMap<u64, u64> = HashMap::new();
        for &(producer, i) in &got {
            if let Some(previous) = last.insert(producer, i) {
                assert!(previous < i, "producer {producer}: {i} after {previous}");
            }
        }
        all.extend(got);
    }
    for consumer in &consumers {
        assert!(finish(consumer).success());
    }
    all.sort_unstable();
    let expected: Vec<(u64, u64)> = (0..PRODUCERS)
        .flat_map(|producer| (0..EACH).map(move |i| (producer, i)))
        .collect();
    assert_eq!(all.len(), expected.len());
    assert!(all == expected, "a message was lost or delivered twice");
}

#[test]
fn a_16_mib_message_arrives_whole() {
    let q: Queue<Vec<u64>> = Queue::new().unwrap();
    let big: Vec<u64> = (0..2 * 1024 * 1024).collect();
    let sender = {
        let (q, big) = (q.clone(), big.clone());
        started(Process::new(move || q.put(&big)))
    };
    assert_eq!(q.get_timeout(PATIENCE).unwrap(), big);
    assert!(finish(&sender).success());
}

#[test]
fn the_ring_grows_while_it_holds_wrapped_messages() {
    let q: Queue<Vec<u8>> = Queue::new().unwrap();
    // Fill most of the first ring, free its start, then wrap around and overflow it.
    let block = |tag: u8| vec![tag; 300 * 1024];
    for tag in 0..3 {
        q.put(block(tag)).unwrap();
    }
    assert_eq!(q.get().unwrap(), block(0));
    assert_eq!(q.get().unwrap(), block(1));
    for tag in 3..10 {
        q.put(block(tag)).unwrap();
    }
    for tag in 2..10 {
        assert_eq!(q.get().unwrap(), block(tag));
    }
}

#[test]
fn blocks_of_bytes_cross_whole_in_either_type() {
    let blocks: Queue<Bytes> = Queue::new().unwrap();
    let vectors: Queue<Vec<u8>> = Queue::new().unwrap();
    let sizes = [0, 1, 250, 251, 70_000, (3 << 20) + 7];
    let block = |size: usize| -> Vec<u8> { (0..size).map(|i| (i % 251) as u8).collect() };
    let sender = {
        let (blocks, vectors) = (blocks.clone(), vectors.clone());
        started(Process::new(move || -> multiprocessing::Result<()> {
            for size in sizes {
                blocks.put(Bytes(block(size)))?;
                vectors.put(block(size))?;
            }
            Ok(())
        }))
    };
    for size in sizes {
        assert_eq!(blocks.get_timeout(PATIENCE).unwrap().0, block(size));
        assert_eq!(vectors.get_timeout(PATIENCE).unwrap(), block(size));
    }
    assert!(finish(&sender).success());
    // The two types encode alike: a queue of tuples takes either in its fields.
    let pairs: Queue<(u32, Bytes)> = Queue::new().unwrap();
    pairs.put((7, Bytes(block(1000)))).unwrap();
    assert_eq!(pairs.get().unwrap(), (7, Bytes(block(1000))));
}

#[test]
fn large_and_small_messages_from_several_writers_arrive_whole_and_in_order() {
    // Large messages are copied in with the mutex released, small ones under it; the writers
    // are two processes and a thread of the reader's own process, which shares its mapping.
    let q: Queue<(u32, u32, Bytes)> = Queue::new().unwrap();
    let size = |writer: u32, i: u32| {
        if (writer + i).is_multiple_of(3) {
            300 << 10
        } else {
            10
        }
    };
    let fill = |writer: u32, i: u32| (writer * 31 + i) as u8;
    let write = move |q: Queue<(u32, u32, Bytes)>, writer: u32| -> multiprocessing::Result<()> {
        for i in 0..30 {
            q.put((writer, i, Bytes(vec![fill(writer, i); size(writer, i)])))?;
        }
        Ok(())
    };
    let processes: Vec<Process> = (0..2)
        .map(|writer| {
            let q = q.clone();
            started(Process::new(move || write(q, writer)))
        })
        .collect();
    let thread = {
        let q = q.clone();
        std::thread::spawn(move || write(q, 2))
    };
    let mut next = [0; 3];
    for _ in 0..90 {
        let (writer, i, bytes) = q.get_timeout(PATIENCE).unwrap();
        assert_eq!(
            i, next[writer as usize],
            "writer {writer}'s messages in order"
        );
        next[writer as usize] += 1;
        assert_eq!(bytes.len(), size(writer, i));
        assert!(bytes.iter().all(|&b| b == fill(writer, i)));
    }
    thread.join().unwrap().unwrap();
    for process in &processes {
        assert!(finish(process).success());
    }
}

#[test]
fn a_bounded_queue_refuses_or_waits_when_full() {
    let q: Queue<u8> = Queue::with_maxsize(2).unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert!(q.full().unwrap());
    assert!(matches!(q.try_put(3), Err(Error::Full)));
    assert!(matches!(
        q.put_timeout(3, Duration::from_millis(50)),
        Err(Error::Full)
    ));
    // A consumer in another process makes room; the blocked put then goes through.
    let consumer = {
        let q = q.clone();
        started(Process::new(move || {
            sleep(Duration::from_millis(100));
            assert_eq!(q.get().unwrap(), 1);
        }))
    };
    q.put_timeout(3, PATIENCE).unwrap();
    assert!(finish(&consumer).success());
    assert_eq!(q.get().unwrap(), 2);
    assert_eq!(q.get().unwrap(), 3);
}

#[test]
fn an_empty_queue_refuses_or_waits() {
    let q: Queue<u8> = Queue::new().unwrap();
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    assert!(matches!(
        q.get_timeout(Duration::from_millis(50)),
        Err(Error::Empty)
    ));
    let producer = {
        let q = q.clone();
        started(Process::new(move || {
            sleep(Duration::from_millis(100));
            q.put(7).unwrap();
        }))
    };
    assert_eq!(q.get_timeout(PATIENCE).unwrap(), 7);
    assert!(finish(&producer).success());
}

#[test]
fn close_stops_this_process_only() {
    let q: Queue<u8> = Queue::new().unwrap();
    let child_side = q.clone();
    let other = started(Process::new(move || {
        // This process never closed it: it can still put.
        sleep(Duration::from_millis(100));
        child_side.put(1).unwrap();
    }));
    q.close();
    assert!(matches!(q.put(2), Err(Error::Closed)));
    assert!(matches!(q.try_get(), Err(Error::Closed)));
    assert!(finish(&other).success());
}

#[test]
fn a_message_over_the_limit_is_refused_and_kept() {
    let q: Queue<Vec<u8>> = queue::Builder::new().max_message(100).build().unwrap();
    let big = vec![0u8; 1000];
    let error = q.put(&big).unwrap_err();
    assert!(
        matches!(error, Error::MessageTooLarge { limit: 100, .. }),
        "{error}"
    );
    assert_eq!(big.len(), 1000, "the caller still has the message");
    q.put(vec![1, 2, 3]).unwrap();
    assert_eq!(q.get().unwrap(), [1, 2, 3]);
}

/// A message whose encoding always fails, and whose decoding refuses odd numbers.
#[derive(Debug, PartialEq)]
struct Picky(u32);

impl Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 == u32::MAX {
            return Err(serde::ser::Error::custom("cannot encode u32::MAX"));
        }
        serializer.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Picky, D::Error> {
        let value = u32::deserialize(deserializer)?;
        if value % 2 == 1 {
            return Err(serde::de::Error::custom("odd numbers are refused"));
        }
        Ok(Picky(value))
    }
}

#[test]
fn encoding_errors_come_from_put_and_decoding_errors_from_get() {
    let q: Queue<Picky> = Queue::new().unwrap();
    let error = q.put(Picky(u32::MAX)).unwrap_err();
    assert!(matches!(error, Error::Encode { .. }), "{error}");
    assert!(q.empty().unwrap(), "nothing half-sent");
    q.put(Picky(3)).unwrap();
    q.put(Picky(4)).unwrap();
    let error = q.get().unwrap_err();
    assert!(
        error.to_string().contains("odd numbers are refused"),
        "{error}"
    );
    assert_eq!(q.get().unwrap(), Picky(4));
}

#[test]
fn a_writer_killed_mid_message_leaves_whole_messages_only() {
    let q: Queue<Vec<u8>> = Queue::new().unwrap();
    let writer = {
        let q = q.clone();
        started(Process::new(move || -> multiprocessing::Result<()> {
            q.put(b"before".to_vec())?;
            loop {
                q.put(vec![7u8; 8 << 20])?;
            }
        }))
    };
    assert_eq!(q.get_timeout(PATIENCE).unwrap(), b"before");
    // Kill it while it is busy putting large messages, most likely in the middle of one.
    // Meanwhile take some, so that the ring does not grow without end.
    let whole = |message: &[u8]| message.len() == 8 << 20 && message.iter().all(|&b| b == 7);
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(300) {
        assert!(whole(&q.get_timeout(PATIENCE).unwrap()));
    }
    writer.kill().unwrap();
    assert_eq!(finish(&writer).exitcode(), -9);
    // Every message left is whole; then the queue is empty and still works.
    loop {
        match q.try_get() {
            Ok(message) => assert!(whole(&message)),
            Err(Error::Empty) => break,
            Err(error) => panic!("{error}"),
        }
    }
    q.put(b"after".to_vec()).unwrap();
    assert_eq!(q.get().unwrap(), b"after");
}

#[test]
fn task_done_and_join_count_across_processes() {
    let tasks: JoinableQueue<u32> = JoinableQueue::new().unwrap();
    let workers: Vec<Process> = (0..2)
        .map(|_| {
            let tasks = tasks.clone();
            started(Process::new(move || -> multiprocessing::Result<()> {
                while tasks.get()? != 0 {
                    sleep(Duration::from_millis(5));
                    tasks.task_done()?;
                }
                tasks.task_done()
            }))
        })
        .collect();
    for n in 1..=20 {
        tasks.put(n).unwrap();
    }
    assert!(!tasks.join_timeout(Duration::ZERO).unwrap(), "not done yet");
    tasks.put(0).unwrap();
    tasks.put(0).unwrap();
    assert!(tasks.join_timeout(PATIENCE).unwrap());
    for worker in &workers {
        assert!(finish(worker).success());
    }
    assert!(matches!(
        tasks.task_done(),
        Err(Error::TaskDoneTooManyTimes)
    ));
}

#[test]
fn the_builder_sets_maxsize_for_a_joinable_queue() {
    let q: JoinableQueue<u8> = JoinableQueue::with(queue::Builder::new().maxsize(1)).unwrap();
    q.put(1).unwrap();
    assert!(matches!(q.try_put(2), Err(Error::Full)));
}

/// Runs `scenario` in a child process, which must succeed within [`PATIENCE`]. A queue broken
/// by a dead waiter hangs whoever uses it next, even in a timed call, so the whole scenario is
/// what is timed.
fn in_a_child(scenario: impl FnOnce() + Send + 'static) {
    assert!(run(&Process::new(scenario)).success());
}

/// Starts a daemonic child, which dies with the scenario's process if that one is killed.
fn helper<R: multiprocessing::Outcome>(target: impl FnOnce() -> R + Send + 'static) -> Process {
    started(Process::builder().daemon(true).target(target))
}

/// Sends `process` SIGKILL or SIGTERM after 0 to 10 ms, so that it dies on its way into a
/// wait or during it, and checks that the signal is what ended it.
fn kill_at_random(process: &Process, rng: &mut impl RngExt) {
    sleep(Duration::from_micros(rng.random_range(0..10_000)));
    let signal = if rng.random() {
        Signal::SIGKILL
    } else {
        Signal::SIGTERM
    };
    process.signal(signal).unwrap();
    assert_eq!(
        finish(process).signal(),
        Some(signal),
        "{process} was to wait until killed"
    );
}

#[test]
fn getters_killed_while_they_wait_leave_the_queue_working() {
    const ROUNDS: u32 = 100;
    in_a_child(|| {
        let mut rng = rand::rng();
        // `None` stops the consumer that lives through every round.
        let q: Queue<Option<u32>> = Queue::new().unwrap();
        let received: Queue<u32> = Queue::new().unwrap();
        let survivor = {
            let (q, received) = (q.clone(), received.clone());
            helper(move || -> multiprocessing::Result<()> {
                while let Some(round) = q.get_timeout(PATIENCE)? {
                    received.put_timeout(round, PATIENCE)?;
                }
                Ok(())
            })
        };
        for round in 0..ROUNDS {
            // Nothing is put while they live: each waits in `get` until it is killed.
            let doomed: Vec<Process> = (0..rng.random_range(1..=3))
                .map(|_| {
                    let q = q.clone();
                    helper(move || q.get().map(drop))
                })
                .collect();
            for process in &doomed {
                kill_at_random(process, &mut rng);
            }
            q.put_timeout(Some(round), PATIENCE).unwrap();
            assert_eq!(received.get_timeout(PATIENCE).unwrap(), round);
        }
        q.put_timeout(None, PATIENCE).unwrap();
        assert!(finish(&survivor).success());
        // Every message arrived once: none is left, and the queue goes on working.
        assert!(matches!(received.try_get(), Err(Error::Empty)));
        assert!(matches!(q.try_get(), Err(Error::Empty)));
        for i in 0..1000 {
            q.put_timeout(Some(i), PATIENCE).unwrap();
        }
        for i in 0..1000 {
            assert_eq!(q.get_timeout(PATIENCE).unwrap(), Some(i));
        }
    });
}

/// Waits until the bounded queue `q` is full.
fn wait_until_full(q: &Queue<u32>) {
    let started = Instant::now();
    while !q.full().unwrap() {
        assert!(started.elapsed() < PATIENCE, "the queue never filled up");
        sleep(Duration::from_millis(1));
    }
}

#[test]
fn putters_killed_while_they_wait_for_room_leave_the_queue_working() {
    const ROUNDS: u32 = 100;
    /// What the putters that are killed offer; it must never arrive.
    const DOOMED: u32 = u32::MAX;
    in_a_child(|| {
        let mut rng = rand::rng();
        let q: Queue<u32> = Queue::with_maxsize(1).unwrap();
        // The producer that lives through every round puts 0..=ROUNDS, waiting for room for
        // each after the first.
        let survivor = {
            let q = q.clone();
            helper(move || -> multiprocessing::Result<()> {
                for i in 0..=ROUNDS {
                    q.put_timeout(i, PATIENCE)?;
                }
                Ok(())
            })
        };
        for round in 0..=ROUNDS {
            wait_until_full(&q);
            if round < ROUNDS {
                // The queue stays full while they live: each waits in `put` until killed.
                let doomed: Vec<Process> = (0..rng.random_range(1..=3))
                    .map(|_| {
                        let q = q.clone();
                        helper(move || q.put(DOOMED))
                    })
                    .collect();
                for process in &doomed {
                    kill_at_random(process, &mut rng);
                }
            }
            assert_eq!(q.get_timeout(PATIENCE).unwrap(), round);
        }
        assert!(finish(&survivor).success());
        assert!(matches!(q.try_get(), Err(Error::Empty)));
        q.put_timeout(7, PATIENCE).unwrap();
        assert!(matches!(q.try_put(8), Err(Error::Full)));
        assert_eq!(q.get_timeout(PATIENCE).unwrap(), 7);
    });
}

#[test]
fn a_process_killed_in_join_leaves_task_done_and_join_working() {
    const ROUNDS: u32 = 50;
    in_a_child(|| {
        let mut rng = rand::rng();
        let tasks: JoinableQueue<u32> = JoinableQueue::new().unwrap();
        for round in 0..ROUNDS {
            tasks.put_timeout(round, PATIENCE).unwrap();
            let survivor = {
                let tasks = tasks.clone();
                helper(move || assert!(tasks.join_timeout(PATIENCE).unwrap()))
            };
            // The task stays unfinished while they live: each waits in `join` until killed.
            let doomed: Vec<Process> = (0..rng.random_range(1..=3))
                .map(|_| {
                    let tasks = tasks.clone();
                    helper(move || tasks.join())
                })
                .collect();
            for process in &doomed {
                kill_at_random(process, &mut rng);
            }
            assert_eq!(tasks.get_timeout(PATIENCE).unwrap(), round);
            tasks.task_done().unwrap();
            assert!(tasks.join_timeout(PATIENCE).unwrap());
            assert!(finish(&survivor).success());
        }
        assert!(matches!(
            tasks.task_done(),
            Err(Error::TaskDoneTooManyTimes)
        ));
    });
}
