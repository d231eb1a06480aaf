//! The queues between DTLS threads: a thread that is behind (it takes
//! nothing) is handed at most [`DELIVER_QUEUE`] deliveries and
//! [`DELIVER_QUEUE_BYTES`] of messages; once it takes them there is room
//! again.

use bytes::Bytes;

use super::{DELIVER_QUEUE, DELIVER_QUEUE_BYTES, Job, JobQueues};
use crate::datachannel::channels::Message;

fn message(len: usize) -> Message {
    Message {
        is_string: false,
        bytes: Bytes::from(vec![7u8; len]),
    }
}

/// What the thread does with its queue: takes every job off it.
fn take_all(queues: &JobQueues, receiver: &crossbeam_channel::Receiver<Job>, thread: usize) {
    for job in receiver.try_iter() {
        if let Job::Deliver { message, .. } = job {
            queues.delivered(thread, message.bytes.len());
        }
    }
}

/// The attack: publishers on one thread fan out faster than the thread
/// that runs their subscribers takes the messages. Before, its queue grew
/// without bound.
#[test]
fn deliveries_to_a_thread_that_is_behind_are_bounded() {
    let (queues, receivers) = JobQueues::new(2);
    // Many small messages: bounded in count.
    let sent = (0..DELIVER_QUEUE * 3)
        .filter(|_| queues.deliver(1, Vec::new(), message(0)))
        .count();
    assert_eq!(sent, DELIVER_QUEUE);
    assert_eq!(receivers[1].len(), DELIVER_QUEUE);
    assert!(
        receivers[0].is_empty(),
        "the other thread's queue is its own"
    );
    take_all(&queues, &receivers[1], 1);

    // Large messages: bounded in bytes.
    let large = 256 << 10;
    let sent = (0..1000)
        .filter(|_| queues.deliver(1, Vec::new(), message(large)))
        .count();
    assert_eq!(sent, DELIVER_QUEUE_BYTES / large);
    take_all(&queues, &receivers[1], 1);

    // Taken off, there is room for as many again.
    let sent = (0..DELIVER_QUEUE * 2)
        .filter(|_| queues.deliver(1, Vec::new(), message(10)))
        .count();
    assert_eq!(sent, DELIVER_QUEUE);
}
