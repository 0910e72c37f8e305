//! The application side of a connection: writing, reading, half-close and close.

use std::time::Instant;

use super::{Connection, ConnectionError, State};

impl Connection {
    /// Queues stream bytes; returns how many were taken (0 when the send buffer is
    /// full: wait for [`ConnEvent::Writable`](super::ConnEvent::Writable)).
    pub(crate) fn write(&mut self, now: Instant, data: &[u8]) -> Result<usize, ConnectionError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        match self.state {
            State::Active if !self.close.write_shut => {}
            State::PeerClosed | State::PeerTerminating => return Err(ConnectionError::PeerClosed),
            _ => return Err(ConnectionError::Closed),
        }
        if self.send.is_empty() {
            self.guard.stall_from_us = self.now_us.max(self.us(now));
        }
        let n = self.send.write(
            data,
            self.v2ray.is_none(),
            self.p.send_buffer_segments,
            self.p.write_buffer_bytes,
        );
        self.stats.bytes_written += n as u64;
        self.times.last_data_us = self.now_us.max(self.us(now));
        if n < data.len() {
            self.close.write_blocked = true;
            self.close.writable_signalled = false;
        } else {
            self.close.write_blocked = false;
        }
        if n > 0 {
            let t = self.advance(now);
            self.v2ray_wake(t);
        }
        Ok(n)
    }

    /// Bytes that can be written before the send buffer is full (approximate).
    pub fn send_capacity(&self) -> usize {
        if self.state != State::Active || self.close.write_shut {
            return 0;
        }
        let by_segments = self
            .p
            .send_buffer_segments
            .saturating_sub(self.send.len())
            .saturating_mul(self.p.mss);
        by_segments.min(self.p.write_buffer_bytes.saturating_sub(self.send.bytes()))
    }

    /// Bytes written but not yet acknowledged.
    pub fn unacked_bytes(&self) -> usize {
        self.send.bytes()
    }

    /// Reads in-order stream bytes. `Ok(Some(n))` with `n > 0`: data; `Ok(Some(0))`:
    /// end of stream; `Ok(None)`: nothing yet (wait for [`ConnEvent::Readable`](super::ConnEvent::Readable));
    /// `Err`: the connection failed.
    pub(crate) fn read(
        &mut self,
        now: Instant,
        buf: &mut [u8],
    ) -> Result<Option<usize>, ConnectionError> {
        if buf.is_empty() {
            return Ok(Some(0));
        }
        let n = if self.state == State::ReadyToClose {
            0
        } else {
            self.recv.read(buf)
        };
        if n > 0 {
            self.stats.bytes_read += n as u64;
            let t = self.advance(now);
            self.times.last_data_us = self.now_us;
            if self.v2ray.is_some() {
                self.v2ray_wake(t);
            } else {
                // Reopen a window we advertised as (nearly) closed.
                let open = self.recv.next().distance_to(self.peer.advertised_end);
                if open < self.recv.window() / 2 {
                    self.due.ack = true;
                }
            }
            return Ok(Some(n));
        }
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.is_eof() {
            return Ok(Some(0));
        }
        Ok(None)
    }

    fn is_eof(&self) -> bool {
        match self.state {
            State::ReadyToClose
            | State::Terminating
            | State::Terminated
            | State::PeerTerminating => !self.recv.readable(),
            State::Active | State::PeerClosed => {
                self.close.peer_fin == Some(self.recv.next()) && !self.recv.readable()
            }
        }
    }

    /// True when a read would return data or end-of-stream (or an error).
    pub fn is_readable(&self) -> bool {
        self.recv.readable() || self.is_eof() || self.error.is_some()
    }

    /// Half-close: no more writes; the peer reads end-of-stream after the data already
    /// written. Reading continues.
    pub(crate) fn shutdown_write(&mut self, now: Instant) {
        if self.close.write_shut {
            return;
        }
        self.close.write_shut = true;
        let t = self.advance(now);
        self.after_progress(t);
    }

    /// True once `Self::shutdown_write` was called.
    pub fn is_write_shut(&self) -> bool {
        self.close.write_shut
    }

    /// Full close (V2Ray's Close): the peer is told we are gone once queued data is
    /// delivered; nothing more is read.
    pub(crate) fn close(&mut self, now: Instant) {
        let t = self.advance(now);
        match self.state {
            State::Active => self.set_state(t, State::ReadyToClose),
            State::PeerClosed => self.set_state(t, State::Terminating),
            State::PeerTerminating => self.set_state(t, State::Terminated),
            _ => {}
        }
        if self.state == State::ReadyToClose {
            if self.v2ray.is_some() {
                self.v2ray_wake(t);
            } else {
                self.due.ping = true; // carries the Close option at once
            }
        }
        self.after_progress(t);
    }
}
