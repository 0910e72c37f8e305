//! The application side of an endpoint: events, connection access and stream calls.

use std::net::SocketAddr;
use std::time::Instant;

use super::{ConnId, Endpoint, EndpointError, Entry, Event};
use crate::conn::{Connection, ConnectionStats, State};

impl Endpoint {
    /// Takes the next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn entry(&mut self, id: ConnId) -> Result<&mut Entry, EndpointError> {
        match self.slots.get_mut(id.index as usize) {
            Some(Some(e)) if e.gen == id.gen => Ok(e),
            _ => Err(EndpointError::UnknownConnection),
        }
    }

    /// The connection, read-only.
    pub fn connection(&self, id: ConnId) -> Option<&Connection> {
        match self.slots.get(id.index as usize) {
            Some(Some(e)) if e.gen == id.gen => Some(&e.conn),
            _ => None,
        }
    }

    /// The peer address of a connection.
    pub fn peer(&self, id: ConnId) -> Option<SocketAddr> {
        match self.slots.get(id.index as usize) {
            Some(Some(e)) if e.gen == id.gen => Some(e.peer),
            _ => None,
        }
    }

    /// Statistics of a connection.
    pub fn connection_stats(&self, id: ConnId) -> Option<ConnectionStats> {
        self.connection(id).map(|c| c.stats())
    }

    /// Queues stream bytes on a connection; see `Connection::write`.
    pub fn write(&mut self, id: ConnId, now: Instant, data: &[u8]) -> Result<usize, EndpointError> {
        let n = self.entry(id)?.conn.write(now, data)?;
        self.service(id.index);
        Ok(n)
    }

    /// Reads stream bytes from a connection; see `Connection::read`.
    pub fn read(
        &mut self,
        id: ConnId,
        now: Instant,
        buf: &mut [u8],
    ) -> Result<Option<usize>, EndpointError> {
        let r = self.entry(id)?.conn.read(now, buf)?;
        self.service(id.index);
        Ok(r)
    }

    /// Half-closes a connection; see `Connection::shutdown_write`.
    pub fn shutdown_write(&mut self, id: ConnId, now: Instant) -> Result<(), EndpointError> {
        self.entry(id)?.conn.shutdown_write(now);
        self.service(id.index);
        Ok(())
    }

    /// Closes a connection (V2Ray's Close); see `Connection::close`.
    pub fn close(&mut self, id: ConnId, now: Instant) -> Result<(), EndpointError> {
        self.entry(id)?.conn.close(now);
        self.service(id.index);
        Ok(())
    }

    /// The application no longer holds this connection: it is closed gracefully if
    /// still open, and its slot is freed once it has terminated.
    pub fn release(&mut self, id: ConnId, now: Instant) {
        let Ok(e) = self.entry(id) else { return };
        e.released = true;
        if e.conn.state() != State::Terminated {
            e.conn.close(now);
        }
        self.service(id.index);
    }

    /// Closes every connection gracefully (listener shutdown).
    pub fn close_all(&mut self, now: Instant) {
        for index in 0..self.slots.len() as u32 {
            if let Some(Some(e)) = self.slots.get_mut(index as usize) {
                e.conn.close(now);
                self.service(index);
            }
        }
    }

    /// Ids of every connection still held (terminated or not).
    pub fn connection_ids(&self) -> Vec<ConnId> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.as_ref().map(|e| ConnId {
                    index: i as u32,
                    gen: e.gen,
                })
            })
            .collect()
    }
}
