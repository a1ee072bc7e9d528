//! A set of driven sockets that a host's event loop watches as one descriptor (Linux: an
//! epoll set, which is readable while any socket in it is ready).
//!
//! Why: a host loop that watches each reported socket itself pays its bookkeeping per wait:
//! asyncio's `add_reader`/`remove_reader` are ~20 Python-level calls and two `epoll_ctl`s
//! around every read; libuv's `uv_poll` turns the descriptor non-blocking (the pool's sockets
//! are shared with sync callers) and forbids closing a descriptor it polls. Here the loop
//! watches one descriptor for good and a wait costs one `epoll_ctl`.
//!
//! A socket is armed `EPOLLONESHOT` with the waiting call's token: the report that wakes the
//! call disarms it, which keeps [`super::driven`]'s contract (a reported socket is not watched
//! when the call is polled next: that poll may close it or pool it). A socket armed but not
//! reported (the call was woken by something else) can at most report once more, with a token
//! its host must then find finished or poll harmlessly. A closed socket leaves the set by
//! itself; one pooled and armed again by another call is re-armed with that call's token.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::Wait;

pub struct SocketSet {
    epoll: OwnedFd,
}

impl SocketSet {
    pub fn new() -> io::Result<SocketSet> {
        // SAFETY: a plain syscall; the descriptor is owned from here.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: just created, owned by nothing else.
        Ok(SocketSet { epoll: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// The descriptor for the host's loop to watch for readability.
    pub fn fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }

    /// Watch `waits` (a poll's report) for the call `token`, each socket for one report.
    pub fn arm(&self, token: u64, waits: &[Wait]) -> io::Result<()> {
        for (i, w) in waits.iter().enumerate() {
            if waits[..i].iter().any(|o| o.fd == w.fd) {
                continue;
            }
            // One request waits to read or to write a socket; both at once are folded in.
            let events =
                waits.iter().filter(|o| o.fd == w.fd).fold(libc::EPOLLONESHOT, |e, o| e | if o.write { libc::EPOLLOUT } else { libc::EPOLLIN });
            // Usually the socket is in the set already, disarmed by its last report.
            if self.ctl(libc::EPOLL_CTL_MOD, w.fd, events, token).is_err_and(|e| e.raw_os_error() == Some(libc::ENOENT)) {
                self.ctl(libc::EPOLL_CTL_ADD, w.fd, events, token)?;
            }
        }
        Ok(())
    }

    /// Watch `fd` (a wake-up eventfd or pipe) for readability at every report, as `token`.
    pub fn watch(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN, token)
    }

    /// The tokens reported ready now (without waiting), each once, in ascending order.
    pub fn ready(&self) -> Vec<u64> {
        let mut tokens = Vec::new();
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 32];
        loop {
            // SAFETY: fills at most `events.len()` entries of the array.
            let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), events.len() as libc::c_int, 0) };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            // A copy of each: the field of a packed struct cannot be borrowed.
            tokens.extend(events[..n as usize].iter().map(|e| e.u64));
            if (n as usize) < events.len() {
                break;
            }
        }
        tokens.sort_unstable();
        tokens.dedup();
        tokens
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: libc::c_int, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: events as u32, u64: token };
        // SAFETY: a plain syscall on the set and a descriptor the caller's call owns.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    use super::*;

    fn read_wait(s: &UnixStream) -> Wait {
        Wait { fd: s.as_raw_fd(), write: false }
    }

    #[test]
    fn an_armed_socket_reports_once_per_arming_with_its_token() {
        let set = SocketSet::new().unwrap();
        let (a, mut peer) = UnixStream::pair().unwrap();
        let (b, _peer_b) = UnixStream::pair().unwrap();
        set.arm(7, &[read_wait(&a)]).unwrap();
        set.arm(9, &[read_wait(&b)]).unwrap();
        assert!(set.ready().is_empty(), "nothing to read yet");
        peer.write_all(b"x").unwrap();
        assert_eq!(set.ready(), vec![7]);
        // Disarmed by that report, though the byte is still unread.
        assert!(set.ready().is_empty());
        // Armed again (already in the set: MOD), by another call this time.
        set.arm(8, &[read_wait(&a)]).unwrap();
        assert_eq!(set.ready(), vec![8]);
    }

    #[test]
    fn a_write_wait_and_a_read_wait_on_one_socket_are_one_arming() {
        let set = SocketSet::new().unwrap();
        let (a, _peer) = UnixStream::pair().unwrap();
        set.arm(3, &[read_wait(&a), Wait { fd: a.as_raw_fd(), write: true }]).unwrap();
        // Writable at once; reported once for both.
        assert_eq!(set.ready(), vec![3]);
    }

    #[test]
    fn a_closed_socket_leaves_the_set_and_its_number_can_be_armed_anew() {
        let set = SocketSet::new().unwrap();
        let (a, peer) = UnixStream::pair().unwrap();
        set.arm(1, &[read_wait(&a)]).unwrap();
        drop(a);
        drop(peer);
        assert!(set.ready().is_empty(), "a closed socket reports nothing");
        let (c, mut peer_c) = UnixStream::pair().unwrap();
        set.arm(2, &[read_wait(&c)]).unwrap();
        peer_c.write_all(b"x").unwrap();
        assert_eq!(set.ready(), vec![2]);
    }

    #[test]
    fn a_watched_wake_up_descriptor_reports_every_time_until_read() {
        let set = SocketSet::new().unwrap();
        let (a, mut peer) = UnixStream::pair().unwrap();
        set.watch(a.as_raw_fd(), u64::MAX).unwrap();
        peer.write_all(b"x").unwrap();
        assert_eq!(set.ready(), vec![u64::MAX]);
        assert_eq!(set.ready(), vec![u64::MAX], "level-triggered, not one-shot");
    }
}
