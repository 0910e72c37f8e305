//! Batched input and output: several datagrams per call, so that the legacy envelope's
//! checksums run [`LEGACY_LANES`] side by side (FNV-1a is serial within a datagram; see
//! [`crate::wire::envelope`]). The effects and their order are those of one call per
//! datagram.

use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::time::Instant;

use super::{Endpoint, Transmit};
use crate::wire::envelope::LEGACY_LANES;
use crate::wire::{WireError, MAX_DATAGRAM};

impl Endpoint {
    /// Feeds received datagrams in arrival order, as one [`Endpoint::handle_datagram`]
    /// call each would (each is opened in place, so it is scratch afterwards), opening up
    /// to [`LEGACY_LANES`] at a time.
    pub fn handle_datagrams<'a>(
        &mut self,
        now: Instant,
        datagrams: impl IntoIterator<Item = (SocketAddr, &'a mut [u8])>,
    ) {
        let unspecified = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        let mut peers = [unspecified; LEGACY_LANES];
        let mut bufs: [&mut [u8]; LEGACY_LANES] = Default::default();
        let mut count = 0;
        for (peer, data) in datagrams {
            peers[count] = peer;
            bufs[count] = data;
            count += 1;
            if count == LEGACY_LANES {
                self.handle_group(now, &peers, &mut bufs);
                count = 0;
            }
        }
        self.handle_group(now, &peers[..count], &mut bufs[..count]);
    }

    /// Opens `bufs` together, then handles each in order.
    fn handle_group(&mut self, now: Instant, peers: &[SocketAddr], bufs: &mut [&mut [u8]]) {
        let mut opened: [Result<Range<usize>, WireError>; LEGACY_LANES] =
            std::array::from_fn(|_| Ok(0..0));
        self.codec.open_many(bufs, &mut opened);
        for ((peer, buf), range) in peers.iter().zip(bufs.iter()).zip(opened) {
            let plaintext = range.ok().map(|r| &buf[r]);
            self.handle_opened(now, *peer, buf.len(), plaintext);
        }
    }

    /// Takes datagrams to send into `buf`, back to back, and appends where each goes and
    /// its length to `out`; stops when nothing more is due, `buf` has no room for
    /// another ([`MAX_DATAGRAM`] bytes), `max_datagrams` are taken, or `max_bytes` are
    /// (a rate limit's budget: the last datagram may overdraw it). Returns the bytes used.
    ///
    /// The datagrams and their order are those of repeated [`Endpoint::poll_transmit`]
    /// calls; the legacy envelope's checksums run [`LEGACY_LANES`] at a time.
    pub fn poll_transmits(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        max_datagrams: usize,
        max_bytes: usize,
        out: &mut Vec<Transmit>,
    ) -> usize {
        let mut used = 0;
        let mut taken = 0;
        // Datagrams whose legacy seal is still to do: offset and length in `buf`.
        let mut pending = [(0, 0); LEGACY_LANES];
        let mut count = 0;
        while taken < max_datagrams && used < max_bytes && buf.len() - used >= MAX_DATAGRAM {
            let slot = &mut buf[used..used + MAX_DATAGRAM];
            let Some((t, deferred)) = self.next_transmit(now, slot, true) else {
                break;
            };
            if deferred {
                pending[count] = (used, t.len);
                count += 1;
                if count == LEGACY_LANES {
                    self.finish_seals(buf, &pending);
                    count = 0;
                }
            }
            used += t.len;
            taken += 1;
            out.push(t);
        }
        self.finish_seals(buf, &pending[..count]);
        used
    }

    /// Finishes the deferred seals of the datagrams at `pending` (ascending, disjoint
    /// ranges of `buf`).
    fn finish_seals(&self, buf: &mut [u8], pending: &[(usize, usize)]) {
        if pending.is_empty() {
            return;
        }
        let mut group: [&mut [u8]; LEGACY_LANES] = Default::default();
        let mut rest = buf;
        let mut base = 0;
        for (slot, &(off, len)) in group.iter_mut().zip(pending) {
            let (_, tail) = std::mem::take(&mut rest).split_at_mut(off - base);
            let (datagram, tail) = tail.split_at_mut(len);
            *slot = datagram;
            rest = tail;
            base = off + len;
        }
        self.codec.finish_seals(&mut group[..pending.len()]);
    }
}
