//! `pipe` and `Connection` as a user sees them: both directions, one-way ends, large
//! messages, polling, a closed peer, bad or cut-off frames, waiting on several connections
//! and processes, and which process holds which end after `fork`.

mod common;

use common::{PATIENCE, finish, run, started};

use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use multiprocessing::connection::{Waitable, wait};
use multiprocessing::{Bytes, Connection, Error, Process, pipe};

/// A peer end as a raw socket, to write whatever bytes a test needs.
fn raw_socket(end: Connection) -> UnixStream {
    UnixStream::from(OwnedFd::from(end))
}

#[test]
fn both_ends_send_and_receive() {
    let (mut parent_conn, mut child_conn) = pipe(true).unwrap();
    let p = Process::new(move || -> multiprocessing::Result<()> {
        let question: String = child_conn.recv()?;
        child_conn.send(&format!("{question} 42"))
    });
    p.start().unwrap();
    parent_conn.send("the answer is").unwrap();
    assert_eq!(parent_conn.recv::<String>().unwrap(), "the answer is 42");
    assert!(finish(&p).success());
}

#[test]
fn one_way_ends_refuse_the_other_direction() {
    let (mut receiver, mut sender) = pipe(false).unwrap();
    assert!(matches!(
        receiver.send(&1),
        Err(Error::OneWay { receives: true })
    ));
    assert!(matches!(
        sender.recv::<i32>(),
        Err(Error::OneWay { receives: false })
    ));
    assert!(matches!(sender.poll(None), Err(Error::OneWay { .. })));
    sender.send(&7).unwrap();
    assert_eq!(receiver.recv::<i32>().unwrap(), 7);
}

#[test]
fn a_16_mib_message_arrives_whole() {
    let (mut reader, mut writer) = pipe(false).unwrap();
    let big: Vec<u8> = (0..16 << 20).map(|i: u32| (i % 251) as u8).collect();
    let sender = {
        let big = big.clone();
        Process::new(move || writer.send_bytes(&big))
    };
    sender.start().unwrap();
    assert_eq!(reader.recv_bytes().unwrap(), big);
    assert!(finish(&sender).success());
}

#[test]
fn poll_waits_at_most_its_timeout() {
    let (mut a, mut b) = pipe(true).unwrap();
    assert!(!a.poll(Some(Duration::from_millis(20))).unwrap());
    b.send_bytes(b"ready").unwrap();
    assert!(a.poll(Some(Duration::ZERO)).unwrap());
    assert_eq!(a.recv_bytes().unwrap(), b"ready");
    drop(b);
    // The end of the stream counts as something to read, as in Python.
    assert!(a.poll(Some(PATIENCE)).unwrap());
    assert!(matches!(a.recv_bytes(), Err(Error::Disconnected)));
}

#[test]
fn a_peer_that_is_gone_is_reported_distinctly() {
    let (mut mine, theirs) = pipe(true).unwrap();
    let p = Process::new(move || drop(theirs));
    p.start().unwrap();
    assert!(finish(&p).success());
    assert!(matches!(mine.recv::<u8>(), Err(Error::Disconnected)));
    assert!(matches!(mine.send(&1u8), Err(Error::Disconnected)));
}

#[test]
fn a_frame_cut_short_is_corrupt_not_a_half_message() {
    let (mut reader, writer) = pipe(false).unwrap();
    let mut raw = raw_socket(writer);
    raw.write_all(&100u64.to_le_bytes()).unwrap();
    raw.write_all(&[1; 10]).unwrap();
    drop(raw);
    let error = reader.recv_bytes().unwrap_err();
    assert!(matches!(error, Error::Corrupt { .. }), "{error}");

    let (mut reader, writer) = pipe(false).unwrap();
    let mut raw = raw_socket(writer);
    raw.write_all(&[1, 2, 3]).unwrap();
    drop(raw);
    assert!(matches!(reader.recv_bytes(), Err(Error::Corrupt { .. })));
}

#[test]
fn a_huge_length_is_refused_before_allocating() {
    let (mut reader, writer) = pipe(false).unwrap();
    let mut raw = raw_socket(writer);
    raw.write_all(&u64::MAX.to_le_bytes()).unwrap();
    let error = reader.recv_bytes().unwrap_err();
    assert!(matches!(error, Error::MessageTooLarge { .. }), "{error}");

    let (mut reader, mut writer) = pipe(false).unwrap();
    reader.set_max_message(4);
    writer.send_bytes(b"12345").unwrap();
    assert!(matches!(
        reader.recv_bytes(),
        Err(Error::MessageTooLarge { size: 5, limit: 4 })
    ));
    writer.set_max_message(4);
    assert!(matches!(
        writer.send_bytes(b"12345"),
        Err(Error::MessageTooLarge { .. })
    ));
}

#[test]
fn garbage_is_a_decode_error() {
    let (mut reader, mut writer) = pipe(false).unwrap();
    writer.send_bytes(&[0xff; 3]).unwrap();
    let error = reader.recv::<String>().unwrap_err();
    assert!(matches!(error, Error::Decode { .. }), "{error}");
    // The frame was whole, so the stream goes on.
    writer.send(&"fine").unwrap();
    assert_eq!(reader.recv::<String>().unwrap(), "fine");
}

#[test]
fn blocks_of_bytes_cross_whole_in_either_type() {
    let (mut reader, mut writer) = pipe(false).unwrap();
    let big: Vec<u8> = (0..(3 << 20) + 7).map(|i: u32| (i % 251) as u8).collect();
    let sender = {
        let big = big.clone();
        Process::new(move || -> multiprocessing::Result<()> {
            writer.send(&Bytes(big.clone()))?;
            writer.send(&big)?;
            writer.send(&big[..10])?;
            writer.send(&(7u32, Bytes(big.clone())))?;
            writer.send(&Bytes::default())
        })
    };
    sender.start().unwrap();
    assert_eq!(reader.recv::<Vec<u8>>().unwrap(), big);
    assert_eq!(reader.recv::<Bytes>().unwrap().0, big);
    assert_eq!(reader.recv::<Bytes>().unwrap().0, big[..10]);
    assert_eq!(reader.recv::<(u32, Vec<u8>)>().unwrap(), (7, big));
    assert!(reader.recv::<Vec<u8>>().unwrap().is_empty());
    assert!(finish(&sender).success());
}

#[test]
fn a_block_that_claims_more_than_its_frame_is_refused() {
    let (mut reader, writer) = pipe(false).unwrap();
    let mut raw = raw_socket(writer);
    // A frame of 9 bytes whose block claims 2^60 bytes: a length marker, then a u64.
    raw.write_all(&9u64.to_le_bytes()).unwrap();
    raw.write_all(&[0xfd]).unwrap();
    raw.write_all(&(1u64 << 60).to_le_bytes()).unwrap();
    let error = reader.recv::<Vec<u8>>().unwrap_err();
    assert!(matches!(error, Error::Decode { .. }), "{error}");
    // The frame was whole, so the stream goes on; then a block cut short by the end of the
    // stream is corrupt, not half a message.
    raw.write_all(&100u64.to_le_bytes()).unwrap();
    raw.write_all(&[99]).unwrap();
    raw.write_all(&[1; 10]).unwrap();
    drop(raw);
    let error = reader.recv::<Bytes>().unwrap_err();
    assert_eq!(
        error.to_string(),
        Error::Corrupt {
            message: "the stream ended 11 bytes into a 100-byte message".into()
        }
        .to_string()
    );
}

#[test]
fn a_writer_killed_mid_message_ends_in_an_error_not_a_partial_message() {
    let (mut reader, mut writer) = pipe(false).unwrap();
    let p = Process::new(move || -> multiprocessing::Result<()> {
        loop {
            writer.send_bytes(&vec![9u8; 4 << 20])?;
        }
    });
    p.start().unwrap();
    let first = reader.recv_bytes().unwrap();
    assert!(first.len() == 4 << 20 && first.iter().all(|&b| b == 9));
    sleep(Duration::from_millis(50));
    p.kill().unwrap();
    assert_eq!(finish(&p).exitcode(), -9);
    let end = loop {
        match reader.recv_bytes() {
            Ok(message) => assert!(message.len() == 4 << 20 && message.iter().all(|&b| b == 9)),
            Err(error) => break error,
        }
    };
    assert!(
        matches!(end, Error::Corrupt { .. } | Error::Disconnected),
        "{end}"
    );
}

/// A daemonic process that sleeps until it is killed (or its test process exits).
fn sleeper() -> Process {
    started(
        Process::builder()
            .daemon(true)
            .target(|| sleep(Duration::from_secs(600))),
    )
}

/// Runs `body` on a thread of its own and returns what it returns; fails the test if that
/// takes longer than [`PATIENCE`], as a wait that ignores its timeout would.
fn within_patience<R: Send + 'static>(body: impl FnOnce() -> R + Send + 'static) -> R {
    let (sender, receiver) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || sender.send(body()));
    match receiver.recv_timeout(PATIENCE) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("the wait did not end in time"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(thread.join().unwrap_err())
        }
    }
}

/// Whether `fd` has something to read right now, as a plain `poll` of the socket says.
fn socket_is_readable(fd: BorrowedFd<'_>) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    poll(&mut [PollFd::new(fd, PollFlags::POLLIN)], PollTimeout::ZERO).unwrap() > 0
}

#[test]
fn wait_returns_the_connection_that_has_a_message() {
    let (readers, mut writers): (Vec<Connection>, Vec<Connection>) =
        (0..4).map(|_| pipe(false).unwrap()).unzip();
    writers[2].send("ready").unwrap();
    assert_eq!(wait(&readers, Some(PATIENCE)).unwrap(), [2]);
    writers[0].send("ready too").unwrap();
    assert_eq!(wait(&readers, Some(PATIENCE)).unwrap(), [0, 2]);
}

#[test]
fn a_message_read_ahead_counts_as_ready_though_the_socket_is_idle() {
    let (mut reader, mut writer) = pipe(false).unwrap();
    let (idle, _idle_writer) = pipe(false).unwrap();
    writer.send(&1).unwrap();
    writer.send(&2).unwrap();
    assert_eq!(reader.recv::<i32>().unwrap(), 1);
    // The first `recv` read both messages: the second waits in the buffer, not the socket.
    assert!(!socket_is_readable(reader.as_fd()));
    assert_eq!(
        wait(&[&idle, &reader], Some(Duration::from_millis(100))).unwrap(),
        [1]
    );
    assert!(reader.poll(Some(Duration::ZERO)).unwrap());
    assert_eq!(reader.recv::<i32>().unwrap(), 2);
}

#[test]
fn a_closed_peer_counts_as_ready() {
    let (readers, mut writers): (Vec<Connection>, Vec<Connection>) =
        (0..3).map(|_| pipe(false).unwrap()).unzip();
    drop(writers.remove(1));
    assert_eq!(wait(&readers, Some(PATIENCE)).unwrap(), [1]);
    let [_, mut closed, _] = <[Connection; 3]>::try_from(readers).unwrap();
    assert!(matches!(closed.recv::<i32>(), Err(Error::Disconnected)));
}

#[test]
fn an_ended_process_counts_as_ready_and_a_running_one_does_not() {
    let running = sleeper();
    let quick = started(Process::new(|| ()));
    assert_eq!(wait(&[&running, &quick], Some(PATIENCE)).unwrap(), [1]);
    assert!(quick.join_timeout(Duration::ZERO).unwrap().is_some());
    // Once joined, it stays ready.
    assert_eq!(wait(&[&running, &quick], Some(PATIENCE)).unwrap(), [1]);

    let (reader, mut writer) = pipe(false).unwrap();
    let objects: [&dyn Waitable; 2] = [&running, &reader];
    running.kill().unwrap();
    assert_eq!(wait(&objects, Some(PATIENCE)).unwrap(), [0]);
    writer.send(&()).unwrap();
    assert_eq!(wait(&objects, Some(PATIENCE)).unwrap(), [0, 1]);
    assert_eq!(finish(&running).exitcode(), -9);
}

#[test]
fn a_timeout_returns_nothing_and_not_sooner() {
    let (reader, _writer) = pipe(false).unwrap();
    let running = sleeper();
    let timeout = Duration::from_millis(50);
    let (ready, waited) = within_patience({
        let running = running.clone();
        move || {
            let started = Instant::now();
            let objects: [&dyn Waitable; 2] = [&reader, &running];
            (wait(&objects, Some(timeout)).unwrap(), started.elapsed())
        }
    });
    assert!(ready.is_empty());
    assert!(waited >= timeout, "the wait returned after {waited:?}");
    running.kill().unwrap();
    finish(&running);
}

#[test]
fn a_zero_timeout_only_looks() {
    let (reader, mut writer) = pipe(false).unwrap();
    let running = sleeper();
    let (reader, ready) = within_patience({
        let running = running.clone();
        move || {
            let objects: [&dyn Waitable; 2] = [&reader, &running];
            let ready = wait(&objects, Some(Duration::ZERO)).unwrap();
            (reader, ready)
        }
    });
    assert!(ready.is_empty());
    writer.send(&()).unwrap();
    assert_eq!(wait(&[reader], Some(Duration::ZERO)).unwrap(), [0]);
    running.kill().unwrap();
    finish(&running);
}

#[test]
fn wait_refuses_what_can_never_be_ready() {
    let (_reader, writer) = pipe(false).unwrap();
    assert!(matches!(
        wait(&[writer], Some(PATIENCE)),
        Err(Error::OneWay { receives: false })
    ));
    let not_started = Process::new(|| ());
    assert!(matches!(
        wait(&[not_started], Some(PATIENCE)),
        Err(Error::NotStarted { .. })
    ));
    let nothing: [Connection; 0] = [];
    assert!(wait(&nothing, None).unwrap().is_empty());
}

/// What descriptor `fd` of this process is: `socket:[inode]` for one end of a pipe.
fn descriptor(fd: RawFd) -> PathBuf {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap()
}

#[test]
fn a_child_holds_a_copy_of_the_end_its_parent_kept() {
    let (parent_conn, mut child_conn) = pipe(true).unwrap();
    let (mut parent_is_done, mut say_done) = pipe(false).unwrap();
    let parent_fd = parent_conn.as_fd().as_raw_fd();
    let parent_end = descriptor(parent_fd);
    let p = Process::new(move || {
        // Inherited with every other descriptor, under the same number, and never closed:
        // `parent_conn` belongs to the parent's code, which does not run here.
        assert_eq!(descriptor(parent_fd), parent_end);
        assert!(parent_is_done.poll(Some(PATIENCE)).unwrap());
        parent_is_done.recv::<()>().unwrap();
        // The parent has dropped its end, but this process's copy keeps the socket open, so
        // the end of the stream does not come.
        assert!(!child_conn.poll(Some(Duration::from_millis(100))).unwrap());
        // Closing that copy, as a Python child closes `parent_conn`, lets it come.
        // SAFETY: `parent_fd` is this process's copy of the parent's end; the `Connection`
        // that owned it belongs to the parent's code, which never runs here, so nothing else
        // uses or closes it.
        drop(unsafe { OwnedFd::from_raw_fd(parent_fd) });
        assert!(child_conn.poll(Some(PATIENCE)).unwrap());
        assert!(matches!(child_conn.recv::<u8>(), Err(Error::Disconnected)));
    });
    p.start().unwrap();
    drop(parent_conn);
    say_done.send(&()).unwrap();
    assert!(finish(&p).success());
}

#[test]
fn a_process_started_while_a_pipe_is_open_holds_both_its_ends() {
    let (mut parent_conn, child_conn) = pipe(true).unwrap();
    let sibling = sleeper();
    assert!(run(&Process::new(move || drop(child_conn))).success());
    // The child's end is closed here (at its start) and in the child (at its end), but the
    // sibling holds the copy it inherited: no end of stream yet.
    assert!(!parent_conn.poll(Some(Duration::from_millis(100))).unwrap());
    sibling.kill().unwrap();
    assert_eq!(finish(&sibling).exitcode(), -9);
    assert!(parent_conn.poll(Some(PATIENCE)).unwrap());
    assert!(matches!(parent_conn.recv::<u8>(), Err(Error::Disconnected)));
}
