//! Running a [`Network`]: the event loop (`step`, the `run_*` variants) and the
//! delivery of datagrams and timeouts to the nodes.

use std::time::{Duration, Instant};

use super::{Datagram, Network, SimError};

impl Network {
    /// The time of the earliest pending event (delivery or node timeout), if any. May be
    /// earlier than [`now`](Self::now) if a node asked for a timeout in the past.
    pub fn next_event(&self) -> Option<Instant> {
        let deliveries = self.links.iter().filter_map(|l| l.link.next_delivery());
        let timeouts = self.nodes.iter().filter_map(|n| n.node.poll_timeout());
        deliveries.chain(timeouts).min()
    }

    /// Handles one instant: drains every node's transmits, moves the clock to the earliest
    /// pending event (never backwards), and handles everything due by then, including what
    /// those events cause at the same instant. Returns `Ok(false)` if nothing was pending.
    pub fn step(&mut self) -> Result<bool, SimError> {
        for i in 0..self.nodes.len() {
            self.drain(i)?;
        }
        let Some(t) = self.next_event() else {
            return Ok(false);
        };
        self.advance_clock(t);
        loop {
            let mut progressed = false;
            for li in 0..self.links.len() {
                while let Some(data) = self.links[li].link.poll(self.now) {
                    progressed = true;
                    self.deliver(data)?;
                }
            }
            for ni in 0..self.nodes.len() {
                let due = self.nodes[ni]
                    .node
                    .poll_timeout()
                    .is_some_and(|t| t <= self.now);
                if due {
                    progressed = true;
                    self.count_event()?;
                    self.stats.timeouts += 1;
                    self.nodes[ni].node.handle_timeout(self.now);
                    self.drain(ni)?;
                }
            }
            if !progressed {
                return Ok(true);
            }
        }
    }

    /// Runs every event up to and including `deadline`, then sets the clock to `deadline`
    /// (if it is later than now).
    pub fn run_until(&mut self, deadline: Instant) -> Result<(), SimError> {
        loop {
            for i in 0..self.nodes.len() {
                self.drain(i)?;
            }
            match self.next_event() {
                Some(t) if t <= deadline => {
                    self.step()?;
                }
                _ => break,
            }
        }
        self.advance_clock(deadline);
        Ok(())
    }

    /// Runs for `duration` of virtual time: `run_until(now + duration)`.
    pub fn run_for(&mut self, duration: Duration) -> Result<(), SimError> {
        match self.now.checked_add(duration) {
            Some(deadline) => self.run_until(deadline),
            None => self.run_until_idle(),
        }
    }

    /// Runs until no event is pending (careful: nodes with periodic timers never idle).
    pub fn run_until_idle(&mut self) -> Result<(), SimError> {
        while self.step()? {}
        Ok(())
    }

    /// Runs until `cond(self)` holds, checking before the first step and after each one,
    /// for at most `max` of virtual time. Returns `Ok(true)` when the condition held
    /// (the clock stays at the instant it became true), `Ok(false)` when `max` elapsed
    /// or nothing was left to happen (the clock is then at `now + max`).
    pub fn run_until_cond<F>(&mut self, max: Duration, mut cond: F) -> Result<bool, SimError>
    where
        F: FnMut(&mut Network) -> bool,
    {
        let deadline = self.now.checked_add(max);
        loop {
            if cond(self) {
                return Ok(true);
            }
            for i in 0..self.nodes.len() {
                self.drain(i)?;
            }
            let next = self.next_event();
            match (next, deadline) {
                (Some(t), Some(d)) if t <= d => {}
                (Some(_), None) => {}
                _ => {
                    if let Some(d) = deadline {
                        self.advance_clock(d);
                    }
                    return Ok(cond(self));
                }
            }
            self.step()?;
        }
    }

    fn advance_clock(&mut self, t: Instant) {
        if t > self.now {
            self.now = t;
            self.events_at_now = 0;
        }
    }

    fn count_event(&mut self) -> Result<(), SimError> {
        self.events_at_now += 1;
        if self.events_at_now > self.stall_limit {
            return Err(SimError::Stalled {
                at: self.now,
                events: self.events_at_now,
            });
        }
        Ok(())
    }

    /// Hands a datagram that left link `li` to its destination node, then drains the
    /// node's replies.
    fn deliver(&mut self, d: Datagram) -> Result<(), SimError> {
        self.count_event()?;
        let Datagram { from, to, mut data } = d;
        if let Some(tap) = self.tap.as_mut() {
            if !tap(self.now, from, to, &mut data) {
                self.stats.tapped += 1;
                self.recycle(data);
                return Ok(());
            }
        }
        let Some(&ni) = self.node_index.get(&to) else {
            self.stats.undeliverable += 1;
            self.recycle(data);
            return Ok(());
        };
        self.stats.delivered += 1;
        self.nodes[ni]
            .node
            .handle_datagram(self.now, from, &mut data);
        self.recycle(data);
        self.drain(ni)
    }

    /// Moves everything node `ni` wants to send into the links.
    fn drain(&mut self, ni: usize) -> Result<(), SimError> {
        let from = self.nodes[ni].addr;
        loop {
            let Some((to, len)) = self.nodes[ni].node.poll_transmit(self.now, &mut self.buf) else {
                return Ok(());
            };
            self.count_event()?;
            let Some(bytes) = self.buf.get(..len) else {
                self.stats.oversize += 1;
                continue;
            };
            let mut packet = self.pool.pop().unwrap_or_default();
            packet.clear();
            packet.extend_from_slice(bytes);
            let li = self.link_id(from, to);
            self.links[li].link.push(
                self.now,
                len,
                Datagram {
                    from,
                    to,
                    data: packet,
                },
            );
        }
    }
}
