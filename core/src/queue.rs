//! The fixed-capacity queue of parked requests: the ones that wait for a refresh to finish.
//!
//! Each entry knows its own fate. A refusal, an exhausted episode or a passed deadline marks the
//! entries it dooms with a [`Rejection`]; the coordinator then drains the queue from the front,
//! rejecting doomed entries and sending the others once a usable token exists. Doomed entries
//! always form a prefix of the queue (deadlines are set in parking order from a clock that never
//! goes backwards, and the other dooms mark every entry), so draining from the front alone
//! releases every request in the order it was parked.

use heapless::Deque;

use crate::error::Rejection;
use crate::ticket::RequestId;
use crate::time::Instant;

/// One parked request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Parked {
    pub(crate) id: RequestId,
    /// Replays already spent, carried into the ticket the request is released with.
    pub(crate) replays: u8,
    /// When the request stops waiting and is rejected with [`Rejection::Timeout`].
    pub(crate) deadline_at: Instant,
    /// `Some` once the request is doomed; it is then rejected with this reason when drained.
    pub(crate) fate: Option<Rejection>,
}

/// At most `N` parked requests, oldest first, no id twice.
///
/// Every operation the coordinator makes per request is O(1) (amortised), so a storm of 1024
/// parked requests costs the same per request as a storm of 8:
/// - the doomed entries are a prefix of length `doomed`, so expiry only looks at the first entry
///   still waiting;
/// - `present` counts the parked ids per bucket `id % N`, so the duplicate check scans the queue
///   only when the bucket is taken (never, for ids from a counter).
#[derive(Debug)]
pub(crate) struct ParkQueue<const N: usize> {
    entries: Deque<Parked, N>,
    /// How many entries at the front are doomed.
    doomed: usize,
    /// Parked ids per bucket `id % N`.
    present: [u16; N],
}

impl<const N: usize> ParkQueue<N> {
    pub(crate) const fn new() -> Self {
        Self { entries: Deque::new(), doomed: 0, present: [0; N] }
    }

    /// Parks `entry` at the back.
    ///
    /// # Errors
    /// [`Rejection::DuplicateRequest`] if the id is already parked, [`Rejection::QueueFull`] if
    /// `N` entries are parked. The queue is unchanged in both cases.
    pub(crate) fn push(&mut self, entry: Parked) -> Result<(), Rejection> {
        let bucket = Self::bucket(entry.id);
        let taken = bucket.and_then(|b| self.present.get(b)).is_some_and(|&n| n > 0);
        if taken && self.contains(entry.id) {
            return Err(Rejection::DuplicateRequest);
        }
        self.entries.push_back(entry).map_err(|_| Rejection::QueueFull)?;
        if let Some(count) = bucket.and_then(|b| self.present.get_mut(b)) {
            *count = count.saturating_add(1);
        }
        Ok(())
    }

    pub(crate) fn front(&self) -> Option<&Parked> {
        self.entries.front()
    }

    pub(crate) fn pop_front(&mut self) -> Option<Parked> {
        let entry = self.entries.pop_front()?;
        self.doomed = self.doomed.saturating_sub(1);
        self.forget(entry.id);
        Some(entry)
    }

    /// Dooms every entry that is not doomed yet.
    pub(crate) fn doom_all(&mut self, reason: Rejection) {
        while let Some(entry) = self.entries.get_mut(self.doomed) {
            entry.fate = Some(reason);
            self.doomed += 1;
        }
    }

    /// Dooms with [`Rejection::Timeout`] every entry whose deadline is at or before `now`.
    /// Deadlines grow from front to back, so this stops at the first entry still in time.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some(entry) = self.entries.get_mut(self.doomed) {
            if entry.deadline_at > now {
                break;
            }
            entry.fate = Some(Rejection::Timeout);
            self.doomed += 1;
        }
    }

    /// True if some entry still waits for a token (is not doomed).
    pub(crate) fn has_waiting(&self) -> bool {
        self.doomed < self.entries.len()
    }

    /// The earliest deadline among the entries still waiting.
    // Out of line: two callers, and the 64-bit compares are long on a microcontroller.
    #[inline(never)]
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.entries.get(self.doomed).map(|p| p.deadline_at)
    }

    /// Removes the entry for `id`, if parked. Returns whether it was.
    pub(crate) fn remove(&mut self, id: RequestId) -> bool {
        let Some(index) = self.entries.iter().position(|p| p.id == id) else {
            return false;
        };
        if index < self.doomed {
            self.doomed -= 1;
        }
        self.entries.retain(|p| p.id != id);
        self.forget(id);
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Parked> {
        self.entries.iter()
    }

    fn contains(&self, id: RequestId) -> bool {
        let (a, b) = self.entries.as_slices();
        a.iter().any(|p| p.id == id) || b.iter().any(|p| p.id == id)
    }

    fn bucket(id: RequestId) -> Option<usize> {
        usize::try_from(id.0).ok().and_then(|id| id.checked_rem(N))
    }

    fn forget(&mut self, id: RequestId) {
        if let Some(count) = Self::bucket(id).and_then(|b| self.present.get_mut(b)) {
            *count = count.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parked(id: u32, deadline: u64) -> Parked {
        Parked {
            id: RequestId(id),
            replays: 0,
            deadline_at: Instant::from_millis(deadline),
            fate: None,
        }
    }

    #[test]
    fn full_queue_refuses_and_keeps_what_it_has() {
        let mut q = ParkQueue::<2>::new();
        assert_eq!(q.push(parked(1, 10)), Ok(()));
        assert_eq!(q.push(parked(2, 10)), Ok(()));
        assert_eq!(q.push(parked(3, 10)), Err(Rejection::QueueFull));
        assert_eq!(q.iter().map(|p| p.id.0).collect::<std::vec::Vec<_>>(), [1, 2]);
    }

    #[test]
    fn duplicate_id_is_refused() {
        let mut q = ParkQueue::<4>::new();
        q.push(parked(1, 10)).unwrap();
        assert_eq!(q.push(parked(1, 20)), Err(Rejection::DuplicateRequest));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn expiry_dooms_only_entries_past_their_deadline_and_keeps_earlier_fates() {
        let mut q = ParkQueue::<4>::new();
        q.push(parked(1, 10)).unwrap();
        q.push(parked(2, 20)).unwrap();
        q.push(parked(3, 30)).unwrap();
        q.expire(Instant::from_millis(10));
        q.entries.front_mut().unwrap().fate = Some(Rejection::NeedsLogin);
        q.expire(Instant::from_millis(20));
        let fates: std::vec::Vec<_> = q.iter().map(|p| p.fate).collect();
        assert_eq!(fates, [Some(Rejection::NeedsLogin), Some(Rejection::Timeout), None]);
        assert_eq!(q.next_deadline(), Some(Instant::from_millis(30)));
        assert!(q.has_waiting());
        q.doom_all(Rejection::RefreshUnavailable);
        assert!(!q.has_waiting());
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn remove_takes_out_one_entry_and_keeps_the_order() {
        let mut q = ParkQueue::<4>::new();
        for id in 1..=3 {
            q.push(parked(id, 10)).unwrap();
        }
        assert!(q.remove(RequestId(2)));
        assert!(!q.remove(RequestId(2)));
        assert_eq!(q.push(parked(2, 10)), Ok(()), "a removed id may park again");
        assert!(q.remove(RequestId(2)));
        assert_eq!(q.pop_front().map(|p| p.id), Some(RequestId(1)));
        assert_eq!(q.pop_front().map(|p| p.id), Some(RequestId(3)));
        assert_eq!(q.pop_front(), None);
    }

    #[test]
    fn ids_sharing_a_bucket_are_still_told_apart() {
        let mut q = ParkQueue::<4>::new();
        for id in [1, 5, 9, 13] {
            q.push(parked(id, 10)).unwrap();
        }
        assert_eq!(q.push(parked(9, 10)), Err(Rejection::DuplicateRequest));
        q.pop_front();
        assert_eq!(q.push(parked(1, 10)), Ok(()));
        assert_eq!(q.push(parked(17, 10)), Err(Rejection::QueueFull));
    }

    #[test]
    fn doomed_prefix_follows_pops_and_removals() {
        let mut q = ParkQueue::<4>::new();
        for id in 1..=3 {
            q.push(parked(id, id.into())).unwrap();
        }
        q.expire(Instant::from_millis(2));
        assert_eq!(q.doomed, 2);
        assert!(q.remove(RequestId(1)));
        assert_eq!(q.doomed, 1);
        assert_eq!(q.pop_front().map(|p| p.fate), Some(Some(Rejection::Timeout)));
        assert_eq!(q.doomed, 0);
        assert_eq!(q.next_deadline(), Some(Instant::from_millis(3)));
    }
}
