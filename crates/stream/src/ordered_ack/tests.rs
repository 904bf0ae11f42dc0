use std::collections::BTreeSet;

use futures::FutureExt as _;
use proptest::prelude::*;

use super::*;

/// The model: the reported position is the end LSN of the last ticket of the longest prefix
/// whose tickets all completed (`0/0` when the first is not complete).
fn model_position(lsns: &[u64], completed: &BTreeSet<usize>) -> u64 {
    let prefix = (0..lsns.len())
        .take_while(|i| completed.contains(i))
        .count();
    lsns[..prefix].iter().copied().max().unwrap_or(0)
}

proptest! {
    #[test]
    fn reports_the_end_of_the_longest_completed_prefix(
        steps in prop::collection::vec(0u64..1000, 1..60),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..60),
        capacity in 1usize..80,
    ) {
        // Ascending end LSNs (equal ones allowed: several units can end at one position).
        let lsns: Vec<u64> = steps
            .iter()
            .scan(0u64, |lsn, step| {
                *lsn += step;
                Some(*lsn)
            })
            .collect();
        let feedback = Feedback::new();
        let ordered = OrderedFeedback::with_capacity(feedback.clone(), capacity);
        let capacity = ordered.capacity();
        let mut pending: Vec<Option<Ticket>> = Vec::new();
        let mut completed = BTreeSet::new();
        let mut last = 0;
        let mut picks = order.iter();
        // Issue as the window allows; complete a randomly chosen outstanding ticket when full
        // or when the pick list says so. Some tickets are never completed.
        let mut next = 0;
        loop {
            if next < lsns.len() {
                if let Some(ticket) = ordered.try_ticket(Lsn(lsns[next])) {
                    prop_assert_eq!(ticket.sequence(), next as u64);
                    pending.push(Some(ticket));
                    next += 1;
                    continue;
                }
                let head = (0..pending.len()).find(|i| !completed.contains(i));
                prop_assert_eq!(
                    pending.len() - head.unwrap_or(pending.len()),
                    capacity,
                    "refused only when the window is full"
                );
            }
            let Some(pick) = picks.next() else { break };
            let open: Vec<usize> = (0..pending.len())
                .filter(|i| pending[*i].is_some())
                .collect();
            if open.is_empty() {
                if next < lsns.len() {
                    continue;
                }
                break;
            }
            let index = open[pick.index(open.len())];
            let ticket = pending[index].take().expect("open");
            let reported = ticket.complete();
            completed.insert(index);
            let expected = model_position(&lsns[..pending.len()], &completed);
            prop_assert_eq!(ordered.position(), Lsn(expected));
            prop_assert_eq!(feedback.processed_lsn(), Lsn(expected));
            prop_assert!(expected >= last, "monotonic");
            if expected > last {
                prop_assert_eq!(reported, Some(Lsn(expected)));
            }
            last = expected;
        }
    }
}

#[test]
fn a_dropped_ticket_holds_the_position_for_good() {
    let ordered = OrderedFeedback::new(Feedback::new());
    let failed = ordered.try_ticket(Lsn(10)).unwrap();
    let later = ordered.try_ticket(Lsn(20)).unwrap();
    drop(failed);
    assert_eq!(later.complete(), None);
    assert_eq!(ordered.position(), Lsn(0));
    assert_eq!(ordered.feedback().processed_lsn(), Lsn(0));
    assert_eq!(ordered.outstanding(), 2);
}

#[test]
fn ring_reuse_across_many_generations() {
    let ordered = OrderedFeedback::with_capacity(Feedback::new(), 4);
    for round in 0..100u64 {
        let tickets: Vec<Ticket> = (0..4)
            .map(|i| ordered.try_ticket(Lsn(round * 10 + i + 1)).unwrap())
            .collect();
        assert!(ordered.try_ticket(Lsn(u64::MAX)).is_none());
        for ticket in tickets.into_iter().rev() {
            let _ = ticket.complete();
        }
        assert_eq!(ordered.position(), Lsn(round * 10 + 4));
        assert_eq!(ordered.outstanding(), 0);
    }
}

#[test]
fn concurrent_workers_end_at_the_last_position() {
    let feedback = Feedback::new();
    let ordered = OrderedFeedback::with_capacity(feedback.clone(), 1 << 14);
    let tickets: Vec<Ticket> = (1..=10_000u64)
        .map(|i| ordered.try_ticket(Lsn(i * 8)).unwrap())
        .collect();
    let mut shards: Vec<Vec<Ticket>> = (0..4).map(|_| Vec::new()).collect();
    for (i, ticket) in tickets.into_iter().enumerate() {
        shards[i % 4].push(ticket);
    }
    let workers: Vec<_> = shards
        .into_iter()
        .enumerate()
        .map(|(w, mut shard)| {
            let watcher = ordered.clone();
            std::thread::spawn(move || {
                if w % 2 == 1 {
                    shard.reverse();
                }
                let mut last = Lsn(0);
                for ticket in shard {
                    let _ = ticket.complete();
                    let now = watcher.position();
                    assert!(now >= last, "position went back");
                    last = now;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(ordered.position(), Lsn(80_000));
    assert_eq!(feedback.processed_lsn(), Lsn(80_000));
}

#[tokio::test]
async fn issuing_waits_for_room_and_resumes_on_completion() {
    let ordered = OrderedFeedback::with_capacity(Feedback::new(), 1);
    let first = ordered.ticket(Lsn(1)).await;
    let mut second = Box::pin(ordered.ticket(Lsn(2)));
    assert!((&mut second).now_or_never().is_none(), "window full");
    assert_eq!(first.complete(), Some(Lsn(1)));
    let second = second.await;
    assert_eq!(second.sequence(), 1);
    assert_eq!(second.complete(), Some(Lsn(2)));
}

const fn assert_send_sync<T: Send + Sync + 'static>() {}
const _: () = assert_send_sync::<OrderedFeedback>();
const _: () = assert_send_sync::<Ticket>();
