//! The batched UDP socket: several datagrams per system call each way.
//!
//! All use of [`quinn_udp`] is here, behind [`UdpIo`], [`RxBatch`] and [`TxBatch`]:
//!
//! * **Receive**: `recvmmsg` fills up to [`quinn_udp::BATCH_SIZE`] slots per call, and with
//!   UDP GRO (Linux) the kernel may put several datagrams of one sender into one slot
//!   (`stride` bytes each, the last possibly shorter), which [`RxBatch::drain`] splits
//!   again. Slots are big enough for a full GRO train, so nothing is truncated.
//! * **Send**: a flush is packed back to back in one buffer; each run of datagrams to the
//!   same destination and of the same size (the last of a run may be shorter) goes out in
//!   one `sendmsg` with UDP GSO (Linux >= 4.18), which the kernel splits into datagrams.
//!   Without GSO (other systems, or a device that refuses it, which quinn-udp detects and
//!   then stops asking for) each datagram is its own `sendmsg`.
//!
//! Buffers are allocated once per socket: nothing is allocated per datagram. The kernel
//! buffers are asked for [`SOCKET_BUFFER`] each way; when the kernel grants less
//! (`net.core.rmem_max`, `net.core.wmem_max`) a warning says so, once per process.
//!
//! quinn-udp wraps the system calls, so this module needs no `unsafe` of its own.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use mkcp_proto::endpoint::Transmit;
use mkcp_proto::wire::MAX_DATAGRAM;
use mkcp_proto::Endpoint;
use quinn_udp::{RecvMeta, Transmit as UdpTransmit, UdpSockRef, UdpSocketState, BATCH_SIZE};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Kernel buffer size asked for each way. A burst of a full sending window must not
/// overflow the receive queue.
pub(crate) const SOCKET_BUFFER: usize = 4 << 20;
/// Receive slot without GRO: a little over the largest valid datagram, so that an
/// oversized one is seen as such (and rejected by the codec) rather than silently
/// truncated to a valid size.
const RX_SLOT: usize = MAX_DATAGRAM + 64;
/// The largest UDP payload of one IPv4 send (65535 - 20 - 8): a GSO train and a GRO slot
/// are never larger.
const MAX_UDP_PAYLOAD: usize = 65_507;
/// Datagrams taken from the endpoint per flush (and per lock acquisition).
pub(crate) const TX_BATCH: usize = 96;

/// Set once the "kernel capped the buffers" warning has been given.
static BUFFER_WARNING: AtomicBool = AtomicBool::new(false);

/// A UDP socket with batched receive and send.
#[derive(Debug)]
pub(crate) struct UdpIo {
    socket: UdpSocket,
    state: UdpSocketState,
}

impl UdpIo {
    /// Prepares `socket` for batched I/O (GRO where the kernel has it) and sizes its
    /// kernel buffers.
    pub(crate) fn new(socket: UdpSocket) -> io::Result<UdpIo> {
        let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
        let io = UdpIo { socket, state };
        io.size_buffers();
        Ok(io)
    }

    /// Asks for [`SOCKET_BUFFER`] each way, reads back what the kernel granted and warns
    /// (once) when it is less.
    fn size_buffers(&self) {
        let sock = || UdpSockRef::from(&self.socket);
        // Best effort: the defaults work too, only with more loss under bursts.
        let _ = self.state.set_recv_buffer_size(sock(), SOCKET_BUFFER);
        let _ = self.state.set_send_buffer_size(sock(), SOCKET_BUFFER);
        let recv = self.state.recv_buffer_size(sock()).unwrap_or(0);
        let send = self.state.send_buffer_size(sock()).unwrap_or(0);
        tracing::debug!(
            recv,
            send,
            gso_segments = self.state.max_gso_segments(),
            gro_segments = self.state.gro_segments(),
            "UDP socket ready"
        );
        // Linux reports twice what it grants (the other half is its bookkeeping), so a
        // full grant reads back as at least what was asked for.
        if (recv < SOCKET_BUFFER || send < SOCKET_BUFFER)
            && !BUFFER_WARNING.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                asked = SOCKET_BUFFER,
                recv,
                send,
                "the kernel capped the UDP socket buffers; bursts may be lost. \
                 Raise the sysctls net.core.rmem_max and net.core.wmem_max \
                 (e.g. to 4194304) to allow more"
            );
        }
    }

    /// The local address.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Waits until the socket may have datagrams to read.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    /// Receives what the socket has, without waiting, into the free slots of `rx`;
    /// returns the number of datagrams received.
    pub(crate) fn try_recv(&self, rx: &mut RxBatch) -> usize {
        let mut received = 0;
        while rx.filled < rx.meta.len() {
            let filled = rx.filled;
            let mut slots = rx.buf[filled * rx.slot..].chunks_mut(rx.slot);
            let mut bufs: [IoSliceMut<'_>; BATCH_SIZE] =
                std::array::from_fn(|_| IoSliceMut::new(slots.next().unwrap_or_default()));
            let free = rx.meta.len() - filled;
            let r = self.socket.try_io(Interest::READABLE, || {
                self.state.recv(
                    UdpSockRef::from(&self.socket),
                    &mut bufs[..free],
                    &mut rx.meta[filled..],
                )
            });
            match r {
                Ok(n) => {
                    received += rx.meta[filled..filled + n]
                        .iter()
                        .map(|m| m.len.div_ceil(m.stride.max(1)))
                        .sum::<usize>();
                    rx.filled += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ICMP errors and the like: UDP is lossy, carry on.
                    tracing::debug!(error = %e, "UDP receive error");
                    break;
                }
            }
        }
        received
    }

    /// Sends every datagram of `tx` (waiting while the kernel's queue is full), then
    /// empties it. A datagram that cannot be sent is a lost datagram; the protocol copes.
    pub(crate) async fn send(&self, tx: &mut TxBatch) {
        let max_segments = self.state.max_gso_segments().max(1);
        let mut start = 0;
        let mut offset = 0;
        while start < tx.meta.len() {
            let Transmit {
                destination: dest,
                len: size,
            } = tx.meta[start];
            // The run: same destination, same size, the last possibly shorter.
            let mut end = start + 1;
            let mut bytes = size;
            while size > 0 && end < tx.meta.len() && end - start < max_segments {
                let Transmit {
                    destination: d,
                    len: n,
                } = tx.meta[end];
                if d != dest || n > size || bytes + n > MAX_UDP_PAYLOAD {
                    break;
                }
                bytes += n;
                end += 1;
                if n < size {
                    break;
                }
            }
            let transmit = UdpTransmit {
                destination: dest,
                ecn: None,
                contents: &tx.buf[offset..offset + bytes],
                segment_size: (end - start > 1).then_some(size),
                src_ip: None,
            };
            self.send_one(&transmit).await;
            start = end;
            offset += bytes;
        }
        tx.clear();
    }

    async fn send_one(&self, transmit: &UdpTransmit<'_>) {
        loop {
            let r = self.socket.try_io(Interest::WRITABLE, || {
                self.state
                    .try_send(UdpSockRef::from(&self.socket), transmit)
            });
            match r {
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.socket.writable().await {
                        tracing::debug!(error = %e, "UDP socket not writable");
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(
                        dest = %transmit.destination,
                        len = transmit.contents.len(),
                        segment = ?transmit.segment_size,
                        error = %e,
                        "UDP send error"
                    );
                    return;
                }
            }
        }
    }

    /// A receive batch sized for this socket (GRO slots where the kernel coalesces).
    pub(crate) fn rx_batch(&self) -> RxBatch {
        let gro = self.state.gro_segments().max(1);
        let slot = if gro > 1 {
            (MAX_DATAGRAM * gro).clamp(RX_SLOT, MAX_UDP_PAYLOAD)
        } else {
            RX_SLOT
        };
        RxBatch {
            buf: vec![0; BATCH_SIZE * slot],
            slot,
            meta: [RecvMeta::default(); BATCH_SIZE],
            filled: 0,
        }
    }
}

/// Received datagrams waiting to be fed to the endpoint.
pub(crate) struct RxBatch {
    buf: Vec<u8>,
    /// Bytes per slot.
    slot: usize,
    meta: [RecvMeta; BATCH_SIZE],
    /// Slots holding data.
    filled: usize,
}

impl RxBatch {
    /// Every received datagram with its source, in arrival order; empties the batch.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (SocketAddr, &mut [u8])> {
        let filled = std::mem::take(&mut self.filled);
        let slot = self.slot;
        self.meta[..filled]
            .iter()
            .zip(self.buf.chunks_mut(slot))
            .flat_map(move |(meta, buf)| {
                let addr = meta.addr;
                buf[..meta.len.min(slot)]
                    .chunks_mut(meta.stride.max(1))
                    .map(move |datagram| (addr, datagram))
            })
    }

    /// True when nothing is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.filled == 0
    }
}

/// Datagrams taken from the endpoint, packed back to back, waiting to be sent.
pub(crate) struct TxBatch {
    buf: Vec<u8>,
    /// Destination and length of each datagram, in buffer order.
    meta: Vec<Transmit>,
    /// Bytes used in `buf`.
    len: usize,
}

impl TxBatch {
    /// An empty batch with room for [`TX_BATCH`] datagrams.
    pub(crate) fn new() -> TxBatch {
        TxBatch {
            buf: vec![0; TX_BATCH * MAX_DATAGRAM],
            meta: Vec::with_capacity(TX_BATCH),
            len: 0,
        }
    }

    /// Takes up to [`TX_BATCH`] datagrams; true if the batch is full (there may be more).
    pub(crate) fn fill(&mut self, endpoint: &mut Endpoint, now: std::time::Instant) -> bool {
        self.fill_up_to(endpoint, now, usize::MAX)
    }

    /// Like [`Self::fill`], but stops once the batch holds `max_bytes` or more (a rate
    /// limit's budget: the last datagram may overdraw it); true if it stopped early.
    pub(crate) fn fill_up_to(
        &mut self,
        endpoint: &mut Endpoint,
        now: std::time::Instant,
        max_bytes: usize,
    ) -> bool {
        let room = TX_BATCH - self.meta.len();
        let before = self.meta.len();
        self.len += endpoint.poll_transmits(
            now,
            &mut self.buf[self.len..],
            room,
            max_bytes.saturating_sub(self.len),
            &mut self.meta,
        );
        self.meta.len() - before == room || self.len >= max_bytes
    }

    /// True when nothing is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// Bytes waiting (UDP payloads).
    pub(crate) fn bytes(&self) -> usize {
        self.len
    }

    fn clear(&mut self) {
        self.meta.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    impl TxBatch {
        /// Queues `bytes` for `dest` as if the endpoint had produced it.
        fn push(&mut self, dest: SocketAddr, bytes: &[u8]) {
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.meta.push(Transmit {
                destination: dest,
                len: bytes.len(),
            });
            self.len += bytes.len();
        }
    }

    /// A datagram that says who it is for and where it belongs.
    fn datagram(receiver: u8, seq: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| match i {
                0 => receiver,
                1 => seq,
                _ => (i as u8).wrapping_mul(31) ^ seq,
            })
            .collect()
    }

    async fn local() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").await.expect("bind")
    }

    /// One flush with runs of equal sizes, a shorter last datagram, a longer one that
    /// must start a new run, runs cut at the GSO limit, and several destinations
    /// interleaved: every datagram arrives intact and in order at its receiver.
    #[tokio::test]
    async fn a_mixed_flush_is_delivered_intact() {
        let sender = UdpIo::new(local().await).expect("sender");
        let receivers = [local().await, local().await, local().await];
        let addr = |r: usize| receivers[r].local_addr().expect("addr");
        let plan: Vec<(usize, usize)> = [
            vec![(0, 1000); 5],
            vec![(0, 300)],
            vec![(1, 1200); 3],
            vec![(0, 50); 2],
            vec![(1, 1500)],
            vec![(1, 1400)],
            vec![(2, 1350); 60],
            vec![(2, 2048); 4],
            vec![(0, 7)],
        ]
        .concat();
        assert!(plan.len() <= TX_BATCH);
        let mut tx = TxBatch::new();
        let mut expected: [Vec<Vec<u8>>; 3] = Default::default();
        for &(r, len) in &plan {
            let seq = expected[r].len() as u8;
            let d = datagram(r as u8, seq, len);
            tx.push(addr(r), &d);
            expected[r].push(d);
        }
        sender.send(&mut tx).await;
        assert!(tx.is_empty());
        for (r, want) in expected.iter().enumerate() {
            let mut buf = vec![0u8; 65536];
            for (i, d) in want.iter().enumerate() {
                let n = tokio::time::timeout(Duration::from_secs(10), receivers[r].recv(&mut buf))
                    .await
                    .unwrap_or_else(|_| panic!("receiver {r}: datagram {i} never came"))
                    .expect("recv");
                assert_eq!(&buf[..n], &d[..], "receiver {r}, datagram {i}");
            }
        }
    }

    /// A GSO train received on a batched socket (coalesced by GRO where the kernel does
    /// that) comes out as the datagrams that were sent.
    #[tokio::test]
    async fn a_train_is_received_as_its_datagrams() {
        let sender = UdpIo::new(local().await).expect("sender");
        let receiver = UdpIo::new(local().await).expect("receiver");
        let to = receiver.local_addr().expect("addr");
        let mut want = Vec::new();
        let mut tx = TxBatch::new();
        for seq in 0..80u8 {
            let len = if seq == 39 { 500 } else { 1200 };
            let d = datagram(0, seq, len);
            tx.push(to, &d);
            want.push(d);
        }
        sender.send(&mut tx).await;
        let mut rx = receiver.rx_batch();
        let mut got = Vec::new();
        let receive = async {
            while got.len() < want.len() {
                receiver.readable().await.expect("readable");
                receiver.try_recv(&mut rx);
                got.extend(rx.drain().map(|(_, d)| d.to_vec()));
            }
        };
        tokio::time::timeout(Duration::from_secs(10), receive)
            .await
            .expect("the train never came whole");
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "datagram {i}");
        }
    }
}
